//! [`ChatModel`] over Amazon Bedrock Converse (`aws-sdk-bedrockruntime`).
//!
//! The client comes from [`crate::aws::ColdStartAws::bedrock`] (assumed role, explicit timeouts and
//! retries). Errors map to HTTP meaning: throttling, unavailability and timeouts are
//! [`Error::ModelUnavailable`] (503); every other service error and any output this code
//! cannot read is [`Error::ModelFailed`] (502).

use async_trait::async_trait;
use aws_sdk_bedrockruntime::{
    Client,
    types::{
        self as bt, ContentBlock, ConversationRole, InferenceConfiguration, SpecificToolChoice,
        SystemContentBlock, Tool, ToolChoice, ToolConfiguration, ToolInputSchema, ToolResultBlock,
        ToolResultContentBlock, ToolResultStatus, ToolSpecification, ToolUseBlock,
    },
};
use aws_smithy_types::{Document, Number};
use serde_json::Value;

use super::{
    Block, ChatModel, ChatRequest, ChatResponse, Message, Role, StopReason, Usage,
    guardrail::{GuardrailSettings, assessment_json},
};
use crate::error::{Error, Result};

pub struct BedrockChat {
    client: Client,
    model_id: String,
    guardrail: Option<GuardrailSettings>,
}

impl BedrockChat {
    pub fn new(client: Client, model_id: impl Into<String>) -> Self {
        BedrockChat {
            client,
            model_id: model_id.into(),
            guardrail: None,
        }
    }

    /// Every Converse call carries this guardrail (`guardrailConfig`, trace enabled).
    pub fn with_guardrail(mut self, guardrail: Option<GuardrailSettings>) -> Self {
        self.guardrail = guardrail;
        self
    }
}

/// `serde_json::Value` -> smithy `Document` (tool schemas and tool inputs travel as Documents).
pub fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(to_document).collect()),
        Value::Object(o) => {
            Document::Object(o.iter().map(|(k, v)| (k.clone(), to_document(v))).collect())
        }
    }
}

/// smithy `Document` -> `serde_json::Value` (a non-finite float becomes null).
pub fn from_document(doc: &Document) -> Value {
    match doc {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(from_document).collect()),
        Document::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), from_document(v)))
                .collect(),
        ),
    }
}

fn build_err(e: impl std::fmt::Display) -> Error {
    Error::ModelFailed(format!("building the Converse request: {e}"))
}

fn to_sdk_message(m: &Message) -> Result<bt::Message> {
    let role = match m.role {
        Role::User => ConversationRole::User,
        Role::Assistant => ConversationRole::Assistant,
    };
    let mut builder = bt::Message::builder().role(role);
    for block in &m.content {
        builder = builder.content(match block {
            Block::Text(t) => ContentBlock::Text(t.clone()),
            Block::ToolUse { id, name, input } => ContentBlock::ToolUse(
                ToolUseBlock::builder()
                    .tool_use_id(id)
                    .name(name)
                    .input(to_document(input))
                    .build()
                    .map_err(build_err)?,
            ),
            Block::ToolResult {
                id,
                content,
                is_error,
            } => ContentBlock::ToolResult(
                ToolResultBlock::builder()
                    .tool_use_id(id)
                    .content(ToolResultContentBlock::Json(to_document(content)))
                    .status(if *is_error {
                        ToolResultStatus::Error
                    } else {
                        ToolResultStatus::Success
                    })
                    .build()
                    .map_err(build_err)?,
            ),
        });
    }
    builder.build().map_err(build_err)
}

fn from_sdk_message(m: &bt::Message) -> Result<Message> {
    let role = match m.role() {
        ConversationRole::User => Role::User,
        ConversationRole::Assistant => Role::Assistant,
        other => {
            return Err(Error::ModelFailed(format!(
                "unexpected role {}",
                other.as_str()
            )));
        }
    };
    let mut content = Vec::new();
    for block in m.content() {
        match block {
            ContentBlock::Text(t) => content.push(Block::Text(t.clone())),
            ContentBlock::ToolUse(u) => content.push(Block::ToolUse {
                id: u.tool_use_id().to_string(),
                name: u.name().to_string(),
                input: from_document(u.input()),
            }),
            // Reasoning traces and other blocks carry nothing the turn uses.
            _ => {}
        }
    }
    Ok(Message { role, content })
}

#[async_trait]
impl ChatModel for BedrockChat {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    #[tracing::instrument(skip(self, request), fields(model = %self.model_id, guardrail = self.guardrail.is_some()))]
    async fn converse(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let messages = request
            .messages
            .iter()
            .map(to_sdk_message)
            .collect::<Result<Vec<_>>>()?;
        let mut call = self
            .client
            .converse()
            .model_id(&self.model_id)
            .set_messages(Some(messages))
            .system(SystemContentBlock::Text(request.system.clone()))
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(i32::try_from(request.max_tokens).unwrap_or(i32::MAX))
                    .temperature(0.2)
                    .build(),
            );
        if let Some(g) = &self.guardrail {
            call = call.guardrail_config(g.converse_config());
        }
        if !request.tools.is_empty() {
            let mut config = ToolConfiguration::builder();
            for t in &request.tools {
                config = config.tools(Tool::ToolSpec(
                    ToolSpecification::builder()
                        .name(&t.name)
                        .description(&t.description)
                        .input_schema(ToolInputSchema::Json(to_document(&t.input_schema)))
                        .build()
                        .map_err(build_err)?,
                ));
            }
            if let Some(name) = &request.tool_choice {
                config = config.tool_choice(ToolChoice::Tool(
                    SpecificToolChoice::builder()
                        .name(name)
                        .build()
                        .map_err(build_err)?,
                ));
            }
            call = call.tool_config(config.build().map_err(build_err)?);
        }
        let out = call
            .send()
            .await
            .map_err(crate::aws::classify_bedrock_error)?;
        let message = match out.output() {
            Some(bt::ConverseOutput::Message(m)) => from_sdk_message(m)?,
            _ => return Err(Error::ModelFailed("the response has no message".into())),
        };
        let stop_reason = match out.stop_reason() {
            bt::StopReason::EndTurn | bt::StopReason::StopSequence => StopReason::EndTurn,
            bt::StopReason::ToolUse => StopReason::ToolUse,
            bt::StopReason::MaxTokens => StopReason::MaxTokens,
            bt::StopReason::GuardrailIntervened => StopReason::GuardrailIntervened(
                out.trace()
                    .and_then(|t| t.guardrail())
                    .map(assessment_json)
                    .unwrap_or_else(|| serde_json::json!({ "trace": "none returned" })),
            ),
            bt::StopReason::MalformedModelOutput | bt::StopReason::MalformedToolUse => {
                return Err(Error::ModelFailed(format!(
                    "malformed model output ({})",
                    out.stop_reason().as_str()
                )));
            }
            other => StopReason::Other(other.as_str().to_string()),
        };
        let usage = out
            .usage()
            .map(|u| Usage {
                input_tokens: u.input_tokens().max(0) as u64,
                output_tokens: u.output_tokens().max(0) as u64,
            })
            .ok_or_else(|| Error::ModelFailed("the response reports no token usage".into()))?;
        Ok(ChatResponse {
            message,
            stop_reason,
            usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_round_trip_json() {
        for v in [
            json!(null),
            json!(true),
            json!(3),
            json!(-7),
            json!(2.5),
            json!("x"),
            json!({"a": [1, {"b": "c"}], "d": -1.25, "e": null}),
        ] {
            assert_eq!(from_document(&to_document(&v)), v, "{v}");
        }
    }
}
