//! Retrieval of knowledge for the model: the farm's own passages plus the `__global__` base.
//!
//! [`Retriever`] is what the chat turn asks for context; the pgvector-backed implementation
//! lives beside it.

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use crate::{db::TenantTx, error::Result};

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

/// Retrieves nothing (a deployment without knowledge, or tests that do not need it).
pub struct NoRetrieval;

#[async_trait]
impl Retriever for NoRetrieval {
    async fn retrieve(&self, _tx: &TenantTx, _query: &str, _k: usize) -> Result<Vec<Passage>> {
        Ok(Vec::new())
    }
}
