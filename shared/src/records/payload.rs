//! [`ValidatedPayload`]: a record payload that passed [`validate_payload`](super::validate_payload).

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::RecordType;

/// A record payload normalised by [`validate_payload`](super::validate_payload) for its record
/// type (texts trimmed, absent optional fields omitted, `occurred_on` defaulted, unknown fields
/// refused). Outside the records module it is made only by `validate_payload`, so holding one
/// is the proof that the payload was validated; it is read-only. Whatever writes a record or
/// holds a draft ([`insert_record`](super::insert_record), `drafts::create_draft`) takes one.
/// It serializes as the payload's JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedPayload {
    record_type: RecordType,
    fields: Map<String, Value>,
}

impl ValidatedPayload {
    /// Only the validator builds one.
    pub(super) fn new(record_type: RecordType, fields: Map<String, Value>) -> ValidatedPayload {
        ValidatedPayload {
            record_type,
            fields,
        }
    }

    /// The record type the payload was validated for.
    pub fn record_type(&self) -> RecordType {
        self.record_type
    }

    /// The normalised fields.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.fields
    }

    /// One field, if present.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// The payload as a JSON object.
    pub fn to_value(&self) -> Value {
        Value::Object(self.fields.clone())
    }

    /// The payload as a JSON object, without a copy.
    pub fn into_value(self) -> Value {
        Value::Object(self.fields)
    }
}

impl Serialize for ValidatedPayload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.fields.serialize(serializer)
    }
}
