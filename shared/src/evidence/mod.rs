//! Evidence: the audit trail a farm owner or an auditor reads weeks later.
//!
//! A page of the farm's AI runs, newest first, with keyset pagination (an opaque cursor) and
//! filters; each run carries its ledger legs matched to it (reserved, charged, refunded,
//! expired), the drafts it created with their decisions, its recommendations, evals and
//! feedback. A page costs six statements whatever its size and however long the farm's
//! history (the page with every child; the farm's latest ledger checkpoint; the ledger rows
//! after it with the balance; the latest governance acts; the latest alerts; the evidence
//! chain's head and checkpoint), never one per run. Only `verify_chain=true` adds a pass over
//! the farm's whole chain ([`chain_status`]). Rendered as JSON, as a
//! self-contained HTML page ([`html`]) or as CSV ([`csv`]).

pub mod chain;
pub mod chain_status;
pub mod csv;
mod drafts;
pub mod export;
pub mod html;
pub mod kms;
mod ledger;
mod legs;
mod negotiate;
mod page;
mod query;
mod reads;
mod record;
pub mod signing;

pub use drafts::{DRAFT_LIST_LIMIT, DRAFT_STATUSES, list_drafts, parse_draft_status};
pub use ledger::{
    CREDIT_ENTRIES, CreditStatement, FarmTotals, LEDGER_SQL, LEDGER_STEER_SQL, LedgerEntry,
    credit_statement, farm_ledger,
};
pub use legs::{Leg, MatchedLegs, match_legs};
pub use negotiate::{Format, OFFERED, negotiate};
pub use page::{
    DraftEvidence, EvalEvidence, EvidencePage, FeedbackEvidence, PAGE_SQL, PageTotals,
    RecommendationEvidence, RunEvidence, evidence_page, page_totals,
};
pub use query::{Cursor, DEFAULT_LIMIT, EvidenceQuery, Filters, MAX_LIMIT};
pub use reads::{export_evidence, read_credits, read_drafts, read_evidence};
pub use record::{record_eval, record_feedback, record_recommendation};
