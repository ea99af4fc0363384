//! The caps of a chat turn, read once at cold start.

use crate::config::{ConfigError, Env};

/// The smallest `maxTokens` a call is shrunk to when the farm cannot pay for the configured
/// one (enough for a reply and a tool call or two); below it the turn does not start (402).
pub const MIN_OUTPUT_TOKENS: u32 = 256;

/// The caps of a turn. Each call is held for as it comes (`crate::credits::metered`), so these
/// bound a turn's cost, not what it holds: a farm whose balance is below them gets a smaller
/// turn (a smaller `maxTokens`, down to [`MIN_OUTPUT_TOKENS`]; fewer tool rounds when the
/// next call cannot be paid).
///
/// | variable | default | meaning |
/// |---|---|---|
/// | `FARMOPS_CHAT_PROVIDER` | `offline` | `offline` or `bedrock`; anything else stops the cold start (`crate::model::from_env`) |
/// | `FARMOPS_CHAT_MODEL_ID` | `anthropic.claude-3-5-haiku-20241022-v1:0` | Bedrock model id (must have a price) |
/// | `FARMOPS_CHAT_MAX_TOKENS` | `1024` | `maxTokens` of every model call (1..=4096) |
/// | `FARMOPS_CHAT_MAX_INPUT_TOKENS` | `32000` | the largest input of any call (history is trimmed to fit) |
/// | `FARMOPS_CHAT_MAX_MODEL_CALLS` | `4` | model calls per turn (1 + tool rounds), 1..=8 |
/// | `FARMOPS_CHAT_HISTORY_MESSAGES` | `8` | previous messages sent as history |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLimits {
    pub max_output_tokens: u32,
    pub max_input_tokens: u64,
    pub max_model_calls: u32,
    pub history_messages: i64,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_output_tokens: 1024,
            max_input_tokens: 32_000,
            max_model_calls: 4,
            history_messages: 8,
        }
    }
}

impl ChatLimits {
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let d = ChatLimits::default();
        let limits = ChatLimits {
            max_output_tokens: env.parsed("FARMOPS_CHAT_MAX_TOKENS", d.max_output_tokens)?,
            max_input_tokens: env.parsed("FARMOPS_CHAT_MAX_INPUT_TOKENS", d.max_input_tokens)?,
            max_model_calls: env.parsed("FARMOPS_CHAT_MAX_MODEL_CALLS", d.max_model_calls)?,
            history_messages: env.parsed("FARMOPS_CHAT_HISTORY_MESSAGES", d.history_messages)?,
        };
        let bad = |var, reason: &str| {
            Err(ConfigError::Invalid {
                var,
                reason: reason.into(),
            })
        };
        if !(1..=4096).contains(&limits.max_output_tokens) {
            return bad("FARMOPS_CHAT_MAX_TOKENS", "must be 1 to 4096");
        }
        if !(8_000..=200_000).contains(&limits.max_input_tokens) {
            return bad("FARMOPS_CHAT_MAX_INPUT_TOKENS", "must be 8000 to 200000");
        }
        if !(1..=8).contains(&limits.max_model_calls) {
            return bad("FARMOPS_CHAT_MAX_MODEL_CALLS", "must be 1 to 8");
        }
        if !(0..=50).contains(&limits.history_messages) {
            return bad("FARMOPS_CHAT_HISTORY_MESSAGES", "must be 0 to 50");
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_from_env_are_checked() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            Env(move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            })
        };
        assert_eq!(
            ChatLimits::from_env(&env(&[])).unwrap(),
            ChatLimits::default()
        );
        assert!(ChatLimits::from_env(&env(&[("FARMOPS_CHAT_MAX_TOKENS", "0")])).is_err());
        assert!(ChatLimits::from_env(&env(&[("FARMOPS_CHAT_MAX_MODEL_CALLS", "99")])).is_err());
    }
}
