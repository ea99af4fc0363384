//! Payload validation and the JSON schema the model is told, both from the field tables.

use chrono::NaiveDate;
use serde_json::{Map, Value, json};

use super::{Kind, MAX_KOBO, RecordType, ValidatedPayload};
use crate::error::{Error, FieldError, Result};

/// Validates `payload` for `record_type` and returns it normalised (texts trimmed, absent
/// optional fields omitted, `occurred_on` defaulted to `today`). Unknown fields are refused.
pub fn validate_payload(
    record_type: RecordType,
    payload: &Value,
    today: NaiveDate,
) -> Result<ValidatedPayload> {
    let Some(object) = payload.as_object() else {
        return Err(Error::invalid("payload", "must be a JSON object"));
    };
    let fields = record_type.fields();
    let mut errors = Vec::new();
    for key in object.keys() {
        if !fields.iter().any(|f| f.name == key) {
            errors.push(FieldError::new(
                key.as_str(),
                format!("is not a field of a {record_type} record"),
            ));
        }
    }
    let mut out = Map::new();
    for field in fields {
        match object.get(field.name) {
            None | Some(Value::Null) => {
                if field.required {
                    errors.push(FieldError::new(field.name, "is required"));
                }
            }
            Some(value) => match check(field.kind, value, today) {
                Ok(v) => {
                    out.insert(field.name.to_string(), v);
                }
                Err(message) => errors.push(FieldError::new(field.name, message)),
            },
        }
    }
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    out.entry("occurred_on")
        .or_insert_with(|| json!(today.to_string()));
    Ok(ValidatedPayload::new(record_type, out))
}

fn check(kind: Kind, value: &Value, today: NaiveDate) -> std::result::Result<Value, String> {
    match kind {
        Kind::Int { min, max } => match value.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(json!(n)),
            Some(_) => Err(format!("must be between {min} and {max}")),
            None => Err("must be a whole number".into()),
        },
        Kind::Decimal { max } => match value.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 && x <= max => {
                Ok(json!((x * 1000.0).round() / 1000.0))
            }
            Some(_) => Err(format!("must be greater than 0 and at most {max}")),
            None => Err("must be a number".into()),
        },
        Kind::Kobo => match value.as_i64() {
            Some(n) if n > 0 && n <= MAX_KOBO => Ok(json!(n)),
            Some(_) => Err(format!("must be between 1 and {MAX_KOBO} kobo")),
            None => Err("must be a whole number of kobo (1 naira = 100 kobo)".into()),
        },
        Kind::Text { min, max } => match value.as_str().map(str::trim) {
            Some(s) if (min..=max).contains(&s.chars().count()) => Ok(json!(s)),
            Some(_) => Err(format!("must be {min} to {max} characters")),
            None => Err("must be text".into()),
        },
        Kind::Enum(options) => match value.as_str() {
            Some(s) if options.contains(&s) => Ok(json!(s)),
            _ => Err(format!("must be one of: {}", options.join(", "))),
        },
        Kind::Date | Kind::FutureDate => {
            let date = value
                .as_str()
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .ok_or("must be a date YYYY-MM-DD")?;
            let earliest = NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date");
            let latest = match kind {
                Kind::Date => today.succ_opt().unwrap_or(today), // a day of slack for time zones
                _ => NaiveDate::from_ymd_opt(2100, 12, 31).expect("valid date"),
            };
            if date < earliest || date > latest {
                return Err(format!("must be between {earliest} and {latest}"));
            }
            Ok(json!(date.to_string()))
        }
    }
}

/// The JSON schema of a record type's payload (sent to the model as a tool input schema).
pub fn json_schema(record_type: RecordType) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for field in record_type.fields() {
        let schema = match field.kind {
            Kind::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
            Kind::Decimal { max } => {
                json!({"type": "number", "exclusiveMinimum": 0, "maximum": max})
            }
            Kind::Kobo => json!({"type": "integer", "minimum": 1, "maximum": MAX_KOBO,
                                 "description": "amount in kobo (1 naira = 100 kobo)"}),
            Kind::Text { min, max } => {
                json!({"type": "string", "minLength": min, "maxLength": max})
            }
            Kind::Enum(options) => json!({"type": "string", "enum": options}),
            Kind::Date | Kind::FutureDate => json!({"type": "string", "format": "date"}),
        };
        properties.insert(field.name.to_string(), schema);
        if field.required {
            required.push(field.name);
        }
    }
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}
