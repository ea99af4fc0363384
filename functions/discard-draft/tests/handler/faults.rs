//! The handler under database faults (issue 20): the pool's backends killed mid-request and a
//! database that cannot be reached both answer 503 `database_unavailable` with `Retry-After`,
//! never 500 and never a partial write (a draft is discarded exactly when its idempotency key
//! holds the answer: one transaction); the same state (no cold start) serves the next request
//! once the database is back.

use discard_draft::{State, handle};
use farmops::{
    records::RecordType,
    testing::{
        APP_PASSWORD,
        faults::{Killer, pool, unreachable_url},
    },
};
use farmops_http::{
    IdentitySource,
    testing::{apigw_request, check_unavailable, openapi::assert_conforms_path},
};
use serde_json::json;
use uuid::Uuid;

use crate::{R, fixture};

const APP_NAME: &str = "discard-draft-faults";

/// POSTs a discard of `draft` with `key`; checks the answer against the document and, for a
/// 503, its shape.
async fn discard(state: &State, farm: Uuid, draft: Uuid, key: &str) -> u16 {
    let path = format!("/farms/{farm}/drafts/{draft}/discard");
    let req = apigw_request(
        "POST",
        &path,
        Some("worker"),
        &[("idempotency-key", key)],
        Some(r#"{"reason": "already logged"}"#),
    );
    let res = handle(state, req).await;
    assert_conforms_path("POST", &path, &res);
    check_unavailable(&res)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_answer_503_and_the_next_request_succeeds() -> R {
    let f = fixture().await?;
    let state = State {
        db: pool(&f.db.app_url(), Some(APP_NAME))?,
        identity: IdentitySource::default(),
    };
    let killer = Killer::start(&f.db.name, APP_NAME).await?;
    let mut answered = Vec::new();
    for i in 0..150 {
        // every other request runs unharmed, however slow the machine
        killer.arm(i % 2 == 0);
        let draft = f.draft(RecordType::Water, json!({"litres": 300})).await?;
        let key = format!("discard-{i}");
        let status = discard(&state, f.farm, draft, &key).await;
        assert!(matches!(status, 200 | 503), "request {i}: {status}");
        answered.push((draft, key, status));
        let n = |s| answered.iter().filter(|a| a.2 == s).count();
        if n(503) >= 5 && n(200) >= 5 {
            break;
        }
    }
    let killed = killer.stop().await?;
    let unavailable: Vec<_> = answered.iter().filter(|a| a.2 == 503).collect();
    assert!(
        !unavailable.is_empty() && killed > 0,
        "no request met a killed connection ({killed} killed): {answered:?}"
    );
    // never a partial write: a draft is discarded exactly when its key saved the answer
    let owner = f.db.owner_client().await?;
    for (draft, key, status) in &answered {
        let row = owner
            .query_one(
                "SELECT d.status,
                        (SELECT count(*) FROM idempotency_keys k
                          WHERE k.farm_id = d.farm_id AND k.key = $2 AND k.status_code = 200)
                   FROM assistant_drafts d WHERE d.id = $1",
                &[draft, key],
            )
            .await?;
        let (s, saved): (String, i64) = (row.get(0), row.get(1));
        assert_eq!(saved, i64::from(s == "discarded"), "draft {draft}: {s}");
        if *status == 200 {
            assert_eq!(s, "discarded");
        }
    }
    // the database is back: the same state (no cold start) retries what the 503s left, with
    // the same keys (a discard whose commit's answer was lost is replayed)
    for (draft, key, _) in unavailable {
        assert_eq!(discard(&state, f.farm, *draft, key).await, 200);
        assert_eq!(f.draft_status(*draft).await?, "discarded");
    }
    Ok(())
}

#[tokio::test]
async fn an_unreachable_database_answers_503_with_retry_after() -> R {
    let f = fixture().await?;
    let state = State {
        db: pool(
            &unreachable_url("farmops_app", APP_PASSWORD, &f.db.name)?,
            None,
        )?,
        identity: IdentitySource::default(),
    };
    let draft = f.draft(RecordType::Water, json!({"litres": 300})).await?;
    assert_eq!(discard(&state, f.farm, draft, "k1").await, 503);
    assert_eq!(f.draft_status(draft).await?, "pending");
    let owner = f.db.owner_client().await?;
    let keys: i64 = owner
        .query_one("SELECT count(*) FROM idempotency_keys", &[])
        .await?
        .get(0);
    assert_eq!(keys, 0, "nothing written");
    Ok(())
}
