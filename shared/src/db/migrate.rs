//! The embedded migration runner: applies `migrations/*.sql` in name order, each in its own
//! transaction, once. Run it as the owner role. Safe to run concurrently (advisory lock) and
//! repeatedly (applied versions are skipped); an applied file whose text changed is refused.

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::error::{Error, Result};

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

const LOCK_KEY: i64 = 0x0046_4152_4d4f_5053; // "FARMOPS"

pub fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// A fingerprint of the whole migration set (tests name their template database by it).
pub fn fingerprint() -> String {
    let mut hasher = Sha256::new();
    for (version, sql) in MIGRATIONS {
        hasher.update(version.as_bytes());
        hasher.update(sql.as_bytes());
    }
    hex::encode(hasher.finalize())[..16].to_string()
}

/// Applies every pending migration; returns the versions it applied.
pub async fn migrate(client: &Client) -> Result<Vec<&'static str>> {
    migrate_where(client, |_| true).await
}

/// Applies the pending migrations named before `version` only: a database as it stood before
/// that migration, for tests of what the migration does to existing rows.
#[cfg(feature = "testing")]
pub async fn migrate_before(client: &Client, version: &str) -> Result<Vec<&'static str>> {
    migrate_where(client, |v| v < version).await
}

async fn migrate_where(
    client: &Client,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<&'static str>> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
               version    text PRIMARY KEY,
               checksum   text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    client
        .batch_execute(&format!("SELECT pg_advisory_lock({LOCK_KEY})"))
        .await?;
    let result = apply_pending(client, wanted).await;
    let unlock = client
        .batch_execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))
        .await;
    let applied = result?;
    unlock?;
    Ok(applied)
}

async fn apply_pending(
    client: &Client,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<&'static str>> {
    let rows = client
        .query_typed("SELECT version, checksum FROM schema_migrations", &[])
        .await?;
    let done: std::collections::HashMap<String, String> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut applied = Vec::new();
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| wanted(v)) {
        let sum = checksum(sql);
        match done.get(*version) {
            Some(existing) if *existing == sum => continue,
            Some(_) => {
                return Err(Error::unexpected(format!(
                    "migration {version} was changed after it was applied; add a new migration instead"
                )));
            }
            None => {}
        }
        client.batch_execute("BEGIN").await?;
        let step = async {
            client.batch_execute(sql).await?;
            client
                .query_typed(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    &[
                        (version, tokio_postgres::types::Type::TEXT),
                        (&sum, tokio_postgres::types::Type::TEXT),
                    ],
                )
                .await?;
            client.batch_execute("COMMIT").await
        };
        if let Err(e) = step.await {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(Error::unexpected(format!(
                "migration {version} failed: {}",
                describe(&e)
            )));
        }
        tracing::info!(version, "applied migration");
        applied.push(*version);
    }
    Ok(applied)
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
