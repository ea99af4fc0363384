//! The text constructors (table-driven), and their limits against the schema and the API document.

use super::*;

/// `Ok(text)` or `Err(message)` of a constructor, for the tables.
fn outcome<T: AsRef<str>>(r: Result<T, FieldError>, field: &str) -> Result<String, String> {
    r.map(|t| t.as_ref().to_string()).map_err(|e| {
        assert_eq!(e.field, field);
        e.message
    })
}

/// A note as sent, and what is kept (`Ok(None)`: no note) or the refusal's message.
type NoteCase<'a> = (Option<&'a str>, Result<Option<&'a str>, &'a str>);

#[test]
fn notes_are_trimmed_and_blank_is_absent() {
    let long = "n".repeat(NOTE_MAX + 1);
    let at_limit = "é".repeat(NOTE_MAX);
    let padded = format!("  {at_limit}\n");
    let cases: [NoteCase<'_>; 8] = [
        (None, Ok(None)),
        (Some(""), Ok(None)),
        (Some("   \t\n"), Ok(None)),
        (Some("checked the receipt"), Ok(Some("checked the receipt"))),
        (Some("  checked  "), Ok(Some("checked"))),
        (Some(&at_limit), Ok(Some(&at_limit))), // characters, not bytes
        (Some(&padded), Ok(Some(&at_limit))),   // counted after trimming
        (Some(&long), Err("must be at most 500 characters")),
    ];
    for (raw, want) in cases {
        let got = Note::parse(raw).map_err(|e| {
            assert_eq!(e.field, "note");
            e.message
        });
        let want = want.map(|n| n.map(str::to_string)).map_err(str::to_string);
        assert_eq!(got.map(|n| n.map(Note::into_string)), want, "{raw:?}");
    }
}

#[test]
fn reasons_are_trimmed_and_required() {
    let long = "x".repeat(REASON_MAX + 1);
    let at_limit = "é".repeat(REASON_MAX);
    let cases: [(&str, Result<&str, &str>); 6] = [
        ("", Err("must be 1 to 500 characters")),
        ("   ", Err("must be 1 to 500 characters")),
        (&long, Err("must be 1 to 500 characters")),
        (" spoiled feed ", Ok("spoiled feed")),
        ("é", Ok("é")),
        (&at_limit, Ok(&at_limit)),
    ];
    for (raw, want) in cases {
        let want = want.map(str::to_string).map_err(str::to_string);
        assert_eq!(outcome(Reason::parse(raw), "reason"), want, "{raw:?}");
    }
}

#[test]
fn titles_have_one_limit_per_kind() {
    let cases: [(TitleKind, String, Result<&str, &str>); 8] = [
        (
            TitleKind::Recommendation,
            "".into(),
            Err("must be 1 to 200 characters"),
        ),
        (
            TitleKind::Recommendation,
            "  ".into(),
            Err("must be 1 to 200 characters"),
        ),
        (
            TitleKind::Recommendation,
            " Vaccinate pen 3 ".into(),
            Ok("Vaccinate pen 3"),
        ),
        (
            TitleKind::Recommendation,
            "t".repeat(200),
            Ok(&"t".repeat(200)),
        ),
        (
            TitleKind::Recommendation,
            "t".repeat(201),
            Err("must be 1 to 200 characters"),
        ),
        (TitleKind::Document, "t".repeat(300), Ok(&"t".repeat(300))),
        (
            TitleKind::Document,
            "t".repeat(301),
            Err("must be 1 to 300 characters"),
        ),
        (
            TitleKind::Document,
            "\tVaccination schedule\n".into(),
            Ok("Vaccination schedule"),
        ),
    ];
    for (kind, raw, want) in cases {
        let want = want.map(str::to_string).map_err(str::to_string);
        assert_eq!(
            outcome(Title::parse(kind, &raw), "title"),
            want,
            "{kind:?} {raw:?}"
        );
    }
}

#[test]
fn a_refusal_is_a_422_naming_the_field() {
    let e: Error = Reason::parse(" ").unwrap_err().into();
    assert_eq!(e.status(), 422);
    match e {
        Error::Invalid(fields) => assert_eq!(fields[0].field, "reason"),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The limits are the database's CHECKs and the API document's `maxLength`s.
#[test]
fn limits_match_the_schema_and_the_api_document() {
    let drafts = include_str!("../../../migrations/0003_drafts_and_records.sql");
    let documents = include_str!("../../../migrations/0004_conversations_knowledge_evals.sql");
    let openapi = include_str!("../../../docs/openapi.yaml");
    assert!(drafts.contains(&format!("CHECK (length(decision_note) <= {NOTE_MAX})")));
    assert_eq!(NOTE_MAX, REASON_MAX, "one column holds both");
    let recommendations = drafts
        .split("CREATE TABLE ai_recommendations")
        .nth(1)
        .expect("the recommendations table");
    assert!(recommendations.contains(&format!(
        "title          text NOT NULL CHECK (length(title) BETWEEN 1 AND {})",
        TitleKind::Recommendation.max()
    )));
    assert!(documents.contains(&format!(
        "CHECK (length(title) BETWEEN 1 AND {})",
        TitleKind::Document.max()
    )));
    assert!(openapi.contains(&format!("note: {{type: string, maxLength: {NOTE_MAX}}}")));
    assert!(openapi.contains(&format!(
        "reason: {{type: string, minLength: 1, maxLength: {REASON_MAX}}}"
    )));
    assert!(openapi.contains(&format!(
        "title: {{type: string, minLength: 1, maxLength: {}",
        TitleKind::Document.max()
    )));
}

#[test]
fn clip_to_bytes_keeps_whole_characters() {
    for (text, max, want) in [
        ("abc", 5, "abc"),
        ("abc", 2, "ab"),
        ("₦18,000", 2, ""),
        ("₦18,000", 3, "₦"),
        ("a₦", 3, "a"),
        ("", 0, ""),
    ] {
        assert_eq!(clip_to_bytes(text, max), want, "{text} {max}");
    }
}
