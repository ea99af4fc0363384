//! Section 3: retrieval from one embeddings table shared by farms of very different sizes plus
//! the global base.
//!
//! Data set (full mode): 200,000 embeddings of 1024 dimensions over 1,000 farms — 3 large
//! (22k-45k rows, above `rag::EXACT_LIMIT`, so ours searches their rows with iterative HNSW),
//! 97 medium (200-2,000 rows), 900 small (1-40 rows) — and the global base with the rest
//! (about 8,700 rows, searched through its own partial HNSW index). Vectors have the low intrinsic dimension of real embeddings: a mixture of 1,000 topics
//! in a 32-dimensional latent space, mapped to 1024 dimensions by one fixed random linear map,
//! plus a little isotropic noise (each farm writes about a few neighbouring topics, the global
//! base about all of them), so a farm's nearest rows compete with other farms' rows on the same
//! topics. (Topics as tight isotropic 1024-dimensional Gaussian clusters, tried first, make
//! every neighbour within a topic almost equidistant: HNSW's recall then collapses for every
//! query and says nothing about filtering.) It lives in a database of its own,
//! `farmops_bench_retrieval_<mode>_<migrations fingerprint>`, loaded once with binary `COPY`
//! (as the superuser: `COPY FROM` refuses tables under row-level security) before the real
//! `embeddings_hnsw` index is built, and reused by later runs while its parameters match
//! (`bench_dataset`).
//!
//! Per size class, several farms x query vectors (perturbed copies of the farm's own rows and
//! of global rows, and new points of random topics), each asked these ways:
//! * **exact** (ground truth): the same visible set (`farm_id IN (farm, global)`) with index
//!   scans disabled, so no HNSW: a sort of every visible row;
//! * **naive**: `ORDER BY embedding <=> q LIMIT 4` with that `WHERE`, as the application role
//!   in a tenant transaction, on the HNSW index with its defaults (`ef_search` 40, no iterative
//!   scan). The planner is steered onto the index as in `shared/tests/governance/knowledge.rs`
//!   (bitmap scans, sorts and sequential scans off, transaction-local, set before the timer):
//!   left alone it may sort a small farm's rows exactly, which is not the design measured;
//! * **ours**: `rag::PgRetriever::retrieve_via` through a `TenantTx` as the application role
//!   (`SearchPath::Auto`: the farm's rows and the global base searched separately, each by an
//!   exact sort up to `EXACT_LIMIT` rows and by HNSW above, merged). In `--short` mode no
//!   part reaches `EXACT_LIMIT`, so the large class forces `SearchPath::Index` to keep the
//!   HNSW paths exercised;
//! * **ours, index path**: the same call with `SearchPath::Index` for every class (iterative
//!   HNSW, `strict_order`): what the exact path costs and buys at each size.
//!
//! recall@4 = |result ∩ exact| / 4, averaged. Ours' latencies include taking the pooled
//! connection and the tenant `BEGIN` (pipelined with its first statement), not the rollback;
//! the naive latency is its query alone.

mod dataset;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use farmops::{
    db::{Db, Type},
    documents::vector_text,
    embed::OfflineEmbedder,
    rag::{EXACT_LIMIT, PgRetriever, SearchPath},
    testing,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

use self::dataset::{DIM, FULL, SHORT, dataset, model, parse_vector, perturbed, sample};
use crate::{
    Mode,
    stats::{ms, percentile},
};

const K: usize = 4;

const TRUTH_SQL: &str = "SELECT document_id, chunk_index FROM embeddings
  WHERE farm_id IN ($1, global_farm_id())
  ORDER BY embedding <=> $2::text::vector, id LIMIT $3";

const STEER_SQL: &str = "SELECT set_config('hnsw.iterative_scan', 'off', true),
        set_config('hnsw.ef_search', '40', true),
        set_config('enable_bitmapscan', 'off', true),
        set_config('enable_seqscan', 'off', true),
        set_config('enable_sort', 'off', true)";

const NAIVE_SQL: &str = "SELECT document_id, chunk_index FROM embeddings
  WHERE farm_id IN ($1, global_farm_id())
  ORDER BY embedding <=> $2::text::vector LIMIT $3";

fn sources(rows: &[tokio_postgres::Row]) -> Vec<String> {
    rows.iter()
        .map(|r| format!("document:{}#{}", r.get::<_, Uuid>(0), r.get::<_, i32>(1)))
        .collect()
}

fn recall(found: &[String], truth: &[String]) -> f64 {
    let truth: HashSet<&String> = truth.iter().collect();
    let hit = found.iter().filter(|s| truth.contains(s)).count();
    hit as f64 / truth.len().max(1) as f64
}

#[derive(Default)]
struct Class {
    farms: usize,
    visible: (i64, i64),
    path: String,
    naive_recall: Vec<f64>,
    naive_rows: Vec<usize>,
    ours_recall: Vec<f64>,
    index_recall: Vec<f64>,
    exact: Vec<Duration>,
    naive: Vec<Duration>,
    ours: Vec<Duration>,
    index: Vec<Duration>,
    /// (naive, ours, index path) recall per query kind: own rows, global rows, random.
    by_kind: [[Vec<f64>; 3]; 3],
}

const KINDS: [&str; 3] = [
    "near the farm's own rows",
    "near global rows",
    "new point of a random topic",
];

pub async fn run(mode: &Mode, short: bool) -> Result<()> {
    let spec = if short { &SHORT } else { &FULL };
    println!("## 3. Retrieval: recall@{K} and latency, naive HNSW + WHERE vs ours\n");
    let data = dataset(spec).await?;
    let farm_count = spec.large.len() + spec.medium + spec.small;
    if let Some((load_s, index_s)) = data.load {
        println!(
            "data set: {} embeddings x {DIM} dims over {farm_count} farms + {} global rows; \
             COPY load {load_s:.1} s, HNSW build {index_s:.1} s{}\n",
            spec.rows,
            data.global_rows,
            if data.cached {
                " (measured when loaded; reused from the cache)"
            } else {
                ""
            }
        );
    }

    let su = testing::admin_client(&data.name).await?;
    // ground truth: no index scans (HNSW is one), so every visible row is sorted
    su.batch_execute("SET enable_indexscan = off").await?;
    let app = Db::for_url(&testing::url(
        "farmops_app",
        testing::APP_PASSWORD,
        &data.name,
    ))?;
    let retriever = PgRetriever {
        embedder: std::sync::Arc::new(OfflineEmbedder::default()),
    };

    let farms = su
        .query_typed(
            "SELECT f.id, f.name, (SELECT count(*) FROM embeddings e WHERE e.farm_id = f.id)
               FROM farms f WHERE f.name LIKE 'bench-%' ORDER BY f.name",
            &[],
        )
        .await?;
    let mut rng = StdRng::seed_from_u64(spec.seed ^ 0x5eed);
    let (map, centres) = model(spec);
    let k = K as i64;
    let mut table = Vec::new();
    for class in ["small", "medium", "large"] {
        let members: Vec<(Uuid, i64)> = farms
            .iter()
            .filter(|r| r.get::<_, &str>(1).starts_with(&format!("bench-{class}-")))
            .map(|r| (r.get(0), r.get(2)))
            .collect();
        let picked: Vec<(Uuid, i64)> = if class == "large" {
            members.clone()
        } else {
            let n = spec.farms_per_class.min(members.len());
            (0..n).map(|i| members[i * members.len() / n]).collect()
        };
        let path = if class == "large" && spec.force_index_for_large {
            SearchPath::Index
        } else {
            SearchPath::Auto
        };
        let mut c = Class {
            farms: picked.len(),
            visible: (i64::MAX, 0),
            ..Class::default()
        };
        let mut queries: Vec<(Uuid, usize, Vec<f32>)> = Vec::new();
        for &(farm, own) in &picked {
            let visible = own + data.global_rows;
            c.visible = (c.visible.0.min(visible), c.visible.1.max(visible));
            let n = spec.queries_per_farm;
            let (n_own, n_global) = (n / 2, n / 4);
            let own_rows = su
                .query_typed(
                    "SELECT embedding::text FROM embeddings WHERE farm_id = $1 ORDER BY id LIMIT $2",
                    &[(&farm, Type::UUID), (&(n_own as i64), Type::INT8)],
                )
                .await?;
            let offset = rng.random_range(0..data.global_rows.max(1));
            let global = su
                .query_typed(
                    "SELECT embedding::text FROM embeddings WHERE farm_id = global_farm_id()
                      ORDER BY id OFFSET $1 LIMIT $2",
                    &[(&offset, Type::INT8), (&(n_global as i64), Type::INT8)],
                )
                .await?;
            let mut stored = Vec::new();
            for r in &own_rows {
                stored.push((0, parse_vector(r.get(0))?));
            }
            for r in &global {
                stored.push((1, parse_vector(r.get(0))?));
            }
            // small farms hold fewer rows than queries: cycle through them
            for i in 0..(n - n / 4) {
                if stored.is_empty() {
                    break;
                }
                let (kind, row) = &stored[i % stored.len()];
                queries.push((farm, *kind, perturbed(&mut rng, row)));
            }
            for _ in 0..n / 4 {
                // a new question on a random topic
                let mut v = vec![0f32; DIM];
                let topic = rng.random_range(0..spec.clusters);
                sample(&mut rng, &map, &centres, topic, &mut v);
                queries.push((farm, 2, v));
            }
        }
        // ours searches the farm's own rows and the global base separately (rag module doc)
        let own = (
            c.visible.0 - data.global_rows,
            c.visible.1 - data.global_rows,
        );
        let farm_part = match path {
            SearchPath::Index => "HNSW (forced)",
            _ if own.0 > EXACT_LIMIT => "HNSW",
            _ if own.1 <= EXACT_LIMIT => "exact",
            _ => "mixed",
        };
        let global_part = match path {
            SearchPath::Index => "HNSW (forced)",
            _ if data.global_rows > EXACT_LIMIT => "HNSW",
            _ => "exact",
        };
        c.path = format!("farm {farm_part} + global {global_part}");
        // one warm-up pass, then `reps` measured passes (recall from the first)
        for pass in 0..=mode.reps {
            for (farm, kind, v) in &queries {
                let q = vector_text(v);
                let start = Instant::now();
                let truth = sources(
                    &su.query_typed(
                        TRUTH_SQL,
                        &[(farm, Type::UUID), (&q, Type::TEXT), (&k, Type::INT8)],
                    )
                    .await?,
                );
                let exact_t = start.elapsed();

                let tx = app.tenant(*farm).await?;
                tx.query(STEER_SQL, &[]).await?;
                let start = Instant::now();
                let naive = sources(
                    &tx.query(
                        NAIVE_SQL,
                        &[(farm, Type::UUID), (&q, Type::TEXT), (&k, Type::INT8)],
                    )
                    .await?,
                );
                let naive_t = start.elapsed();
                tx.rollback().await?;

                let start = Instant::now();
                let tx = app.tenant(*farm).await?;
                let ours: Vec<String> = retriever
                    .retrieve_via(&tx, v, K, path)
                    .await?
                    .into_iter()
                    .map(|p| p.source)
                    .collect();
                let ours_t = start.elapsed();
                tx.rollback().await?;

                let start = Instant::now();
                let tx = app.tenant(*farm).await?;
                let index: Vec<String> = retriever
                    .retrieve_via(&tx, v, K, SearchPath::Index)
                    .await?
                    .into_iter()
                    .map(|p| p.source)
                    .collect();
                let index_t = start.elapsed();
                tx.rollback().await?;

                if pass == 0 {
                    continue;
                }
                if pass == 1 {
                    if truth.len() != K {
                        bail!("ground truth has {} rows, expected {K}", truth.len());
                    }
                    c.naive_recall.push(recall(&naive, &truth));
                    c.naive_rows.push(naive.len());
                    c.ours_recall.push(recall(&ours, &truth));
                    c.index_recall.push(recall(&index, &truth));
                    for (m, found) in [&naive, &ours, &index].into_iter().enumerate() {
                        c.by_kind[m][*kind].push(recall(found, &truth));
                    }
                }
                c.exact.push(exact_t);
                c.naive.push(naive_t);
                c.ours.push(ours_t);
                c.index.push(index_t);
            }
        }
        table.push((class, c));
    }
    app.close();

    println!(
        "| size class | farms | rows visible | ours' path | naive recall@{K} (rows returned) | ours recall@{K} | exact p50 | naive p50 | ours p50 | ours p99 | exact/ours | ours, index path: recall@{K} / p50 | target (ours: recall >= 0.99, p50 < 10 ms) |"
    );
    println!("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut kinds = String::new();
    for (class, mut c) in table {
        for (kind, name) in KINDS.iter().enumerate() {
            let r = |m: usize| {
                let v = &c.by_kind[m][kind];
                format!(
                    "{:.3} ({})",
                    v.iter().sum::<f64>() / v.len().max(1) as f64,
                    v.len()
                )
            };
            kinds.push_str(&format!(
                "| {class} | {name} | {} | {} | {} |\n",
                r(0),
                r(1),
                r(2)
            ));
        }
        for v in [&mut c.exact, &mut c.naive, &mut c.ours, &mut c.index] {
            v.sort();
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let naive_recall = mean(&c.naive_recall);
        let ours_recall = mean(&c.ours_recall);
        let index_recall = mean(&c.index_recall);
        let index50 = ms(percentile(&c.index, 50.0));
        let naive_rows =
            c.naive_rows.iter().sum::<usize>() as f64 / c.naive_rows.len().max(1) as f64;
        let (exact50, naive50, ours50, ours99) = (
            ms(percentile(&c.exact, 50.0)),
            ms(percentile(&c.naive, 50.0)),
            ms(percentile(&c.ours, 50.0)),
            ms(percentile(&c.ours, 99.0)),
        );
        let met = ours_recall >= 0.99 && ours50 < 10.0;
        println!(
            "| {class} | {} | {}-{} | {} | {naive_recall:.3} ({naive_rows:.1} of {K}) | {ours_recall:.3} | {exact50:.2} ms | {naive50:.2} ms | {ours50:.2} ms | {ours99:.2} ms | {:.1}x | {index_recall:.3} / {index50:.2} ms | {} |",
            c.farms,
            c.visible.0,
            c.visible.1,
            c.path,
            exact50 / ours50.max(1e-9),
            if met { "met" } else { "missed" }
        );
    }
    println!(
        "\nrecall@{K} by query kind (queries):\n\n| size class | query | naive | ours | ours, index path |\n|---|---|---:|---:|---:|\n{kinds}"
    );
    println!(
        "{} queries per farm: perturbed copies of the farm's own rows and of global rows, and new points of random topics (about 2:1:1; a farm with fewer rows cycles through them); latencies over {} measured pass(es) after a warm-up.\n",
        spec.queries_per_farm, mode.reps
    );
    Ok(())
}
