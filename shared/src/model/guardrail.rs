//! Amazon Bedrock Guardrails on every Converse call: which guardrail (read once at cold start)
//! and what its trace says when it intervenes.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FARMOPS_GUARDRAIL_ID` | unset | the guardrail's id or ARN (`AWS::Bedrock::Guardrail` in `template.yaml`) |
//! | `FARMOPS_GUARDRAIL_VERSION` | unset | its published version (`AWS::Bedrock::GuardrailVersion`) |
//!
//! Both set: every Converse call carries `guardrailConfig` with the trace enabled. Neither:
//! no guardrail (local runs, tests). One without the other stops the cold start naming the
//! missing variable, so a half-configured stack never runs unguarded.

use aws_sdk_bedrockruntime::types::{
    GuardrailAssessment, GuardrailConfiguration, GuardrailTrace, GuardrailTraceAssessment,
};
use serde_json::{Map, Value, json};

use crate::config::{ConfigError, Env};

pub const ID_VAR: &str = "FARMOPS_GUARDRAIL_ID";
pub const VERSION_VAR: &str = "FARMOPS_GUARDRAIL_VERSION";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardrailSettings {
    pub id: String,
    pub version: String,
}

impl GuardrailSettings {
    /// The guardrail the environment names, if any (see the module doc).
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<Option<GuardrailSettings>, ConfigError> {
        match (env.optional(ID_VAR), env.optional(VERSION_VAR)) {
            (None, None) => Ok(None),
            (Some(id), Some(version)) => Ok(Some(GuardrailSettings { id, version })),
            (Some(_), None) => Err(ConfigError::Invalid {
                var: VERSION_VAR,
                reason: format!("must be set when {ID_VAR} is"),
            }),
            (None, Some(_)) => Err(ConfigError::Invalid {
                var: ID_VAR,
                reason: format!("must be set when {VERSION_VAR} is"),
            }),
        }
    }

    /// The `guardrailConfig` of a Converse call, with the trace enabled (the assessment is
    /// what the eval row keeps).
    pub fn converse_config(&self) -> GuardrailConfiguration {
        GuardrailConfiguration::builder()
            .guardrail_identifier(&self.id)
            .guardrail_version(&self.version)
            .trace(GuardrailTrace::Enabled)
            .build()
    }
}

fn policies(a: &GuardrailAssessment) -> Value {
    let mut out = Map::new();
    if let Some(t) = a.topic_policy() {
        let topics: Vec<Value> = t
            .topics()
            .iter()
            .map(|t| json!({ "name": t.name(), "type": t.r#type().as_str(), "action": t.action().as_str() }))
            .collect();
        out.insert("topics".into(), json!(topics));
    }
    if let Some(w) = a.word_policy() {
        let words: Vec<Value> = w
            .custom_words()
            .iter()
            .map(|w| json!({ "match": w.r#match(), "action": w.action().as_str() }))
            .chain(w.managed_word_lists().iter().map(|w| {
                json!({ "match": w.r#match(), "list": w.r#type().as_str(), "action": w.action().as_str() })
            }))
            .collect();
        out.insert("words".into(), json!(words));
    }
    if let Some(c) = a.content_policy() {
        let filters: Vec<Value> = c
            .filters()
            .iter()
            .map(|f| json!({ "type": f.r#type().as_str(), "confidence": f.confidence().as_str(), "action": f.action().as_str() }))
            .collect();
        out.insert("content_filters".into(), json!(filters));
    }
    Value::Object(out)
}

/// The parts of a guardrail trace that say why it intervened: the reason, and per assessed
/// input or output the topics, words and content filters that matched.
pub fn assessment_json(trace: &GuardrailTraceAssessment) -> Value {
    let inputs: Map<String, Value> = trace
        .input_assessment()
        .map(|m| {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            keys.into_iter()
                .map(|k| (k.clone(), policies(&m[k])))
                .collect()
        })
        .unwrap_or_default();
    let outputs: Vec<Value> = trace
        .output_assessments()
        .map(|m| {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            keys.into_iter()
                .flat_map(|k| m[k].iter().map(policies))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "action_reason": trace.action_reason(),
        "input": inputs,
        "output": outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_or_neither_and_a_half_set_pair_names_the_missing_variable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            Env(move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(GuardrailSettings::from_env(&env(&[])).unwrap(), None);
        let both = GuardrailSettings::from_env(&env(&[(ID_VAR, "gr-1"), (VERSION_VAR, "3")]))
            .unwrap()
            .unwrap();
        assert_eq!((both.id.as_str(), both.version.as_str()), ("gr-1", "3"));
        let config = both.converse_config();
        assert_eq!(config.guardrail_identifier(), "gr-1");
        assert_eq!(config.trace(), &GuardrailTrace::Enabled);
        let half = GuardrailSettings::from_env(&env(&[(ID_VAR, "gr-1")])).unwrap_err();
        assert!(half.to_string().contains(VERSION_VAR), "{half}");
        let half = GuardrailSettings::from_env(&env(&[(VERSION_VAR, "1")])).unwrap_err();
        assert!(half.to_string().contains(ID_VAR), "{half}");
    }
}
