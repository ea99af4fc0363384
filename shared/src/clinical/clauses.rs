//! Sentences and clauses: the units that negation and deferral scope over.
//!
//! A sentence ends at `.`, `!`, `?` or `;` followed by a space (so `2.5 ml` stays whole, and
//! so do `Dr. Bello` and `e.g. tylosin`), or at a line break (a bullet is a sentence).
//! A sentence splits into clauses at the contrastive words that let a reply say one thing and
//! then the opposite: "but", "however", "otherwise", "whereas", "though".

use std::sync::LazyLock;

use regex::Regex;

/// A clause of the text: its byte range and its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clause<'a> {
    pub start: usize,
    pub text: &'a str,
}

/// A sentence: its clauses, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence<'a> {
    pub text: &'a str,
    pub clauses: Vec<Clause<'a>>,
}

const ABBREVIATIONS: &[&str] = &[
    "dr", "mr", "mrs", "ms", "e.g", "i.e", "approx", "no", "st", "vs", "etc", "prof",
];

static CONTRAST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i),?\s+\b(?:but|however|otherwise|whereas|though|although)\b,?\s+")
        .expect("static pattern")
});

fn ends_sentence(text: &str, i: usize, c: char) -> bool {
    match c {
        '\n' | '\r' => true,
        '.' | '!' | '?' | ';' => {
            let after = text[i + c.len_utf8()..].chars().next();
            if !after.is_none_or(char::is_whitespace) {
                return false;
            }
            if c == '.' {
                let word = text[..i]
                    .rsplit(|ch: char| ch.is_whitespace() || ch == '(')
                    .next()
                    .unwrap_or("")
                    .to_lowercase();
                return !ABBREVIATIONS.contains(&word.as_str());
            }
            true
        }
        _ => false,
    }
}

fn clause(text: &str, start: usize, end: usize) -> Option<Clause<'_>> {
    let raw = &text[start..end];
    let trimmed = raw.trim_start_matches(|c: char| c.is_whitespace() || "-*•,".contains(c));
    let lead = raw.len() - trimmed.len();
    let trimmed = trimmed.trim_end();
    (!trimmed.is_empty()).then_some(Clause {
        start: start + lead,
        text: trimmed,
    })
}

/// The sentences of `text` and their clauses.
pub fn sentences(text: &str) -> Vec<Sentence<'_>> {
    let mut out = Vec::new();
    let mut begin = 0;
    let mut push = |from: usize, to: usize| {
        let Some(whole) = clause(text, from, to) else {
            return;
        };
        let mut clauses = Vec::new();
        let mut at = 0;
        for m in CONTRAST.find_iter(whole.text) {
            clauses.extend(clause(text, whole.start + at, whole.start + m.start()));
            at = m.end();
        }
        clauses.extend(clause(
            text,
            whole.start + at,
            whole.start + whole.text.len(),
        ));
        out.push(Sentence {
            text: whole.text,
            clauses,
        });
    };
    for (i, c) in text.char_indices() {
        if ends_sentence(text, i, c) {
            push(begin, i);
            begin = i + c.len_utf8();
        }
    }
    push(begin, text.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<Vec<&str>> {
        sentences(text)
            .into_iter()
            .map(|s| s.clauses.into_iter().map(|c| c.text).collect())
            .collect()
    }

    #[test]
    fn sentences_and_clauses() {
        let cases: &[(&str, &[&[&str]])] = &[
            ("", &[]),
            ("Give 2.5 ml now.", &[&["Give 2.5 ml now"]]),
            (
                "Dr. Bello came. He gave 5 ml; continue tomorrow!",
                &[
                    &["Dr. Bello came"],
                    &["He gave 5 ml"],
                    &["continue tomorrow"],
                ],
            ),
            (
                "Ask your vet, but if you can't reach one, give it",
                &[&["Ask your vet", "if you can't reach one, give it"]],
            ),
            (
                "- Clean the drinkers\n- Add feed",
                &[&["Clean the drinkers"], &["Add feed"]],
            ),
            ("Is it safe? Yes", &[&["Is it safe"], &["Yes"]]),
            ("Butter and buttons", &[&["Butter and buttons"]]),
        ];
        for (text, expected) in cases {
            let got = split(text);
            let want: Vec<Vec<&str>> = expected.iter().map(|s| s.to_vec()).collect();
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn clause_offsets_point_into_the_text() {
        let text = "Call the vet.  Then, however, wait";
        for s in sentences(text) {
            for c in s.clauses {
                assert_eq!(&text[c.start..c.start + c.text.len()], c.text);
            }
        }
    }
}
