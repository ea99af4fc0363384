//! Rule-based evals run on every turn and stored in `ai_evals`.
//!
//! * `schema_conformance`: one row per tool call: did its input pass the tool's schema?
//! * `clinical_safety`: the reply, every recommendation and the free text of every draft or
//!   record the assistant writes pass the rules of [`crate::clinical`] (prohibited substances,
//!   prescription-only medicines, extralabel use, withdrawal periods, human medicines, the vet
//!   avoided, pesticides on animals); `details.violations` names each rule, category and span.
//!
//! What the user sees when `clinical_safety` fails: the model's reply is WITHHELD and replaced
//! by [`SAFE_REPLY`]; the response says `"reply_withheld": true` and carries the failed eval
//! with the rules that fired. The withheld text is kept only in the eval's details (for the
//! farm's owners and managers reading the evidence), never in the conversation. A failing
//! recommendation is refused (not written) and the model is told why.

use serde::Serialize;
use serde_json::{Value, json};

use crate::clinical::{self, Violation};

pub const SCHEMA_CONFORMANCE: &str = "schema_conformance";
pub const CLINICAL_SAFETY: &str = "clinical_safety";

pub const SAFE_REPLY: &str = "I can't share that advice: it touched on medicines, doses or withdrawal periods that need a veterinarian. Please contact your vet before treating the animals, keep sick animals apart, and don't sell eggs, milk or meat from treated animals until the vet says the withdrawal period is over.";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Eval {
    pub name: String,
    pub passed: bool,
    pub details: Value,
}

/// The clinical rules `text` breaks (empty: it passes); the policy lives in [`crate::clinical`].
pub fn clinical_violations(text: &str) -> Vec<Violation> {
    clinical::check(text)
}

/// The `clinical_safety` eval of one text: `details` names the subject (`reply`,
/// `recommendation`, `record_note`, ...), every violation (rule, category, span) and, when it
/// fails, the withheld text.
pub fn clinical_eval(subject: &str, text: &str) -> Eval {
    let violations = clinical_violations(text);
    let mut details = json!({ "subject": subject, "violations": violations });
    if !violations.is_empty() {
        details["withheld_text"] = json!(text.chars().take(2000).collect::<String>());
    }
    Eval {
        name: CLINICAL_SAFETY.into(),
        passed: violations.is_empty(),
        details,
    }
}

/// The `clinical_safety` eval of a turn a Bedrock guardrail stopped: failed, with the
/// guardrail's assessment and the text it answered with (the farmer gets [`SAFE_REPLY`]; the
/// rules still run on the reply after it).
pub fn guardrail_eval(assessment: &Value, blocked_message: &str) -> Eval {
    guardrail_eval_of("reply", assessment, blocked_message)
}

/// [`guardrail_eval`] of another subject than the reply (e.g. `memory_distillation`: the
/// distill job's extraction call).
pub fn guardrail_eval_of(subject: &str, assessment: &Value, blocked_message: &str) -> Eval {
    Eval {
        name: CLINICAL_SAFETY.into(),
        passed: false,
        details: json!({
            "subject": subject,
            "source": "bedrock_guardrail",
            "guardrail": assessment,
            "violations": [],
            "withheld_text": blocked_message.chars().take(2000).collect::<String>(),
        }),
    }
}

/// True for an eval made by [`guardrail_eval`].
pub fn is_guardrail_block(eval: &Eval) -> bool {
    eval.name == CLINICAL_SAFETY && !eval.passed && eval.details["source"] == "bedrock_guardrail"
}

/// One violation of a tool call's `field` as the eval and the model see it: rule, category,
/// span and, for a prohibited substance, where it is prohibited.
fn field_violation(field: &str, v: &Violation) -> Value {
    let mut out = json!({
        "field": field, "rule": v.rule, "category": v.category, "span": v.span,
    });
    if !v.prohibited_where.is_empty() {
        out["prohibited_where"] = json!(v.prohibited_where);
    }
    out
}

/// The free text of a tool call the assistant would write (every string field), screened: a
/// failed `clinical_safety` eval and the message the model gets when it breaks a rule.
pub fn screen_tool_text(
    tool: &str,
    tool_use_id: &str,
    fields: &serde_json::Map<String, Value>,
) -> Option<(String, Eval)> {
    let mut violations = Vec::new();
    let mut texts = serde_json::Map::new();
    for (field, value) in fields {
        if let Some(text) = value.as_str() {
            let found = clinical_violations(text);
            if !found.is_empty() {
                texts.insert(
                    field.clone(),
                    json!(text.chars().take(2000).collect::<String>()),
                );
                violations.extend(found.iter().map(|v| field_violation(field, v)));
            }
        }
    }
    // The fields read together, as the farmer reads them (a title naming the medicine, a
    // body giving its dose): the title first, then the rest.
    let mut parts: Vec<(&String, &str)> = fields
        .iter()
        .filter_map(|(f, v)| v.as_str().map(|t| (f, t)))
        .collect();
    parts.sort_by_key(|(f, _)| f.as_str() != "title");
    if violations.is_empty() && parts.len() > 1 {
        let joined = parts.iter().map(|(_, t)| *t).collect::<Vec<_>>().join("\n");
        let field = parts
            .iter()
            .map(|(f, _)| f.as_str())
            .collect::<Vec<_>>()
            .join("+");
        for v in clinical_violations(&joined) {
            violations.push(field_violation(&field, &v));
        }
        if !violations.is_empty() {
            texts.insert(field, json!(joined.chars().take(2000).collect::<String>()));
        }
    }
    if violations.is_empty() {
        return None;
    }
    let why = violations
        .iter()
        .map(|v| {
            let mut why = format!(
                "{} ({}): \"{}\"",
                v["rule"].as_str().unwrap_or(""),
                v["field"].as_str().unwrap_or(""),
                v["span"].as_str().unwrap_or("")
            );
            if let Some(places) = v["prohibited_where"].as_array() {
                let places: Vec<&str> = places.iter().filter_map(Value::as_str).collect();
                why.push_str(&format!(
                    ", prohibited in food animals by {}",
                    places.join(", ")
                ));
            }
            why
        })
        .collect::<Vec<_>>()
        .join("; ");
    let message = format!(
        "refused by the clinical safety filter, nothing was saved: {why}. Do not advise medicines, doses, withdrawal shortcuts, prohibited substances, human medicines or pesticides on animals, and do not replace the veterinarian; tell the farmer to contact their vet."
    );
    let eval = Eval {
        name: CLINICAL_SAFETY.into(),
        passed: false,
        details: json!({ "subject": tool, "tool_use_id": tool_use_id, "violations": violations, "withheld_text": texts }),
    };
    Some((message, eval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eval_names_rule_category_and_span() {
        let e = clinical_eval(
            "reply",
            "Isolate them. Give 5 ml ivermectin now, no need for a vet.",
        );
        assert!(!e.passed);
        let v = &e.details["violations"];
        assert_eq!(v[0]["rule"], "dose_without_vet");
        assert_eq!(v[0]["category"], "prescription_only");
        assert_eq!(v[0]["span"], "Give 5 ml ivermectin now, no need for a vet");
        assert_eq!(v[1]["rule"], "vet_dismissed");
        assert_eq!(e.details["subject"], "reply");
        assert_eq!(
            e.details["withheld_text"],
            "Isolate them. Give 5 ml ivermectin now, no need for a vet."
        );
        let ok = clinical_eval("reply", "All good.");
        assert!(ok.passed && ok.details.get("withheld_text").is_none());
    }

    #[test]
    fn tool_text_is_screened_field_by_field() {
        let fields = |v: Value| v.as_object().unwrap().clone();
        let safe = fields(json!({"symptoms": "coughing, 12 birds", "count": 12}));
        assert!(screen_tool_text("record_symptom", "t1", &safe).is_none());
        let bad =
            fields(json!({"body": "Vet not needed: give 3 ml ivermectin to each goat.", "x": 1}));
        let (message, eval) = screen_tool_text("record_note", "t2", &bad).unwrap();
        assert!(message.contains("dose_without_vet (body)"), "{message}");
        assert!(!eval.passed);
        assert_eq!(eval.details["violations"][0]["field"], "body");
        assert_eq!(eval.details["tool_use_id"], "t2");
        assert!(
            eval.details["withheld_text"]["body"]
                .as_str()
                .unwrap()
                .contains("ivermectin")
        );
    }
}
