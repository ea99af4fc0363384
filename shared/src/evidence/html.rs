//! The evidence page as one self-contained HTML document: inline CSS and a small inline
//! script (no external assets, no farm data inside the script). Every piece of farm data is
//! escaped: it is untrusted (a draft note can hold `<script>`).
//!
//! Over 400 lines with its tests, and kept whole: one job, the page's sections written in
//! order into one string (split, the template would be read in several files).

use std::fmt::Write;

use serde_json::Value;

use super::{EvidencePage, RunEvidence};

/// HTML-escapes text for element content and double-quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn e(s: &str) -> String {
    escape(s)
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map(|x| e(&x.to_string())).unwrap_or_default()
}

fn json(v: &Value) -> String {
    e(&serde_json::to_string(v).unwrap_or_default())
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}\
table{border-collapse:collapse;width:100%;font-size:.85rem}\
th,td{border:1px solid #ccc;padding:.3rem .4rem;vertical-align:top;text-align:left}\
th{background:#eef}.ok{color:#060}.bad{color:#a00;font-weight:bold}\
.legs td{text-align:right}details{margin:.2rem 0}code{font-size:.8rem;word-break:break-all}";

// Counts rows and inconsistent runs in the rendered table; reads no farm data but the DOM.
const SCRIPT: &str = "(function(){var rows=document.querySelectorAll('#runs tbody tr.run');\
var bad=document.querySelectorAll('#runs tbody tr.run[data-consistent=\"false\"]').length;\
var s=document.getElementById('summary');\
s.textContent=rows.length+' runs on this page; '+(bad===0?'every run matches its ledger legs':bad+' runs do not match their ledger legs');\
s.className=bad===0?'ok':'bad';})();";

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The page's Content-Security-Policy: nothing external, no network, and only the page's own
/// script (by hash) may run, so even a missed escape could not execute injected script.
pub fn content_security_policy() -> String {
    use sha2::Digest;
    let hash = base64(&sha2::Sha256::digest(SCRIPT.as_bytes()));
    format!(
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; \
         img-src data:; base-uri 'none'; form-action 'none'"
    )
}

pub fn render(page: &EvidencePage, farm_name: Option<&str>) -> String {
    let mut h = String::with_capacity(4096 + page.runs.len() * 1024);
    let title = format!(
        "Evidence: {}",
        farm_name.unwrap_or(&page.farm_id.to_string())
    );
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        e(&content_security_policy()),
        e(&title)
    );
    let _ = write!(
        h,
        "<h1>{}</h1><p>Farm <code>{}</code>, generated {}.</p><p id=\"summary\">{} runs on this page.</p>",
        e(&title),
        page.farm_id,
        page.generated_at.to_rfc3339(),
        page.runs.len()
    );
    // ledger invariant
    let l = &page.ledger;
    let _ = write!(
        h,
        "<h2>Ledger invariant</h2><p id=\"invariant\" class=\"{}\" data-holds=\"{}\">{}: balance {} = last balance_after {} = sum of deltas {} over {} entries; {} negative balances.</p>",
        if l.holds { "ok" } else { "bad" },
        l.holds,
        if l.holds { "HOLDS" } else { "BROKEN" },
        l.credit_balance,
        l.last_balance_after,
        l.sum_of_deltas,
        l.entries,
        l.negative_balances
    );
    let _ = write!(
        h,
        "<p id=\"invariant-method\">{}</p>",
        e(&match &l.checkpoint {
            Some(c) => format!(
                "Summed from the ledger checkpoint through entry {} ({}) plus the {} entries after it.",
                c.through_id,
                c.taken_at.to_rfc3339(),
                c.entries_after
            ),
            None => "Summed over every ledger entry (no checkpoint yet).".to_string(),
        })
    );
    // totals
    let t = &page.farm_totals;
    let p = &page.page_totals;
    let _ = write!(
        h,
        "<h2>Totals</h2><table id=\"totals\" class=\"legs\"><thead><tr><th></th><th>granted</th><th>adjusted</th>\
         <th>reserved</th><th>charged</th><th>refunded</th><th>expired</th><th>open</th><th>grants expired</th></tr></thead><tbody>\
         <tr id=\"farm-totals\"><th>farm</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\
         <tr id=\"page-totals\"><th>this page</th><td></td><td></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td></td></tr>\
         </tbody></table>",
        t.granted,
        t.adjusted,
        t.reserved,
        t.charged,
        t.refunded,
        t.expired,
        t.open,
        t.grants_expired,
        p.reserved,
        p.charged,
        p.refunded,
        p.expired,
        p.open
    );
    // runs
    h.push_str(
        "<h2>Runs (newest first)</h2><table id=\"runs\"><thead><tr><th>when</th><th>run</th><th>feature / model</th>\
         <th>asked by</th><th>status</th><th>tokens in/out</th><th>latency ms</th>\
         <th>reserved</th><th>charged</th><th>refunded</th><th>expired</th><th>legs match</th>\
         <th>request / response</th><th>drafts, recommendations, evals, feedback</th></tr></thead><tbody>",
    );
    for r in &page.runs {
        run_row(&mut h, r);
    }
    h.push_str("</tbody></table>");
    if let Some(c) = &page.next_cursor {
        let _ = write!(
            h,
            "<p>More runs: <a id=\"next\" href=\"?{}\">older page</a></p>",
            e(&[
                page.filters.query_string(),
                format!("limit={}&cursor={c}", page.limit)
            ]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("&"))
        );
    }
    farm_events(&mut h, page);
    credit_alerts(&mut h, page);
    evidence_chain(&mut h, page);
    let _ = write!(h, "<script>{SCRIPT}</script></body></html>");
    h
}

/// The farm's governance acts done through the API (autonomy changes, membership changes,
/// forgotten memories), newest first, as the JSON page lists them.
fn farm_events(h: &mut String, page: &EvidencePage) {
    h.push_str(
        "<h2>Governance acts (newest first)</h2><table id=\"farm-events\"><thead><tr><th>when</th>\
         <th>what</th><th>by</th><th>about</th><th>details</th></tr></thead><tbody>",
    );
    if page.farm_events.is_empty() {
        h.push_str("<tr><td colspan=\"5\">none</td></tr>");
    }
    for ev in &page.farm_events {
        let _ = write!(
            h,
            "<tr class=\"farm-event\" data-kind=\"{kind}\"><td>{when}</td><td>{kind}</td><td>{actor}</td>\
             <td>{subject}</td><td><code>{details}</code></td></tr>",
            kind = e(&ev.kind),
            when = ev.created_at.to_rfc3339(),
            actor = e(&ev.actor),
            subject = opt(&ev.subject),
            details = json(&ev.details),
        );
    }
    h.push_str("</tbody></table>");
}

/// The farm's low-balance alerts, newest first, with when each was published.
fn credit_alerts(h: &mut String, page: &EvidencePage) {
    h.push_str(
        "<h2>Low-balance alerts (newest first)</h2><table id=\"credit-alerts\"><thead><tr>\
         <th>when</th><th>threshold</th><th>balance</th><th>published</th><th>attempts</th>\
         <th>event id</th></tr></thead><tbody>",
    );
    if page.credit_alerts.is_empty() {
        h.push_str("<tr><td colspan=\"6\">none</td></tr>");
    }
    for a in &page.credit_alerts {
        let _ = write!(
            h,
            "<tr class=\"credit-alert\" data-sent=\"{sent}\"><td>{when}</td><td>{threshold}</td>\
             <td>{balance}</td><td>{published}</td><td>{attempts}</td><td><code>{id}</code></td></tr>",
            sent = a.sent_at.is_some(),
            when = a.created_at.to_rfc3339(),
            threshold = a.threshold,
            balance = a.balance,
            published = a
                .sent_at
                .map_or_else(|| "waiting".to_string(), |t| t.to_rfc3339()),
            attempts = a.attempts,
            id = a.id,
        );
    }
    h.push_str("</tbody></table>");
}

/// The evidence chain: head, latest signed checkpoint, and whether the live rows still match
/// (a link asks for the check).
fn evidence_chain(h: &mut String, page: &EvidencePage) {
    use super::chain_status::LiveRows;
    let c = &page.chain;
    let _ = write!(
        h,
        "<h2>Evidence chain</h2><table id=\"evidence-chain\"><tbody>\
         <tr><th>head</th><td>seq {seq} <code>{hash}</code></td></tr>",
        seq = c.head_seq,
        hash = e(&c.head_hash),
    );
    match &c.checkpoint {
        Some(k) => {
            let _ = write!(
                h,
                "<tr><th>latest signed checkpoint</th><td>seq {seq} <code>{hash}</code> signed {at} \
                 by key <code>{key}</code></td></tr>",
                seq = k.seq,
                hash = e(&k.hash),
                at = e(&k.signed_at),
                key = e(&k.key_fingerprint),
            );
        }
        None => h.push_str("<tr><th>latest signed checkpoint</th><td>none yet</td></tr>"),
    }
    let (status, text) = match &c.live_rows {
        LiveRows::NotChecked => (
            "not_checked",
            "not checked: <a id=\"verify-chain\" href=\"?verify_chain=true\">check the live rows</a>"
                .to_string(),
        ),
        LiveRows::Match { through } => (
            "match",
            format!("every entry through seq {through} matches its live row and the signed hash"),
        ),
        LiveRows::Mismatch { seq, what } => (
            "mismatch",
            format!(
                "DO NOT MATCH{}: {}",
                seq.map_or_else(String::new, |s| format!(" at seq {s}")),
                e(what)
            ),
        ),
    };
    let _ = write!(
        h,
        "<tr><th>live rows</th><td id=\"live-rows\" data-status=\"{status}\">{text}</td></tr>\
         </tbody></table>"
    );
}

fn run_row(h: &mut String, r: &RunEvidence) {
    let m = &r.matched;
    let _ = write!(
        h,
        "<tr class=\"run\" id=\"run-{id}\" data-consistent=\"{c}\"><td>{when}</td><td><code title=\"{id}\">{short}</code></td>\
         <td>{feature}<br>{model}</td><td>{user}</td><td>{status}{err}</td><td>{tin}/{tout}</td><td>{lat}</td>\
         <td class=\"leg-reserved\">{res}</td><td class=\"leg-charged\">{chg}</td><td class=\"leg-refunded\">{refd}</td>\
         <td class=\"leg-expired\">{exp}</td><td class=\"{cc}\">{cm}</td>\
         <td>{req}<hr>{resp}</td><td>",
        id = r.id,
        short = &r.id.simple().to_string()[..8],
        c = m.consistent,
        when = r.created_at.to_rfc3339(),
        feature = e(&r.feature),
        model = e(&r.model),
        user = opt(&r.user_id),
        status = e(r.status.as_str()),
        err = r
            .error
            .as_ref()
            .map(|x| format!("<br><small>{}</small>", e(x)))
            .unwrap_or_default(),
        tin = opt(&r.input_tokens),
        tout = opt(&r.output_tokens),
        lat = opt(&r.latency_ms),
        res = m.reserved,
        chg = m.charged,
        refd = m.refunded,
        exp = m.expired,
        cc = if m.consistent { "ok" } else { "bad" },
        cm = if m.consistent { "yes" } else { "NO" },
        req = opt(&r.request_summary),
        resp = opt(&r.response_summary),
    );
    for d in &r.drafts {
        let _ = write!(
            h,
            "<details class=\"draft\" data-status=\"{st}\"><summary>draft {rt} <b>{st}</b>{by}</summary>\
             <div>summary: {sum}</div><div>proposed: <code>{p}</code></div>{edited}{note}{rec}</details>",
            st = e(d.status.as_str()),
            rt = e(&d.record_type),
            by = match (&d.decided_by, &d.decided_at) {
                (Some(b), Some(t)) => format!(" by {} at {}", e(b), t.to_rfc3339()),
                _ => String::new(),
            },
            sum = opt(&d.summary),
            p = json(&d.payload),
            edited = d
                .edited_payload
                .as_ref()
                .map(|v| format!("<div>edited to: <code>{}</code></div>", json(v)))
                .unwrap_or_default(),
            note = d
                .decision_note
                .as_ref()
                .map(|n| format!("<div class=\"note\">why: {}</div>", e(n)))
                .unwrap_or_default(),
            rec = d
                .record_id
                .map(|id| format!("<div>record <code>{id}</code></div>"))
                .unwrap_or_default(),
        );
    }
    for c in &r.recommendations {
        let _ = write!(
            h,
            "<details class=\"recommendation\"><summary>recommendation <b>{}</b>: {}</summary><div>{}</div>{}</details>",
            e(c.status.as_str()),
            e(&c.title),
            e(&c.body),
            match (&c.decided_by, &c.decision_note) {
                (Some(b), n) => format!("<div>by {}: {}</div>", e(b), opt(n)),
                _ => String::new(),
            }
        );
    }
    for ev in &r.evals {
        let _ = write!(
            h,
            "<div class=\"eval {}\">eval {}: {}</div>",
            if ev.passed { "ok" } else { "bad" },
            e(&ev.name),
            if ev.passed { "passed" } else { "FAILED" }
        );
    }
    for f in &r.feedback {
        let _ = write!(
            h,
            "<div class=\"feedback\">{} rated {}{}</div>",
            e(&f.user_id),
            e(&f.rating),
            f.comment
                .as_ref()
                .map(|c| format!(": {}", e(c)))
                .unwrap_or_default()
        );
    }
    h.push_str("</td></tr>");
}

#[cfg(test)]
mod tests {
    use super::{base64, escape};

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected, "{input}");
        }
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
