//! Tests of documents: chunking, validation and the vector text form.

use super::{store::validate, *};
use crate::error::Error;

#[test]
fn chunks_are_bounded_overlapping_and_cover_the_text() {
    let words: Vec<String> = (0..1000).map(|i| format!("word{i}")).collect();
    let text = words.join(" ");
    let chunks = chunk(&text);
    assert!(chunks.len() > 5);
    for c in &chunks {
        assert!(c.chars().count() <= CHUNK_CHARS);
    }
    for w in &words {
        assert!(chunks.iter().any(|c| c.split(' ').any(|x| x == w)), "{w}");
    }
    for pair in chunks.windows(2) {
        let last = pair[0].split(' ').next_back().unwrap();
        assert!(pair[1].split(' ').any(|x| x == last), "overlap");
    }
    assert_eq!(chunk("short"), vec!["short".to_string()]);
    assert!(chunk("   ").is_empty());
    // No whitespace at all: still bounded.
    let long = "x".repeat(2000);
    assert!(
        chunk(&long)
            .iter()
            .all(|c| c.chars().count() <= CHUNK_CHARS)
    );
}

#[test]
fn validation() {
    let ok = NewDocument {
        title: "t".into(),
        body: "b".into(),
    };
    assert!(validate(&ok).is_ok());
    for (title, body) in [("", "b"), ("t", " "), (&"t".repeat(301)[..], "b")] {
        let d = NewDocument {
            title: title.into(),
            body: body.into(),
        };
        assert!(matches!(validate(&d), Err(Error::Invalid(_))));
    }
}

#[test]
fn vector_text_form() {
    assert_eq!(vector_text(&[0.5, -1.0]), "[0.5,-1]");
    assert_eq!(content_hash("a").len(), 64);
}
