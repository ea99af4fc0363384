//! The reads under database faults (issue 20): a database that cannot be reached answers 503
//! `database_unavailable` with `Retry-After` on every kind of read, never 500; a read whose
//! connection is killed mid-request answers the same, and the same state (no cold start)
//! serves the next read once the database is back.

use farmops::testing::{
    APP_PASSWORD,
    faults::{Killer, pool, unreachable_url},
};
use farmops_http::testing::{check_unavailable, openapi::assert_conforms_path};

use super::*;

const APP_NAME: &str = "evidence-faults";

/// GETs `path` as `user`; checks the answer against the document and, for a 503, its shape.
async fn read(state: &State, path: &str, user: &str) -> u16 {
    let res = handle(state, apigw_request("GET", path, Some(user), &[], None)).await;
    assert_conforms_path("GET", path, &res);
    check_unavailable(&res)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_connection_answers_503_and_the_next_read_succeeds() -> Result<()> {
    let db = TestDb::new().await?;
    let h = scripted_history(&db).await?;
    let state = State {
        db: pool(&db.app_url(), Some(APP_NAME))?,
        identity: IdentitySource::default(),
    };
    let path = format!("/farms/{}/evidence", h.farm);
    assert_eq!(read(&state, &path, "alice").await, 200);
    let killer = Killer::start(&db.name, APP_NAME).await?;
    let mut answered = Vec::new();
    for i in 0..400 {
        let status = read(&state, &path, "alice").await;
        assert!(matches!(status, 200 | 503), "request {i}: {status}");
        answered.push(status);
        if status == 503 {
            break;
        }
    }
    let killed = killer.stop().await?;
    assert!(
        answered.contains(&503) && killed > 0,
        "no read met a killed connection ({killed} killed) in {} reads",
        answered.len()
    );
    // the database is back: the same state (no cold start) answers
    assert_eq!(read(&state, &path, "alice").await, 200);
    assert_eq!(
        read(&state, &format!("/farms/{}/drafts", h.farm), "wes").await,
        200
    );
    Ok(())
}

#[tokio::test]
async fn an_unreachable_database_answers_503_with_retry_after() -> Result<()> {
    let db = TestDb::new().await?;
    let farm = db.farm("Green Acres", 100).await?;
    db.member(farm, "alice", "owner").await?;
    let state = State {
        db: pool(
            &unreachable_url("farmops_app", APP_PASSWORD, &db.name)?,
            None,
        )?,
        identity: IdentitySource::default(),
    };
    for what in [
        "evidence",
        "credits",
        "drafts",
        "settings",
        "members",
        "records",
        "evidence/export",
    ] {
        let path = format!("/farms/{farm}/{what}");
        assert_eq!(read(&state, &path, "alice").await, 503, "{path}");
    }
    Ok(())
}
