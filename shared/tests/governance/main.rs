//! Integration tests of the governance core against a real PostgreSQL (one database per test).

mod credits;
mod drafts;
mod invariants;
