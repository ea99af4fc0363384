//! The writes under database faults (issue 20): the pool's backends killed mid-request and a
//! database that cannot be reached both answer 503 `database_unavailable` with `Retry-After`,
//! never 500 and never a partial write (a member is added exactly when the farm's event log
//! says so: one transaction); the same state (no cold start) serves the next request once the
//! database is back.

use anyhow::Result;
use farmops::testing::{
    APP_PASSWORD,
    faults::{Killer, pool, unreachable_url},
};
use farmops_http::testing::check_unavailable;
use serde_json::json;

use super::*;

const APP_NAME: &str = "farm-faults";

/// `PUT /farms/{farm}/members/{member}` as `owner-f`; checks the answer against the document
/// and, for a 503, its shape.
async fn add(state: &farm::State, farm: Uuid, member: &str) -> u16 {
    let path = format!("/farms/{farm}/members/{member}");
    let body = json!({"role": "worker"}).to_string();
    let req = apigw_request(
        "PUT",
        &path,
        Some("owner-f"),
        &[("content-type", "application/json")],
        Some(&body),
    );
    let res = farm::handle(state, req).await;
    assert_conforms_path("PUT", &path, &res);
    check_unavailable(&res)
}

/// The member's row and their `member_added` events.
async fn added(db: &TestDb, farm: Uuid, member: &str) -> Result<(i64, i64)> {
    let tx = db.app.tenant(farm).await?;
    let row = tx
        .query_one(
            "SELECT (SELECT count(*) FROM farm_members WHERE user_id = $1),
                    (SELECT count(*) FROM farm_events WHERE kind = 'member_added' AND subject = $1)",
            &[(&member, Type::TEXT)],
        )
        .await?;
    tx.commit().await?;
    Ok((row.get(0), row.get(1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_answer_503_and_the_next_request_succeeds() -> Result<()> {
    let db = TestDb::new().await?;
    let farm = staffed_farm(&db, "f", 0).await?;
    let state = farm::State {
        db: pool(&db.app_url(), Some(APP_NAME))?,
        identity: IdentitySource::default(),
    };
    let killer = Killer::start(&db.name, APP_NAME).await?;
    let mut answered = Vec::new();
    for i in 0..200 {
        // every other request runs unharmed, however slow the machine
        killer.arm(i % 2 == 0);
        let member = format!("hand-{i}");
        let status = add(&state, farm, &member).await;
        assert!(matches!(status, 200 | 503), "request {i}: {status}");
        answered.push((member, status));
        let n = |s| answered.iter().filter(|a| a.1 == s).count();
        if n(503) >= 5 && n(200) >= 5 {
            break;
        }
    }
    let killed = killer.stop().await?;
    let unavailable: Vec<_> = answered.iter().filter(|a| a.1 == 503).collect();
    assert!(
        !unavailable.is_empty() && killed > 0,
        "no request met a killed connection ({killed} killed): {answered:?}"
    );
    // never a partial write: a member exactly when its event, and every 200 is there
    for (member, status) in &answered {
        let (rows, events) = added(&db, farm, member).await?;
        assert_eq!(rows, events, "{member}");
        if *status == 200 {
            assert_eq!(rows, 1, "{member}");
        }
    }
    // the database is back: the same state (no cold start) adds what the 503s left, once
    for (member, _) in unavailable {
        assert_eq!(add(&state, farm, member).await, 200);
        assert_eq!(added(&db, farm, member).await?, (1, 1), "{member}");
    }
    Ok(())
}

#[tokio::test]
async fn an_unreachable_database_answers_503_with_retry_after() -> Result<()> {
    let db = TestDb::new().await?;
    let farm = staffed_farm(&db, "f", 0).await?;
    let state = farm::State {
        db: pool(
            &unreachable_url("farmops_app", APP_PASSWORD, &db.name)?,
            None,
        )?,
        identity: IdentitySource::default(),
    };
    assert_eq!(add(&state, farm, "hand").await, 503);
    assert_eq!(added(&db, farm, "hand").await?, (0, 0), "nothing written");
    Ok(())
}
