//! Idempotent requests (`Idempotency-Key` header): a repeated request returns the first
//! response instead of doing the work again.
//!
//! The pattern (see `migrations/0040_idempotency_keys.sql`), all inside the request's ONE
//! transaction:
//!
//! 1. **claim** the key: `INSERT ... ON CONFLICT DO NOTHING` a row with the request's
//!    fingerprint and no response. A concurrent request with the same key blocks on the primary
//!    key until this transaction ends;
//! 2. if the key was already there, read the saved response: same fingerprint -> replay it;
//!    different fingerprint -> **422** `invalid_payload` (field `Idempotency-Key`: the key was
//!    used for a different request; 422 as in the IETF idempotency-key draft);
//! 3. else do the work and **save** the response in the claimed row; the caller commits.
//!
//! So exactly one of N concurrent requests with one key does the work; the others wait and
//! replay its response. If the work fails, the caller rolls back, the claim vanishes with it and
//! the next request with that key does the work afresh (refusals are not saved). Keys are scoped
//! to (farm, caller): nobody can replay someone else's response.

use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{
    db::{Param, TenantTx, Type},
    error::{Error, Result},
};

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// A well-formed key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// `None` when there is no header; 400 when it is malformed.
    pub fn parse(header: Option<&str>) -> Result<Option<Key>> {
        let Some(raw) = header else { return Ok(None) };
        let key = raw.trim();
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::BadRequest(
                "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
            ));
        }
        Ok(Some(Key(key.to_string())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What identifies "the same request": the route, its target and the request body (a JSON
/// value; serde_json orders object keys, so equal bodies give equal fingerprints).
pub fn fingerprint(route: &str, target: Uuid, body: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update(b"\n");
    hasher.update(target.as_bytes());
    hasher.update(b"\n");
    hasher.update(body.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

/// A response saved under a key.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub status: u16,
    pub body: Value,
}

/// The result of [`run_once`]: the response, and whether it was replayed from an earlier
/// request.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: u16,
    pub body: Value,
    pub replayed: bool,
}

enum Claim {
    Fresh,
    Saved(Saved),
}

async fn claim(tx: &TenantTx, user_id: &str, key: &Key, fingerprint: &str) -> Result<Claim> {
    // Two attempts: the row we conflicted with can only vanish if its transaction rolled back
    // between our INSERT and SELECT (then the key is free again) or the operator purged it.
    for _ in 0..2 {
        let inserted = tx
            .query_opt(
                "INSERT INTO idempotency_keys (farm_id, user_id, key, fingerprint)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
                &[
                    (&tx.farm_id(), Type::UUID),
                    (&user_id, Type::TEXT),
                    (&key.as_str(), Type::TEXT),
                    (&fingerprint, Type::TEXT),
                ],
            )
            .await?;
        if inserted.is_some() {
            return Ok(Claim::Fresh);
        }
        // A new statement, so a new snapshot: it sees the row the INSERT waited for.
        let saved = tx
            .query_opt(
                "SELECT fingerprint, status_code, response FROM idempotency_keys
                  WHERE farm_id = $1 AND user_id = $2 AND key = $3",
                &[
                    (&tx.farm_id(), Type::UUID),
                    (&user_id, Type::TEXT),
                    (&key.as_str(), Type::TEXT),
                ],
            )
            .await?;
        let Some(row) = saved else { continue };
        let (saved_fingerprint, status, body): (String, Option<i16>, Option<Value>) =
            (row.get(0), row.get(1), row.get(2));
        if saved_fingerprint != fingerprint {
            return Err(Error::invalid(
                "Idempotency-Key",
                "was already used for a different request",
            ));
        }
        return match (status, body) {
            (Some(status), Some(body)) => Ok(Claim::Saved(Saved {
                status: u16::try_from(status)
                    .map_err(|_| Error::unexpected("saved status out of range"))?,
                body,
            })),
            // The schema refuses to commit a claim without its response.
            _ => Err(Error::unexpected(
                "committed idempotency claim without response",
            )),
        };
    }
    Err(Error::unexpected(
        "idempotency key vanished twice while claiming",
    ))
}

const SAVE: &str = "UPDATE idempotency_keys SET status_code = $4, response = $5
                     WHERE farm_id = $1 AND user_id = $2 AND key = $3";

/// Finishes the request's transaction `tx` around `work`, once per key:
///
/// - no key: runs `work`, commits;
/// - a key seen before (same request): returns the saved response, changes nothing;
/// - a new key: claims it, runs `work`, then saves the response AND commits in one round trip.
///
/// Whenever `work` (or the claim) fails, the transaction is rolled back (claim included, so
/// the key stays free) and the error returned: a refusal is never saved.
pub async fn run_once(
    tx: TenantTx,
    user_id: &str,
    key: Option<&Key>,
    fingerprint: &str,
    work: impl AsyncFnOnce(&TenantTx) -> Result<(u16, Value)>,
) -> Result<Outcome> {
    let claimed = match key {
        None => None,
        Some(key) => match claim(&tx, user_id, key, fingerprint).await {
            Ok(Claim::Fresh) => Some(key),
            Ok(Claim::Saved(saved)) => {
                tx.rollback().await?;
                return Ok(Outcome {
                    status: saved.status,
                    body: saved.body,
                    replayed: true,
                });
            }
            Err(e) => return Err(rollback(tx, e).await),
        },
    };
    let (status, body) = match work(&tx).await {
        Ok(done) => done,
        Err(e) => return Err(rollback(tx, e).await),
    };
    match claimed {
        None => tx.commit().await?,
        Some(key) => {
            let code =
                i16::try_from(status).map_err(|_| Error::unexpected("status out of range"))?;
            let farm_id = tx.farm_id();
            let params: [Param<'_>; 5] = [
                (&farm_id, Type::UUID),
                (&user_id, Type::TEXT),
                (&key.0, Type::TEXT),
                (&code, Type::INT2),
                (&body, Type::JSONB),
            ];
            // Should the UPDATE miss its row, the commit fails: the schema refuses to commit
            // a claim without its response (`idempotency_keys_answered`).
            tx.commit_after(&[(SAVE, &params)]).await?;
        }
    }
    Ok(Outcome {
        status,
        body,
        replayed: false,
    })
}

/// Rolls back now (releasing row locks and the claim at once) and hands back the error.
async fn rollback(tx: TenantTx, error: Error) -> Error {
    if let Err(e) = tx.rollback().await {
        tracing::warn!(error = %e, "rollback after a refused request failed");
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_checked() {
        assert_eq!(Key::parse(None).unwrap(), None);
        assert_eq!(
            Key::parse(Some(" 3f2a-key ")).unwrap().unwrap().as_str(),
            "3f2a-key"
        );
        assert!(Key::parse(Some(&"k".repeat(255))).unwrap().is_some());
        for bad in ["", "   ", "has space", "tab\tkey", "ключ", &"k".repeat(256)] {
            assert_eq!(Key::parse(Some(bad)).unwrap_err().status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn fingerprints_separate_routes_targets_and_bodies() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let body = json!({"edits": {"count": 3}, "note": "ok"});
        let base = fingerprint("draft.confirm", a, &body);
        assert_eq!(base.len(), 64);
        assert_eq!(
            base,
            fingerprint(
                "draft.confirm",
                a,
                &json!({"note": "ok", "edits": {"count": 3}})
            ),
            "key order does not matter"
        );
        assert_ne!(base, fingerprint("draft.discard", a, &body));
        assert_ne!(base, fingerprint("draft.confirm", b, &body));
        assert_ne!(
            base,
            fingerprint(
                "draft.confirm",
                a,
                &json!({"edits": {"count": 4}, "note": "ok"})
            )
        );
    }
}
