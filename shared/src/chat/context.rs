//! Step 1 of a turn: the caller's role, the farm's autonomy, the conversation and its last
//! messages, in ONE statement; the access policy on them.

use serde_json::Value;
use uuid::Uuid;

use crate::{
    autonomy::AutonomySettings,
    db::{TenantTx, Type},
    error::{Error, Result},
    membership::Role,
    model::Message,
};

pub(super) struct Context {
    pub role: Role,
    pub autonomy: AutonomySettings,
    pub conversation_ok: bool,
    pub history: Vec<Message>,
}

pub(super) async fn load_context(
    tx: &TenantTx,
    user_id: &str,
    conversation_id: Option<Uuid>,
    history: i64,
) -> Result<Context> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_opt(
            "SELECT m.role, f.ai_autonomy, f.ai_auto_categories, f.ai_record_autonomy,
                    $3::uuid IS NULL OR EXISTS (SELECT 1 FROM conversations c
                                                 WHERE c.farm_id = $1 AND c.id = $3 AND c.user_id = $2),
                    coalesce((SELECT jsonb_agg(jsonb_build_object('role', h.role, 'content', h.content) ORDER BY h.id)
                                FROM (SELECT id, role, content FROM messages
                                       WHERE farm_id = $1 AND conversation_id = $3
                                       ORDER BY id DESC LIMIT $4) h), '[]'::jsonb)
               FROM farms f LEFT JOIN farm_members m ON m.farm_id = f.id AND m.user_id = $2
              WHERE f.id = $1",
            &[
                (&farm_id, Type::UUID),
                (&user_id, Type::TEXT),
                (&conversation_id, Type::UUID),
                (&history, Type::INT8),
            ],
        )
        .await?
        .ok_or(Error::NotFound("farm"))?;
    let role = row
        .get::<_, Option<&str>>(0)
        .and_then(Role::parse)
        .ok_or(Error::NotFound("farm"))?;
    let autonomy = AutonomySettings::from_columns(row.get(1), &row.get(2), &row.get(3))?;
    let raw: Value = row.get(5);
    let history = raw
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let text = m["content"].as_str().unwrap_or_default();
                    if m["role"] == "assistant" {
                        Message::assistant_text(text)
                    } else {
                        Message::user_text(text)
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Context {
        role,
        autonomy,
        conversation_ok: row.get(4),
        history,
    })
}

impl Context {
    /// 403 for a role that may not chat (viewer), 404 for someone else's conversation (a
    /// non-member is already 404).
    pub(super) fn authorize(&self) -> Result<()> {
        if !self.role.may_chat() {
            return Err(Error::Forbidden(format!(
                "a {} may not chat with the assistant",
                self.role.as_str()
            )));
        }
        if !self.conversation_ok {
            return Err(Error::NotFound("conversation"));
        }
        Ok(())
    }
}
