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
//!    nothing (the watermark did not move) and duplicates nothing (it moved with the inserts);
//! 4. settles the farm's run with what was actually consumed (never more than it held).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `FARMOPS_DISTILL_IDLE_SECS` | `1800` | a conversation is distilled once idle this long |
//! | `FARMOPS_DISTILL_BATCH` | `50` | conversations per invocation (1..=500) |
//! | `FARMOPS_DISTILL_DUPLICATE_SIMILARITY` | `0.92` | cosine similarity at or above which a new fact is a near-duplicate of a current memory and is not inserted |

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Extraction, FactExtractor, TranscriptMessage, check_vectors, content_hash};
use crate::{
    config::{ConfigError, Env},
    credits::{self, Feature, MeteredRun, ModelPrice, NextCall, RunEnd, RunSpec},
    db::{Db, TenantTx, Type},
    error::{Error, Result},
};

/// Most messages read per conversation per invocation (the rest wait for the next one).
pub const MAX_MESSAGES: i64 = 200;
/// Most transcript bytes handed to the extractor per conversation (at least one message).
pub const MAX_TRANSCRIPT_BYTES: usize = 32_000;

#[derive(Debug, Clone, PartialEq)]
pub struct DistillConfig {
    pub idle: Duration,
    pub batch: u32,
    /// Cosine similarity (1 - cosine distance) at or above which a fact is a near-duplicate.
    pub duplicate_similarity: f64,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            idle: Duration::from_secs(1800),
            batch: 50,
            duplicate_similarity: 0.92,
        }
    }
}

impl DistillConfig {
    pub fn from_env() -> std::result::Result<Self, ConfigError> {
        Self::from_lookup(|v| std::env::var(v).ok())
    }

    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, ConfigError> {
        let env = Env(lookup);
        let d = DistillConfig::default();
        let batch: u32 = env.parsed("FARMOPS_DISTILL_BATCH", d.batch)?;
        if !(1..=500).contains(&batch) {
            return Err(ConfigError::Invalid {
                var: "FARMOPS_DISTILL_BATCH",
                reason: format!("{batch}: must be 1 to 500"),
            });
        }
        let sim: f64 = env.parsed(
            "FARMOPS_DISTILL_DUPLICATE_SIMILARITY",
            d.duplicate_similarity,
        )?;
        if !(sim > 0.0 && sim <= 1.0) {
            return Err(ConfigError::Invalid {
                var: "FARMOPS_DISTILL_DUPLICATE_SIMILARITY",
                reason: format!("{sim}: must be in (0, 1]"),
            });
        }
        Ok(DistillConfig {
            idle: Duration::from_secs(env.parsed("FARMOPS_DISTILL_IDLE_SECS", 1800u64)?),
            batch,
            duplicate_similarity: sim,
        })
    }
}

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
    pub memories_added: usize,
    pub duplicates_skipped: usize,
    pub memories_superseded: usize,
    pub farms_skipped_for_credits: Vec<Uuid>,
    pub credits_used: i64,
}

/// What to do with one extracted fact, given the farm's current memories.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Same statement, or one near enough: not inserted again.
    Duplicate,
    /// A different statement about a subject a current memory already covers: insert it and
    /// mark the older one superseded.
    Supersede,
    Insert,
}

/// Pure: exact same content -> duplicate; same subject, different content -> supersede (even
/// when the wording is close: "on Mondays" vs "on Thursdays" embed near each other); else a
/// current memory within the similarity threshold -> duplicate; else insert.
pub fn classify(
    exact: bool,
    same_subject: bool,
    nearest_distance: Option<f64>,
    duplicate_similarity: f64,
) -> Decision {
    if exact {
        Decision::Duplicate
    } else if same_subject {
        Decision::Supersede
    } else if nearest_distance.is_some_and(|d| 1.0 - d >= duplicate_similarity) {
        Decision::Duplicate
    } else {
        Decision::Insert
    }
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

/// The farm's distill run, opened at its first model call.
struct FarmRun<'a> {
    farm_id: Uuid,
    extractor: ModelPrice,
    embedder: ModelPrice,
    spec: RunSpec<'a>,
    run: Option<MeteredRun>,
}

impl FarmRun<'_> {
    /// Holds for one call (opening the run at the first).
    async fn hold(&mut self, db: &Db, price: ModelPrice, next: NextCall) -> Result<()> {
        match &mut self.run {
            Some(run) => run.hold_for_priced(db, price, next).await.map(drop),
            None => {
                let spec = RunSpec { price, ..self.spec };
                let (run, _) =
                    MeteredRun::open(db, db.tenant(self.farm_id).await?, spec, next).await?;
                self.run = Some(run);
                Ok(())
            }
        }
    }

    fn record(&mut self, price: ModelPrice, usage: crate::model::Usage) {
        if let Some(run) = &mut self.run {
            run.record_priced(price, usage);
        }
    }
}

#[tracing::instrument(skip(state, conversations, idle_before, outcome), fields(%farm_id, conversations = conversations.len()))]
async fn distill_farm(
    state: &DistillState,
    farm_id: Uuid,
    conversations: &[Uuid],
    idle_before: DateTime<Utc>,
    outcome: &mut DistillOutcome,
) -> Result<()> {
    let extractor = credits::priced(state.extractor.model_id())?;
    let mut farm = FarmRun {
        farm_id,
        extractor,
        embedder: credits::priced(state.embedder.model_id())?,
        spec: RunSpec {
            feature: Feature::Distill,
            model: state.extractor.model_id(),
            price: extractor,
            user_id: None,
            request_summary: Some("distill-memories"),
        },
        run: None,
    };
    let (mut processed, mut failed) = (0usize, 0usize);
    let mut last_error = None;
    for &conversation_id in conversations {
        match distill_conversation(state, &mut farm, conversation_id, idle_before).await {
            Ok(Some(done)) => {
                if done.written {
                    processed += 1;
                    outcome.conversations_processed += 1;
                    outcome.memories_added += done.added;
                    outcome.duplicates_skipped += done.duplicates;
                    outcome.memories_superseded += done.superseded;
                } else {
                    outcome.conversations_skipped += 1;
                }
            }
            Ok(None) => outcome.conversations_skipped += 1,
            Err(Error::InsufficientCredits { balance, needed }) => {
                tracing::warn!(%farm_id, balance, needed, "not enough credits to distill: the farm's other conversations wait");
                if farm.run.is_none() {
                    outcome.farms_skipped_for_credits.push(farm_id);
                }
                break;
            }
            Err(e) => {
                failed += 1;
                outcome.conversations_failed += 1;
                tracing::error!(%farm_id, %conversation_id, error = %e, cause = ?std::error::Error::source(&e), "distilling a conversation failed");
                last_error = Some(e.to_string());
            }
        }
    }
    let Some(run) = farm.run else {
        return Ok(());
    };
    let summary = format!("{processed} conversations distilled, {failed} failed");
    let end = match &last_error {
        Some(error) if processed == 0 => RunEnd::Failed { error },
        _ => RunEnd::Succeeded {
            summary: Some(&summary),
        },
    };
    let mut settlement = run.settlement(end);
    settlement.error = last_error.as_deref();
    let tx = state.db.tenant(farm_id).await?;
    credits::settle_run(&tx, run.run_id(), &settlement).await?;
    tx.commit().await?;
    outcome.credits_used += settlement.credits_charged;
    Ok(())
}

struct Distilled {
    written: bool,
    added: usize,
    duplicates: usize,
    superseded: usize,
}

/// Distils one conversation. `None`: nothing to do (no longer idle, or already distilled).
#[tracing::instrument(skip(state, farm, idle_before), fields(farm_id = %farm.farm_id, %conversation_id))]
async fn distill_conversation(
    state: &DistillState,
    farm: &mut FarmRun<'_>,
    conversation_id: Uuid,
    idle_before: DateTime<Utc>,
) -> Result<Option<Distilled>> {
    let farm_id = farm.farm_id;
    // 1. read what is not yet distilled (short read-only transaction)
    let tx = state.db.tenant(farm_id).await?;
    let Some(head) = tx
        .query_opt(
            "SELECT distilled_through, summary FROM conversations
              WHERE farm_id = $1 AND id = $2 AND last_message_at < $3",
            &[
                (&farm_id, Type::UUID),
                (&conversation_id, Type::UUID),
                (&idle_before, Type::TIMESTAMPTZ),
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    let watermark: i64 = head.get(0);
    let previous_summary: Option<String> = head.get(1);
    let rows = tx
        .query(
            "SELECT id, role, content FROM messages
              WHERE farm_id = $1 AND conversation_id = $2 AND id > $3
              ORDER BY id LIMIT $4",
            &[
                (&farm_id, Type::UUID),
                (&conversation_id, Type::UUID),
                (&watermark, Type::INT8),
                (&MAX_MESSAGES, Type::INT8),
            ],
        )
        .await?;
    tx.commit().await?;
    let mut transcript = Vec::new();
    let (mut through, mut bytes) = (watermark, 0usize);
    for r in &rows {
        let content: String = r.get(2);
        if !transcript.is_empty() && bytes + content.len() > MAX_TRANSCRIPT_BYTES {
            break;
        }
        bytes += content.len();
        through = r.get(0);
        transcript.push(TranscriptMessage {
            role: r.get(1),
            content,
        });
    }
    if transcript.is_empty() {
        return Ok(None);
    }

    // 2. model calls, each held for first, no lock held
    let max_output = state.extractor.max_output_tokens();
    let extraction = NextCall {
        input_tokens: state
            .extractor
            .input_token_bound(previous_summary.as_deref(), &transcript),
        max_output_tokens: max_output,
        min_output_tokens: max_output,
    };
    farm.hold(&state.db, farm.extractor, extraction).await?;
    let Extraction {
        facts,
        summary,
        usage,
    } = state
        .extractor
        .extract(previous_summary.as_deref(), &transcript)
        .await?;
    let usage = crate::model::Usage {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
    };
    farm.record(farm.extractor, usage);
    let summary = if summary.trim().is_empty() {
        format!("{} messages.", transcript.len())
    } else {
        summary.chars().take(4000).collect()
    };
    let facts: Vec<_> = facts
        .into_iter()
        .filter(|f| {
            !f.subject.trim().is_empty()
                && (1..=200).contains(&f.subject.chars().count())
                && (1..=2000).contains(&f.content.chars().count())
        })
        .collect();
    let mut texts: Vec<String> = facts.iter().map(|f| f.content.clone()).collect();
    texts.push(summary.clone());
    // held for a guaranteed bound of the batch, charged what the embedder reports
    let bound: u64 = texts.iter().map(|t| crate::embed::estimate_tokens(t)).sum();
    farm.hold(&state.db, farm.embedder, NextCall::input_only(bound))
        .await?;
    let embedded = state.embedder.embed(&texts).await?;
    check_vectors(&embedded.vectors, texts.len())?;
    let vectors = embedded.vectors;
    farm.record(
        farm.embedder,
        crate::model::Usage {
            input_tokens: embedded.input_tokens,
            output_tokens: 0,
        },
    );
    let mut done = Distilled {
        written: false,
        added: 0,
        duplicates: 0,
        superseded: 0,
    };

    // 3. write everything, or nothing, in one transaction
    let tx = state.db.tenant(farm_id).await?;
    let current: i64 = tx
        .query_one(
            "SELECT distilled_through FROM conversations
              WHERE farm_id = $1 AND id = $2 FOR UPDATE",
            &[(&farm_id, Type::UUID), (&conversation_id, Type::UUID)],
        )
        .await?
        .get(0);
    if current != watermark {
        tx.rollback().await?;
        return Ok(Some(done)); // a concurrent invocation distilled it: paid for, not written
    }
    let lock_key = format!("memories:{farm_id}");
    tx.query(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[(&lock_key, Type::TEXT)],
    )
    .await?;
    let model = state.embedder.model_id();
    for (fact, vector) in facts.iter().zip(&vectors) {
        let decision = classify_fact(&tx, &fact.subject, &fact.content, vector, state).await?;
        if decision == Decision::Duplicate {
            done.duplicates += 1;
            continue;
        }
        let superseded = insert_memory(
            &tx,
            conversation_id,
            &fact.subject,
            &fact.content,
            vector,
            model,
            decision == Decision::Supersede,
        )
        .await?;
        done.added += 1;
        done.superseded += superseded;
    }
    let summary_vector = &vectors[facts.len()];
    let hash = content_hash(&summary);
    let advanced = tx
        .query_opt(
            "WITH old AS (
               DELETE FROM embeddings WHERE farm_id = $1 AND conversation_id = $2),
             new AS (
               INSERT INTO embeddings (farm_id, conversation_id, content, content_hash, embedding_model, embedding)
               VALUES ($1, $2, $3, $4, $5, $6::float4[]::vector))
             UPDATE conversations SET summary = $3, distilled_through = $7
              WHERE farm_id = $1 AND id = $2 AND distilled_through = $8
             RETURNING id",
            &[
                (&farm_id, Type::UUID),
                (&conversation_id, Type::UUID),
                (&summary, Type::TEXT),
                (&hash, Type::TEXT),
                (&model, Type::TEXT),
                (summary_vector, Type::FLOAT4_ARRAY),
                (&through, Type::INT8),
                (&watermark, Type::INT8),
            ],
        )
        .await?;
    if advanced.is_none() {
        return Err(Error::unexpected("watermark moved under a row lock"));
    }
    tx.commit().await?;
    done.written = true;
    Ok(Some(done))
}

async fn classify_fact(
    tx: &TenantTx,
    subject: &str,
    content: &str,
    vector: &[f32],
    state: &DistillState,
) -> Result<Decision> {
    let farm_id = tx.farm_id();
    let row = tx
        .query_one(
            "SELECT
               EXISTS (SELECT 1 FROM memories WHERE farm_id = $1 AND superseded_by IS NULL
                          AND lower(content) = lower($2)),
               EXISTS (SELECT 1 FROM memories WHERE farm_id = $1 AND superseded_by IS NULL
                          AND subject = $3),
               (SELECT min(e.embedding <=> $4::float4[]::vector)
                  FROM embeddings e JOIN memories m ON m.farm_id = e.farm_id AND m.id = e.memory_id
                 WHERE e.farm_id = $1 AND m.superseded_by IS NULL)",
            &[
                (&farm_id, Type::UUID),
                (&content, Type::TEXT),
                (&subject, Type::TEXT),
                (&vector, Type::FLOAT4_ARRAY),
            ],
        )
        .await?;
    Ok(classify(
        row.get(0),
        row.get(1),
        row.get(2),
        state.config.duplicate_similarity,
    ))
}

/// Inserts a memory and its embedding; with `supersede`, marks the farm's current memories
/// about the same subject as superseded by it. Returns how many it superseded.
async fn insert_memory(
    tx: &TenantTx,
    conversation_id: Uuid,
    subject: &str,
    content: &str,
    vector: &[f32],
    model: &str,
    supersede: bool,
) -> Result<usize> {
    let farm_id = tx.farm_id();
    let hash = content_hash(content);
    let id: Uuid = tx
        .query_one(
            "WITH m AS (
               INSERT INTO memories (farm_id, content, subject, conversation_id)
               VALUES ($1, $2, $3, $4) RETURNING id),
             e AS (
               INSERT INTO embeddings (farm_id, memory_id, content, content_hash, embedding_model, embedding)
               SELECT $1, m.id, $2, $5, $6, $7::float4[]::vector FROM m)
             SELECT id FROM m",
            &[
                (&farm_id, Type::UUID),
                (&content, Type::TEXT),
                (&subject, Type::TEXT),
                (&conversation_id, Type::UUID),
                (&hash, Type::TEXT),
                (&model, Type::TEXT),
                (&vector, Type::FLOAT4_ARRAY),
            ],
        )
        .await?
        .get(0);
    if !supersede {
        return Ok(0);
    }
    let rows = tx
        .query(
            "UPDATE memories SET superseded_by = $2, superseded_at = now()
              WHERE farm_id = $1 AND subject = $3 AND superseded_by IS NULL AND id <> $2
             RETURNING id",
            &[
                (&farm_id, Type::UUID),
                (&id, Type::UUID),
                (&subject, Type::TEXT),
            ],
        )
        .await?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let t = 0.92;
        let cases = [
            (true, false, None, Decision::Duplicate),
            (true, true, Some(0.5), Decision::Duplicate),
            (false, true, Some(0.01), Decision::Supersede),
            (false, true, None, Decision::Supersede),
            (false, false, Some(0.05), Decision::Duplicate),
            (false, false, Some(0.08), Decision::Duplicate),
            (false, false, Some(0.09), Decision::Insert),
            (false, false, None, Decision::Insert),
        ];
        for (exact, same, d, expected) in cases {
            assert_eq!(
                classify(exact, same, d, t),
                expected,
                "{exact} {same} {d:?}"
            );
        }
    }

    #[test]
    fn config_defaults_and_refusals() {
        let d = DistillConfig::from_lookup(|_| None).unwrap();
        assert_eq!(d, DistillConfig::default());
        let bad = [
            ("FARMOPS_DISTILL_BATCH", "0"),
            ("FARMOPS_DISTILL_BATCH", "501"),
            ("FARMOPS_DISTILL_DUPLICATE_SIMILARITY", "1.5"),
            ("FARMOPS_DISTILL_DUPLICATE_SIMILARITY", "0"),
            ("FARMOPS_DISTILL_IDLE_SECS", "-1"),
        ];
        for (var, value) in bad {
            let r = DistillConfig::from_lookup(|v| (v == var).then(|| value.to_string()));
            assert!(r.is_err(), "{var}={value} must be refused");
        }
        let c =
            DistillConfig::from_lookup(|v| (v == "FARMOPS_DISTILL_IDLE_SECS").then(|| "60".into()))
                .unwrap();
        assert_eq!(c.idle, Duration::from_secs(60));
    }
}
