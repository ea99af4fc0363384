//! Retrieval of knowledge for the model: the farm's own passages plus the `__global__` base.
//!
//! [`Retriever`] is what the chat turn asks for context; [`PgRetriever`] is the pgvector-backed
//! implementation.
//!
//! ## Top k for every farm size
//!
//! `embeddings_hnsw` (HNSW, `vector_cosine_ops`, m = 16, ef_construction = 64) is one index
//! over every farm. A plain `ORDER BY embedding <=> q LIMIT k` with `WHERE farm_id IN (farm,
//! global)` filters AFTER the index scan: the scan yields its `ef_search` (40) nearest rows of
//! the whole table and the filter drops other farms' rows, so a small farm in a large table gets
//! fewer than k rows, or none (measured in `tests/governance/knowledge.rs`: 20,000 rows, a farm
//! with 5 + 3 global rows, the naive query returns 0 of 4).
//!
//! The remedy, chosen by measurement (`farmops-bench` section 3): search the two parts the
//! tenant sees separately, each for its own top k, and merge them (one statement, `UNION ALL`
//! of two bounded subqueries, then the k nearest):
//! * **a part with at most [`EXACT_LIMIT`] rows** (the farm's own rows, most farms; a small
//!   global base) is sorted exactly: it orders a fenced subquery's distance column, which the
//!   HNSW index cannot serve, so PostgreSQL reads the part through the btree `embeddings_farm`
//!   and sorts it, the TRUE top k by construction. About 3.5 µs a row here (1024 dimensions), so
//!   the limit keeps a part under ~7 ms.
//! * **a larger farm part**: HNSW over `embeddings_hnsw` with pgvector 0.8
//!   `hnsw.iterative_scan = strict_order` (the scan goes on past `ef_search` until k rows of the
//!   farm pass the filter, in distance order) and `hnsw.ef_search = max(100, 2k)`. Such a farm
//!   owns thousands of rows, so its neighbourhood in the graph is dense enough for HNSW's
//!   recall.
//! * **a larger global base**: HNSW over `embeddings_global_hnsw` (migration 0011), a partial
//!   index of the global rows only: an unfiltered search of exactly that part, so no filter
//!   throws away what the graph found, however many farms share the table.
//!
//! Settings are transaction-local (`set_config(.., true)`, never `SET`: RDS Proxy would pin
//! the connection). The planner must be steered onto an HNSW index: under the tenant policy it
//! underestimates the rows and a btree scan + sort looks cheaper, which is the exact sort again
//! (measured: 150-600 ms for 30,000-54,000 visible rows, and the HNSW scan never ran). So when
//! a part takes the index, `enable_bitmapscan`, `enable_seqscan` and `enable_sort` go off for
//! the search and back on right after it, pipelined with it in one round trip, so the rest of
//! the transaction plans normally.
//!
//! JIT compilation is off for the transaction: the steering makes the plan's cost look huge
//! (the disabled node types are charged `disable_cost`), which would otherwise trigger ~90 ms
//! of LLVM compilation for a sub-millisecond query (measured in section 3).
//!
//! Two round trips: the counts of both parts (each stopping at [`EXACT_LIMIT`] + 1 rows) with
//! the HNSW settings, then the search.

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use std::sync::Arc;

use tokio_postgres::types::Type;

use crate::{db::TenantTx, documents::vector_text, embed::Embedder, error::Result};

/// One retrieved passage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    /// The farm that owns it (the caller's farm or the global farm).
    pub farm_id: Uuid,
    /// Where it comes from, e.g. `document:<id>#<chunk>`, `memory:<id>`.
    pub source: String,
    pub content: String,
    /// Cosine distance to the query (smaller is closer).
    pub distance: f64,
}

#[async_trait]
pub trait Retriever: Send + Sync {
    /// The `k` passages nearest to `query` visible to the tenant of `tx`.
    async fn retrieve(&self, tx: &TenantTx, query: &str, k: usize) -> Result<Vec<Passage>>;
}

/// Rows of one part (the farm's own, or the global base) up to which that part is searched by
/// a brute-force exact sort; above it, by HNSW.
pub const EXACT_LIMIT: i64 = 2_000;

/// pgvector retrieval with an [`Embedder`] for the query text.
pub struct PgRetriever {
    pub embedder: Arc<dyn Embedder>,
}

/// Counts the two parts, each only up to `$3` = [`EXACT_LIMIT`] + 1 rows (enough to pick its
/// path, and bounded whatever the part's size), and sets the search's
/// transaction-local settings. `$3`: `'off'` when a part takes the HNSW path, which steers the
/// planner onto the index (see the module doc); restored by [`RESTORE_SQL`].
const PLAN_SQL: &str = "SELECT
        (SELECT count(*) FROM (SELECT 1 FROM embeddings WHERE farm_id = $1 LIMIT $3) f),
        (SELECT count(*) FROM (SELECT 1 FROM embeddings WHERE farm_id = global_farm_id() LIMIT $3) g),
        set_config('hnsw.iterative_scan', 'strict_order', true),
        set_config('hnsw.ef_search', $2::text, true),
        set_config('jit', 'off', true)";

const STEER_SQL: &str = "SELECT set_config('enable_bitmapscan', 'off', true),
        set_config('enable_seqscan', 'off', true),
        set_config('enable_sort', 'off', true)";

/// After a search that took the HNSW path, in the same round trip.
const RESTORE_SQL: &str = "SELECT set_config('enable_bitmapscan', 'on', true),
        set_config('enable_seqscan', 'on', true),
        set_config('enable_sort', 'on', true)";

const COLUMNS: &str = "farm_id, document_id, chunk_index, memory_id, conversation_id, content, \
        (embedding <=> $2::text::vector)::float8 AS distance, id";

/// One part's top k: `farm` is `$1` or `global_farm_id()`. The exact part sorts a fenced
/// subquery's `distance` column (`OFFSET 0`): an ordering no index can serve (so PostgreSQL
/// reads the part through the btree `embeddings_farm` and sorts it), with each row's distance
/// computed once. The index part orders by the operator itself, served by `embeddings_hnsw`
/// (the farm's part, iterative scan past the other farms' rows) or `embeddings_global_hnsw`
/// (the global part, migration 0011: a graph of the global rows only).
fn part_sql(farm: &str, exact: bool) -> String {
    if exact {
        format!(
            "(SELECT * FROM (SELECT {COLUMNS} FROM embeddings WHERE farm_id = {farm} OFFSET 0) p
              ORDER BY distance, id LIMIT $3)"
        )
    } else {
        format!(
            "(SELECT {COLUMNS} FROM embeddings WHERE farm_id = {farm}
              ORDER BY embedding <=> $2::text::vector LIMIT $3)"
        )
    }
}

/// Both parts merged: the k nearest of the farm's top k and the global top k.
fn search_sql(farm_exact: bool, global_exact: bool) -> String {
    format!(
        "SELECT farm_id, document_id, chunk_index, memory_id, conversation_id, content, distance
           FROM ({} UNION ALL {}) parts
          ORDER BY distance, id LIMIT $3",
        part_sql("$1", farm_exact),
        part_sql("global_farm_id()", global_exact)
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchPath {
    /// Per part: exact up to [`EXACT_LIMIT`] rows, HNSW above.
    Auto,
    Exact,
    Index,
}

/// Which search a part with `rows` rows gets under `path`: `true` = exact sort. Pure.
pub fn use_exact_path(path: SearchPath, rows: i64) -> bool {
    match path {
        SearchPath::Auto => rows <= EXACT_LIMIT,
        SearchPath::Exact => true,
        SearchPath::Index => false,
    }
}

impl PgRetriever {
    /// The search by a ready vector (tests and callers that already embedded the query).
    pub async fn retrieve_vector(
        &self,
        tx: &TenantTx,
        vector: &[f32],
        k: usize,
    ) -> Result<Vec<Passage>> {
        self.retrieve_via(tx, vector, k, SearchPath::Auto).await
    }

    /// [`retrieve_vector`](Self::retrieve_vector) with the path forced (benchmarks, tests).
    pub async fn retrieve_via(
        &self,
        tx: &TenantTx,
        vector: &[f32],
        k: usize,
        path: SearchPath,
    ) -> Result<Vec<Passage>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let farm_id = tx.farm_id();
        let k = k.min(1000) as i64;
        let ef = (2 * k).max(100).to_string();
        let enough = EXACT_LIMIT + 1;
        let counts = tx
            .query_one(
                PLAN_SQL,
                &[
                    (&farm_id, Type::UUID),
                    (&ef, Type::TEXT),
                    (&enough, Type::INT8),
                ],
            )
            .await?;
        let (farm_rows, global_rows): (i64, i64) = (counts.get(0), counts.get(1));
        let farm_exact = use_exact_path(path, farm_rows);
        let global_exact = use_exact_path(path, global_rows);
        let q = vector_text(vector);
        let params: [crate::db::Param<'_>; 3] =
            [(&farm_id, Type::UUID), (&q, Type::TEXT), (&k, Type::INT8)];
        let sql = search_sql(farm_exact, global_exact);
        let rows = if farm_exact && global_exact {
            tx.query(&sql, &params).await?
        } else {
            // steer, search, restore: one round trip (pipelined)
            let (steered, rows, restored) = futures::join!(
                tx.query(STEER_SQL, &[]),
                tx.query(&sql, &params),
                tx.query(RESTORE_SQL, &[])
            );
            steered?;
            restored?;
            rows?
        };
        Ok(rows
            .iter()
            .map(|r| {
                let source = match (
                    r.get::<_, Option<Uuid>>(1),
                    r.get::<_, Option<i32>>(2),
                    r.get::<_, Option<Uuid>>(3),
                    r.get::<_, Option<Uuid>>(4),
                ) {
                    (Some(d), Some(c), _, _) => format!("document:{d}#{c}"),
                    (_, _, Some(m), _) => format!("memory:{m}"),
                    (_, _, _, Some(c)) => format!("conversation:{c}"),
                    _ => "unknown".to_string(),
                };
                Passage {
                    farm_id: r.get(0),
                    source,
                    content: r.get(5),
                    distance: r.get(6),
                }
            })
            .collect())
    }
}

#[async_trait]
impl Retriever for PgRetriever {
    async fn retrieve(&self, tx: &TenantTx, query: &str, k: usize) -> Result<Vec<Passage>> {
        if k == 0 || query.trim().is_empty() {
            return Ok(Vec::new());
        }
        let embedded = self.embedder.embed(&[query.to_string()]).await?;
        let vector = embedded
            .vectors
            .first()
            .ok_or_else(|| crate::Error::ModelFailed("no query vector".into()))?;
        self.retrieve_vector(tx, vector, k).await
    }
}

/// Retrieves nothing (a deployment without knowledge, or tests that do not need it).
pub struct NoRetrieval;

#[async_trait]
impl Retriever for NoRetrieval {
    async fn retrieve(&self, _tx: &TenantTx, _query: &str, _k: usize) -> Result<Vec<Passage>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::{EXACT_LIMIT, SearchPath, use_exact_path};

    #[test]
    fn path_choice() {
        let cases = [
            (SearchPath::Auto, 0, true),
            (SearchPath::Auto, 8, true),
            (SearchPath::Auto, EXACT_LIMIT, true),
            (SearchPath::Auto, EXACT_LIMIT + 1, false),
            (SearchPath::Auto, 200_000, false),
            (SearchPath::Exact, 200_000, true),
            (SearchPath::Index, 3, false),
        ];
        for (path, rows, exact) in cases {
            assert_eq!(use_exact_path(path, rows), exact, "{path:?} {rows}");
        }
    }

    #[test]
    fn both_parts_are_bounded_and_merged() {
        let sql = super::search_sql(true, false);
        assert_eq!(sql.matches("LIMIT $3").count(), 3, "{sql}");
        let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("WHERE farm_id = $1 OFFSET 0) p ORDER BY distance, id LIMIT $3"),
            "{flat}"
        );
        assert!(
            flat.contains(
                "WHERE farm_id = global_farm_id() ORDER BY embedding <=> $2::text::vector LIMIT $3"
            ),
            "{flat}"
        );
    }
}
