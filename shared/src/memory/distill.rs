//! The distill-memories job: idle conversations -> durable farm memories.
//!
//! One invocation ([`run_once`]):
//! 1. lists conversations idle since `now - idle` with messages past their `distilled_through`
//!    watermark, oldest first, at most `batch` (SECURITY DEFINER `conversations_to_distill`:
//!    ids only);
//! 2. per farm, one metered run (feature `distill`, [`MeteredRun`]) that holds, before each
//!    model call, what that call can cost (the extraction of this transcript at the output
//!    cap, then the embedding of what it found) and commits the hold before the call; a farm
//!    that cannot pay for its first conversation is skipped and reported, one that runs out
//!    later stops there (the rest wait for the next invocation, nothing lost);
//! 3. per conversation: reads the undistilled messages (short read transaction), extracts facts
//!    and a summary, embeds them (no lock held across the model calls), then in ONE transaction:
//!    locks the conversation row and re-checks the watermark (another invocation may have done
//!    it: then nothing is written), takes the farm's memory lock (advisory, transaction-scoped),
//!    classifies each fact against the farm's current memories ([`classify`]), inserts new
//!    memories with their embeddings, supersedes contradicted ones, replaces the summary and its
//!    embedding and advances the watermark. Running twice creates nothing new; a crash loses
//!    nothing (the watermark did not move) and duplicates nothing (it moved with the inserts).
//!    A failed extraction leaves the watermark (the next invocation retries); one a Bedrock
//!    guardrail stopped (`guardrail_intervened`) writes no memory, stores the guardrail's
//!    assessment as a failed `clinical_safety` eval of the run and moves the watermark past
//!    those messages (the same input would be stopped, and paid for, every invocation);
//! 4. settles the farm's run with what was actually consumed (never more than it held).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FARMOPS_DISTILL_IDLE_SECS` | `1800` | a conversation is distilled once idle this long |
//! | `FARMOPS_DISTILL_BATCH` | `50` | conversations per invocation (1..=500) |
//! | `FARMOPS_DISTILL_DUPLICATE_SIMILARITY` | `0.92` | cosine similarity at or above which a new fact is a near-duplicate of a current memory and is not inserted |
//!
//! [`MeteredRun`]: crate::credits::MeteredRun

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::FactExtractor;
use crate::{
    db::{Db, Type},
    error::{Error, Result},
};

mod config;
mod farm;
mod memories;
#[cfg(test)]
mod tests;

pub use config::DistillConfig;
use farm::distill_farm;
pub use memories::{Decision, classify};

/// Most messages read per conversation per invocation (the rest wait for the next one).
pub const MAX_MESSAGES: i64 = 200;
/// Most transcript bytes handed to the extractor per conversation (at least one message).
pub const MAX_TRANSCRIPT_BYTES: usize = 32_000;

/// Everything the job needs, built once at cold start.
#[derive(Clone)]
pub struct DistillState {
    pub db: Db,
    pub extractor: Arc<dyn FactExtractor>,
    /// The one embedder of documents, retrieval and memories; it reports its token count.
    pub embedder: Arc<dyn crate::embed::Embedder>,
    pub config: DistillConfig,
}

/// What one invocation did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DistillOutcome {
    pub conversations_processed: usize,
    /// Already distilled by a concurrent invocation (nothing written).
    pub conversations_skipped: usize,
    /// The extractor, embedder or database failed (left for the next invocation).
    pub conversations_failed: usize,
    /// A Bedrock guardrail stopped the extraction (`guardrail_intervened`): charged, no memory
    /// written, the messages marked distilled (not retried), the guardrail's assessment in a
    /// failed `clinical_safety` eval of the farm's run.
    pub conversations_withheld: usize,
    pub memories_added: usize,
    pub duplicates_skipped: usize,
    pub memories_superseded: usize,
    pub farms_skipped_for_credits: Vec<Uuid>,
    pub credits_used: i64,
}

/// One pass of the job (see the module documentation).
#[tracing::instrument(skip(state))]
pub async fn run_once(state: &DistillState) -> Result<DistillOutcome> {
    let idle = chrono::Duration::from_std(state.config.idle)
        .map_err(|e| Error::unexpected(format!("idle: {e}")))?;
    run_at(state, Utc::now() - idle).await
}

/// [`run_once`] for conversations idle since before `idle_before`.
pub async fn run_at(state: &DistillState, idle_before: DateTime<Utc>) -> Result<DistillOutcome> {
    let candidates = conversations_to_distill(&state.db, idle_before, state.config.batch).await?;
    // group by farm, keeping the oldest-first order
    let mut farms: Vec<(Uuid, Vec<Uuid>)> = Vec::new();
    for (farm, conversation) in candidates {
        match farms.iter_mut().find(|(f, _)| *f == farm) {
            Some((_, list)) => list.push(conversation),
            None => farms.push((farm, vec![conversation])),
        }
    }
    let mut outcome = DistillOutcome::default();
    for (farm_id, conversations) in farms {
        if let Err(e) =
            distill_farm(state, farm_id, &conversations, idle_before, &mut outcome).await
        {
            tracing::error!(%farm_id, error = %e, cause = ?std::error::Error::source(&e), "distilling a farm failed");
        }
    }
    tracing::info!(
        conversations_processed = outcome.conversations_processed,
        conversations_skipped = outcome.conversations_skipped,
        conversations_failed = outcome.conversations_failed,
        conversations_withheld = outcome.conversations_withheld,
        memories_added = outcome.memories_added,
        duplicates_skipped = outcome.duplicates_skipped,
        memories_superseded = outcome.memories_superseded,
        farms_skipped_for_credits = outcome.farms_skipped_for_credits.len(),
        credits_used = outcome.credits_used,
        "distill-memories finished"
    );
    Ok(outcome)
}

async fn conversations_to_distill(
    db: &Db,
    idle_before: DateTime<Utc>,
    batch: u32,
) -> Result<Vec<(Uuid, Uuid)>> {
    let client = db.client().await?;
    let batch = batch as i32;
    let rows = client
        .query_typed(
            "SELECT farm_id, conversation_id FROM conversations_to_distill($1, $2)",
            &[(&idle_before, Type::TIMESTAMPTZ), (&batch, Type::INT4)],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
