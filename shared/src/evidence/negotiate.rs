//! Content negotiation of the evidence page (pure): JSON, HTML or CSV from `Accept`.

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Html,
    Csv,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// The best format for an `Accept` header: highest q among the ones we serve, the earliest
/// listed on a tie; JSON when there is no header, `*/*`, or nothing we serve.
pub fn negotiate(accept: Option<&str>) -> Result<Format> {
    let accept = match accept {
        Some(a) if !a.trim().is_empty() => a,
        _ => return Ok(Format::Json),
    };
    let mut best: Option<(f32, Format)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let format = match media.as_str() {
            "application/json" | "application/*" | "*/*" => Format::Json,
            "text/html" | "application/xhtml+xml" | "text/*" => Format::Html,
            "text/csv" => Format::Csv,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, format));
        }
    }
    best.map(|(_, f)| f).ok_or(Error::NotAcceptable(OFFERED))
}

/// The representations `GET /farms/{farm_id}/evidence` offers, for the 406 message.
pub const OFFERED: &str = "application/json, text/html, text/csv";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_header_picks_the_format() {
        let cases = [
            (None, Ok(Format::Json)),
            (Some("*/*"), Ok(Format::Json)),
            (Some("application/json"), Ok(Format::Json)),
            (Some("text/html"), Ok(Format::Html)),
            (
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                Ok(Format::Html),
            ),
            (Some("text/csv"), Ok(Format::Csv)),
            (Some("text/csv;q=0.5, application/json"), Ok(Format::Json)),
            (Some("application/json;q=0.1, text/csv"), Ok(Format::Csv)),
            (Some("TEXT/CSV"), Ok(Format::Csv)),
            (Some("image/png"), Err(406)),
            (Some("text/html;q=0"), Err(406)),
            (Some("text/html;q=0, */*"), Ok(Format::Json)),
            (Some(""), Ok(Format::Json)),
        ];
        for (accept, expected) in cases {
            let got = negotiate(accept).map_err(|e| e.status());
            assert_eq!(got, expected, "{accept:?}");
        }
    }
}
