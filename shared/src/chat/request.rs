//! What the farmer sent, checked, and the first model request built from it within the input
//! cap.

use serde::Deserialize;
use uuid::Uuid;

use super::{ChatLimits, tools};
use crate::{
    error::{Error, Result},
    model::{ChatRequest, KNOWLEDGE_MARKER, Message, Role as MsgRole},
    rag::Passage,
};

/// The largest chat request body.
pub const BODY_LIMIT: usize = 16 * 1024;
/// The longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 4000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TurnRequest {
    pub message: String,
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
}

pub(super) fn validate_message(message: &str) -> Result<&str> {
    let m = message.trim();
    if m.is_empty() {
        return Err(Error::invalid("message", "must not be empty"));
    }
    if m.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Error::invalid(
            "message",
            format!("must be at most {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    if m.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(Error::invalid(
            "message",
            "must not contain control characters",
        ));
    }
    Ok(m)
}

const SYSTEM_PROMPT: &str = "You are the FarmOps assistant for one farm. Record what the farmer tells you with the record_* tools (one call per event; money in kobo: 1 naira = 100 kobo), propose actions with create_recommendation, read the farm with recent_records and farm_summary. Never give drug doses, never shorten withdrawal periods, never suggest substances banned for food animals: refer to a veterinarian. Answer briefly.";

/// Bedrock requires the conversation to start with a user message and alternate.
fn well_formed(mut history: Vec<Message>) -> Vec<Message> {
    while history.first().is_some_and(|m| m.role != MsgRole::User) {
        history.remove(0);
    }
    while history.last().is_some_and(|m| m.role != MsgRole::Assistant) {
        history.pop();
    }
    history
}

fn system_prompt(passages: &[Passage]) -> String {
    let mut system = SYSTEM_PROMPT.to_string();
    if !passages.is_empty() {
        system.push_str(&format!("\n{KNOWLEDGE_MARKER}\n"));
        for p in passages {
            let text: String = p.content.chars().take(1000).collect();
            system.push_str(&format!("- {}\n", text.replace('\n', " ")));
        }
    }
    system
}

/// The first request of the turn, within the input bound: history is dropped oldest first
/// until the request takes at most half the bound (room for the tool rounds), then
/// passages, least relevant first, until it fits at all. A message that cannot fit even
/// alone is 422 (before anything is reserved).
pub(super) fn fit_request(
    message: &str,
    mut history: Vec<Message>,
    passages: &[Passage],
    limits: &ChatLimits,
) -> Result<ChatRequest> {
    let mut kept = passages.len();
    let mut request = ChatRequest {
        system: system_prompt(passages),
        messages: Vec::new(),
        tools: tools::tool_specs(),
        tool_choice: None,
        max_tokens: limits.max_output_tokens,
    };
    loop {
        request.messages = well_formed(history.clone());
        request.messages.push(Message::user_text(message));
        if request.input_token_bound() <= limits.max_input_tokens / 2 {
            return Ok(request);
        }
        if !history.is_empty() {
            history.remove(0);
        } else if kept > 0 {
            kept -= 1;
            request.system = system_prompt(&passages[..kept]);
        } else if request.input_token_bound() <= limits.max_input_tokens {
            return Ok(request);
        } else {
            return Err(Error::invalid(
                "message",
                "the message is too large for one turn",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_checked() {
        assert!(validate_message("3 birds died").is_ok());
        for bad in ["", "   ", "a\u{0}b"] {
            assert_eq!(validate_message(bad).unwrap_err().status(), 422, "{bad:?}");
        }
        assert_eq!(
            validate_message(&"x".repeat(MAX_MESSAGE_CHARS + 1))
                .unwrap_err()
                .status(),
            422
        );
    }

    #[test]
    fn the_first_request_is_trimmed_to_the_input_bound() {
        let limits = ChatLimits::default();
        let passage = |i: usize| Passage {
            farm_id: Uuid::nil(),
            source: format!("document:{i}"),
            content: "knowledge ".repeat(100),
            distance: 0.1,
        };
        let passages: Vec<Passage> = (0..4).map(passage).collect();
        let history: Vec<Message> = (0..50)
            .flat_map(|i| {
                [
                    Message::user_text(format!("question {i} {}", "x".repeat(900))),
                    Message::assistant_text("y".repeat(900)),
                ]
            })
            .collect();
        let r = fit_request("hello", history.clone(), &passages, &limits).unwrap();
        assert!(r.input_token_bound() <= limits.max_input_tokens / 2);
        assert!(
            r.messages.len() > 1 && r.messages.len() < 101,
            "some history kept: {} messages, bound {}, bare {}",
            r.messages.len(),
            r.input_token_bound(),
            fit_request("hello", vec![], &passages, &limits)
                .unwrap()
                .input_token_bound()
        );
        assert_eq!(r.messages[0].role, MsgRole::User);
        assert!(
            r.system.contains("knowledge"),
            "passages kept while history can go"
        );
        // A huge message (under the character cap) still fits by dropping everything else.
        let big = "é".repeat(MAX_MESSAGE_CHARS);
        let r = fit_request(&big, history, &passages, &limits).unwrap();
        assert!(r.input_token_bound() <= limits.max_input_tokens);
        assert_eq!(r.messages.len(), 1);
        let tiny = ChatLimits {
            max_input_tokens: 8_000,
            ..ChatLimits::default()
        };
        let huge = "💀".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(
            fit_request(&huge, vec![], &[], &tiny).unwrap_err().status(),
            422
        );
    }

    #[test]
    fn history_starts_with_a_user_and_ends_with_an_assistant() {
        let h = well_formed(vec![
            Message::assistant_text("a"),
            Message::user_text("q"),
            Message::assistant_text("a2"),
            Message::user_text("dangling"),
        ]);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].role, MsgRole::User);
    }
}
