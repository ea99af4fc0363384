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

use std::{
    collections::HashSet,
    io::Cursor,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use farmops::{
    db::{Db, Type, migrate},
    documents::vector_text,
    embed::OfflineEmbedder,
    rag::{EXACT_LIMIT, PgRetriever, SearchPath},
    testing,
};
use futures::SinkExt;
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

use crate::{
    Mode,
    stats::{ms, percentile},
};

const DIM: usize = 1024;
const K: usize = 4;
const GLOBAL: Uuid = Uuid::nil();

struct Spec {
    label: &'static str,
    rows: usize,
    large: &'static [usize],
    medium: usize,
    medium_range: (usize, usize),
    small: usize,
    small_max: usize,
    clusters: usize,
    /// Topics a medium or small farm writes about (large farms: 8x as many).
    farm_topics: usize,
    seed: u64,
    /// Farms measured per class (all large ones).
    farms_per_class: usize,
    queries_per_farm: usize,
    /// Below `EXACT_LIMIT` everywhere (short mode): force the index path for the large class.
    force_index_for_large: bool,
}

const FULL: Spec = Spec {
    label: "full",
    rows: 200_000,
    large: &[45_000, 30_000, 22_000],
    medium: 97,
    medium_range: (200, 2_000),
    small: 900,
    small_max: 40,
    clusters: 1_000,
    farm_topics: 24,
    seed: 20_261_129,
    farms_per_class: 8,
    queries_per_farm: 8,
    force_index_for_large: false,
};

const SHORT: Spec = Spec {
    label: "short",
    rows: 5_000,
    large: &[1_200, 900],
    medium: 8,
    medium_range: (100, 300),
    small: 40,
    small_max: 10,
    clusters: 100,
    farm_topics: 6,
    seed: 20_261_129,
    farms_per_class: 4,
    queries_per_farm: 4,
    force_index_for_large: true,
};

/// Latent dimensions; topic centres are N(0, 1) there, a row is its topic's centre plus
/// N(0, SPREAD²) per latent dimension.
const LATENT: usize = 32;
const SPREAD: f32 = 0.6;
/// Isotropic noise added in 1024 dimensions, relative to the row's norm.
const NOISE: f32 = 0.05;
/// Query perturbation of a stored row, relative to its norm.
const QUERY_NOISE: f32 = 0.1;

/// The fixed generative model: (latent -> 1024 map, row-major DIM x LATENT; topic centres).
fn model(spec: &Spec) -> (Vec<f32>, Vec<f32>) {
    let mut rng = StdRng::seed_from_u64(spec.seed ^ 0x0de1);
    let mut map = vec![0f32; DIM * LATENT];
    gauss(&mut rng, &mut map, 1.0 / (LATENT as f32).sqrt());
    let mut centres = vec![0f32; spec.clusters * LATENT];
    gauss(&mut rng, &mut centres, 1.0);
    (map, centres)
}

/// A new point of `topic`: centre + spread in latent space, mapped, plus isotropic noise.
fn sample(rng: &mut StdRng, map: &[f32], centres: &[f32], topic: usize, out: &mut [f32]) {
    let mut z = [0f32; LATENT];
    gauss(rng, &mut z, SPREAD);
    for (zi, c) in z
        .iter_mut()
        .zip(&centres[topic * LATENT..(topic + 1) * LATENT])
    {
        *zi += c;
    }
    for (o, row) in out.iter_mut().zip(map.chunks_exact(LATENT)) {
        *o = row.iter().zip(&z).map(|(a, b)| a * b).sum();
    }
    add_noise(rng, out, NOISE);
}

/// Adds isotropic Gaussian noise of norm about `relative` x the vector's norm.
fn add_noise(rng: &mut StdRng, v: &mut [f32], relative: f32) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut noise = vec![0f32; v.len()];
    gauss(rng, &mut noise, relative * norm / (v.len() as f32).sqrt());
    for (x, n) in v.iter_mut().zip(noise) {
        *x += n;
    }
}

impl Spec {
    fn params(&self) -> String {
        format!(
            "v2 latent={LATENT} spread={SPREAD} noise={NOISE} rows={} dim={DIM} large={:?} medium={}x{:?} small={}x1..{} clusters={} topics={} seed={}",
            self.rows,
            self.large,
            self.medium,
            self.medium_range,
            self.small,
            self.small_max,
            self.clusters,
            self.farm_topics,
            self.seed
        )
    }

    /// (name, rows, topic spread) per farm, global last with the remaining rows.
    fn farms(&self, rng: &mut StdRng) -> Result<Vec<(String, usize, usize)>> {
        let mut farms = Vec::new();
        for (i, &n) in self.large.iter().enumerate() {
            farms.push((format!("bench-large-{i:04}"), n, self.farm_topics * 8));
        }
        let (lo, hi) = (self.medium_range.0 as f64, self.medium_range.1 as f64);
        for i in 0..self.medium {
            // geometric spread from lo to hi
            let t = i as f64 / (self.medium.max(2) - 1) as f64;
            let n = (lo * (hi / lo).powf(t)).round() as usize;
            farms.push((format!("bench-medium-{i:04}"), n, self.farm_topics));
        }
        for i in 0..self.small {
            let n = rng.random_range(1..=self.small_max);
            farms.push((format!("bench-small-{i:04}"), n, self.farm_topics));
        }
        let used: usize = farms.iter().map(|f| f.1).sum();
        if used >= self.rows {
            bail!(
                "farm sizes ({used}) leave no global base in {} rows",
                self.rows
            );
        }
        farms.push(("__global__".into(), self.rows - used, self.clusters));
        Ok(farms)
    }
}

fn gauss(rng: &mut StdRng, out: &mut [f32], scale: f32) {
    for pair in out.chunks_mut(2) {
        let u1: f64 = rng.random::<f64>().max(1e-300);
        let u2: f64 = rng.random();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        pair[0] = (r * t.cos()) as f32 * scale;
        if let Some(x) = pair.get_mut(1) {
            *x = (r * t.sin()) as f32 * scale;
        }
    }
}

fn put_field(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

struct Dataset {
    name: String,
    global_rows: i64,
    load: Option<(f64, f64)>,
    cached: bool,
}

/// The bench database with this spec's data set, loading it unless a previous run did.
async fn dataset(spec: &Spec) -> Result<Dataset> {
    let name = format!(
        "farmops_bench_retrieval_{}_{}",
        spec.label,
        migrate::fingerprint()
    );
    // data sets of older migration sets are stale: drop them (they take disk)
    let admin = testing::admin_client("postgres").await?;
    let pattern = format!("farmops_bench_retrieval_{}_%", spec.label);
    for row in admin
        .query_typed(
            "SELECT datname FROM pg_database WHERE datname LIKE $1 AND datname <> $2",
            &[(&pattern, Type::TEXT), (&name, Type::TEXT)],
        )
        .await?
    {
        testing::drop_database(row.get(0)).await?;
    }
    let params = spec.params();
    if !testing::ensure_database(&name).await? {
        let su = testing::admin_client(&name).await?;
        let marker = su
            .query_typed(
                "SELECT params, load_seconds, index_seconds FROM bench_dataset
                  WHERE to_regclass('bench_dataset') IS NOT NULL",
                &[],
            )
            .await;
        if let Ok(rows) = marker
            && let Some(row) = rows.first()
            && row.get::<_, String>(0) == params
        {
            let global_rows = global_rows(&su).await?;
            return Ok(Dataset {
                name,
                global_rows,
                load: Some((row.get(1), row.get(2))),
                cached: true,
            });
        }
        drop(su);
        // an interrupted load or other parameters: start over
        testing::drop_database(&name).await?;
        testing::ensure_database(&name).await?;
    }
    let (load_s, index_s) = load(spec, &name).await?;
    let su = testing::admin_client(&name).await?;
    Ok(Dataset {
        global_rows: global_rows(&su).await?,
        name,
        load: Some((load_s, index_s)),
        cached: false,
    })
}

async fn global_rows(su: &tokio_postgres::Client) -> Result<i64> {
    Ok(su
        .query_one(
            "SELECT count(*) FROM embeddings WHERE farm_id = global_farm_id()",
            &[],
        )
        .await?
        .get(0))
}

/// Loads the data set; returns (load seconds, index build seconds).
async fn load(spec: &Spec, database: &str) -> Result<(f64, f64)> {
    let su = testing::admin_client(database).await?;
    // the migrations' own index definition, rebuilt after the load
    let indexdef: String = su
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'embeddings_hnsw'",
            &[],
        )
        .await
        .context("embeddings_hnsw from the migrations")?
        .get(0);
    su.batch_execute("DROP INDEX embeddings_hnsw").await?;

    let start = Instant::now();
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let farms = spec.farms(&mut rng)?;
    let (map, centres) = model(spec);

    let ids: Vec<Uuid> = farms
        .iter()
        .map(|(name, ..)| {
            if name == "__global__" {
                GLOBAL
            } else {
                Uuid::from_u128(rng.random())
            }
        })
        .collect();
    let docs: Vec<Uuid> = farms
        .iter()
        .map(|_| Uuid::from_u128(rng.random()))
        .collect();
    let names: Vec<String> = farms.iter().map(|f| f.0.clone()).collect();
    let (new_ids, new_names): (Vec<Uuid>, Vec<String>) = ids
        .iter()
        .zip(&names)
        .filter(|(id, _)| **id != GLOBAL)
        .map(|(id, n)| (*id, n.clone()))
        .unzip();
    su.query_typed(
        "INSERT INTO farms (id, name) SELECT * FROM unnest($1::uuid[], $2::text[])",
        &[(&new_ids, Type::UUID_ARRAY), (&new_names, Type::TEXT_ARRAY)],
    )
    .await?;
    su.query_typed(
        "INSERT INTO documents (farm_id, id, title, body, created_by)
         SELECT f, d, 'bench corpus', 'bench corpus', 'bench'
           FROM unnest($1::uuid[], $2::uuid[]) AS t(f, d)",
        &[(&ids, Type::UUID_ARRAY), (&docs, Type::UUID_ARRAY)],
    )
    .await?;

    let sink = su
        .copy_in(
            "COPY embeddings (farm_id, document_id, chunk_index, content, content_hash,
                              embedding_model, embedding) FROM STDIN (FORMAT binary)",
        )
        .await?;
    futures::pin_mut!(sink);
    let mut buf: Vec<u8> = Vec::with_capacity(10 << 20);
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
    let mut v = vec![0f32; DIM];
    for (f, (_, rows, spread)) in farms.iter().enumerate() {
        let base = rng.random_range(0..spec.clusters);
        for chunk in 0..*rows {
            let topic = (base + rng.random_range(0..*spread)) % spec.clusters;
            sample(&mut rng, &map, &centres, topic, &mut v);
            buf.extend_from_slice(&7i16.to_be_bytes());
            put_field(&mut buf, ids[f].as_bytes());
            put_field(&mut buf, docs[f].as_bytes());
            put_field(&mut buf, &(chunk as i32).to_be_bytes());
            let content = format!("bench passage {f}/{chunk} topic {topic}");
            put_field(&mut buf, content.as_bytes());
            put_field(&mut buf, format!("{f}/{chunk}").as_bytes());
            put_field(&mut buf, b"bench-clustered");
            buf.extend_from_slice(&((4 + 4 * DIM) as i32).to_be_bytes());
            buf.extend_from_slice(&(DIM as i16).to_be_bytes());
            buf.extend_from_slice(&0i16.to_be_bytes());
            for x in &v {
                buf.extend_from_slice(&x.to_be_bytes());
            }
            if buf.len() > (8 << 20) {
                sink.send(Cursor::new(std::mem::take(&mut buf))).await?;
                buf.reserve(10 << 20);
            }
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    sink.send(Cursor::new(buf)).await?;
    let copied = sink.as_mut().finish().await?;
    if copied != spec.rows as u64 {
        bail!("copied {copied} rows, expected {}", spec.rows);
    }
    let load_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    su.batch_execute("SET maintenance_work_mem = '3GB'; SET max_parallel_maintenance_workers = 2")
        .await?;
    su.batch_execute(&indexdef).await?;
    let index_s = start.elapsed().as_secs_f64();
    // visibility map for the index-only count, statistics for the planner
    su.batch_execute("VACUUM ANALYZE embeddings").await?;
    su.batch_execute(
        "CREATE TABLE bench_dataset (params text NOT NULL, load_seconds float8 NOT NULL,
                                     index_seconds float8 NOT NULL)",
    )
    .await?;
    su.query_typed(
        "INSERT INTO bench_dataset VALUES ($1, $2, $3)",
        &[
            (&spec.params(), Type::TEXT),
            (&load_s, Type::FLOAT8),
            (&index_s, Type::FLOAT8),
        ],
    )
    .await?;
    Ok((load_s, index_s))
}

fn parse_vector(text: &str) -> Result<Vec<f32>> {
    text.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|x| x.parse::<f32>().context("vector text"))
        .collect()
}

fn perturbed(rng: &mut StdRng, v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    add_noise(rng, &mut v, QUERY_NOISE);
    v
}

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
