//! The offline chat model: deterministic, no network. It reads ordinary farm-log sentences
//! and answers with the tool calls a capable model would make; after tool results it
//! summarises them; for questions it answers from the farm knowledge in the system prompt.
//! Every reply says it comes from the offline model. Token usage is a words-based estimate
//! (never above the request's byte bound or its `max_tokens`), so metering works locally.

use async_trait::async_trait;
use chrono::Utc;
use serde_json::Value;

use super::{Block, ChatModel, ChatRequest, ChatResponse, Message, Role, StopReason, Usage};
use crate::error::Result;

mod money;
mod parse;
#[cfg(test)]
mod tests;

pub use parse::{ToolCall, clauses, parse_clause, parse_message};

pub const OFFLINE_MODEL_ID: &str = "offline-farm-assistant";
pub use super::KNOWLEDGE_MARKER;
const PREFIX: &str = "(offline model)";

#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineChat;

fn is_question(text: &str) -> bool {
    let lower = text.trim().to_ascii_lowercase();
    lower.ends_with('?')
        || [
            "what", "how", "when", "why", "which", "should", "can", "is ", "do ",
        ]
        .iter()
        .any(|w| lower.starts_with(w))
}

/// The passages listed under [`KNOWLEDGE_MARKER`] in the system prompt.
fn knowledge(system: &str) -> Vec<&str> {
    let Some(i) = system.find(KNOWLEDGE_MARKER) else {
        return Vec::new();
    };
    system[i + KNOWLEDGE_MARKER.len()..]
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| l.strip_prefix("- "))
        .collect()
}

fn answer(question: &str, system: &str) -> String {
    let terms: Vec<String> = question
        .to_ascii_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 3)
        .map(str::to_string)
        .collect();
    let best = knowledge(system)
        .into_iter()
        .map(|p| {
            let l = p.to_ascii_lowercase();
            (terms.iter().filter(|t| l.contains(t.as_str())).count(), p)
        })
        .filter(|(score, _)| *score > 0)
        .max_by_key(|(score, _)| *score);
    match best {
        Some((_, passage)) => format!("{PREFIX} From your farm's knowledge: {passage}"),
        None => format!(
            "{PREFIX} I have nothing in this farm's knowledge about that. Tell me what happened on the farm (deaths, feed, sales, expenses, weights, symptoms, tasks) and I will record it."
        ),
    }
}

fn summarise_results(results: &[(&Value, bool)]) -> String {
    let mut done = Vec::new();
    let mut refused = Vec::new();
    for (content, is_error) in results {
        let text = content["summary"]
            .as_str()
            .or(content["error"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| content.to_string());
        if *is_error {
            refused.push(text);
        } else {
            done.push(text);
        }
    }
    let mut reply = PREFIX.to_string();
    if !done.is_empty() {
        reply.push_str(&format!(" Done: {}.", done.join("; ")));
    }
    if !refused.is_empty() {
        reply.push_str(&format!(" Not saved: {}.", refused.join("; ")));
    }
    reply
}

/// Tokens of `text` by the offline model's own tokeniser (the exact count it reports).
fn count_tokens(text: &str) -> u64 {
    crate::tokens::split(text, crate::tokens::Split::Whitespace).len() as u64
}

/// The offline tokeniser's count of a request: words of the system prompt and of every message
/// as JSON, 40 per tool, never above the request's byte bound.
fn input_tokens(request: &ChatRequest) -> u64 {
    (count_tokens(&request.system)
        + request
            .messages
            .iter()
            .map(|m| count_tokens(&serde_json::to_string(&m.content).unwrap_or_default()))
            .sum::<u64>()
        + request.tools.len() as u64 * 40)
        .min(request.input_token_bound())
}

#[async_trait]
impl ChatModel for OfflineChat {
    fn model_id(&self) -> &str {
        OFFLINE_MODEL_ID
    }

    /// Exact: the count [`ChatModel::converse`] reports (its own tokeniser).
    fn input_token_bound(&self, request: &ChatRequest) -> u64 {
        input_tokens(request)
    }

    async fn converse(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let input_tokens = input_tokens(request);
        let last = request.messages.last();
        let results: Vec<(&Value, bool)> = last
            .map(|m| {
                m.content
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolResult {
                            content, is_error, ..
                        } => Some((content, *is_error)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (message, stop_reason) = if !results.is_empty() {
            (
                Message::assistant_text(summarise_results(&results)),
                StopReason::EndTurn,
            )
        } else {
            let text = last
                .filter(|m| m.role == Role::User)
                .map(Message::text)
                .unwrap_or_default();
            let offered: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
            let calls: Vec<ToolCall> = parse_message(&text, Utc::now().date_naive())
                .into_iter()
                .filter(|(name, _)| offered.contains(&name.as_str()))
                .collect();
            if calls.is_empty() {
                (
                    Message::assistant_text(if is_question(&text) {
                        answer(&text, &request.system)
                    } else {
                        answer(&text, "")
                    }),
                    StopReason::EndTurn,
                )
            } else {
                let turn = request.messages.len();
                let content = calls
                    .into_iter()
                    .enumerate()
                    .map(|(i, (name, input))| Block::ToolUse {
                        id: format!("offline-{turn}-{i}"),
                        name,
                        input,
                    })
                    .collect();
                (
                    Message {
                        role: Role::Assistant,
                        content,
                    },
                    StopReason::ToolUse,
                )
            }
        };
        let output_tokens =
            (count_tokens(&serde_json::to_string(&message.content).unwrap_or_default()) + 1)
                .min(u64::from(request.max_tokens));
        Ok(ChatResponse {
            message,
            stop_reason,
            usage: Usage {
                input_tokens,
                output_tokens,
            },
        })
    }
}
