//! The farm's conversations with the assistant and their messages.
//!
//! A worker or viewer sees only the conversations they started (another member's answers
//! 404, like an unknown one); an owner or manager sees every one
//! ([`crate::membership::Role::may_read_all_conversations`]).

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{PageParams, invalid_if_any, page_of};
use crate::{
    db::{TenantTx, Type},
    error::{Error, FieldError, Result},
    evidence::Cursor,
    membership,
    status::RunStatus,
};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    pub id: Uuid,
    /// Who started it.
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    pub last_message_at: DateTime<Utc>,
    pub message_count: i64,
    /// What the distill job made of it (none until it ran).
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationPage {
    pub conversations: Vec<Conversation>,
    /// Pass as `cursor` for the next (older) page; none on the last page.
    pub next_cursor: Option<String>,
}

const LIST_SQL: &str = "SELECT c.id, c.user_id, c.created_at, c.last_message_at, c.summary,
        (SELECT count(*) FROM messages m WHERE m.farm_id = c.farm_id AND m.conversation_id = c.id)
   FROM conversations c
  WHERE c.farm_id = $1 AND ($2::text IS NULL OR c.user_id = $2)
    AND ($3::timestamptz IS NULL OR (c.created_at, c.id) < ($3, $4))
  ORDER BY c.created_at DESC, c.id DESC
  LIMIT $5";

/// `GET /farms/{farm_id}/conversations`: newest started first (a conversation's place never
/// moves, so a walk through the pages sees each once while chats go on).
#[tracing::instrument(skip(tx, param), fields(farm_id = %tx.farm_id()))]
pub async fn list<'a>(
    tx: &TenantTx,
    user_id: &str,
    param: impl Fn(&str) -> Option<&'a str>,
) -> Result<ConversationPage> {
    let role = membership::member_role(tx, user_id).await?;
    let mut errors = Vec::new();
    let page = PageParams::parse(&param, &mut errors);
    invalid_if_any(errors)?;
    let only: Option<&str> = (!role.may_read_all_conversations()).then_some(user_id);
    let (at, id, fetch) = page.keyset();
    let farm_id = tx.farm_id();
    let rows = tx
        .query(
            LIST_SQL,
            &[
                (&farm_id, Type::UUID),
                (&only, Type::TEXT),
                (&at, Type::TIMESTAMPTZ),
                (&id, Type::UUID),
                (&fetch, Type::INT8),
            ],
        )
        .await?;
    let conversations = rows
        .iter()
        .map(|r| Conversation {
            id: r.get(0),
            started_by: r.get(1),
            started_at: r.get(2),
            last_message_at: r.get(3),
            summary: r.get(4),
            message_count: r.get(5),
        })
        .collect();
    let (conversations, next_cursor) = page_of(conversations, page.limit, |c| Cursor {
        created_at: c.started_at,
        id: c.id,
    });
    Ok(ConversationPage {
        conversations,
        next_cursor,
    })
}

/// The run an assistant message came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnRun {
    pub id: Uuid,
    pub status: RunStatus,
    pub model: String,
    pub credits_charged: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    pub id: i64,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    pub created_at: DateTime<Utc>,
    /// The run of an assistant turn (none on the user's messages).
    pub run: Option<TurnRun>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessagePage {
    pub conversation_id: Uuid,
    pub messages: Vec<ChatMessage>,
    /// Pass as `cursor` for the next (later) page; none on the last page.
    pub next_cursor: Option<String>,
}

/// A position in a conversation: after message `id`. Opaque (hex of `m:<id>`).
fn encode_after(id: i64) -> String {
    hex::encode(format!("m:{id}"))
}

fn decode_after(s: &str) -> Option<i64> {
    if s.len() > 60 {
        return None;
    }
    let text = String::from_utf8(hex::decode(s).ok()?).ok()?;
    text.strip_prefix("m:")?.parse().ok().filter(|n| *n >= 0)
}

const MESSAGES_SQL: &str = "SELECT m.id, m.role, m.content, m.created_at,
        r.id, r.status, r.model, r.credits_charged
   FROM messages m
   LEFT JOIN ai_runs r ON m.role = 'assistant' AND r.farm_id = m.farm_id AND r.id = m.ai_run_id
  WHERE m.farm_id = $1 AND m.conversation_id = $2 AND m.id > $3
  ORDER BY m.id
  LIMIT $4";

/// `GET /farms/{farm_id}/conversations/{id}/messages`: the conversation in order (oldest
/// first; `cursor` continues after the last message of the previous page, so messages added
/// meanwhile come on a later page, never twice).
#[tracing::instrument(skip(tx, param), fields(farm_id = %tx.farm_id()))]
pub async fn messages<'a>(
    tx: &TenantTx,
    user_id: &str,
    conversation_id: Uuid,
    param: impl Fn(&str) -> Option<&'a str>,
) -> Result<MessagePage> {
    let role = membership::member_role(tx, user_id).await?;
    let farm_id = tx.farm_id();
    let owner: String = tx
        .query_opt(
            "SELECT user_id FROM conversations WHERE farm_id = $1 AND id = $2",
            &[(&farm_id, Type::UUID), (&conversation_id, Type::UUID)],
        )
        .await?
        .ok_or(Error::NotFound("conversation"))?
        .get(0);
    if owner != user_id && !role.may_read_all_conversations() {
        return Err(Error::NotFound("conversation"));
    }
    let mut errors = Vec::new();
    let mut after = 0i64;
    // `limit` as every page reads it; this cursor is a message position, not a keyset
    let page = PageParams::parse(
        &|k| if k == "cursor" { None } else { param(k) },
        &mut errors,
    );
    let limit = page.limit;
    if let Some(c) = param("cursor") {
        match decode_after(c) {
            Some(id) => after = id,
            None => errors.push(FieldError::new(
                "cursor",
                "is not a cursor this API returned",
            )),
        }
    }
    invalid_if_any(errors)?;
    let fetch = limit + 1;
    let rows = tx
        .query(
            MESSAGES_SQL,
            &[
                (&farm_id, Type::UUID),
                (&conversation_id, Type::UUID),
                (&after, Type::INT8),
                (&fetch, Type::INT8),
            ],
        )
        .await?;
    let mut messages: Vec<ChatMessage> = rows
        .iter()
        .map(|r| ChatMessage {
            id: r.get(0),
            role: r.get(1),
            content: r.get(2),
            created_at: r.get(3),
            run: r.get::<_, Option<Uuid>>(4).map(|id| TurnRun {
                id,
                status: r.get(5),
                model: r.get(6),
                credits_charged: r.get(7),
            }),
        })
        .collect();
    let more = messages.len() as i64 > limit;
    messages.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if more {
        messages.last().map(|m| encode_after(m.id))
    } else {
        None
    };
    Ok(MessagePage {
        conversation_id,
        messages,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_cursors_round_trip_and_refuse_garbage() {
        assert_eq!(decode_after(&encode_after(42)), Some(42));
        for bad in [
            "",
            "zz",
            &hex::encode("m:-1"),
            &hex::encode("x:1"),
            &hex::encode("m:"),
        ] {
            assert_eq!(decode_after(bad), None, "{bad}");
        }
    }
}
