//! The deterministic offline fact extractor: rule-based, no model, same input -> same output.
//!
//! It reads the farmer's own sentences (user messages; questions and negations ignored) and
//! recognises a few shapes of durable farm fact, each normalised with a subject so that two
//! facts about the same subject can be seen to contradict each other:
//!
//! | sentence | subject | fact |
//! |---|---|---|
//! | "we vaccinate on Mondays" | `vaccinate day` | "We vaccinate on Mondays." |
//! | "Pond 3 is the nursery" | `pond 3` | "Pond 3 is the nursery." |
//! | "the layers are in house B" | `layers location` | "The layers are in house B." |
//! | "our vet is Dr Ade" | `vet` | "Our vet is dr ade." |

use async_trait::async_trait;

use super::{Extraction, Fact, FactExtractor, TranscriptMessage, Usage, tokens_metered_from_bytes};
use crate::{
    error::Result,
    tokens::{self, Split},
};

/// Model id of the offline extractor (priced in `credits::price_for`).
pub const OFFLINE_MODEL: &str = "offline-farm-assistant";

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];
const UNITS: [&str; 12] = [
    "pond", "house", "pen", "barn", "field", "paddock", "tank", "cage", "coop", "shed", "block",
    "cage",
];
const ADVERBS: [&str; 6] = ["always", "usually", "normally", "only", "now", "also"];
const FILLERS: [&str; 12] = [
    "actually", "also", "now", "so", "and", "but", "well", "yes", "ok", "okay", "remember", "note",
];
const NEGATIONS: [&str; 5] = ["not", "never", "don't", "dont", "no"];
const STOPWORDS: [&str; 24] = [
    "the", "and", "that", "this", "with", "have", "from", "what", "when", "they", "them", "there",
    "their", "your", "about", "will", "would", "should", "could", "were", "been", "does", "into",
    "which",
];

/// Rule-based extractor; `max_output_tokens` caps its output like a model's `maxTokens`.
#[derive(Debug, Clone)]
pub struct OfflineFactExtractor {
    pub max_output_tokens: u64,
}

impl Default for OfflineFactExtractor {
    fn default() -> Self {
        OfflineFactExtractor {
            max_output_tokens: 1024,
        }
    }
}

#[async_trait]
impl FactExtractor for OfflineFactExtractor {
    fn model_id(&self) -> &str {
        OFFLINE_MODEL
    }

    fn max_output_tokens(&self) -> u64 {
        self.max_output_tokens
    }

    /// Exact: the count [`extract`] reports.
    fn input_token_bound(
        &self,
        previous_summary: Option<&str>,
        transcript: &[TranscriptMessage],
    ) -> u64 {
        input_tokens(previous_summary, transcript)
    }

    async fn extract(
        &self,
        previous_summary: Option<&str>,
        transcript: &[TranscriptMessage],
    ) -> Result<Extraction> {
        Ok(extract(
            previous_summary,
            transcript,
            self.max_output_tokens,
        ))
    }
}

/// The pure extraction.
pub fn extract(
    previous_summary: Option<&str>,
    transcript: &[TranscriptMessage],
    max_output_tokens: u64,
) -> Extraction {
    let mut facts: Vec<Fact> = Vec::new();
    for m in transcript.iter().filter(|m| m.role == "user") {
        for sentence in sentences(&m.content) {
            if let Some(fact) = fact_of(sentence) {
                // a later statement about the same subject in the same chat wins
                facts.retain(|f| f.subject != fact.subject);
                facts.push(fact);
            }
        }
    }
    let summary = summarize(previous_summary, transcript, &facts);
    // Cap the output like maxTokens: the summary takes at most half, the facts the rest.
    let budget = usize::try_from(max_output_tokens.saturating_mul(4)).unwrap_or(usize::MAX);
    let summary = crate::text::clip_to_bytes(&summary, (budget / 2).min(2000)).to_string();
    let mut used = summary.len();
    let mut kept = Vec::new();
    for f in facts {
        if used + f.content.len() > budget {
            break;
        }
        used += f.content.len();
        kept.push(f);
    }
    Extraction {
        facts: kept,
        summary,
        usage: Usage {
            input_tokens: input_tokens(previous_summary, transcript),
            output_tokens: tokens_metered_from_bytes(used),
        },
        guardrail: None,
    }
}

fn input_tokens(previous_summary: Option<&str>, transcript: &[TranscriptMessage]) -> u64 {
    tokens_metered_from_bytes(
        transcript.iter().map(|m| m.content.len()).sum::<usize>()
            + previous_summary.map_or(0, str::len),
    )
}

fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive(['.', '!', '?', '\n', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty() && !s.ends_with('?'))
}

/// The sentence's words ([`Split::Words`]), lowercased one by one.
fn words(sentence: &str) -> Vec<String> {
    tokens::split(sentence, Split::Words)
        .into_iter()
        .map(str::to_lowercase)
        .collect()
}

fn weekday(word: &str) -> Option<&'static str> {
    let w = word.trim_end_matches('s');
    WEEKDAYS.iter().copied().find(|d| *d == w)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// One durable fact in a sentence, if it has one of the recognised shapes.
pub fn fact_of(sentence: &str) -> Option<Fact> {
    let mut w = words(sentence);
    while w.len() > 1 && FILLERS.contains(&w[0].as_str()) {
        w.remove(0);
    }
    if w.is_empty() || w.len() > 30 || w.iter().any(|x| NEGATIONS.contains(&x.as_str())) {
        return None;
    }
    // "we [always] <verb> [object...] on|every <weekday>s"
    if w[0] == "we" && w.len() >= 4 {
        let mut i = 1;
        while i < w.len() && ADVERBS.contains(&w[i].as_str()) {
            i += 1;
        }
        let verb = w.get(i)?;
        if let Some(pos) = w
            .iter()
            .position(|x| x == "on" || x == "every")
            .filter(|p| *p > i)
            && let Some(day) = w.get(pos + 1).and_then(|d| weekday(d))
        {
            let object: Vec<&str> = w[i + 1..pos]
                .iter()
                .map(String::as_str)
                .filter(|x| !["the", "our", "all", "a"].contains(x))
                .collect();
            let subject = std::iter::once(verb.as_str())
                .chain(object.iter().copied())
                .chain(std::iter::once("day"))
                .collect::<Vec<_>>()
                .join(" ");
            let what = std::iter::once(verb.as_str())
                .chain(w[i + 1..pos].iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            return Some(Fact {
                subject,
                content: format!("We {what} on {}s.", capitalize(day)),
            });
        }
    }
    // "<unit> <id> is the|our|a <role...>"
    if w.len() >= 5 && UNITS.contains(&w[0].as_str()) && w[2] == "is" {
        let role = w[3..].join(" ");
        return Some(Fact {
            subject: format!("{} {}", w[0], w[1]),
            content: format!("{} {} is {role}.", capitalize(&w[0]), w[1].to_uppercase()),
        });
    }
    // "the|our <animals> are [kept|housed] in <unit> <id>"
    let start = usize::from(w[0] == "the" || w[0] == "our");
    if let Some(are) = w.iter().position(|x| x == "are")
        && are > start
        && are - start <= 2
    {
        let mut j = are + 1;
        if matches!(
            w.get(j).map(String::as_str),
            Some("kept" | "housed" | "now")
        ) {
            j += 1;
        }
        if w.get(j).map(String::as_str) == Some("in")
            && let (Some(unit), Some(id)) = (w.get(j + 1), w.get(j + 2))
            && UNITS.contains(&unit.as_str())
            && w.len() == j + 3
        {
            let animals = w[start..are].join(" ");
            return Some(Fact {
                subject: format!("{animals} location"),
                content: format!("The {animals} are in {unit} {}.", id.to_uppercase()),
            });
        }
    }
    // "our <noun> is <value>" (short values only)
    if w.len() >= 4 && w.len() <= 10 && w[0] == "our" && w[2] == "is" {
        return Some(Fact {
            subject: w[1].clone(),
            content: format!("Our {} is {}.", w[1], w[3..].join(" ")),
        });
    }
    None
}

fn summarize(previous: Option<&str>, transcript: &[TranscriptMessage], facts: &[Fact]) -> String {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for m in transcript {
        for w in words(&m.content) {
            if w.len() >= 4
                && !STOPWORDS.contains(&w.as_str())
                && w.chars().all(char::is_alphabetic)
            {
                *counts.entry(w).or_default() += 1;
            }
        }
    }
    let mut topics: Vec<(String, usize)> = counts.into_iter().collect();
    topics.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let topics: Vec<String> = topics.into_iter().take(5).map(|t| t.0).collect();
    let users = transcript.iter().filter(|m| m.role == "user").count();
    let mut s = format!(
        "{} messages ({users} from the farmer) about {}.",
        transcript.len(),
        if topics.is_empty() {
            "nothing specific".to_string()
        } else {
            topics.join(", ")
        }
    );
    if !facts.is_empty() {
        let f: Vec<&str> = facts.iter().map(|f| f.content.as_str()).collect();
        s.push_str(" Facts: ");
        s.push_str(&f.join(" "));
    }
    if let Some(p) = previous.filter(|p| !p.is_empty()) {
        s.push_str(" Earlier: ");
        s.push_str(p);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_durable_facts_and_ignores_the_rest() {
        let cases: [(&str, Option<(&str, &str)>); 12] = [
            (
                "We vaccinate on Mondays.",
                Some(("vaccinate day", "We vaccinate on Mondays.")),
            ),
            (
                "we always vaccinate on monday",
                Some(("vaccinate day", "We vaccinate on Mondays.")),
            ),
            (
                "We vaccinate on Thursdays",
                Some(("vaccinate day", "We vaccinate on Thursdays.")),
            ),
            (
                "We deworm the goats every Friday.",
                Some(("deworm goats day", "We deworm the goats on Fridays.")),
            ),
            (
                "Pond 3 is the nursery",
                Some(("pond 3", "Pond 3 is the nursery.")),
            ),
            (
                "pond 3 is the grow-out pond.",
                Some(("pond 3", "Pond 3 is the grow-out pond.")),
            ),
            (
                "The layers are in house B",
                Some(("layers location", "The layers are in house B.")),
            ),
            (
                "the layers are kept in house c.",
                Some(("layers location", "The layers are in house C.")),
            ),
            ("Our vet is Dr Ade", Some(("vet", "Our vet is dr ade."))),
            ("Do we vaccinate on Mondays?", None),
            ("We never vaccinate on Sundays.", None),
            ("How much feed should I buy", None),
        ];
        for (sentence, expected) in cases {
            let got = fact_of(sentence).map(|f| (f.subject, f.content));
            let expected = expected.map(|(s, c)| (s.to_string(), c.to_string()));
            assert_eq!(got, expected, "{sentence:?}");
        }
    }

    fn msg(role: &str, content: &str) -> TranscriptMessage {
        TranscriptMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn extraction_is_deterministic_reads_only_the_farmer_and_keeps_the_latest_statement() {
        let t = vec![
            msg(
                "user",
                "Hello. We vaccinate on Mondays. Pond 3 is the nursery.",
            ),
            msg("assistant", "Noted: Pond 4 is the hatchery."),
            msg("user", "Actually we vaccinate on Tuesdays."),
        ];
        let a = extract(None, &t, 1024);
        assert_eq!(a, extract(None, &t, 1024));
        let facts: Vec<&str> = a.facts.iter().map(|f| f.content.as_str()).collect();
        assert_eq!(
            facts,
            ["Pond 3 is the nursery.", "We vaccinate on Tuesdays."]
        );
        assert!(
            a.summary.starts_with("3 messages (2 from the farmer)"),
            "{}",
            a.summary
        );
        assert!(a.usage.input_tokens > 0 && a.usage.output_tokens > 0);
    }

    #[test]
    fn output_respects_the_token_cap() {
        let text: String = (0..200)
            .map(|i| format!("Pond {i} is the nursery. "))
            .collect();
        let a = extract(None, &[msg("user", &text)], 64);
        let out: usize = a.summary.len() + a.facts.iter().map(|f| f.content.len()).sum::<usize>();
        assert!(out <= 64 * 4, "{out}");
        assert!(a.usage.output_tokens <= 64);
        assert!(!a.facts.is_empty());
    }
}
