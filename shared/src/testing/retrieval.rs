//! `PgRetriever`, remembering every passage it served (`"<source> <content>"`), for tests that
//! check what a chat turn was shown.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::{
    db::TenantTx,
    embed::Embedder,
    rag::{Passage, PgRetriever, Retriever},
};

pub struct ServedPassages {
    inner: PgRetriever,
    pub served: Mutex<Vec<String>>,
}

impl ServedPassages {
    pub fn new(embedder: Arc<dyn Embedder>) -> ServedPassages {
        ServedPassages {
            inner: PgRetriever { embedder },
            served: Mutex::new(Vec::new()),
        }
    }

    /// What was served so far, emptied.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.served.lock().unwrap())
    }
}

#[async_trait]
impl Retriever for ServedPassages {
    async fn retrieve(&self, tx: &TenantTx, query: &str, k: usize) -> crate::Result<Vec<Passage>> {
        let passages = self.inner.retrieve(tx, query, k).await?;
        self.served.lock().unwrap().extend(
            passages
                .iter()
                .map(|p| format!("{} {}", p.source, p.content)),
        );
        Ok(passages)
    }
}
