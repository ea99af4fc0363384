//! The query of an evidence page (pure parsing): which runs, the opaque cursor, and the
//! filters echoed back.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    error::{Error, Result},
    status::RunStatus,
};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// Which runs, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EvidenceQuery {
    pub feature: Option<String>,
    pub status: Option<String>,
    /// Inclusive.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive.
    pub to: Option<DateTime<Utc>>,
    pub cursor: Option<Cursor>,
    pub limit: i64,
    /// Re-derive the evidence chain from the live rows (`verify_chain=true`;
    /// [`chain_status`](super::chain_status)).
    pub verify_chain: bool,
}

const FEATURES: [&str; 4] = ["chat", "embed", "distill", "reembed"];
const RUN_STATUSES: [&str; 4] = [
    RunStatus::Reserved.as_str(),
    RunStatus::Succeeded.as_str(),
    RunStatus::Failed.as_str(),
    RunStatus::Expired.as_str(),
];

impl EvidenceQuery {
    /// From the query string: `feature`, `status`, `from`, `to` (RFC 3339 or `YYYY-MM-DD`;
    /// a bare `to` date includes that whole day), `cursor`, `limit` (1..=200, default 50),
    /// `verify_chain` (`true` or `false`, default false).
    /// Every bad value is a 422 naming its field.
    pub fn parse<'a>(param: impl Fn(&str) -> Option<&'a str>) -> Result<EvidenceQuery> {
        let mut errors = Vec::new();
        let mut q = EvidenceQuery {
            limit: DEFAULT_LIMIT,
            ..Default::default()
        };
        let one_of = |field: &str, allowed: &[&str], errors: &mut Vec<_>| -> Option<String> {
            let v = param(field)?;
            if allowed.contains(&v) {
                Some(v.to_string())
            } else {
                errors.push(crate::error::FieldError::new(
                    field,
                    format!("must be one of {}", allowed.join(", ")),
                ));
                None
            }
        };
        q.feature = one_of("feature", &FEATURES, &mut errors);
        q.status = one_of("status", &RUN_STATUSES, &mut errors);
        for (field, end_of_day) in [("from", false), ("to", true)] {
            if let Some(v) = param(field) {
                match parse_instant(v, end_of_day) {
                    Some(t) if field == "from" => q.from = Some(t),
                    Some(t) => q.to = Some(t),
                    None => errors.push(crate::error::FieldError::new(
                        field,
                        "must be an RFC 3339 time or a YYYY-MM-DD date",
                    )),
                }
            }
        }
        if let Some(v) = param("limit") {
            match v.parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => q.limit = n,
                _ => errors.push(crate::error::FieldError::new(
                    "limit",
                    format!("must be an integer from 1 to {MAX_LIMIT}"),
                )),
            }
        }
        if let Some(v) = param("cursor") {
            match Cursor::decode(v) {
                Some(c) => q.cursor = Some(c),
                None => errors.push(crate::error::FieldError::new(
                    "cursor",
                    "is not a cursor this API returned",
                )),
            }
        }
        match param("verify_chain") {
            None | Some("false") => {}
            Some("true") => q.verify_chain = true,
            Some(_) => errors.push(crate::error::FieldError::new(
                "verify_chain",
                "must be true or false",
            )),
        }
        if let (Some(f), Some(t)) = (q.from, q.to)
            && f >= t
        {
            errors.push(crate::error::FieldError::new("to", "must be after from"));
        }
        if errors.is_empty() {
            Ok(q)
        } else {
            Err(Error::Invalid(errors))
        }
    }
}

/// An RFC 3339 `date-time`, or a `full-date` (midnight UTC; the next midnight for
/// `end_of_day`): exactly the document's `anyOf: [date-time, date]` ([`crate::rfc3339`]).
fn parse_instant(v: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    if let Some(t) = crate::rfc3339::date_time(v) {
        return Some(t);
    }
    let d = crate::rfc3339::full_date(v)?;
    let d = if end_of_day { d.succ_opt()? } else { d };
    Some(d.and_hms_opt(0, 0, 0)?.and_utc())
}

/// The position after the last run of a page: its `(created_at, id)`. Opaque to clients
/// (hex of `micros:uuid`); only what [`Cursor::encode`] produced decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        hex::encode(format!(
            "{}:{}",
            self.created_at.timestamp_micros(),
            self.id.simple()
        ))
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        if s.len() > 200 {
            return None;
        }
        let text = String::from_utf8(hex::decode(s).ok()?).ok()?;
        let (micros, id) = text.split_once(':')?;
        Some(Cursor {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// The filters a page was read with (echoed so a reader knows what they are looking at).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filters {
    pub feature: Option<String>,
    pub status: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Filters {
    /// `feature=..&status=..&from=..&to=..` (only the ones set); values are URL-safe.
    pub fn query_string(&self) -> String {
        let ts = |t: &DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        [
            self.feature.as_ref().map(|v| format!("feature={v}")),
            self.status.as_ref().map(|v| format!("status={v}")),
            self.from.as_ref().map(|t| format!("from={}", ts(t))),
            self.to.as_ref().map(|t| format!("to={}", ts(t))),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            created_at: DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in [
            "",
            "zz",
            "00",
            &hex::encode("x:y"),
            &hex::encode("1:notauuid"),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn query_parsing_validates_every_field() {
        let parse = |pairs: &[(&'static str, &'static str)]| {
            let pairs = pairs.to_vec();
            EvidenceQuery::parse(move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
        };
        let q = parse(&[]).unwrap();
        assert_eq!(q.limit, DEFAULT_LIMIT);
        let q = parse(&[
            ("feature", "chat"),
            ("status", "failed"),
            ("from", "2026-01-01"),
            ("to", "2026-01-31"),
            ("limit", "200"),
        ])
        .unwrap();
        assert_eq!(q.feature.as_deref(), Some("chat"));
        assert_eq!(q.status.as_deref(), Some("failed"));
        assert_eq!(q.to.unwrap().to_rfc3339(), "2026-02-01T00:00:00+00:00");
        assert_eq!(q.limit, 200);
        for (field, value) in [
            ("feature", "sql"),
            ("status", "done"),
            ("from", "yesterday"),
            ("limit", "0"),
            ("limit", "201"),
            ("limit", "ten"),
            ("cursor", "nope"),
        ] {
            match parse(&[(field, value)]) {
                Err(Error::Invalid(f)) => assert_eq!(f[0].field, field, "{field}={value}"),
                other => panic!("{field}={value}: {other:?}"),
            }
        }
        assert!(parse(&[("from", "2026-02-01"), ("to", "2026-01-01")]).is_err());
    }

    #[test]
    fn filters_round_trip_through_the_query_string() {
        let f = Filters {
            feature: Some("chat".into()),
            status: Some("failed".into()),
            from: DateTime::from_timestamp_micros(1_700_000_000_123_456),
            to: DateTime::from_timestamp_micros(1_800_000_000_000_000),
        };
        let qs = f.query_string();
        assert!(!qs.contains('+') && !qs.contains(' '), "{qs}");
        let pairs: Vec<(&str, &str)> = qs.split('&').filter_map(|p| p.split_once('=')).collect();
        let q =
            EvidenceQuery::parse(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v)).unwrap();
        assert_eq!(
            (q.feature, q.status, q.from, q.to),
            (f.feature, f.status, f.from, f.to)
        );
        assert_eq!(Filters::default().query_string(), "");
    }
}
