//! The model-backed [`FactExtractor`]: one chat-model call per conversation that must call the
//! `record_memories` tool, whose input is `{facts: [{subject, content}], summary}`.
//!
//! The request ([`request`]) carries a system prompt, one user message holding the previous
//! summary and the new messages, the tool spec and `toolChoice` naming the tool (Converse
//! `toolConfig.toolChoice.tool`), and `maxTokens` = the extractor's output cap. The answer is
//! parsed strictly ([`parse_tool_input`]): no tool call, a missing or mistyped field, an empty
//! subject or content, more than [`MAX_FACTS`] facts or an over-long string is a
//! [`Error::ModelFailed`], never a panic and never a partial extraction; the distiller then
//! writes nothing for that conversation and leaves its watermark where it was. Unknown keys
//! are ignored. A Bedrock guardrail's intervention (`stopReason = guardrail_intervened`) is
//! not a failure: [`FactExtractor::extract`] returns no facts, the usage the model reported
//! and the guardrail's assessment ([`super::GuardrailBlock`]); the distiller decides what that
//! means for the conversation. Subjects are normalised (trimmed, lower case, single spaces); a later fact about
//! the same subject in one answer replaces an earlier one.
//!
//! The transcript sent is bounded: the previous summary to [`MAX_PREVIOUS_SUMMARY_BYTES`], the
//! messages to [`MAX_MESSAGES`] and [`MAX_TRANSCRIPT_BYTES`] of content in all (the distiller
//! never hands over more, except a single oversized message, which is clipped), so
//! [`FactExtractor::max_input_tokens`] is a true upper bound for the reservation.

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{
    Extraction, Fact, FactExtractor, GuardrailBlock, TranscriptMessage, Usage,
    distill::{MAX_MESSAGES, MAX_TRANSCRIPT_BYTES},
};
use crate::{
    config::Env,
    error::{Error, Result},
    model::{ChatModel, ChatRequest, ChatResponse, Message, StopReason, ToolSpec},
};

/// [`MAX_MESSAGES`] as a count of transcript entries.
#[allow(clippy::cast_possible_truncation)] // 200
const MESSAGES: usize = MAX_MESSAGES as usize;

/// The tool the model must call.
pub const TOOL_NAME: &str = "record_memories";
/// Most facts one answer may carry.
pub const MAX_FACTS: usize = 20;
/// Longest subject, in characters (after normalisation).
pub const MAX_SUBJECT_CHARS: usize = 80;
/// Longest fact, in characters.
pub const MAX_CONTENT_CHARS: usize = 300;
/// Longest summary, in characters.
pub const MAX_SUMMARY_CHARS: usize = 2000;
/// Most bytes of the previous summary sent to the model.
pub const MAX_PREVIOUS_SUMMARY_BYTES: usize = 8000;
/// Default cap on output tokens per call: room for a maximal answer (20 facts of 300
/// characters and their subjects, a 2,000-character summary, JSON framing).
pub const DEFAULT_MAX_OUTPUT_TOKENS: u32 = 3000;

const SYSTEM_PROMPT: &str = "You maintain the long-term memory of a farm-management assistant. \
You are given the summary of a conversation so far (if any) and its new messages between the \
farmer and the assistant. Call the record_memories tool exactly once with:\n\
- facts: durable facts about this farm that the FARMER stated (not the assistant), worth \
remembering in later conversations: routines and schedules (\"we vaccinate on Mondays\"), what \
a pond, house, pen or field is used for (\"Pond 3 is the nursery\"), where animals are kept, \
who the farm's vet, suppliers or buyers are, standing practices. Leave out questions, \
one-off events (today's sale, a single death), plans not yet decided, advice, and anything \
the farmer denied. Each fact has a subject: a short lower-case noun phrase naming what it is \
about (\"vaccination day\", \"pond 3\", \"layers location\", \"vet\"); two facts that would \
contradict each other get the same subject. Each content is one self-contained sentence. At \
most 20 facts; none if nothing durable was said.\n\
- summary: a short summary (at most 2000 characters) of the whole conversation, folding in \
the previous summary.\n\
Do not invent anything that is not in the messages.";

/// The `record_memories` tool: its input schema mirrors the limits [`parse_tool_input`] checks.
pub fn tool_spec() -> ToolSpec {
    ToolSpec {
        name: TOOL_NAME.into(),
        description: "Records the durable farm facts stated in the conversation and its summary."
            .into(),
        input_schema: json!({
            "type": "object",
            "properties": {
                "facts": {
                    "type": "array",
                    "maxItems": MAX_FACTS,
                    "items": {
                        "type": "object",
                        "properties": {
                            "subject": {"type": "string", "minLength": 1, "maxLength": MAX_SUBJECT_CHARS,
                                        "description": "short lower-case noun phrase the fact is about"},
                            "content": {"type": "string", "minLength": 1, "maxLength": MAX_CONTENT_CHARS,
                                        "description": "the fact, one self-contained sentence"}
                        },
                        "required": ["subject", "content"],
                        "additionalProperties": false
                    }
                },
                "summary": {"type": "string", "minLength": 1, "maxLength": MAX_SUMMARY_CHARS}
            },
            "required": ["facts", "summary"],
            "additionalProperties": false
        }),
    }
}

/// The user message: the previous summary and the new messages, clipped to the bounds.
fn prompt(previous_summary: Option<&str>, transcript: &[TranscriptMessage]) -> String {
    let mut text = String::from("Summary so far:\n");
    match previous_summary.map(str::trim).filter(|p| !p.is_empty()) {
        Some(p) => text.push_str(crate::text::clip_to_bytes(p, MAX_PREVIOUS_SUMMARY_BYTES)),
        None => text.push_str("(none)"),
    }
    text.push_str("\n\nNew messages:");
    let mut budget = MAX_TRANSCRIPT_BYTES;
    for m in transcript.iter().take(MESSAGES) {
        let content = crate::text::clip_to_bytes(&m.content, budget);
        budget -= content.len();
        let who = if m.role == "user" {
            "farmer"
        } else {
            "assistant"
        };
        text.push_str(&format!("\n[{who}] {content}"));
    }
    text
}

/// The Converse request for one transcript (pure).
pub fn request(
    previous_summary: Option<&str>,
    transcript: &[TranscriptMessage],
    max_tokens: u32,
) -> ChatRequest {
    ChatRequest {
        system: SYSTEM_PROMPT.into(),
        messages: vec![Message::user_text(prompt(previous_summary, transcript))],
        tools: vec![tool_spec()],
        tool_choice: Some(TOOL_NAME.into()),
        max_tokens,
    }
}

fn failed(reason: impl std::fmt::Display) -> Error {
    Error::ModelFailed(format!("{TOOL_NAME}: {reason}"))
}

/// A required string field, trimmed, non-empty, at most `max` characters, no NUL.
fn text_field(object: &serde_json::Map<String, Value>, key: &str, max: usize) -> Result<String> {
    let value = object
        .get(key)
        .ok_or_else(|| failed(format!("missing {key}")))?
        .as_str()
        .ok_or_else(|| failed(format!("{key} is not a string")))?
        .trim();
    if value.is_empty() {
        return Err(failed(format!("{key} is empty")));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(failed(format!(
            "{key} has {chars} characters (at most {max})"
        )));
    }
    if value.contains('\0') {
        return Err(failed(format!("{key} contains a NUL character")));
    }
    Ok(value.to_string())
}

/// Pure: the `record_memories` input -> facts (subjects normalised, a later fact about the same
/// subject replacing an earlier one) and the summary. Any deviation is an error.
pub fn parse_tool_input(input: &Value) -> Result<(Vec<Fact>, String)> {
    let object = input
        .as_object()
        .ok_or_else(|| failed("the input is not a JSON object"))?;
    let facts = object
        .get("facts")
        .ok_or_else(|| failed("missing facts"))?
        .as_array()
        .ok_or_else(|| failed("facts is not an array"))?;
    if facts.len() > MAX_FACTS {
        return Err(failed(format!(
            "{} facts (at most {MAX_FACTS})",
            facts.len()
        )));
    }
    let mut out: Vec<Fact> = Vec::with_capacity(facts.len());
    let mut by_subject: HashMap<String, usize> = HashMap::new();
    for (i, fact) in facts.iter().enumerate() {
        let fact = fact
            .as_object()
            .ok_or_else(|| failed(format!("fact {i} is not an object")))?;
        let subject = text_field(fact, "subject", MAX_SUBJECT_CHARS)?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase();
        let content = text_field(fact, "content", MAX_CONTENT_CHARS)?;
        match by_subject.get(&subject) {
            Some(&at) => out[at].content = content,
            None => {
                by_subject.insert(subject.clone(), out.len());
                out.push(Fact { subject, content });
            }
        }
    }
    let summary = text_field(object, "summary", MAX_SUMMARY_CHARS)?;
    Ok((out, summary))
}

/// Pure: the model's answer -> facts and summary. It must have stopped to call
/// [`TOOL_NAME`] (exactly once), within its output cap.
pub fn parse_response(response: &ChatResponse) -> Result<(Vec<Fact>, String)> {
    match &response.stop_reason {
        StopReason::MaxTokens => {
            return Err(failed("the answer was cut off at the output-token cap"));
        }
        StopReason::GuardrailIntervened(_) => {
            return Err(failed(
                "a guardrail stopped the answer (guardrail_intervened)",
            ));
        }
        _ => {}
    }
    let mut calls = response.message.content.iter().filter_map(|b| match b {
        crate::model::Block::ToolUse { name, input, .. } if name == TOOL_NAME => Some(input),
        _ => None,
    });
    let input = calls
        .next()
        .ok_or_else(|| failed("the model did not call the tool"))?;
    if calls.next().is_some() {
        return Err(failed("the model called the tool more than once"));
    }
    parse_tool_input(input)
}

/// A [`FactExtractor`] over any [`ChatModel`] (Bedrock Converse in the deployed stack).
pub struct ModelFactExtractor {
    model: Arc<dyn ChatModel>,
    max_output_tokens: u32,
    max_input_tokens: u64,
}

impl ModelFactExtractor {
    /// Refuses a model without a price (`credits::price_for`): its runs could not be metered.
    pub fn new(model: Arc<dyn ChatModel>, max_output_tokens: u32) -> Result<Self> {
        if crate::credits::price_for(model.model_id()).is_none() {
            return Err(Error::unexpected(format!(
                "model {} has no price",
                model.model_id()
            )));
        }
        // The largest request the bounds allow: every byte of it counted as a token.
        let per_message = MAX_TRANSCRIPT_BYTES / MESSAGES;
        let transcript: Vec<TranscriptMessage> = (0..MAX_MESSAGES)
            .map(|_| TranscriptMessage {
                role: "assistant".into(),
                content: "x".repeat(per_message),
            })
            .collect();
        let previous = "x".repeat(MAX_PREVIOUS_SUMMARY_BYTES);
        let max_input_tokens =
            request(Some(&previous), &transcript, max_output_tokens).input_token_bound();
        Ok(ModelFactExtractor {
            model,
            max_output_tokens,
            max_input_tokens,
        })
    }
}

#[async_trait]
impl FactExtractor for ModelFactExtractor {
    fn model_id(&self) -> &str {
        self.model.model_id()
    }

    fn max_output_tokens(&self) -> u64 {
        u64::from(self.max_output_tokens)
    }

    fn max_input_tokens(&self) -> u64 {
        self.max_input_tokens
    }

    /// The model's bound of the request as built for this transcript.
    fn input_token_bound(
        &self,
        previous_summary: Option<&str>,
        transcript: &[TranscriptMessage],
    ) -> u64 {
        let request = request(previous_summary, transcript, self.max_output_tokens);
        self.model.input_token_bound(&request)
    }

    #[tracing::instrument(skip_all, fields(model = %self.model.model_id(), messages = transcript.len()))]
    async fn extract(
        &self,
        previous_summary: Option<&str>,
        transcript: &[TranscriptMessage],
    ) -> Result<Extraction> {
        let request = request(previous_summary, transcript, self.max_output_tokens);
        let response = self.model.converse(&request).await?;
        let usage = Usage {
            input_tokens: response.usage.input_tokens,
            output_tokens: response.usage.output_tokens,
        };
        if let StopReason::GuardrailIntervened(assessment) = &response.stop_reason {
            // paid for (the usage is reported), nothing extracted
            return Ok(Extraction {
                facts: Vec::new(),
                summary: String::new(),
                usage,
                guardrail: Some(GuardrailBlock {
                    assessment: assessment.clone(),
                    blocked_message: response.message.text(),
                }),
            });
        }
        let (facts, summary) = parse_response(&response)?;
        Ok(Extraction {
            facts,
            summary,
            usage,
            guardrail: None,
        })
    }
}

/// The distill-memories extractor for this environment, built once at cold start:
/// `FARMOPS_CHAT_PROVIDER=bedrock` -> [`ModelFactExtractor`] over Bedrock Converse with the
/// model `FARMOPS_DISTILL_MODEL_ID`, else `FARMOPS_CHAT_MODEL_ID`, else
/// [`crate::model::DEFAULT_BEDROCK_MODEL_ID`] (refused without a price); `offline` or unset ->
/// the deterministic `super::extract::OfflineFactExtractor` (feature `offline`); any other
/// value is refused
/// ([`crate::model::from_env`], over the cold start's shared Bedrock client `aws`).
pub async fn extractor_from_env<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    aws: &crate::aws::ColdStartAws,
) -> Result<Arc<dyn FactExtractor>> {
    // without the feature `offline` Bedrock is the only arm
    #[cfg_attr(
        not(feature = "offline"),
        allow(clippy::infallible_destructuring_match)
    )]
    let model = match crate::model::from_env(env, &bedrock_model_id(env), aws).await? {
        #[cfg(feature = "offline")]
        crate::model::ConfiguredModel::Offline => {
            return Ok(Arc::new(super::extract::OfflineFactExtractor::default()));
        }
        crate::model::ConfiguredModel::Bedrock(model) => model,
    };
    Ok(Arc::new(ModelFactExtractor::new(
        model,
        DEFAULT_MAX_OUTPUT_TOKENS,
    )?))
}

/// `FARMOPS_DISTILL_MODEL_ID`, else `FARMOPS_CHAT_MODEL_ID`, else the default Bedrock model.
pub fn bedrock_model_id<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> String {
    env.optional("FARMOPS_DISTILL_MODEL_ID")
        .or_else(|| env.optional("FARMOPS_CHAT_MODEL_ID"))
        .unwrap_or_else(|| crate::model::DEFAULT_BEDROCK_MODEL_ID.into())
}

// the tests run the offline model and extractor beside the model one
#[cfg(all(test, feature = "offline"))]
mod tests;
