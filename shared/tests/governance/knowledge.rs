//! Knowledge: exact retrieval in a large table, isolation, delete under concurrent search,
//! the reembed sweep, and the Titan wire format against a local stub through the real SDK.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Instant,
};

use async_trait::async_trait;
use farmops::{
    Error,
    documents::{self, NewDocument},
    embed::{Embedded, Embedder, OfflineEmbedder, TITAN_MODEL_ID, offline_vector},
    rag::{PgRetriever, Retriever, SearchPath},
    testing::{
        TestDb,
        converse::{ConverseStub, Scripted},
    },
};
use tokio_postgres::types::Type;
use uuid::Uuid;

fn retriever() -> PgRetriever {
    PgRetriever {
        embedder: Arc::new(OfflineEmbedder::default()),
    }
}

fn doc(title: &str, body: &str) -> NewDocument {
    NewDocument {
        title: title.into(),
        body: body.into(),
    }
}

fn parse_vector(text: &str) -> Vec<f32> {
    text.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|x| x.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn recall_is_exact_for_a_small_farm_in_a_large_table() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let small = db.farm("small", 0).await?;
    let big = db.farm("big", 0).await?;
    let owner = db.owner_client().await?;
    // Bulk load without the index, then build it (what a restore does; much faster).
    owner
        .batch_execute(&format!(
            "DROP INDEX embeddings_hnsw;
             INSERT INTO documents (farm_id, id, title, body, created_by) VALUES
               ('{big}', '{big}', 'filler', 'x', 'test'),
               ('{small}', '{small}', 'small', 'x', 'test'),
               (global_farm_id(), '{g}', 'global', 'x', 'test');
             INSERT INTO embeddings (farm_id, document_id, chunk_index, content, content_hash,
                                     embedding_model, embedding)
             SELECT f, d, g, f || ':' || g, 'h', 'offline-embedder',
                    (SELECT array_agg(random() - 0.5 + 0 * x + 0 * g) FROM generate_series(1, 1024) AS x)::vector
               FROM (SELECT '{big}'::uuid, '{big}'::uuid, generate_series(0, 19991)
                     UNION ALL SELECT '{small}', '{small}', generate_series(0, 4)
                     UNION ALL SELECT global_farm_id(), '{g}', generate_series(0, 2)) AS s(f, d, g);
             CREATE INDEX embeddings_hnsw ON embeddings USING hnsw (embedding vector_cosine_ops)
               WITH (m = 16, ef_construction = 64);
             ANALYZE embeddings;",
            g = Uuid::new_v4()
        ))
        .await?;
    let total: i64 = owner
        .query_one("SELECT count(*) FROM embeddings", &[])
        .await?
        .get(0);
    assert_eq!(total, 20_000);
    let r = retriever();
    for trial in 0..3 {
        // A random query vector (from a filler row: worst case, its neighbourhood is all "big").
        let q: String = owner
            .query_one(
                "SELECT embedding::text FROM embeddings WHERE farm_id = $1 OFFSET $2 LIMIT 1",
                &[&big, &(trial as i64 * 997)],
            )
            .await?
            .get(0);
        let qv = parse_vector(&q);
        let expected: Vec<String> = owner
            .query(
                "SELECT content FROM embeddings WHERE farm_id IN ($1, global_farm_id())
                  ORDER BY (embedding <=> $2::text::vector) + 0",
                &[&small, &q],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(expected.len(), 8);
        for k in [4usize, 8] {
            let tx = db.app.tenant(small).await?;
            let started = Instant::now();
            let got = r.retrieve_vector(&tx, &qv, k).await?;
            let took = started.elapsed();
            let contents: Vec<String> = got.iter().map(|p| p.content.clone()).collect();
            assert_eq!(contents, expected[..k].to_vec(), "trial {trial} k {k}");
            assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance));
            let iterative = r.retrieve_via(&tx, &qv, k, SearchPath::Index).await?;
            // The naive query: HNSW + WHERE with the default ef_search, no iterative scan,
            // and the planner steered onto the HNSW index.
            tx.query(
                "SELECT set_config('hnsw.iterative_scan', 'off', true),
                        set_config('enable_bitmapscan', 'off', true),
                        set_config('enable_seqscan', 'off', true),
                        set_config('enable_sort', 'off', true),
                        set_config('hnsw.ef_search', '40', true)",
                &[],
            )
            .await?;
            let naive = tx
                .query(
                    "SELECT content FROM embeddings WHERE farm_id IN ($1, global_farm_id())
                      ORDER BY embedding <=> $2::text::vector LIMIT $3",
                    &[
                        (&small, Type::UUID),
                        (&q, Type::TEXT),
                        (&(k as i64), Type::INT8),
                    ],
                )
                .await?;
            farmops::test_note!(
                "recall trial {trial} k={k}: exact path {} rows in {took:?}; iterative HNSW {} rows \
                 (matches exact: {}); naive HNSW+WHERE {} rows",
                got.len(),
                iterative.len(),
                iterative
                    .iter()
                    .map(|p| &p.content)
                    .eq(expected[..k].iter()),
                naive.len()
            );
            // Holds by a wide margin (k of the farm's 8 rows among the 40 nearest of 20,000
            // random rows): the naive query is the failure the exact path exists for.
            assert!(naive.len() < k, "naive HNSW+WHERE unexpectedly complete");
            tx.rollback().await?;
        }
    }
    // The big farm (20,000 visible rows) takes the exact path too; time it.
    let tx = db.app.tenant(big).await?;
    let started = Instant::now();
    let got = r.retrieve_vector(&tx, &offline_vector("x"), 8).await?;
    farmops::test_note!(
        "big farm exact path: {} rows in {:?}",
        got.len(),
        started.elapsed()
    );
    assert_eq!(got.len(), 8);
    let started = Instant::now();
    let via_index = r
        .retrieve_via(&tx, &offline_vector("x"), 8, SearchPath::Index)
        .await?;
    farmops::test_note!(
        "big farm iterative HNSW: {} rows in {:?}, same as exact: {}",
        via_index.len(),
        started.elapsed(),
        via_index == got
    );
    Ok(())
}

#[tokio::test]
async fn a_farm_never_retrieves_another_farms_rows() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let a = db.farm("a", 10_000).await?;
    let b = db.farm("b", 10_000).await?;
    db.member(a, "ann", "worker").await?;
    db.member(b, "bob", "worker").await?;
    let e = OfflineEmbedder::default();
    documents::add_document(
        &db.app,
        &e,
        a,
        "ann",
        &doc("maize", "Irrigate the maize field every Tuesday morning."),
    )
    .await?;
    let secret = "Bob's secret: the dairy herd vaccine is stored in barn seven.";
    documents::add_document(&db.app, &e, b, "bob", &doc("herd", secret)).await?;
    // Global knowledge, inserted by the operator (the global farm as tenant).
    let gtx = db.owner.tenant(Uuid::nil()).await?;
    gtx.query(
        "INSERT INTO documents (farm_id, title, body, created_by) VALUES (global_farm_id(), 'g', 'g', 'op')",
        &[],
    )
    .await?;
    gtx.commit().await?;
    let r = retriever();
    let tx = db.app.tenant(a).await?;
    let by_text = r.retrieve(&tx, secret, 10).await?;
    assert!(!by_text.is_empty(), "a's own row is still found");
    assert!(
        by_text
            .iter()
            .all(|p| p.farm_id == a || p.farm_id == Uuid::nil())
    );
    assert!(by_text.iter().all(|p| !p.content.contains("barn")));
    // A crafted query vector: exactly b's stored embedding.
    let owner = db.owner_client().await?;
    let bv: String = owner
        .query_one(
            "SELECT embedding::text FROM embeddings WHERE farm_id = $1",
            &[&b],
        )
        .await?
        .get(0);
    for path in [SearchPath::Auto, SearchPath::Exact, SearchPath::Index] {
        let got = r.retrieve_via(&tx, &parse_vector(&bv), 10, path).await?;
        assert!(got.iter().all(|p| p.farm_id == a), "{path:?}: {got:?}");
        assert!(got.iter().all(|p| p.distance > 1e-4), "{path:?}");
    }
    // b finds its own with distance ~0.
    let tx = db.app.tenant(b).await?;
    let got = r.retrieve(&tx, secret, 1).await?;
    assert_eq!(got[0].content, secret);
    assert!(got[0].distance < 1e-4);
    assert!(got[0].source.starts_with("document:"));
    Ok(())
}

#[tokio::test]
async fn deleted_documents_never_appear_even_under_concurrent_search() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let farm = db.farm("f", 100_000).await?;
    db.member(farm, "m", "manager").await?;
    db.member(farm, "w", "worker").await?;
    let e = OfflineEmbedder::default();
    let long: String = (0..400).map(|i| format!("pasture{i} rotation ")).collect();
    let added = documents::add_document(&db.app, &e, farm, "w", &doc("grazing", &long)).await?;
    assert!(added.chunks > 3);
    documents::add_document(&db.app, &e, farm, "w", &doc("other", "fence repair notes")).await?;
    let pool = db.app_pool(4)?;
    let deleted = Arc::new(AtomicBool::new(false));
    let seen_after = Arc::new(AtomicUsize::new(0));
    let searches = Arc::new(AtomicUsize::new(0));
    let search = {
        let (pool, deleted, seen_after, searches) = (
            pool.clone(),
            deleted.clone(),
            seen_after.clone(),
            searches.clone(),
        );
        tokio::spawn(async move {
            let r = retriever();
            for i in 0..200 {
                let after = deleted.load(Ordering::SeqCst);
                let tx = pool.tenant(farm).await.unwrap();
                let got = r
                    .retrieve(&tx, &format!("pasture{i} rotation"), 5)
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                searches.fetch_add(1, Ordering::SeqCst);
                if after && got.iter().any(|p| p.content.contains("pasture")) {
                    seen_after.fetch_add(1, Ordering::SeqCst);
                }
                if after && i > 150 {
                    break;
                }
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // A worker may not delete; the document stays.
    let refused = documents::delete_document(&db.app, farm, "w", added.id).await;
    assert!(matches!(refused, Err(Error::Forbidden(_))));
    documents::delete_document(&db.app, farm, "m", added.id).await?;
    deleted.store(true, Ordering::SeqCst);
    search.await?;
    assert_eq!(seen_after.load(Ordering::SeqCst), 0);
    assert!(searches.load(Ordering::SeqCst) > 1);
    let owner = db.owner_client().await?;
    let left: i64 = owner
        .query_one(
            "SELECT count(*) FROM embeddings WHERE document_id = $1",
            &[&added.id],
        )
        .await?
        .get(0);
    assert_eq!(left, 0);
    assert!(matches!(
        documents::delete_document(&db.app, farm, "m", added.id).await,
        Err(Error::NotFound("document"))
    ));
    Ok(())
}

/// Counts texts it embedded; fails once `fail_after` texts have been embedded.
struct Flaky {
    inner: OfflineEmbedder,
    embedded: AtomicUsize,
    fail_after: usize,
}

#[async_trait]
impl Embedder for Flaky {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
    async fn embed(&self, texts: &[String]) -> farmops::Result<Embedded> {
        let before = self.embedded.fetch_add(texts.len(), Ordering::SeqCst);
        if before + texts.len() > self.fail_after {
            return Err(Error::ModelFailed("injected".into()));
        }
        // Let the concurrent sweep interleave.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        self.inner.embed(texts).await
    }
}

#[tokio::test]
async fn reembed_sweeps_every_row_once_and_skips_a_farm_without_credits() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let rich = db.farm("rich", 100_000).await?;
    let poor = db.farm("poor", 100_000).await?;
    db.member(rich, "w", "worker").await?;
    db.member(poor, "w", "worker").await?;
    let old = OfflineEmbedder::default();
    for i in 0..6 {
        let body: String = (0..150).map(|j| format!("crop{i} note{j} ")).collect();
        documents::add_document(&db.app, &old, rich, "w", &doc("notes", &body)).await?;
    }
    documents::add_document(&db.app, &old, poor, "w", &doc("p", "poor farm notes")).await?;
    // Drain the poor farm to zero.
    let tx = db.owner.tenant(poor).await?;
    let balance: i64 = tx
        .query_one(
            "SELECT credit_balance FROM farms WHERE id = $1",
            &[(&poor, Type::UUID)],
        )
        .await?
        .get(0);
    farmops::credits::adjust_credits(&tx, -balance, "test", "drain").await?;
    tx.commit().await?;
    let owner = db.owner_client().await?;
    let rows: i64 = owner
        .query_one(
            "SELECT count(*) FROM embeddings WHERE farm_id = $1",
            &[&rich],
        )
        .await?
        .get(0);
    assert!(rows > 12, "{rows}");
    let rich_before: i64 = owner
        .query_one("SELECT credit_balance FROM farms WHERE id = $1", &[&rich])
        .await?
        .get(0);

    // The new configuration: another (priced) model id.
    let new_model = TITAN_MODEL_ID;
    let flaky = |fail_after| Flaky {
        inner: OfflineEmbedder::with_model_id(new_model),
        embedded: AtomicUsize::new(0),
        fail_after,
    };
    // Interrupted: fails after 10 texts (batches of 4: two batches land, the third fails).
    let interrupted = documents::sweep(&db.app, &flaky(10), 4).await?;
    let first = interrupted.iter().find(|s| s.farm_id == rich).unwrap();
    assert_eq!(first.reembedded, 8);
    assert_eq!(first.skipped.as_deref(), Some("model_failed"));
    // Two concurrent sweeps finish the job.
    let (e1, e2) = (flaky(usize::MAX), flaky(usize::MAX));
    let pool2 = db.app_pool(4)?;
    let (s1, s2) = tokio::join!(
        documents::sweep(&db.app, &e1, 4),
        documents::sweep(&pool2, &e2, 4)
    );
    let (s1, s2) = (s1?, s2?);
    let done = |s: &[documents::FarmSweep]| {
        s.iter()
            .find(|x| x.farm_id == rich)
            .map_or(0, |x| x.reembedded)
    };
    assert_eq!(
        first.reembedded + done(&s1) + done(&s2),
        rows as u64,
        "each row exactly once"
    );
    assert_eq!(
        (e1.embedded.load(Ordering::SeqCst) + e2.embedded.load(Ordering::SeqCst)) as u64,
        done(&s1) + done(&s2),
        "no row embedded twice by the concurrent sweeps"
    );
    farmops::test_note!("reembed: interrupted {first:?}; sweep 1 {s1:?}; sweep 2 {s2:?}");
    let stale: i64 = owner
        .query_one(
            "SELECT count(*) FROM embeddings WHERE farm_id = $1 AND embedding_model <> $2",
            &[&rich, &new_model],
        )
        .await?
        .get(0);
    assert_eq!(stale, 0);
    // The poor farm: skipped and reported, untouched, never negative. A sweep that met its one
    // stale row locked by the other sweep (SKIP LOCKED) had nothing to do and reports no skip;
    // the sweep that held it reports the farm could not pay.
    let poor_reports: Vec<_> = s1
        .iter()
        .chain(s2.iter())
        .filter(|s| s.farm_id == poor)
        .collect();
    assert!(
        poor_reports
            .iter()
            .any(|s| s.skipped.as_deref() == Some("insufficient_credits")),
        "{poor_reports:?}"
    );
    for s in &poor_reports {
        assert!(
            matches!(s.skipped.as_deref(), None | Some("insufficient_credits")),
            "{s:?}"
        );
        assert_eq!(s.reembedded, 0);
    }
    let row = owner
        .query_one(
            "SELECT (SELECT credit_balance FROM farms WHERE id = $1),
                    (SELECT count(*) FROM embeddings WHERE farm_id = $1 AND embedding_model = 'offline-embedder')",
            &[&poor],
        )
        .await?;
    assert_eq!(row.get::<_, i64>(0), 0);
    assert_eq!(row.get::<_, i64>(1), 1);
    let rich_after: i64 = owner
        .query_one("SELECT credit_balance FROM farms WHERE id = $1", &[&rich])
        .await?
        .get(0);
    assert!(rich_after < rich_before, "the sweep is metered");
    // Nothing left: a further sweep is a no-op for the rich farm.
    let again = documents::sweep(&db.app, &flaky(usize::MAX), 4).await?;
    assert!(again.iter().all(|s| s.farm_id != rich));
    Ok(())
}

#[tokio::test]
async fn add_document_is_validated_authorised_and_metered() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let farm = db.farm("f", 1_000).await?;
    let broke = db.farm("broke", 0).await?;
    db.member(farm, "w", "worker").await?;
    db.member(farm, "v", "viewer").await?;
    db.member(broke, "w", "owner").await?;
    let e = OfflineEmbedder::default();
    assert!(matches!(
        documents::add_document(&db.app, &e, farm, "w", &doc("", "b")).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        documents::add_document(&db.app, &e, farm, "v", &doc("t", "b")).await,
        Err(Error::Forbidden(_))
    ));
    assert!(matches!(
        documents::add_document(&db.app, &e, broke, "w", &doc("t", "b")).await,
        Err(Error::InsufficientCredits { .. })
    ));
    let added =
        documents::add_document(&db.app, &e, farm, "w", &doc("t", "some body text")).await?;
    assert_eq!(added.chunks, 1);
    assert!(added.credits_charged >= 1);
    let owner = db.owner_client().await?;
    let row = owner
        .query_one(
            "SELECT f.credit_balance, r.status, r.feature FROM farms f JOIN ai_runs r ON r.farm_id = f.id
              WHERE r.id = $1",
            &[&added.run_id],
        )
        .await?;
    assert_eq!(row.get::<_, i64>(0), 1_000 - added.credits_charged);
    assert_eq!(row.get::<_, String>(1), "succeeded");
    assert_eq!(row.get::<_, String>(2), "embed");
    Ok(())
}

// ---------------------------------------------------------------- Titan wire format

#[tokio::test]
async fn titan_speaks_the_invoke_model_wire_format() -> anyhow::Result<()> {
    let embedding: Vec<f32> = (0..1024).map(|i| (i as f32) / 1024.0).collect();
    let ok = serde_json::json!({"embedding": embedding, "inputTextTokenCount": 7}).to_string();
    let short = serde_json::json!({"embedding": [0.1, 0.2], "inputTextTokenCount": 1}).to_string();
    let stub = ConverseStub::start_on(
        vec![
            Scripted::json(serde_json::from_str(&ok)?),
            Scripted::json(serde_json::from_str(&ok)?),
            Scripted::error(429, "ThrottlingException"),
            Scripted::error(500, "InternalServerException"),
            Scripted::json(serde_json::from_str(&short)?),
            Scripted::raw("not json"),
        ],
        "/invoke",
    )
    .await?;
    let t = stub.titan().await;
    assert_eq!(t.model_id(), "amazon.titan-embed-text-v2:0");
    let got = t.embed(&["first text".into(), "second".into()]).await?;
    assert_eq!(got.vectors.len(), 2);
    assert_eq!(got.vectors[0].len(), 1024);
    assert_eq!(got.vectors[0][512], 0.5);
    assert_eq!(got.input_tokens, 14);
    {
        let requests = stub.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests[0].0,
            "/model/amazon.titan-embed-text-v2%3A0/invoke"
        );
        let body = &requests[0].1;
        assert_eq!(
            *body,
            serde_json::json!({"inputText": "first text", "dimensions": 1024, "normalize": true})
        );
    }
    let throttled = t.embed(&["x".into()]).await;
    assert!(
        matches!(throttled, Err(Error::ModelUnavailable(_))),
        "{throttled:?}"
    );
    let failed = t.embed(&["x".into()]).await;
    assert!(matches!(failed, Err(Error::ModelFailed(_))), "{failed:?}");
    let short = t.embed(&["x".into()]).await;
    assert!(matches!(short, Err(Error::ModelFailed(_))), "{short:?}");
    let garbage = t.embed(&["x".into()]).await;
    assert!(matches!(garbage, Err(Error::ModelFailed(_))), "{garbage:?}");
    Ok(())
}

#[tokio::test]
async fn a_document_is_searchable_only_once_added() -> anyhow::Result<()> {
    // the live path (what `POST /farms/{farm}/documents` calls): a refused add leaves nothing
    // to retrieve; an accepted one is retrieved with its source
    let db = TestDb::new().await?;
    let farm = db.farm("f", 1_000).await?;
    db.member(farm, "w", "worker").await?;
    db.member(farm, "v", "viewer").await?;
    let e = OfflineEmbedder::default();
    let gate = doc("gate", "The north gate sticks");
    assert!(matches!(
        documents::add_document(&db.app, &e, farm, "v", &gate).await,
        Err(Error::Forbidden(_))
    ));
    let r = retriever();
    let tx = db.app.tenant(farm).await?;
    assert!(r.retrieve(&tx, "north gate", 3).await?.is_empty());
    tx.rollback().await?;
    let added = documents::add_document(&db.app, &e, farm, "w", &gate).await?;
    let tx = db.app.tenant(farm).await?;
    let got = r.retrieve(&tx, "north gate", 3).await?;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].source, format!("document:{}#0", added.id));
    Ok(())
}

#[tokio::test]
async fn the_sweep_reembeds_global_rows_unmetered() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let gtx = db.owner.tenant(Uuid::nil()).await?;
    gtx.query(
        "WITH d AS (INSERT INTO documents (farm_id, title, body, created_by)
                    VALUES (global_farm_id(), 'g', 'Frost protection for orchards', 'op') RETURNING id)
         INSERT INTO embeddings (farm_id, document_id, chunk_index, content, content_hash,
                                 embedding_model, embedding)
         SELECT global_farm_id(), id, 0, 'Frost protection for orchards', 'stale', 'offline-embedder',
                array_fill(0.01::real, ARRAY[1024])::vector FROM d",
        &[],
    )
    .await?;
    gtx.commit().await?;
    // Same model, but the content hash is wrong: stale.
    let report = documents::sweep(&db.app, &OfflineEmbedder::default(), 64).await?;
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].farm_id, Uuid::nil());
    assert_eq!(report[0].reembedded, 1);
    let owner = db.owner_client().await?;
    let row = owner
        .query_one(
            "SELECT content_hash = encode(sha256(convert_to(content, 'UTF8')), 'hex'),
                    (SELECT count(*) FROM ai_runs WHERE farm_id = global_farm_id())
               FROM embeddings",
            &[],
        )
        .await?;
    assert!(row.get::<_, bool>(0));
    assert_eq!(
        row.get::<_, i64>(1),
        0,
        "global rows are the operator's cost"
    );
    // Every farm now finds it, as global knowledge.
    let farm = db.farm("f", 0).await?;
    let tx = db.app.tenant(farm).await?;
    let got = retriever().retrieve(&tx, "orchard frost", 1).await?;
    assert_eq!(got[0].farm_id, Uuid::nil());
    assert!(got[0].distance < 0.9);
    assert!(
        documents::sweep(&db.app, &OfflineEmbedder::default(), 64)
            .await?
            .is_empty()
    );
    Ok(())
}
