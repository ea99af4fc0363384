//! The free text people and the assistant attach to decisions and new items, parsed once:
//! [`Note`] (confirm a draft, approve a recommendation), [`Reason`] (discard a draft, reject a
//! recommendation) and [`Title`] (a recommendation's, a document's).
//!
//! One rule for all of them (the rule recommendations followed; confirming a draft now does
//! too):
//!
//! * the text is trimmed (leading and trailing whitespace) before it is checked and stored;
//! * a note is optional, and a blank one (empty after trimming) is absent (`None`), never
//!   stored as `""` or as spaces;
//! * a reason and a title are required: blank is refused;
//! * lengths count characters (Unicode scalar values, as PostgreSQL's `length()` on UTF-8 text)
//!   after trimming, with one limit per kind, equal to the database's CHECK on the column and
//!   to `maxLength` in `docs/openapi.yaml`: note and reason 500 (`decision_note`, migration
//!   0003), a recommendation's title 200 (`ai_recommendations.title`, 0003), a document's title
//!   300 (`documents.title`, 0004).
//!
//! Also here: [`clip_to_bytes`], the one cut of a text to a byte budget on a character boundary.
//!
//! A refusal is a [`FieldError`] naming the field (`note`, `reason`, `title`); `?` turns it
//! into [`Error::Invalid`], a 422.

use std::fmt;

use serde::Serialize;

use crate::error::{Error, FieldError};

/// The longest note, in characters (`decision_note` CHECK, `maxLength: 500`).
pub const NOTE_MAX: usize = 500;
/// The longest reason, in characters (the same `decision_note` column).
pub const REASON_MAX: usize = 500;

// Here rather than in `error.rs` while that module's HTTP half moves to its own crate (#15);
// it belongs beside `Error::invalid` once that settles.
impl From<FieldError> for Error {
    fn from(e: FieldError) -> Error {
        Error::Invalid(vec![e])
    }
}

/// `raw` trimmed, if it has `min..=max` characters; else the field's error.
fn bounded<'a>(
    field: &'static str,
    raw: &'a str,
    min: usize,
    max: usize,
) -> Result<&'a str, FieldError> {
    let text = raw.trim();
    if (min..=max).contains(&text.chars().count()) {
        Ok(text)
    } else if min == 0 {
        Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ))
    } else {
        Err(FieldError::new(
            field,
            format!("must be {min} to {max} characters"),
        ))
    }
}

macro_rules! text_type {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A decision's optional note: trimmed, 1 to [`NOTE_MAX`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Note(String);
text_type!(Note);

impl Note {
    /// `None` when absent or blank; a note longer than [`NOTE_MAX`] is refused.
    pub fn parse(raw: Option<&str>) -> Result<Option<Note>, FieldError> {
        match raw {
            None => Ok(None),
            Some(raw) => {
                let text = bounded("note", raw, 0, NOTE_MAX)?;
                Ok((!text.is_empty()).then(|| Note(text.to_string())))
            }
        }
    }
}

/// A decision's reason: trimmed, 1 to [`REASON_MAX`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Reason(String);
text_type!(Reason);

impl Reason {
    pub fn parse(raw: &str) -> Result<Reason, FieldError> {
        Ok(Reason(bounded("reason", raw, 1, REASON_MAX)?.to_string()))
    }
}

/// What a title names, which sets its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TitleKind {
    Recommendation,
    Document,
}

impl TitleKind {
    /// The longest title of this kind, in characters (the column's CHECK).
    pub const fn max(self) -> usize {
        match self {
            TitleKind::Recommendation => 200,
            TitleKind::Document => 300,
        }
    }
}

/// A title: trimmed, 1 to [`TitleKind::max`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Title(String);
text_type!(Title);

impl Title {
    pub fn parse(kind: TitleKind, raw: &str) -> Result<Title, FieldError> {
        Ok(Title(bounded("title", raw, 1, kind.max())?.to_string()))
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary (a
/// multi-byte character that would straddle `max` is left out whole).
pub fn clip_to_bytes(s: &str, max: usize) -> &str {
    &s[..s.floor_char_boundary(max)]
}

#[cfg(test)]
mod tests;
