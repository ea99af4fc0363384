//! Finds the substances a text names: the vocabulary's names and aliases first, then the
//! name endings of antimicrobials and antiparasitics that are not in the table.

use std::{collections::HashMap, sync::LazyLock};

use regex::Regex;

use super::vocabulary::{Class, ENDINGS, Prohibited, Rx, SUBSTANCES, Substance};

/// A substance named in the text at `start..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mention {
    pub start: usize,
    pub end: usize,
    pub class: Class,
    pub rx: Rx,
    pub prohibited: Prohibited,
}

impl Mention {
    fn of(start: usize, end: usize, s: &Substance) -> Mention {
        Mention {
            start,
            end,
            class: s.class,
            rx: s.rx,
            prohibited: s.prohibited,
        }
    }

    pub fn banned(&self) -> bool {
        matches!(self.prohibited, Prohibited::Always(_))
    }
}

struct Lexicon {
    names: Regex,
    by_name: HashMap<String, &'static Substance>,
    endings: Regex,
}

static LEXICON: LazyLock<Lexicon> = LazyLock::new(|| {
    let mut by_name = HashMap::new();
    for s in SUBSTANCES {
        for name in std::iter::once(&s.name).chain(s.aliases) {
            by_name.insert(normalize(name), s);
        }
    }
    let mut names: Vec<&String> = by_name.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let alternation = names
        .iter()
        .map(|n| {
            n.split(' ')
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(r"[\s-]+")
        })
        .collect::<Vec<_>>()
        .join("|");
    let endings = ENDINGS
        .iter()
        .map(|(e, ..)| regex::escape(e))
        .collect::<Vec<_>>()
        .join("|");
    Lexicon {
        names: Regex::new(&format!(r"(?i)\b(?:{alternation})\b")).expect("static vocabulary"),
        by_name,
        endings: Regex::new(&format!(
            r"(?i)\b(?:[a-z]*(?:{endings})[a-z]*|sulf[a-z]{{5,}}|sulph[a-z]{{5,}})\b"
        ))
        .expect("static endings"),
    }
});

/// Lower case, words separated by one space (hyphens too: "lambda-cyhalothrin").
fn normalize(name: &str) -> String {
    name.to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '-')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

const NOT_SULFONAMIDES: &[&str] = &["sulphate", "sulfate", "sulphates", "sulfates", "sulphuric"];

fn by_ending(word: &str) -> Option<Mention> {
    let lower = word.to_lowercase();
    if let Some((_, class, rx, prohibited)) = ENDINGS.iter().find(|(e, ..)| lower.contains(e)) {
        return Some(Mention {
            start: 0,
            end: 0,
            class: *class,
            rx: *rx,
            prohibited: *prohibited,
        });
    }
    let sulfa = (lower.starts_with("sulf") || lower.starts_with("sulph"))
        && !lower.starts_with("sulfur")
        && !lower.starts_with("sulphur")
        && !NOT_SULFONAMIDES.contains(&lower.as_str());
    sulfa.then_some(Mention {
        start: 0,
        end: 0,
        class: Class::Sulfonamide,
        rx: Rx::Always,
        prohibited: Prohibited::Nowhere,
    })
}

/// Every substance named in `text`, in order.
pub fn find(text: &str) -> Vec<Mention> {
    let lex = &*LEXICON;
    let mut found: Vec<Mention> = lex
        .names
        .find_iter(text)
        .filter_map(|m| {
            let s = lex.by_name.get(&normalize(m.as_str()))?;
            Some(Mention::of(m.start(), m.end(), s))
        })
        .collect();
    for m in lex.endings.find_iter(text) {
        if found.iter().any(|f| f.start < m.end() && m.start() < f.end) {
            continue;
        }
        if let Some(mention) = by_ending(m.as_str()) {
            found.push(Mention {
                start: m.start(),
                end: m.end(),
                ..mention
            });
        }
    }
    found.sort_by_key(|m| m.start);
    found
}

/// The vocabulary row of a name, for tests and the docs.
pub fn lookup(name: &str) -> Option<&'static Substance> {
    LEXICON.by_name.get(&normalize(name)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_endings() {
        let classes = |t: &str| find(t).iter().map(|m| m.class).collect::<Vec<_>>();
        assert_eq!(
            classes("Give Oxytet and tylosin"),
            [Class::Tetracycline, Class::Macrolide]
        );
        assert_eq!(classes("malachite  green"), [Class::Dye]);
        assert_eq!(classes("lambda-cyhalothrin"), [Class::Pyrethroid]);
        assert_eq!(classes("marbofloxacin"), [Class::Fluoroquinolone]);
        assert_eq!(classes("secnidazole"), [Class::Nitroimidazole]);
        assert_eq!(classes("sulfamerazine"), [Class::Sulfonamide]);
        assert!(classes("copper sulphate and sulphur").is_empty());
        assert!(classes("vitamins, glucose and the Gumboro vaccine").is_empty());
        assert!(find("chloramphenicol")[0].banned());
        assert!(!find("amoxicillin")[0].banned());
        assert_eq!(lookup("gammalin").map(|s| s.name), Some("lindane"));
        assert!(SUBSTANCES.len() > 100);
    }
}
