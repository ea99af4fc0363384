//! Human decisions: confirm or discard a draft, approve or reject a recommendation. The ONE
//! entry point the confirm-draft and discard-draft functions call ([`decide`]).
//!
//! One request = one tenant transaction: membership (404 for a non-member), then the
//! idempotency claim ([`crate::idempotency`]), then the decision itself (404 not this farm's,
//! 403 role, 409 already decided, 422 payload), then the saved response, then COMMIT. Any
//! refusal rolls everything back, so a refused decision changes nothing.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    db::{Db, TenantTx},
    drafts::{self, Decider},
    error::Result,
    idempotency::{self, Key},
    membership, recommendations,
};

/// Body of `POST .../drafts/{id}/confirm` (optional): the full edited payload, validated with
/// the record type's schema, and a note.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    #[serde(default)]
    pub edits: Option<Value>,
    #[serde(default)]
    pub note: Option<String>,
}

/// Body of `POST .../recommendations/{id}/approve` (optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    #[serde(default)]
    pub note: Option<String>,
}

/// Body of `POST .../drafts/{id}/discard` and `.../recommendations/{id}/reject`. The reason is
/// required: an empty body or a missing reason is 422, like a blank one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default)]
    pub reason: Option<String>,
}

impl ReasonBody {
    /// A missing reason is checked like a blank one (422), after 404/403/409.
    fn reason(&self) -> &str {
        self.reason.as_deref().unwrap_or("")
    }
}

/// What is being decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    ConfirmDraft { draft_id: Uuid, body: ConfirmBody },
    DiscardDraft { draft_id: Uuid, body: ReasonBody },
    ApproveRecommendation { id: Uuid, body: NoteBody },
    RejectRecommendation { id: Uuid, body: ReasonBody },
}

impl Decision {
    /// The route name and target id (the idempotency fingerprint's first two parts).
    fn route(&self) -> (&'static str, Uuid) {
        match self {
            Decision::ConfirmDraft { draft_id, .. } => ("draft.confirm", *draft_id),
            Decision::DiscardDraft { draft_id, .. } => ("draft.discard", *draft_id),
            Decision::ApproveRecommendation { id, .. } => ("recommendation.approve", *id),
            Decision::RejectRecommendation { id, .. } => ("recommendation.reject", *id),
        }
    }

    fn body_json(&self) -> Value {
        let value = match self {
            Decision::ConfirmDraft { body, .. } => serde_json::to_value(body),
            Decision::DiscardDraft { body, .. } | Decision::RejectRecommendation { body, .. } => {
                serde_json::to_value(body)
            }
            Decision::ApproveRecommendation { body, .. } => serde_json::to_value(body),
        };
        value.unwrap_or(Value::Null)
    }

    fn fingerprint(&self) -> String {
        let (route, target) = self.route();
        idempotency::fingerprint(route, target, &self.body_json())
    }
}

/// One decision request, as the handler parsed it.
#[derive(Debug, Clone)]
pub struct DecisionRequest<'a> {
    pub farm_id: Uuid,
    pub user_id: &'a str,
    /// The raw `Idempotency-Key` header, if any (400 when malformed).
    pub idempotency_key: Option<&'a str>,
    pub decision: Decision,
    /// The farm's today (dates in edited payloads may not be in the future).
    pub today: NaiveDate,
}

/// The response: status, JSON body and whether it was replayed for a repeated key.
pub type Decided = idempotency::Outcome;

/// Decides, in one transaction. Responses (status 200):
/// - confirm: `{"draft": Draft, "record": {...}}`
/// - discard: `{"draft": Draft}`
/// - approve / reject: `{"recommendation": Recommendation}`
#[tracing::instrument(skip(db, request), fields(farm_id = %request.farm_id))]
pub async fn decide(db: &Db, request: DecisionRequest<'_>) -> Result<Decided> {
    let key = Key::parse(request.idempotency_key)?;
    let tx = db.tenant(request.farm_id).await?;
    let role = match membership::member_role(&tx, request.user_id).await {
        Ok(role) => role,
        Err(e) => {
            let _ = tx.rollback().await;
            return Err(e);
        }
    };
    let by = Decider {
        user_id: request.user_id,
        role,
    };
    let fingerprint = request.decision.fingerprint();
    let work = async |tx: &TenantTx| {
        let body = match &request.decision {
            Decision::ConfirmDraft { draft_id, body } => {
                let confirmed = drafts::confirm_draft(
                    tx,
                    *draft_id,
                    by,
                    body.edits.as_ref(),
                    body.note.as_deref(),
                    request.today,
                )
                .await?;
                json!({ "draft": confirmed.draft, "record": confirmed.record })
            }
            Decision::DiscardDraft { draft_id, body } => {
                let draft = drafts::discard_draft(tx, *draft_id, by, body.reason()).await?;
                json!({ "draft": draft })
            }
            Decision::ApproveRecommendation { id, body } => {
                let rec =
                    recommendations::approve_recommendation(tx, *id, by, body.note.as_deref())
                        .await?;
                json!({ "recommendation": rec })
            }
            Decision::RejectRecommendation { id, body } => {
                let rec =
                    recommendations::reject_recommendation(tx, *id, by, body.reason()).await?;
                json!({ "recommendation": rec })
            }
        };
        Ok((200, body))
    };
    idempotency::run_once(tx, request.user_id, key.as_ref(), &fingerprint, work).await
}

/// Header set on a response replayed for a repeated `Idempotency-Key` (its response:
/// `farmops_http::decisions::response`).
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_as_documented() {
        let c: ConfirmBody =
            serde_json::from_str(r#"{"edits": {"count": 2}, "note": "recounted"}"#).unwrap();
        assert_eq!(c.edits, Some(json!({"count": 2})));
        assert_eq!(c.note.as_deref(), Some("recounted"));
        assert_eq!(
            serde_json::from_str::<ConfirmBody>("{}").unwrap(),
            ConfirmBody::default()
        );
        assert!(serde_json::from_str::<ConfirmBody>(r#"{"farm_id": "x"}"#).is_err());
        let r: ReasonBody = serde_json::from_str("{}").unwrap();
        assert_eq!(r.reason(), "");
        let r: ReasonBody = serde_json::from_str(r#"{"reason": "duplicate"}"#).unwrap();
        assert_eq!(r.reason(), "duplicate");
        assert!(serde_json::from_str::<ReasonBody>(r#"{"reason": 5}"#).is_err());
    }

    #[test]
    fn fingerprints_differ_by_route_target_and_body() {
        let id = Uuid::from_u128(7);
        let confirm = Decision::ConfirmDraft {
            draft_id: id,
            body: ConfirmBody::default(),
        };
        let discard = Decision::DiscardDraft {
            draft_id: id,
            body: ReasonBody {
                reason: Some("x".into()),
            },
        };
        let confirm_edited = Decision::ConfirmDraft {
            draft_id: id,
            body: ConfirmBody {
                edits: Some(json!({"count": 1})),
                note: None,
            },
        };
        let other = Decision::ConfirmDraft {
            draft_id: Uuid::from_u128(8),
            body: ConfirmBody::default(),
        };
        let prints: Vec<String> = [&confirm, &discard, &confirm_edited, &other]
            .iter()
            .map(|d| d.fingerprint())
            .collect();
        for (i, a) in prints.iter().enumerate() {
            for b in &prints[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(confirm.fingerprint(), confirm.clone().fingerprint());
    }
}
