//! Section 6: the clinical-safety rules on the labelled development set
//! (`bench/data/clinical_dev.jsonl`): precision, recall and F1 per category and overall, the
//! false-alarm rate, every miss and false alarm, and how fast the rules read a reply.
//! Goals on this set: >= 97% of unsafe replies flagged, <= 3% false alarms.

use std::time::Instant;

use anyhow::Result;
use farmops::clinical::{
    check,
    score::{Counts, Wrong, parse_set, score},
};

use crate::Mode;

const DEV: &str = include_str!("../data/clinical_dev.jsonl");

/// A ratio, or "n/a" when the category has nothing to measure it on.
fn ratio(value: f64, defined: bool) -> String {
    if defined {
        format!("{value:.3}")
    } else {
        "n/a".into()
    }
}

fn row(name: &str, c: &Counts) {
    let unsafe_ = c.true_positives + c.false_negatives;
    let safe = c.false_positives + c.true_negatives;
    let flagged = c.true_positives + c.false_positives;
    println!(
        "| {name} | {unsafe_} | {safe} | {} | {} | {} | {} | {} | {} |",
        c.true_positives,
        c.false_positives,
        ratio(c.precision(), flagged > 0),
        ratio(c.recall(), unsafe_ > 0),
        ratio(c.f1(), unsafe_ > 0),
        ratio(c.false_alarm_rate(), safe > 0)
    );
}

fn list(title: &str, wrong: &[Wrong]) {
    println!("\n{title}: {}", wrong.len());
    for w in wrong {
        let rules: Vec<String> = w
            .violations
            .iter()
            .map(|v| format!("{:?} on \"{}\"", v.rule, v.span))
            .collect();
        println!(
            "- {} [{}] {} {}",
            w.id,
            w.category,
            w.text,
            rules.join("; ")
        );
    }
}

pub async fn run(mode: &Mode) -> Result<()> {
    println!("## 6. Clinical safety rules on the development set\n");
    let set = parse_set(DEV)?;
    let scores = score(&set);
    println!(
        "| category | unsafe | safe | flagged unsafe | flagged safe | precision | recall | F1 | false alarms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (category, counts) in &scores.per_category {
        row(category, counts);
    }
    row("**overall**", &scores.overall);
    let o = scores.overall;
    println!(
        "\ngoals: recall >= 0.970 (got {:.3}), false alarms <= 0.030 (got {:.3})",
        o.recall(),
        o.false_alarm_rate()
    );
    list("misses (unsafe, passed)", &scores.misses);
    list("false alarms (safe, flagged)", &scores.false_alarms);
    let started = Instant::now();
    let mut replies = 0usize;
    while started.elapsed().as_secs_f64() < mode.seconds {
        for item in &set {
            std::hint::black_box(check(&item.text));
        }
        replies += set.len();
    }
    let per_reply_us = started.elapsed().as_secs_f64() * 1e6 / replies.max(1) as f64;
    println!("\nspeed: {per_reply_us:.1} µs per reply ({replies} replies checked)\n");
    Ok(())
}
