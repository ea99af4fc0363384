//! The retrieval bench's data set: its two sizes ([`FULL`], [`SHORT`]), the generative model
//! of its vectors, and the database that holds it (loaded once with binary `COPY`, then reused
//! while its parameters match). See the parent module for the design.

// The generator's f64 -> f32 vectors and the binary COPY's i32/i16 field sizes are casts of
// values bounded by the data set's constants (sizes, DIM): nothing to truncate.
#![allow(clippy::cast_possible_truncation)]

use std::{io::Cursor, time::Instant};

use anyhow::{Context, Result, bail};
use farmops::{
    db::{Type, migrate},
    testing,
};
use futures::SinkExt;
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

pub(super) const DIM: usize = farmops::embed::DIMENSIONS;
const GLOBAL: Uuid = Uuid::nil();

pub(super) struct Spec {
    pub(super) label: &'static str,
    pub(super) rows: usize,
    pub(super) large: &'static [usize],
    pub(super) medium: usize,
    pub(super) medium_range: (usize, usize),
    pub(super) small: usize,
    pub(super) small_max: usize,
    pub(super) clusters: usize,
    /// Topics a medium or small farm writes about (large farms: 8x as many).
    pub(super) farm_topics: usize,
    pub(super) seed: u64,
    /// Farms measured per class (all large ones).
    pub(super) farms_per_class: usize,
    pub(super) queries_per_farm: usize,
    /// Below `EXACT_LIMIT` everywhere (short mode): force the index path for the large class.
    pub(super) force_index_for_large: bool,
}

pub(super) const FULL: Spec = Spec {
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

pub(super) const SHORT: Spec = Spec {
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
pub(super) fn model(spec: &Spec) -> (Vec<f32>, Vec<f32>) {
    let mut rng = StdRng::seed_from_u64(spec.seed ^ 0x0de1);
    let mut map = vec![0f32; DIM * LATENT];
    gauss(&mut rng, &mut map, 1.0 / (LATENT as f32).sqrt());
    let mut centres = vec![0f32; spec.clusters * LATENT];
    gauss(&mut rng, &mut centres, 1.0);
    (map, centres)
}

/// A new point of `topic`: centre + spread in latent space, mapped, plus isotropic noise.
pub(super) fn sample(
    rng: &mut StdRng,
    map: &[f32],
    centres: &[f32],
    topic: usize,
    out: &mut [f32],
) {
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

pub(super) struct Dataset {
    pub(super) name: String,
    pub(super) global_rows: i64,
    pub(super) load: Option<(f64, f64)>,
    pub(super) cached: bool,
}

/// The bench database with this spec's data set, loading it unless a previous run did.
pub(super) async fn dataset(spec: &Spec) -> Result<Dataset> {
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

pub(super) fn parse_vector(text: &str) -> Result<Vec<f32>> {
    text.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|x| x.parse::<f32>().context("vector text"))
        .collect()
}

pub(super) fn perturbed(rng: &mut StdRng, v: &[f32]) -> Vec<f32> {
    let mut v = v.to_vec();
    add_noise(rng, &mut v, QUERY_NOISE);
    v
}
