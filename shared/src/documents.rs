//! Tenant knowledge: documents split into chunks and embedded, memory and summary embeddings,
//! and the reembed sweep.
//!
//! * **Chunks**: at most [`CHUNK_CHARS`] (800) characters, consecutive chunks overlapping by
//!   about [`CHUNK_OVERLAP`] (200) characters, cut on whitespace when there is any in the last
//!   half of the window. A chunk's `content_hash` is the hex SHA-256 of its text.
//! * **Add**: validate, check the role (worker and above), reserve the worst case (token
//!   estimate, feature `embed`) in its own committed transaction, call the embedder, then ONE
//!   transaction inserts the document, all its embeddings and settles the run with the actual
//!   tokens. A failed model call settles the run as failed (full refund) and writes nothing.
//! * **Delete**: one statement; the embeddings go with it (`ON DELETE CASCADE`) in the same
//!   transaction, so no search can see a chunk of a deleted document once it commits.
//! * **Reembed sweep**: per farm, batches of at most [`SWEEP_BATCH`] stale rows (model differs
//!   from the configured embedder, or content hash mismatch) locked `FOR UPDATE SKIP LOCKED` in
//!   the farm's tenant transaction; the batch's worst case is reserved (committed, feature
//!   `reembed`) before the model call; rows are updated and the run settled in the batch's
//!   transaction. Concurrent sweeps never take the same row; a crash rolls the batch back (the
//!   reservation is released by the expiry job), so the sweep is idempotent and resumable. A
//!   farm that cannot pay is skipped and reported, its rows untouched. Global-farm rows are
//!   re-embedded unmetered (the operator's cost). A batch holds two pool connections at once
//!   (its locking transaction and the committed reservation): the pool needs at least 2.
use uuid::Uuid;

mod embedding;
mod store;
mod sweep;
#[cfg(test)]
mod tests;
mod text;

pub use store::{AddedDocument, NewDocument, add_document, delete_document};
pub use sweep::{FarmSweep, reembed_farm, reembed_farm_as, sweep};
pub use text::{chunk, content_hash, vector_text};

/// `global_farm_id()` in SQL: the shared knowledge base every tenant reads.
pub const GLOBAL_FARM_ID: Uuid = Uuid::nil();
pub const CHUNK_CHARS: usize = 800;
pub const CHUNK_OVERLAP: usize = 200;
pub const SWEEP_BATCH: i64 = 64;
pub const BODY_MAX: usize = 200_000;
