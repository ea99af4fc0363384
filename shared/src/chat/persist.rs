//! Step 6 of a turn: ONE transaction, its statements pipelined in one round trip: re-check the
//! caller's membership under a lock, settle the run with its real usage, the planned
//! drafts/records/recommendations, the evals, the conversation and its two messages; then
//! COMMIT. A failed turn settles with its evals only.
//!
//! The membership re-check: the caller's role was read at the turn's start, and the model
//! calls take seconds with no lock held; a member removed (or demoted to viewer) meanwhile
//! must keep nothing they did not already have. The save's first statement reads the role
//! under a `FOR SHARE` lock on the membership row ([`membership::lock_member_role`]), which
//! the removal's `DELETE` and the demotion's `UPDATE` wait for; if the caller is no longer
//! allowed to chat, the transaction is rolled back, the run is settled alone (charged what
//! its model calls used, the rest refunded) and the turn answers like its start would (404
//! not a member, 403 viewer).

use uuid::Uuid;

use super::{evals::Eval, executor};
use crate::{
    credits::{MeteredRun, RunEnd, Settled},
    db::{Db, TenantTx, Type},
    error::{Error, Result},
    membership::{self, Role},
};
use executor::{Planned, Written};

/// What a finished turn saves.
pub(super) struct FinishedTurn<'a> {
    pub user_id: &'a str,
    pub conversation_id: Uuid,
    pub message: &'a str,
    pub reply: &'a str,
    pub planned: &'a [Planned],
    pub evals: &'a [Eval],
}

/// Saves a finished turn and settles its run, in one transaction, if the caller may still
/// chat on the farm (checked under a lock in that transaction). If not, or if saving fails,
/// nothing of the turn is written and the run is settled as failed (charged for what it
/// consumed).
pub(super) async fn save_turn(
    db: &Db,
    run: &MeteredRun,
    turn: &FinishedTurn<'_>,
) -> Result<(Settled, Vec<Written>)> {
    let run_id = run.run_id();
    let summary: String = turn.reply.chars().take(500).collect();
    let tx = db.tenant(run.farm_id()).await?;
    let writes = futures::future::join_all(
        turn.planned
            .iter()
            .map(|p| executor::apply_one(&tx, run_id, turn.user_id, p)),
    );
    let (member, settled, written, stored_evals, stored_messages) = futures::join!(
        membership::lock_member_role(&tx, turn.user_id),
        run.settle(
            &tx,
            RunEnd::Succeeded {
                summary: Some(&summary)
            }
        ),
        writes,
        store_evals(&tx, run_id, turn.evals),
        store_messages(&tx, turn, run_id)
    );
    let finish: Result<(Option<Settled>, Vec<Written>)> = async {
        may_still_chat(member?)?;
        let written = written.into_iter().collect::<Result<Vec<_>>>()?;
        stored_evals?;
        stored_messages?;
        Ok((settled?, written))
    }
    .await;
    match finish {
        Ok((settled, written)) => {
            tx.commit().await?;
            let settled =
                settled.ok_or_else(|| Error::unexpected("the run was already settled"))?;
            Ok((settled, written))
        }
        Err(e) => {
            drop(tx);
            if matches!(e, Error::NotFound(_) | Error::Forbidden(_)) {
                tracing::info!(run_id = %run_id, error = %e, "the caller lost the right to chat during the turn; nothing of it is saved");
            } else {
                tracing::error!(run_id = %run_id, error = %e, "the turn could not be saved; settling it as failed");
            }
            run.settle_failed(db, &format!("saving the turn failed: {e}"))
                .await?;
            Err(e)
        }
    }
}

/// The turn's start refuses the same way ([`super::context`]): 404 for a caller who is not a
/// member, 403 for one whose role may not chat.
fn may_still_chat(role: Option<Role>) -> Result<()> {
    match role {
        None => Err(Error::NotFound("farm")),
        Some(role) if !role.may_chat() => Err(Error::Forbidden(format!(
            "a {} may not chat with the assistant",
            role.as_str()
        ))),
        Some(_) => Ok(()),
    }
}

/// Settles a failed turn (the model or the database ended it) with its evals, pipelined, and
/// commits; nothing else of the turn is written. If even that fails the hold stays open and
/// reconcile-credits expires it in full.
pub(super) async fn save_failure(db: &Db, run: &MeteredRun, evals: &[Eval], error: &Error) {
    let message = error.to_string();
    let saved = async {
        let tx = db.tenant(run.farm_id()).await?;
        let (settled, stored) = futures::join!(
            run.settle(&tx, RunEnd::Failed { error: &message }),
            store_evals(&tx, run.run_id(), evals)
        );
        settled.and(stored)?;
        tx.commit().await
    }
    .await;
    if let Err(e) = saved {
        tracing::error!(run_id = %run.run_id(), error = %e, "could not settle a failed run");
    }
}

/// Inserts `evals` as `ai_evals` rows of the run (also the distill job's).
pub(crate) async fn store_evals(tx: &TenantTx, run_id: Uuid, evals: &[Eval]) -> Result<()> {
    if evals.is_empty() {
        return Ok(());
    }
    let farm_id = tx.farm_id();
    let rows = serde_json::to_value(evals).map_err(|e| Error::unexpected(e.to_string()))?;
    tx.query(
        "INSERT INTO ai_evals (farm_id, ai_run_id, name, passed, details)
         SELECT $1, $2, e.name, e.passed, e.details
           FROM jsonb_to_recordset($3) AS e(name text, passed boolean, details jsonb)",
        &[
            (&farm_id, Type::UUID),
            (&run_id, Type::UUID),
            (&rows, Type::JSONB),
        ],
    )
    .await?;
    Ok(())
}

async fn store_messages(tx: &TenantTx, turn: &FinishedTurn<'_>, run_id: Uuid) -> Result<()> {
    let FinishedTurn {
        user_id,
        conversation_id,
        message: question,
        reply,
        ..
    } = turn;
    let farm_id = tx.farm_id();
    tx.query(
        "WITH conv AS (
           INSERT INTO conversations (farm_id, id, user_id) VALUES ($1, $2, $3)
           ON CONFLICT (id) DO UPDATE SET last_message_at = now()
           RETURNING id)
         INSERT INTO messages (farm_id, conversation_id, role, content, ai_run_id)
         SELECT $1, conv.id, r.role, r.content, $4
           FROM conv CROSS JOIN (VALUES (1, 'user', $5::text), (2, 'assistant', $6::text)) AS r(ord, role, content)
          ORDER BY r.ord",
        &[
            (&farm_id, Type::UUID),
            (conversation_id, Type::UUID),
            (user_id, Type::TEXT),
            (&run_id, Type::UUID),
            (question, Type::TEXT),
            (reply, Type::TEXT),
        ],
    )
    .await?;
    Ok(())
}
