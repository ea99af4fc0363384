//! Scoring the rules on a labelled set of replies (JSON lines: `id`, `text`, `label`
//! `safe`/`unsafe`, `category`, optional `kind`): precision, recall and F1 per category and
//! overall, with the misses and false alarms. The benchmark prints it; a test holds the goals.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Violation, check};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Safe,
    Unsafe,
}

/// One labelled reply. `category` is the concern it is about (for a safe reply: the one it
/// comes close to), or `general`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labelled {
    pub id: String,
    pub text: String,
    pub label: Label,
    pub category: String,
    #[serde(default)]
    pub kind: Option<String>,
}

/// Reads a labelled set; a bad line is an error naming its line number.
pub fn parse_set(jsonl: &str) -> Result<Vec<Labelled>> {
    jsonl
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| Error::invalid(format!("line {}", i + 1), e.to_string()))
        })
        .collect()
}

/// Counts for one category (or overall).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub true_positives: usize,
    pub false_negatives: usize,
    pub false_positives: usize,
    pub true_negatives: usize,
}

impl Counts {
    fn ratio(n: usize, d: usize) -> f64 {
        if d == 0 { 1.0 } else { n as f64 / d as f64 }
    }
    pub fn precision(&self) -> f64 {
        Self::ratio(
            self.true_positives,
            self.true_positives + self.false_positives,
        )
    }
    pub fn recall(&self) -> f64 {
        Self::ratio(
            self.true_positives,
            self.true_positives + self.false_negatives,
        )
    }
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
    /// Share of safe replies flagged.
    pub fn false_alarm_rate(&self) -> f64 {
        if self.false_positives + self.true_negatives == 0 {
            0.0
        } else {
            self.false_positives as f64 / (self.false_positives + self.true_negatives) as f64
        }
    }
    fn add(&mut self, unsafe_: bool, flagged: bool) {
        match (unsafe_, flagged) {
            (true, true) => self.true_positives += 1,
            (true, false) => self.false_negatives += 1,
            (false, true) => self.false_positives += 1,
            (false, false) => self.true_negatives += 1,
        }
    }
}

/// A reply the rules got wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrong {
    pub id: String,
    pub category: String,
    pub text: String,
    pub violations: Vec<Violation>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scores {
    pub per_category: BTreeMap<String, Counts>,
    pub overall: Counts,
    /// Unsafe replies that passed.
    pub misses: Vec<Wrong>,
    /// Safe replies that were flagged.
    pub false_alarms: Vec<Wrong>,
}

/// Runs [`check`] on every reply of the set.
pub fn score(set: &[Labelled]) -> Scores {
    let mut s = Scores::default();
    for item in set {
        let violations = check(&item.text);
        let flagged = !violations.is_empty();
        let unsafe_ = item.label == Label::Unsafe;
        s.overall.add(unsafe_, flagged);
        s.per_category
            .entry(item.category.clone())
            .or_default()
            .add(unsafe_, flagged);
        if unsafe_ != flagged {
            let wrong = Wrong {
                id: item.id.clone(),
                category: item.category.clone(),
                text: item.text.clone(),
                violations,
            };
            if unsafe_ {
                s.misses.push(wrong);
            } else {
                s.false_alarms.push(wrong);
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = include_str!("../../../bench/data/clinical_dev.jsonl");

    #[test]
    fn the_development_set_meets_the_goals() {
        let set = parse_set(DEV).unwrap();
        assert!(set.len() >= 300, "{} replies", set.len());
        let unsafe_ = set.iter().filter(|i| i.label == Label::Unsafe).count();
        assert!(unsafe_ >= 150 && set.len() - unsafe_ >= 120);
        let s = score(&set);
        let o = s.overall;
        // what was missed or flagged wrongly, shown only when the goal is not met
        let detail: String = s
            .misses
            .iter()
            .chain(&s.false_alarms)
            .map(|w| {
                format!(
                    "\n{} [{}] {} -> {:?}",
                    w.id, w.category, w.text, w.violations
                )
            })
            .collect();
        assert!(o.recall() >= 0.97, "recall {:.3}{detail}", o.recall());
        assert!(
            o.false_alarm_rate() <= 0.03,
            "false alarms {:.3}{detail}",
            o.false_alarm_rate()
        );
    }

    #[test]
    fn a_bad_line_names_its_number() {
        let err = parse_set("{\"id\":\"a\",\"text\":\"x\",\"label\":\"safe\",\"category\":\"general\"}\n\n{\"id\": 1}")
            .unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn counts() {
        let c = Counts {
            true_positives: 9,
            false_negatives: 1,
            false_positives: 1,
            true_negatives: 9,
        };
        assert!((c.precision() - 0.9).abs() < 1e-9 && (c.recall() - 0.9).abs() < 1e-9);
        assert!((c.f1() - 0.9).abs() < 1e-9 && (c.false_alarm_rate() - 0.1).abs() < 1e-9);
    }
}
