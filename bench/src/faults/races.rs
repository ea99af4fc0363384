//! The draft race: a draft written, then confirmed and discarded at once by two requests
//! (`drafts::confirm_draft` against `drafts::discard_draft`): at most one may win.

use chrono::Utc;
use farmops::{
    Error,
    db::Db,
    drafts::{self, Decider, NewDraft},
    membership::Role,
    records::{self, RecordType},
};
use serde_json::json;
use uuid::Uuid;

use super::{
    history::{Event, Op, Outcome},
    workload::{Ctx, commit_outcome},
};

/// A draft written, then confirmed and discarded at once by two requests.
pub async fn draft_race(ctx: &Ctx, db: &Db, farm: Uuid, tag: String) -> Vec<Event> {
    let today = Utc::now().date_naive();
    let payload = records::validate_payload(
        RecordType::Mortality,
        &json!({"count": 1, "location": "pen 1"}),
        today,
    )
    .expect("a valid payload");
    let created = async {
        let tx = db.tenant(farm).await.map_err(|e| (Outcome::Failed, e))?;
        let new = NewDraft {
            ai_run_id: None,
            payload: &payload,
            summary: Some(&tag),
            created_by: "faults-ai",
        };
        let d = drafts::create_draft(&tx, &new)
            .await
            .map_err(|e| (Outcome::Failed, e))?;
        tx.commit().await.map_err(|e| (commit_outcome(&e), e))?;
        Ok::<_, (Outcome, Error)>(d.id)
    };
    let (outcome, draft) = match created.await {
        Ok(id) => (Outcome::Committed, Some(id)),
        Err((o, e)) => {
            ctx.met(&e);
            (o, None)
        }
    };
    let mut events = vec![Event {
        farm,
        op: Op::DraftCreate { tag, draft },
        outcome,
    }];
    let Some(draft) = draft else { return events };
    let by = Decider {
        user_id: "faults-owner",
        role: Role::Owner,
    };
    let decide = |confirm: bool| async move {
        let tx = match db.tenant(farm).await {
            Ok(tx) => tx,
            Err(e) => {
                ctx.met(&e);
                return Outcome::Failed;
            }
        };
        let done = if confirm {
            drafts::confirm_draft(&tx, draft, by, None, None, today)
                .await
                .map(|_| ())
        } else {
            drafts::discard_draft(&tx, draft, by, "faults: discarded")
                .await
                .map(|_| ())
        };
        if let Err(e) = done {
            ctx.met(&e);
            return match e {
                Error::Conflict { .. } => Outcome::Refused,
                _ => Outcome::Failed,
            };
        }
        match tx.commit().await {
            Ok(()) => Outcome::Committed,
            Err(e) => {
                ctx.met(&e);
                commit_outcome(&e)
            }
        }
    };
    let (confirmed, discarded) = futures::join!(decide(true), decide(false));
    events.push(Event {
        farm,
        op: Op::Confirm { draft },
        outcome: confirmed,
    });
    events.push(Event {
        farm,
        op: Op::Discard { draft },
        outcome: discarded,
    });
    events
}
