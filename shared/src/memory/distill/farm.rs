//! One farm's distillation: its metered run (a hold before each model call, settled at the
//! end) and, per conversation, the read, the extraction and embedding, and the one write
//! transaction.
//!
//! A Bedrock guardrail that stops the extraction (`stopReason = guardrail_intervened`) is
//! neither a success nor a retryable failure: the run is charged what the model consumed, the
//! guardrail's assessment is stored as a failed `clinical_safety` eval of the farm's run
//! (`details.source = "bedrock_guardrail"`, `subject = "memory_distillation"`, the
//! conversation and the message ids it covered), no memory and no summary are written, and
//! the watermark moves past those messages so they are not sent (and paid for) again every
//! invocation; the conversation's later messages are distilled as usual.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::{
    DistillOutcome, DistillState, MAX_MESSAGES, MAX_TRANSCRIPT_BYTES,
    memories::{Decision, classify_fact, insert_memory},
};
use crate::{
    chat::{evals, store_evals},
    credits::{self, Feature, MeteredRun, ModelPrice, NextCall, RunEnd, RunSpec},
    db::{Db, Type},
    error::{Error, Result},
    memory::{Extraction, GuardrailBlock, TranscriptMessage, check_vectors, content_hash},
};

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
pub(super) async fn distill_farm(
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
    let (mut processed, mut failed, mut withheld) = (0usize, 0usize, 0usize);
    let mut last_error = None;
    for &conversation_id in conversations {
        match distill_conversation(state, &mut farm, conversation_id, idle_before).await {
            Ok(Some(Done::Written {
                added,
                duplicates,
                superseded,
            })) => {
                processed += 1;
                outcome.conversations_processed += 1;
                outcome.memories_added += added;
                outcome.duplicates_skipped += duplicates;
                outcome.memories_superseded += superseded;
            }
            Ok(Some(Done::Withheld)) => {
                withheld += 1;
                outcome.conversations_withheld += 1;
            }
            Ok(Some(Done::Concurrent) | None) => outcome.conversations_skipped += 1,
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
    let mut summary = format!("{processed} conversations distilled, {failed} failed");
    if withheld > 0 {
        summary.push_str(&format!(
            ", {withheld} withheld by the guardrail (guardrail_intervened)"
        ));
    }
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

/// What became of one conversation.
enum Done {
    /// Memories, summary and watermark written.
    Written {
        added: usize,
        duplicates: usize,
        superseded: usize,
    },
    /// A concurrent invocation distilled it first: paid for, nothing written.
    Concurrent,
    /// A guardrail stopped the extraction: paid for, no memory written, the messages marked
    /// distilled, the assessment stored (see the module doc).
    Withheld,
}

/// Distils one conversation. `None`: nothing to do (no longer idle, or already distilled).
#[tracing::instrument(skip(state, farm, idle_before), fields(farm_id = %farm.farm_id, %conversation_id))]
async fn distill_conversation(
    state: &DistillState,
    farm: &mut FarmRun<'_>,
    conversation_id: Uuid,
    idle_before: DateTime<Utc>,
) -> Result<Option<Done>> {
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
        guardrail,
    } = state
        .extractor
        .extract(previous_summary.as_deref(), &transcript)
        .await?;
    let usage = crate::model::Usage {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
    };
    farm.record(farm.extractor, usage);
    if let Some(block) = guardrail {
        let messages = Messages {
            after: watermark,
            through,
        };
        return withhold(state, farm, conversation_id, messages, &block)
            .await
            .map(Some);
    }
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
    let bound: u64 = texts
        .iter()
        .map(|t| crate::embed::token_upper_bound(t))
        .sum();
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
    let (mut added, mut duplicates, mut superseded_total) = (0usize, 0usize, 0usize);

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
        return Ok(Some(Done::Concurrent)); // paid for, not written
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
            duplicates += 1;
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
        added += 1;
        superseded_total += superseded;
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
    Ok(Some(Done::Written {
        added,
        duplicates,
        superseded: superseded_total,
    }))
}

/// The message ids one extraction covered: past `after`, up to and including `through`.
#[derive(Debug, Clone, Copy)]
struct Messages {
    after: i64,
    through: i64,
}

/// A guardrail stopped the extraction of these messages: stores its assessment as a failed
/// `clinical_safety` eval of the farm's run and moves the watermark past them (unless a
/// concurrent invocation already did: then only the eval), writing no memory and no summary.
async fn withhold(
    state: &DistillState,
    farm: &FarmRun<'_>,
    conversation_id: Uuid,
    messages: Messages,
    block: &GuardrailBlock,
) -> Result<Done> {
    let farm_id = farm.farm_id;
    let run_id = farm
        .run
        .as_ref()
        .map(MeteredRun::run_id)
        .ok_or_else(|| Error::unexpected("a model call outside the farm's run"))?;
    let mut eval = evals::guardrail_eval_of(
        "memory_distillation",
        &block.assessment,
        &block.blocked_message,
    );
    eval.details["conversation_id"] = json!(conversation_id);
    eval.details["messages"] = json!({ "after": messages.after, "through": messages.through });
    tracing::warn!(%farm_id, %conversation_id, after = messages.after, through = messages.through,
        "guardrail_intervened: the conversation's messages are marked distilled, no memory written");
    let tx = state.db.tenant(farm_id).await?;
    let advanced = tx
        .query_opt(
            "UPDATE conversations SET distilled_through = $3
              WHERE farm_id = $1 AND id = $2 AND distilled_through = $4
             RETURNING id",
            &[
                (&farm_id, Type::UUID),
                (&conversation_id, Type::UUID),
                (&messages.through, Type::INT8),
                (&messages.after, Type::INT8),
            ],
        )
        .await?;
    store_evals(&tx, run_id, &[eval]).await?;
    tx.commit().await?;
    Ok(if advanced.is_some() {
        Done::Withheld
    } else {
        Done::Concurrent
    })
}
