//! distill-memories against a real PostgreSQL: the scheduled handler, concurrency, crash and
//! rerun, contradictions, near-duplicates, credits.

use std::{
    collections::HashMap,
    hash::{DefaultHasher, Hash, Hasher},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::Utc;
use distill_memories::{State, handle};
use farmops::{
    credits,
    db::{Db, Type},
    embed::{Embedded, Embedder},
    memory::{
        self, EMBEDDING_DIMS, Extraction, FactExtractor, TranscriptMessage,
        distill::{self, DistillConfig},
        extract::OfflineFactExtractor,
    },
    testing::{TestDb, eventbridge_scheduled_event},
};
use lambda_runtime::{Context, LambdaEvent};
use uuid::Uuid;

/// Deterministic test embedder: hashed word features, L2-normalised.
struct WordsEmbedder;

fn embed_words(text: &str) -> Vec<f32> {
    let mut v = vec![0f32; EMBEDDING_DIMS];
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut h = DefaultHasher::new();
        w.to_lowercase().hash(&mut h);
        v[usize::try_from(h.finish() % EMBEDDING_DIMS as u64).unwrap()] += 1.0;
    }
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Tokens the test embedder reports for a batch: one per word, plus `EXTRA_TOKENS` (so what
/// is billed can be told from any estimate).
fn words_tokens(texts: &[String]) -> u64 {
    texts
        .iter()
        .map(|t| t.split_whitespace().count() as u64)
        .sum::<u64>()
        + EXTRA_TOKENS
}
const EXTRA_TOKENS: u64 = 7;

#[async_trait]
impl Embedder for WordsEmbedder {
    fn model_id(&self) -> &str {
        "offline-embedder"
    }
    async fn embed(&self, texts: &[String]) -> farmops::Result<Embedded> {
        Ok(Embedded {
            vectors: texts.iter().map(|t| embed_words(t)).collect(),
            input_tokens: words_tokens(texts),
        })
    }
}

/// The offline extractor, failing on its `fail_on`-th call (1-based) like a Lambda killed there.
struct FailingExtractor {
    calls: AtomicUsize,
    fail_on: usize,
}

#[async_trait]
impl FactExtractor for FailingExtractor {
    fn model_id(&self) -> &str {
        "offline-farm-assistant"
    }
    fn max_output_tokens(&self) -> u64 {
        1024
    }
    async fn extract(
        &self,
        previous: Option<&str>,
        transcript: &[TranscriptMessage],
    ) -> farmops::Result<Extraction> {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_on {
            return Err(farmops::Error::ModelUnavailable("killed".into()));
        }
        OfflineFactExtractor::default()
            .extract(previous, transcript)
            .await
    }
}

fn state(db: &Db) -> State {
    State {
        db: db.clone(),
        extractor: Arc::new(OfflineFactExtractor::default()),
        embedder: Arc::new(WordsEmbedder),
        config: DistillConfig::default(),
    }
}

/// A conversation whose last message was two hours ago, with these user/assistant messages.
async fn conversation(db: &Db, farm: Uuid, messages: &[(&str, &str)]) -> Uuid {
    let tx = db.tenant(farm).await.unwrap();
    let id: Uuid = tx
        .query_one(
            "INSERT INTO conversations (farm_id, user_id, last_message_at)
             VALUES ($1, 'farmer', now() - interval '2 hours') RETURNING id",
            &[(&farm, Type::UUID)],
        )
        .await
        .unwrap()
        .get(0);
    for (role, content) in messages {
        insert_message(&tx, id, role, content).await;
    }
    tx.commit().await.unwrap();
    id
}

/// One message of the conversation, in the tenant transaction `tx`.
async fn insert_message(tx: &farmops::db::TenantTx, conv: Uuid, role: &str, content: &str) {
    tx.query(
        "INSERT INTO messages (farm_id, conversation_id, role, content) VALUES ($1, $2, $3, $4)",
        &[
            (&tx.farm_id(), Type::UUID),
            (&conv, Type::UUID),
            (&role, Type::TEXT),
            (&content, Type::TEXT),
        ],
    )
    .await
    .unwrap();
}

/// A new user message in the conversation, committed.
async fn add_user_message(db: &Db, farm: Uuid, conv: Uuid, content: &str) {
    let tx = db.tenant(farm).await.unwrap();
    insert_message(&tx, conv, "user", content).await;
    tx.commit().await.unwrap();
}

/// (content, superseded) of every memory of the farm, oldest first.
async fn memories(db: &TestDb, farm: Uuid) -> Vec<(String, bool)> {
    let tx = db.app.tenant(farm).await.unwrap();
    tx.query(
        "SELECT content, superseded_by IS NOT NULL FROM memories WHERE farm_id = $1 ORDER BY created_at, content",
        &[(&farm, Type::UUID)],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

async fn scalar(db: &TestDb, farm: Uuid, sql: &str) -> i64 {
    let tx = db.app.tenant(farm).await.unwrap();
    tx.query_one(sql, &[(&farm, Type::UUID)])
        .await
        .unwrap()
        .get(0)
}

async fn ledger_holds(db: &TestDb, farm: Uuid) -> i64 {
    let tx = db.app.tenant(farm).await.unwrap();
    let a = credits::audit_ledger(&tx).await.unwrap();
    assert!(a.holds, "{a:?}");
    a.credit_balance
}

fn counts(mems: &[(String, bool)]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for (c, _) in mems {
        *m.entry(c.clone()).or_default() += 1;
    }
    m
}

#[tokio::test]
async fn handler_accepts_the_scheduled_event_and_a_second_run_creates_nothing() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("f", 1000).await.unwrap();
    let conv = conversation(
        &db.app,
        farm,
        &[
            (
                "user",
                "Hi. We vaccinate on Mondays. Pond 3 is the nursery.",
            ),
            ("assistant", "Thanks, noted."),
            (
                "user",
                "The layers are in house B. How much feed do they need?",
            ),
        ],
    )
    .await;
    // an active conversation (last message just now) waits
    let tx = db.app.tenant(farm).await.unwrap();
    tx.query(
        "INSERT INTO conversations (farm_id, user_id) VALUES ($1, 'x')",
        &[(&farm, Type::UUID)],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let payload: EventBridgeEvent = serde_json::from_value(eventbridge_scheduled_event()).unwrap();
    let s = state(&db.app);
    let out = handle(&s, LambdaEvent::new(payload.clone(), Context::default()))
        .await
        .unwrap();
    assert_eq!(out.conversations_processed, 1, "{out:?}");
    assert_eq!(out.memories_added, 3);
    assert!(out.credits_used > 0);
    let mut got: Vec<String> = memories(&db, farm).await.into_iter().map(|m| m.0).collect();
    got.sort();
    assert_eq!(
        got,
        [
            "Pond 3 is the nursery.",
            "The layers are in house B.",
            "We vaccinate on Mondays."
        ]
    );
    let tx = db.app.tenant(farm).await.unwrap();
    let row = tx
        .query_one(
            "SELECT c.distilled_through, (SELECT max(id) FROM messages WHERE conversation_id = c.id),
                    c.summary,
                    (SELECT count(*) FROM embeddings WHERE conversation_id = c.id),
                    (SELECT count(*) FROM embeddings WHERE memory_id IS NOT NULL)
               FROM conversations c WHERE c.id = $1",
            &[(&conv, Type::UUID)],
        )
        .await
        .unwrap();
    drop(tx);
    assert_eq!(
        row.get::<_, i64>(0),
        row.get::<_, i64>(1),
        "watermark advanced"
    );
    assert!(row.get::<_, String>(2).contains("3 messages"));
    assert_eq!((row.get::<_, i64>(3), row.get::<_, i64>(4)), (1, 3));
    let balance = ledger_holds(&db, farm).await;
    assert_eq!(balance, 1000 - out.credits_used);

    let again = handle(&s, LambdaEvent::new(payload, Context::default()))
        .await
        .unwrap();
    assert_eq!(
        (
            again.conversations_processed,
            again.memories_added,
            again.credits_used
        ),
        (0, 0, 0)
    );
    assert_eq!(memories(&db, farm).await.len(), 3);

    // new messages past the watermark, once idle, are distilled; known facts are not repeated
    add_user_message(
        &db.app,
        farm,
        conv,
        "Pond 3 is the nursery. Our vet is Dr Ade.",
    )
    .await;
    let third = distill::run_at(&s, Utc::now()).await.unwrap();
    assert_eq!(
        (
            third.conversations_processed,
            third.memories_added,
            third.duplicates_skipped
        ),
        (1, 1, 1),
        "{third:?}"
    );
    assert_eq!(memories(&db, farm).await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_invocations_store_each_fact_once() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("f", 5000).await.unwrap();
    let other = db.farm("g", 5000).await.unwrap();
    let texts = [
        "We vaccinate on Mondays. Pond 3 is the nursery.",
        "Pond 3 is the nursery. The layers are in house B.",
        "The layers are in house B. We vaccinate on Mondays.",
        "Our vet is Dr Ade. We deworm the goats every Friday.",
        "We deworm the goats on Fridays.",
        "Pond 5 is the grow-out pond.",
    ];
    for t in texts {
        conversation(&db.app, farm, &[("user", t)]).await;
        conversation(&db.app, other, &[("user", t)]).await;
    }
    let pool = db.app_pool(8).unwrap();
    let s = state(&pool);
    let (a, b) = futures::join!(
        distill::run_at(&s, Utc::now()),
        distill::run_at(&s, Utc::now())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.conversations_failed + b.conversations_failed, 0);
    assert_eq!(
        a.conversations_processed + b.conversations_processed,
        12,
        "each conversation distilled by exactly one invocation: {a:?} {b:?}"
    );
    for f in [farm, other] {
        let mems = memories(&db, f).await;
        assert_eq!(mems.len(), 6, "{mems:?}");
        assert!(counts(&mems).values().all(|n| *n == 1), "{mems:?}");
        assert_eq!(
            scalar(
                &db,
                f,
                "SELECT count(*) FROM embeddings WHERE farm_id = $1 AND memory_id IS NOT NULL"
            )
            .await,
            6
        );
        assert_eq!(
            scalar(
                &db,
                f,
                "SELECT count(*) FROM conversations WHERE farm_id = $1 AND distilled_through = 0"
            )
            .await,
            0
        );
        ledger_holds(&db, f).await;
        assert_eq!(
            scalar(
                &db,
                f,
                "SELECT count(*) FROM ai_runs WHERE farm_id = $1 AND status = 'reserved'"
            )
            .await,
            0,
            "every distill run settled"
        );
    }
}

#[tokio::test]
async fn killed_on_the_second_conversation_then_rerun_loses_and_duplicates_nothing() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("f", 1000).await.unwrap();
    let first = conversation(&db.app, farm, &[("user", "We vaccinate on Mondays.")]).await;
    let second = conversation(
        &db.app,
        farm,
        &[("user", "Pond 3 is the nursery. We vaccinate on Mondays.")],
    )
    .await;
    let third = conversation(&db.app, farm, &[("user", "Our vet is Dr Ade.")]).await;
    let mut s = state(&db.app);
    s.extractor = Arc::new(FailingExtractor {
        calls: AtomicUsize::new(0),
        fail_on: 2,
    });
    let out = distill::run_at(&s, Utc::now()).await.unwrap();
    assert_eq!(
        (out.conversations_processed, out.conversations_failed),
        (2, 1),
        "{out:?}"
    );
    let watermark = |c: Uuid| {
        let db = &db;
        async move {
            let tx = db.app.tenant(farm).await.unwrap();
            tx.query_one(
                "SELECT distilled_through FROM conversations WHERE id = $1",
                &[(&c, Type::UUID)],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    assert!(watermark(first).await > 0);
    assert_eq!(
        watermark(second).await,
        0,
        "the failed conversation kept its watermark"
    );
    assert!(watermark(third).await > 0);
    assert_eq!(memories(&db, farm).await.len(), 2);
    ledger_holds(&db, farm).await;

    let rerun = distill::run_at(&state(&db.app), Utc::now()).await.unwrap();
    assert_eq!(
        (
            rerun.conversations_processed,
            rerun.memories_added,
            rerun.duplicates_skipped
        ),
        (1, 1, 1),
        "{rerun:?}"
    );
    let mems = memories(&db, farm).await;
    let c = counts(&mems);
    assert_eq!(c.len(), 3, "{mems:?}");
    assert!(c.values().all(|n| *n == 1));
    assert!(watermark(second).await > 0);
    ledger_holds(&db, farm).await;
}

/// Distils `first` (which says we vaccinate on Mondays), then a conversation saying it is
/// Thursdays now; the second run's outcome.
async fn mondays_then_thursdays(
    db: &TestDb,
    farm: Uuid,
    s: &State,
    first: &str,
) -> distill::DistillOutcome {
    conversation(&db.app, farm, &[("user", first)]).await;
    distill::run_at(s, Utc::now()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    conversation(
        &db.app,
        farm,
        &[("user", "Actually we vaccinate on Thursdays now.")],
    )
    .await;
    distill::run_at(s, Utc::now()).await.unwrap()
}

#[tokio::test]
async fn a_contradicting_fact_supersedes_the_older_and_both_remain() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("f", 1000).await.unwrap();
    let s = state(&db.app);
    let out = mondays_then_thursdays(
        &db,
        farm,
        &s,
        "We vaccinate on Mondays. Pond 3 is the nursery.",
    )
    .await;
    assert_eq!(
        (out.memories_added, out.memories_superseded),
        (1, 1),
        "{out:?}"
    );

    let tx = db.app.tenant(farm).await.unwrap();
    let rows = tx
        .query(
            "SELECT old.content, new.content, old.superseded_at IS NOT NULL
               FROM memories old JOIN memories new ON new.id = old.superseded_by
              WHERE old.farm_id = $1",
            &[(&farm, Type::UUID)],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "We vaccinate on Mondays.");
    assert_eq!(rows[0].get::<_, String>(1), "We vaccinate on Thursdays.");
    assert!(rows[0].get::<_, bool>(2));
    assert_eq!(memories(&db, farm).await.len(), 3, "nothing deleted");

    // the chat context sees the current fact only, nearest first, bounded
    let found =
        memory::relevant_memories_for_text(&tx, &WordsEmbedder, "which day do we vaccinate", 5)
            .await
            .unwrap();
    let contents: Vec<&str> = found.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        contents,
        ["We vaccinate on Thursdays.", "Pond 3 is the nursery."]
    );
    assert!(found[0].distance <= found[1].distance);
    let one = memory::relevant_memories(&tx, &embed_words("pond nursery"), 1)
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].content, "Pond 3 is the nursery.");
    assert!(
        memory::relevant_memories(&tx, &[0.5; 3], 1).await.is_err(),
        "a query vector of the wrong size is refused"
    );
}

#[tokio::test]
async fn near_duplicates_follow_the_similarity_threshold() {
    for (threshold, expected) in [(0.92, 2), (0.5, 1)] {
        let db = TestDb::new().await.unwrap();
        let farm = db.farm("f", 1000).await.unwrap();
        let mut s = state(&db.app);
        s.config.duplicate_similarity = threshold;
        conversation(&db.app, farm, &[("user", "Pond 3 is the nursery pond.")]).await;
        distill::run_at(&s, Utc::now()).await.unwrap();
        conversation(&db.app, farm, &[("user", "Pond 4 is the nursery pond.")]).await;
        let out = distill::run_at(&s, Utc::now()).await.unwrap();
        assert_eq!(
            memories(&db, farm).await.len(),
            expected,
            "threshold {threshold}"
        );
        assert_eq!(out.duplicates_skipped, 2 - expected);
    }
}

#[tokio::test]
async fn a_farm_without_credits_is_skipped_and_reported() {
    let db = TestDb::new().await.unwrap();
    let poor = db.farm("poor", 0).await.unwrap();
    let rich = db.farm("rich", 1000).await.unwrap();
    let waiting = conversation(&db.app, poor, &[("user", "We vaccinate on Mondays.")]).await;
    conversation(&db.app, rich, &[("user", "We vaccinate on Mondays.")]).await;
    let s = state(&db.app);
    let out = distill::run_at(&s, Utc::now()).await.unwrap();
    assert_eq!(out.farms_skipped_for_credits, [poor]);
    assert_eq!(out.conversations_processed, 1);
    assert!(memories(&db, poor).await.is_empty());
    assert_eq!(memories(&db, rich).await.len(), 1);
    assert_eq!(ledger_holds(&db, rich).await, 1000 - out.credits_used);
    assert_eq!(ledger_holds(&db, poor).await, 0);

    // once it has credits, the waiting conversation is distilled (nothing was lost)
    let tx = db.owner.tenant(poor).await.unwrap();
    credits::grant_credits(&tx, 500, "test", "top up")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let out = distill::run_at(&s, Utc::now()).await.unwrap();
    assert!(out.farms_skipped_for_credits.is_empty());
    assert_eq!(out.conversations_processed, 1);
    assert_eq!(memories(&db, poor).await.len(), 1);
    let tx = db.app.tenant(poor).await.unwrap();
    let through: i64 = tx
        .query_one(
            "SELECT distilled_through FROM conversations WHERE id = $1",
            &[(&waiting, Type::UUID)],
        )
        .await
        .unwrap()
        .get(0);
    assert!(through > 0);
}

// ------------------------------------------------------------------ the model extractor
// The real aws-sdk-bedrockruntime client (through BedrockChat) against the local Converse stub.

mod model_extractor {
    use super::*;
    use farmops::{
        memory::{model_extract::ModelFactExtractor, tokens_metered_from_bytes},
        testing::converse::{ConverseStub, HAIKU, Scripted},
    };
    use serde_json::{Value, json};

    const TIMEOUT: Duration = Duration::from_secs(2);
    const MAX_OUT: u32 = 3000;

    async fn model_state(db: &TestDb, stub: &ConverseStub) -> State {
        State {
            extractor: Arc::new(
                ModelFactExtractor::new(stub.model(TIMEOUT).await, MAX_OUT).unwrap(),
            ),
            ..state(&db.app)
        }
    }

    fn record(facts: Value, summary: Option<&str>) -> Scripted {
        let mut input = json!({ "facts": facts });
        if let Some(s) = summary {
            input["summary"] = json!(s);
        }
        Scripted::tool_use(&[("tu-1", "record_memories", input)])
    }

    /// Credits of one stubbed extraction (1200 in, 80 out) plus embedding `texts` offline.
    fn expected_charge(texts: &[&str]) -> i64 {
        // one run: both models' exact prices added up, rounded up once
        let bytes: usize = texts.iter().map(|t| t.len()).sum();
        let millis = credits::metered::millicredits(credits::price_for(HAIKU).unwrap(), 1200, 80)
            + credits::metered::millicredits(
                credits::price_for("offline-embedder").unwrap(),
                tokens_metered_from_bytes(bytes),
                0,
            );
        i64::try_from((millis + 999) / 1000).unwrap()
    }

    /// (distilled_through, last message id, summary, summary embeddings) of a conversation.
    async fn head(db: &TestDb, farm: Uuid, conv: Uuid) -> (i64, i64, Option<String>, i64) {
        let tx = db.app.tenant(farm).await.unwrap();
        let r = tx
            .query_one(
                "SELECT c.distilled_through,
                        (SELECT max(id) FROM messages WHERE conversation_id = c.id),
                        c.summary,
                        (SELECT count(*) FROM embeddings WHERE conversation_id = c.id)
                   FROM conversations c WHERE c.farm_id = $1 AND c.id = $2",
                &[(&farm, Type::UUID), (&conv, Type::UUID)],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    }

    #[tokio::test]
    async fn distils_through_bedrock_converse_end_to_end() {
        let db = TestDb::new().await.unwrap();
        let farm = db.farm("model", 10_000).await.unwrap();
        let conv = conversation(
            &db.app,
            farm,
            &[
                ("user", "We vaccinate on Mondays. Pond 3 is the nursery."),
                ("assistant", "Noted."),
            ],
        )
        .await;
        let summary = "The farmer gave the vaccination day and the nursery pond.";
        let stub = ConverseStub::start(vec![record(
            json!([
                {"subject": " Vaccination  Day", "content": "We vaccinate on Mondays."},
                {"subject": "pond 3", "content": "Pond 3 is the nursery."}
            ]),
            Some(summary),
        )])
        .await
        .unwrap();
        let s = model_state(&db, &stub).await;
        let payload: EventBridgeEvent =
            serde_json::from_value(eventbridge_scheduled_event()).unwrap();
        let out = handle(&s, LambdaEvent::new(payload.clone(), Context::default()))
            .await
            .unwrap();

        let charge = expected_charge(&[
            "We vaccinate on Mondays.",
            "Pond 3 is the nursery.",
            summary,
        ]);
        assert_eq!(
            (
                out.conversations_processed,
                out.conversations_failed,
                out.memories_added,
                out.credits_used
            ),
            (1, 0, 2, charge),
            "{out:?}"
        );
        // memories with normalised subjects and their embeddings; summary; watermark
        let tx = db.app.tenant(farm).await.unwrap();
        let mut stored: Vec<(String, String, i64)> = tx
            .query(
                "SELECT m.subject, m.content, (SELECT count(*) FROM embeddings e WHERE e.memory_id = m.id)
                   FROM memories m WHERE m.farm_id = $1",
                &[(&farm, Type::UUID)],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        drop(tx);
        stored.sort();
        assert_eq!(
            stored,
            [
                ("pond 3".into(), "Pond 3 is the nursery.".into(), 1),
                (
                    "vaccination day".into(),
                    "We vaccinate on Mondays.".into(),
                    1
                )
            ]
        );
        let (through, last, stored_summary, summary_embeddings) = head(&db, farm, conv).await;
        assert_eq!(through, last, "watermark advanced");
        assert_eq!(stored_summary.as_deref(), Some(summary));
        assert_eq!(summary_embeddings, 1);
        // metered on the reported usage, the rest refunded
        assert_eq!(ledger_holds(&db, farm).await, 10_000 - charge);
        assert_eq!(
            scalar(&db, farm, "SELECT sum(credits_charged)::bigint FROM ai_runs WHERE farm_id = $1 AND status = 'succeeded' AND model = 'anthropic.claude-3-5-haiku-20241022-v1:0'").await,
            charge
        );
        assert!(
            scalar(
                &db,
                farm,
                "SELECT min(credits_reserved) FROM ai_runs WHERE farm_id = $1"
            )
            .await
                > charge,
            "reserved the worst case"
        );

        // the wire: one Converse call carrying the transcript, the forced tool and the cap
        let requests = stub.requests();
        assert_eq!(requests.len(), 1);
        let (path, body) = &requests[0];
        assert_eq!(
            path,
            "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
        );
        let text = body["messages"][0]["content"][0]["text"].as_str().unwrap();
        assert!(
            text.contains(
                "[farmer] We vaccinate on Mondays. Pond 3 is the nursery.\n[assistant] Noted."
            ),
            "{text}"
        );
        assert!(text.contains("Summary so far:\n(none)"), "{text}");
        assert!(
            body["system"][0]["text"]
                .as_str()
                .unwrap()
                .contains("record_memories")
        );
        let tool = &body["toolConfig"]["tools"][0]["toolSpec"];
        assert_eq!(tool["name"], "record_memories");
        assert_eq!(
            tool["inputSchema"]["json"]["required"],
            json!(["facts", "summary"])
        );
        assert_eq!(
            tool["inputSchema"]["json"]["properties"]["facts"]["items"]["required"],
            json!(["subject", "content"])
        );
        assert_eq!(
            body["toolConfig"]["toolChoice"]["tool"]["name"],
            "record_memories"
        );
        assert_eq!(body["inferenceConfig"]["maxTokens"], MAX_OUT);

        // nothing new: no model call, nothing written, nothing charged
        let again = handle(&s, LambdaEvent::new(payload, Context::default()))
            .await
            .unwrap();
        assert_eq!((again.conversations_processed, again.credits_used), (0, 0));
        assert_eq!(stub.requests().len(), 1);
        assert_eq!(memories(&db, farm).await.len(), 2);

        // new messages: the previous summary is folded into the next request
        add_user_message(
            &db.app,
            farm,
            conv,
            "Actually we vaccinate on Thursdays now.",
        )
        .await;
        let stub2 = ConverseStub::start(vec![record(
            json!([{"subject": "vaccination day", "content": "We vaccinate on Thursdays."}]),
            Some("Vaccination moved to Thursdays."),
        )])
        .await
        .unwrap();
        let s2 = model_state(&db, &stub2).await;
        let third = distill::run_at(&s2, Utc::now()).await.unwrap();
        assert_eq!(
            (third.memories_added, third.memories_superseded),
            (1, 1),
            "{third:?}"
        );
        let sent = stub2.requests()[0].1["messages"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            sent.contains(&format!("Summary so far:\n{summary}")),
            "{sent}"
        );
        assert!(
            sent.contains("[farmer] Actually we vaccinate on Thursdays now."),
            "{sent}"
        );
        assert!(
            !sent.contains("Pond 3"),
            "only messages past the watermark: {sent}"
        );
        let mems = memories(&db, farm).await;
        assert!(
            mems.contains(&("We vaccinate on Mondays.".into(), true)),
            "{mems:?}"
        );
        assert!(
            mems.contains(&("We vaccinate on Thursdays.".into(), false)),
            "{mems:?}"
        );
    }

    #[tokio::test]
    async fn a_malformed_answer_writes_nothing_for_its_conversation_and_a_rerun_recovers() {
        let db = TestDb::new().await.unwrap();
        let farm = db.farm("malformed", 10_000).await.unwrap();
        let good = conversation(&db.app, farm, &[("user", "Pond 3 is the nursery.")]).await;
        let bad = conversation(&db.app, farm, &[("user", "Our vet is Dr Ade.")]).await;
        let summary = "Pond 3 is the nursery.";
        let stub = ConverseStub::start(vec![
            record(
                json!([{"subject": "pond 3", "content": "Pond 3 is the nursery."}]),
                Some(summary),
            ),
            // valid facts but no summary: nothing of it may be written
            record(
                json!([{"subject": "vet", "content": "Our vet is Dr Ade."}]),
                None,
            ),
        ])
        .await
        .unwrap();
        let out = distill::run_at(&model_state(&db, &stub).await, Utc::now())
            .await
            .unwrap();
        let charge = expected_charge(&["Pond 3 is the nursery.", summary]);
        assert_eq!(
            (
                out.conversations_processed,
                out.conversations_failed,
                out.memories_added,
                out.credits_used
            ),
            (1, 1, 1, charge),
            "{out:?}"
        );
        assert_eq!(stub.requests().len(), 2);
        let (through, last, _, _) = head(&db, farm, good).await;
        assert_eq!(through, last);
        assert_eq!(
            head(&db, farm, bad).await,
            (0, last + 1, None, 0),
            "not advanced"
        );
        let bad_rows = |sql: &'static str| scalar(&db, farm, sql);
        assert_eq!(
            bad_rows("SELECT count(*) FROM memories WHERE farm_id = $1 AND content LIKE '%vet%'")
                .await,
            0,
            "nothing half-written"
        );
        assert_eq!(ledger_holds(&db, farm).await, 10_000 - charge);
        assert_eq!(
            scalar(&db, farm, "SELECT count(*) FROM ai_runs WHERE farm_id = $1 AND status = 'succeeded' AND error LIKE '%record_memories: missing summary%'").await,
            1,
            "the run records the failure"
        );

        // the next run with a good answer distils only the failed conversation
        let stub2 = ConverseStub::start(vec![record(
            json!([{"subject": "Vet", "content": "Our vet is Dr Ade."}]),
            Some("The farmer named the vet."),
        )])
        .await
        .unwrap();
        let out = distill::run_at(&model_state(&db, &stub2).await, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            (out.conversations_processed, out.memories_added),
            (1, 1),
            "{out:?}"
        );
        let requests = stub2.requests();
        assert_eq!(requests.len(), 1);
        let sent = requests[0].1["messages"][0]["content"][0]["text"]
            .as_str()
            .unwrap();
        assert!(
            sent.contains("Our vet is Dr Ade.") && !sent.contains("Pond 3"),
            "{sent}"
        );
        let (through, last, summary, _) = head(&db, farm, bad).await;
        assert_eq!(
            (through, summary.as_deref()),
            (last, Some("The farmer named the vet."))
        );
        let mut got: Vec<String> = memories(&db, farm).await.into_iter().map(|m| m.0).collect();
        got.sort();
        assert_eq!(got, ["Our vet is Dr Ade.", "Pond 3 is the nursery."]);
        let charge2 = expected_charge(&["Our vet is Dr Ade.", "The farmer named the vet."]);
        assert_eq!(ledger_holds(&db, farm).await, 10_000 - charge - charge2);
    }

    /// [`model_state`] whose every Converse call carries a guardrail.
    async fn guarded_state(db: &TestDb, stub: &ConverseStub) -> State {
        let guardrail = farmops::model::guardrail::GuardrailSettings {
            id: "gr-farmops".into(),
            version: "3".into(),
        };
        let model = stub.model_with_guardrail(TIMEOUT, Some(guardrail)).await;
        State {
            extractor: Arc::new(ModelFactExtractor::new(model, MAX_OUT).unwrap()),
            ..state(&db.app)
        }
    }

    /// A Bedrock guardrail stops the extraction (`stopReason = guardrail_intervened`, through
    /// the real SDK client): charged what the model consumed, the assessment kept in a failed
    /// `clinical_safety` eval of the run, no memory or summary written, the messages marked
    /// distilled so the next invocation does not pay for them again; later messages distil.
    #[tokio::test]
    async fn a_guardrail_intervention_is_charged_kept_as_evidence_and_not_retried() {
        let db = TestDb::new().await.unwrap();
        let farm = db.farm("guarded", 10_000).await.unwrap();
        let conv = conversation(
            &db.app,
            farm,
            &[
                (
                    "user",
                    "How much chloramphenicol do I give my layers? We vaccinate on Mondays.",
                ),
                ("assistant", "Please ask your vet."),
            ],
        )
        .await;
        let blocked = "Sorry, I can't help with medicine doses. Please call your vet.";
        let stub = ConverseStub::start(vec![Scripted::guardrail_intervened(
            blocked,
            "ProhibitedSubstances",
            "chloramphenicol",
        )])
        .await
        .unwrap();
        let s = guarded_state(&db, &stub).await;
        let out = distill::run_at(&s, Utc::now()).await.unwrap();
        let charge = credits::cost(credits::price_for(HAIKU).unwrap(), 1200, 80);
        assert_eq!(
            (
                out.conversations_withheld,
                out.conversations_processed,
                out.conversations_failed,
                out.memories_added,
                out.credits_used
            ),
            (1, 0, 0, 0, charge),
            "{out:?}"
        );
        // the wire: the call carried the guardrail, trace enabled
        let requests = stub.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].1["guardrailConfig"],
            json!({"guardrailIdentifier": "gr-farmops", "guardrailVersion": "3", "trace": "enabled"})
        );
        // nothing written from that call; the watermark moved past its messages
        assert!(memories(&db, farm).await.is_empty());
        let (through, last, summary, summary_embeddings) = head(&db, farm, conv).await;
        assert_eq!((through, summary, summary_embeddings), (last, None, 0));
        // charged for what the model consumed; the rest of the hold refunded
        assert_eq!(ledger_holds(&db, farm).await, 10_000 - charge);
        let tx = db.app.tenant(farm).await.unwrap();
        let run = tx
            .query_one(
                "SELECT id, status, credits_charged, response_summary FROM ai_runs WHERE farm_id = $1",
                &[(&farm, Type::UUID)],
            )
            .await
            .unwrap();
        let (run_id, status, charged, run_summary): (Uuid, String, i64, Option<String>) =
            (run.get(0), run.get(1), run.get(2), run.get(3));
        assert_eq!((status.as_str(), charged), ("succeeded", charge));
        assert!(
            run_summary
                .as_deref()
                .unwrap_or("")
                .contains("1 withheld by the guardrail (guardrail_intervened)"),
            "{run_summary:?}"
        );
        // the evidence: the guardrail's assessment in a failed clinical_safety eval of the run
        let evals: Vec<(String, bool, Value)> = tx
            .query(
                "SELECT name, passed, details FROM ai_evals WHERE farm_id = $1 AND ai_run_id = $2",
                &[(&farm, Type::UUID), (&run_id, Type::UUID)],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        drop(tx);
        assert_eq!(evals.len(), 1, "{evals:?}");
        let (name, passed, details) = &evals[0];
        assert_eq!((name.as_str(), *passed), ("clinical_safety", false));
        assert_eq!(details["source"], "bedrock_guardrail");
        assert_eq!(details["subject"], "memory_distillation");
        assert_eq!(details["conversation_id"], json!(conv));
        assert_eq!(details["messages"], json!({"after": 0, "through": last}));
        assert_eq!(details["withheld_text"], blocked);
        assert_eq!(details["guardrail"]["action_reason"], "Guardrail blocked.");
        assert_eq!(
            details["guardrail"]["output"][0]["topics"][0]["name"],
            "ProhibitedSubstances"
        );
        assert_eq!(
            details["guardrail"]["output"][0]["words"][0]["match"],
            "chloramphenicol"
        );

        // not retried: the next invocation calls no model and charges nothing
        let again = distill::run_at(&s, Utc::now()).await.unwrap();
        assert_eq!(again, distill::DistillOutcome::default(), "{again:?}");
        assert_eq!(stub.requests().len(), 1);
        assert_eq!(ledger_holds(&db, farm).await, 10_000 - charge);

        // a later message is distilled as usual, without the withheld ones
        add_user_message(&db.app, farm, conv, "Pond 3 is the nursery.").await;
        let stub2 = ConverseStub::start(vec![record(
            json!([{"subject": "pond 3", "content": "Pond 3 is the nursery."}]),
            Some("The farmer named the nursery pond."),
        )])
        .await
        .unwrap();
        let later = distill::run_at(&guarded_state(&db, &stub2).await, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            (
                later.conversations_processed,
                later.memories_added,
                later.conversations_withheld
            ),
            (1, 1, 0),
            "{later:?}"
        );
        let sent = stub2.requests()[0].1["messages"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            sent.contains("[farmer] Pond 3 is the nursery.") && !sent.contains("chloramphenicol"),
            "{sent}"
        );
        assert_eq!(
            memories(&db, farm).await,
            [("Pond 3 is the nursery.".to_string(), false)]
        );
    }

    #[tokio::test]
    async fn throttling_is_reported_and_the_reservation_refunded() {
        let db = TestDb::new().await.unwrap();
        let farm = db.farm("throttled", 10_000).await.unwrap();
        let conv = conversation(&db.app, farm, &[("user", "We vaccinate on Mondays.")]).await;
        let stub = ConverseStub::start(vec![Scripted::error(429, "ThrottlingException")])
            .await
            .unwrap();
        let out = distill::run_at(&model_state(&db, &stub).await, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            (
                out.conversations_processed,
                out.conversations_failed,
                out.memories_added,
                out.credits_used
            ),
            (0, 1, 0, 0),
            "{out:?}"
        );
        assert_eq!(stub.requests().len(), 1, "the model was called");
        assert_eq!(ledger_holds(&db, farm).await, 10_000, "fully refunded");
        assert_eq!(
            scalar(&db, farm, "SELECT count(*) FROM ai_runs WHERE farm_id = $1 AND status = 'failed' AND credits_charged = 0 AND error LIKE '%throttled%'").await,
            1
        );
        let (through, _, summary, _) = head(&db, farm, conv).await;
        assert_eq!((through, summary), (0, None));
        assert!(memories(&db, farm).await.is_empty());
    }
}

/// An extractor and an embedder that remember the usage they reported.
struct Reporting {
    extractor: OfflineFactExtractor,
    extractor_tokens: AtomicUsize,
    embedder_tokens: AtomicUsize,
}

#[async_trait]
impl FactExtractor for Reporting {
    fn model_id(&self) -> &str {
        self.extractor.model_id()
    }
    fn max_output_tokens(&self) -> u64 {
        self.extractor.max_output_tokens()
    }
    async fn extract(
        &self,
        previous: Option<&str>,
        transcript: &[TranscriptMessage],
    ) -> farmops::Result<Extraction> {
        let out = self.extractor.extract(previous, transcript).await?;
        self.extractor_tokens.fetch_add(
            usize::try_from(out.usage.input_tokens + out.usage.output_tokens).unwrap(),
            Ordering::SeqCst,
        );
        Ok(out)
    }
}

struct ReportingEmbedder(Arc<Reporting>);

#[async_trait]
impl Embedder for ReportingEmbedder {
    fn model_id(&self) -> &str {
        WordsEmbedder.model_id()
    }
    async fn embed(&self, texts: &[String]) -> farmops::Result<Embedded> {
        let out = WordsEmbedder.embed(texts).await?;
        self.0
            .embedder_tokens
            .fetch_add(usize::try_from(out.input_tokens).unwrap(), Ordering::SeqCst);
        Ok(out)
    }
}

#[tokio::test]
async fn distill_bills_the_tokens_the_embedder_reports() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("f", 1000).await.unwrap();
    conversation(
        &db.app,
        farm,
        &[("user", "We vaccinate on Mondays. Pond 3 is the nursery.")],
    )
    .await;
    let reporting = Arc::new(Reporting {
        extractor: OfflineFactExtractor::default(),
        extractor_tokens: AtomicUsize::new(0),
        embedder_tokens: AtomicUsize::new(0),
    });
    let s = State {
        db: db.app.clone(),
        extractor: reporting.clone(),
        embedder: Arc::new(ReportingEmbedder(reporting.clone())),
        config: DistillConfig::default(),
    };
    let out = distill::run_at(&s, Utc::now()).await.unwrap();
    assert_eq!(out.conversations_processed, 1, "{out:?}");
    let embedded = reporting.embedder_tokens.load(Ordering::SeqCst) as i64;
    assert!(embedded > EXTRA_TOKENS as i64);
    // the run's tokens are exactly what the two models reported (no estimate)
    let metered = scalar(
        &db,
        farm,
        "SELECT (input_tokens + output_tokens)::bigint FROM ai_runs WHERE farm_id = $1 AND feature = 'distill'",
    )
    .await;
    assert_eq!(
        metered,
        reporting.extractor_tokens.load(Ordering::SeqCst) as i64 + embedded
    );
    ledger_holds(&db, farm).await;
}

#[tokio::test]
async fn a_superseded_memory_never_reaches_the_chat() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("f", 1000).await.unwrap();
    db.member(farm, "farmer", "owner").await.unwrap();
    let s = state(&db.app);
    let out = mondays_then_thursdays(&db, farm, &s, "We vaccinate on Mondays.").await;
    assert_eq!(out.memories_superseded, 1, "{out:?}");

    // a chat turn retrieving through PgRetriever sees Thursday, never Monday
    let retriever = farmops::testing::retrieval::ServedPassages::new(Arc::new(WordsEmbedder));
    let limits = farmops::chat::ChatLimits::default();
    let deps = farmops::chat::ChatDeps {
        db: &db.app,
        model: &farmops::model::offline::OfflineChat,
        retriever: &retriever,
        limits: &limits,
    };
    let request = farmops::chat::TurnRequest {
        message: "which day do we vaccinate".into(),
        conversation_id: None,
    };
    farmops::chat::run_turn(&deps, farm, "farmer", &request)
        .await
        .unwrap();
    // (a conversation's summary is that conversation's history and keeps what was said then)
    let served = retriever.take();
    let memories: Vec<&String> = served.iter().filter(|p| p.starts_with("memory:")).collect();
    assert!(
        memories.iter().any(|p| p.contains("Thursdays")),
        "{served:?}"
    );
    assert!(
        memories.iter().all(|p| !p.contains("Mondays")),
        "{served:?}"
    );

    // the database keeps it so: no embedding of a superseded memory, and none can be added
    assert_eq!(
        scalar(
            &db,
            farm,
            "SELECT count(*) FROM embeddings e JOIN memories m ON m.id = e.memory_id
              WHERE e.farm_id = $1 AND m.superseded_by IS NOT NULL",
        )
        .await,
        0
    );
    let tx = db.app.tenant(farm).await.unwrap();
    let err = tx
        .query(
            "INSERT INTO embeddings (farm_id, memory_id, content, content_hash, embedding_model, embedding)
             SELECT farm_id, id, content, 'h', 'offline-embedder', array_fill(0.1, ARRAY[1024])::vector
               FROM memories WHERE farm_id = $1 AND superseded_by IS NOT NULL",
            &[(&farm, Type::UUID)],
        )
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("is superseded"), "{err:?}");
}
