//! The chat-model interface, shaped like Bedrock Converse: messages made of text, tool-use and
//! tool-result blocks, a system prompt, tool specs with JSON schemas, a stop reason and the
//! token usage the run is metered on.
//!
//! Two implementations: [`bedrock::BedrockChat`] (Converse through `aws-sdk-bedrockruntime`)
//! and `offline::OfflineChat` (deterministic, no network: local use and tests; cargo feature
//! `offline`, on by default).

pub mod bedrock;
pub mod guardrail;
#[cfg(feature = "offline")]
pub mod offline;
pub mod provider;

pub use provider::{ConfiguredModel, Provider, from_env};

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

/// One block of a message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Block {
    Text(String),
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        id: String,
        content: Value,
        is_error: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Block>,
}

impl Message {
    pub fn user_text(text: impl Into<String>) -> Message {
        Message {
            role: Role::User,
            content: vec![Block::Text(text.into())],
        }
    }

    pub fn assistant_text(text: impl Into<String>) -> Message {
        Message {
            role: Role::Assistant,
            content: vec![Block::Text(text.into())],
        }
    }

    /// The text blocks joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                Block::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A tool the model may call; `input_schema` is a JSON schema object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// The marker under which the chat turn lists retrieved passages in the system prompt (the
/// offline model reads them back from under it).
pub const KNOWLEDGE_MARKER: &str = "## Farm knowledge";

/// The Bedrock model chat and distill-memories use when `FARMOPS_CHAT_MODEL_ID` is unset.
pub const DEFAULT_BEDROCK_MODEL_ID: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

/// Tokens a provider may add to a request (e.g. the tool-use system prompt some models get).
pub const PROVIDER_OVERHEAD_TOKENS: u64 = 1000;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatRequest {
    pub system: String,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    /// The name of a tool in `tools` the model must call (Converse `toolChoice.tool`); `None`
    /// lets the model choose.
    pub tool_choice: Option<String>,
    /// The cap on output tokens for this call (the reservation depends on it).
    pub max_tokens: u32,
}

impl ChatRequest {
    /// An upper bound on the input tokens of this request: its size in bytes of JSON (a token
    /// of any byte-level tokenizer covers at least one byte), a per-message allowance for the
    /// provider's framing, and [`PROVIDER_OVERHEAD_TOKENS`] for the prompt a provider adds
    /// around tools.
    pub fn input_token_bound(&self) -> u64 {
        let json = serde_json::to_string(self).map(|s| s.len()).unwrap_or(0) as u64;
        json + 16 * (self.messages.len() as u64 + self.tools.len() as u64 + 1)
            + PROVIDER_OVERHEAD_TOKENS
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    /// A Bedrock guardrail blocked the input or the output; its trace assessment (see
    /// [`guardrail::assessment_json`]). The message is the guardrail's blocked message.
    GuardrailIntervened(Value),
    Other(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatResponse {
    pub message: Message,
    pub stop_reason: StopReason,
    pub usage: Usage,
}

/// A chat model. Errors: [`crate::Error::ModelUnavailable`] (throttled, timed out: 503) or
/// [`crate::Error::ModelFailed`] (refused, broken output: 502).
#[async_trait]
pub trait ChatModel: Send + Sync {
    /// The model id the run is priced under (must be in [`crate::credits::price_for`]).
    fn model_id(&self) -> &str;
    /// A guaranteed upper bound on the input tokens `request` will be charged for: what the run
    /// holds for before the call. The byte bound of the request unless the provider counts
    /// exactly.
    fn input_token_bound(&self, request: &ChatRequest) -> u64 {
        request.input_token_bound()
    }
    async fn converse(&self, request: &ChatRequest) -> Result<ChatResponse>;
}
