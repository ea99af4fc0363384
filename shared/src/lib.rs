//! FarmOps governance core, shared by every Lambda of the workspace.
//!
//! Organised by domain: [`credits`] (reserve, settle, expire, pricing), [`autonomy`] (how far
//! the AI may act), [`records`] (what it may write, validated), [`drafts`] (what a human must
//! confirm), [`recommendations`] (advice a human approves), [`decisions`] (the one entry
//! point for confirm/discard/approve/reject, idempotent through [`idempotency`]),
//! [`membership`] (who may do what), [`farm`] (the app's API over a farm), [`payments`] (Paystack
//! top-ups: signed webhooks become paid credits), [`db`] (pool, tenant
//! transactions, migrations), [`clinical`] (the clinical-safety rules every reply,
//! recommendation and AI-written record passes), [`config`] and the one [`error::Error`] with
//! its HTTP status and code.
//!
//! No HTTP types: requests, responses and the Lambda runtime's error report are the
//! `farmops-http` crate's (`http/`), which every function links beside this one.
//!
//! The database enforces every invariant that matters (see `migrations/`); this crate is the
//! thin, tested layer over it.

pub mod autonomy;
pub mod aws;
pub mod chat;
pub mod clinical;
pub mod config;
pub mod credits;
pub mod db;
pub mod decisions;
pub mod documents;
pub mod drafts;
pub mod embed;
pub mod error;
pub mod evidence;
pub mod farm;
pub mod idempotency;
pub mod membership;
pub mod memory;
pub mod model;
pub mod payments;
pub mod rag;
pub mod recommendations;
pub mod reconcile;
pub mod records;
pub mod rfc3339;
pub mod status;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod tokens;

pub use error::{Error, Result};
