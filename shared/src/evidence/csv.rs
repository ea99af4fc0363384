//! The evidence page as CSV for auditors: one row per run with its matched legs (RFC 4180).

use super::EvidencePage;

pub const HEADER: [&str; 24] = [
    "run_id",
    "created_at",
    "finished_at",
    "feature",
    "model",
    "user_id",
    "status",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "credits_reserved",
    "credits_charged",
    "leg_reserved",
    "leg_charged",
    "leg_refunded",
    "leg_expired",
    "leg_open",
    "legs_consistent",
    "drafts",
    "recommendations",
    "evals_failed",
    "feedback",
    "request_summary",
    "response_summary",
];

/// One field, quoted when it holds a comma, a quote, CR or LF (quotes doubled). A field that
/// a spreadsheet would run as a formula (`= + - @` first) is prefixed with `'`.
pub fn field(s: &str) -> String {
    let s = match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') if s.parse::<f64>().is_err() => format!("'{s}"),
        _ => s.to_string(),
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(ToString::to_string).unwrap_or_default()
}

pub fn render(page: &EvidencePage) -> String {
    let mut out = HEADER.join(",");
    out.push_str("\r\n");
    for r in &page.runs {
        let drafts = r
            .drafts
            .iter()
            .map(|d| format!("{}:{}:{}", d.record_type, d.status, d.id))
            .collect::<Vec<_>>()
            .join(" ");
        let recs = r
            .recommendations
            .iter()
            .map(|c| format!("{}:{}", c.status, c.id))
            .collect::<Vec<_>>()
            .join(" ");
        let evals_failed = r
            .evals
            .iter()
            .filter(|e| !e.passed)
            .map(|e| e.name.clone())
            .collect::<Vec<_>>()
            .join(" ");
        let feedback = r
            .feedback
            .iter()
            .map(|f| format!("{}:{}", f.user_id, f.rating))
            .collect::<Vec<_>>()
            .join(" ");
        let m = &r.matched;
        let cells = [
            r.id.to_string(),
            r.created_at.to_rfc3339(),
            r.finished_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            r.feature.clone(),
            r.model.clone(),
            opt(&r.user_id),
            r.status.to_string(),
            opt(&r.input_tokens),
            opt(&r.output_tokens),
            opt(&r.latency_ms),
            r.credits_reserved.to_string(),
            opt(&r.credits_charged),
            m.reserved.to_string(),
            m.charged.to_string(),
            m.refunded.to_string(),
            m.expired.to_string(),
            m.open.to_string(),
            m.consistent.to_string(),
            drafts,
            recs,
            evals_failed,
            feedback,
            opt(&r.request_summary),
            opt(&r.response_summary),
        ];
        let line: Vec<String> = cells.iter().map(|c| field(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn fields_are_quoted_per_rfc_4180() {
        let cases = [
            ("plain", "plain"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("two\nlines", "\"two\nlines\""),
            ("=cmd()", "'=cmd()"),
            ("-5", "-5"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(field(input), expected, "{input:?}");
        }
    }
}
