//! The handler under database faults (issue 20): the pool's backends killed mid-request (what
//! a restart does to every connection) and a database that cannot be reached both answer 503
//! `database_unavailable` with `Retry-After`, never 500 and never a partial write; the same
//! state (no cold start) serves the next request once the database is back.

use confirm_draft::{State, handle};
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

use crate::{R, fixture};

const APP_NAME: &str = "confirm-draft-faults";

/// POSTs a confirm; checks the response against the document and, for a 503, its shape.
async fn confirm(state: &State, path: &str) -> u16 {
    let res = handle(state, apigw_request("POST", path, Some("owner"), &[], None)).await;
    assert_conforms_path("POST", path, &res);
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
        let draft = f
            .draft(
                RecordType::Mortality,
                json!({"count": 1, "location": "pen 2"}),
            )
            .await?;
        let path = format!("/farms/{}/drafts/{draft}/confirm", f.farm);
        let status = confirm(&state, &path).await;
        assert!(matches!(status, 200 | 503), "request {i}: {status}");
        answered.push((draft, status));
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
    // never a partial write: a draft is confirmed exactly when its record exists
    let owner = f.db.owner_client().await?;
    for (draft, status) in &answered {
        let row = owner
            .query_one(
                "SELECT d.status, (SELECT count(*) FROM mortality_events m WHERE m.draft_id = d.id)
                   FROM assistant_drafts d WHERE d.id = $1",
                &[draft],
            )
            .await?;
        let (s, records): (String, i64) = (row.get(0), row.get(1));
        assert_eq!(records, i64::from(s == "confirmed"), "draft {draft}: {s}");
        if *status == 200 {
            assert_eq!(s, "confirmed");
        }
    }
    // the database is back: the same state (no cold start) confirms what the 503s left
    for (draft, _) in unavailable {
        let path = format!("/farms/{}/drafts/{draft}/confirm", f.farm);
        let status = confirm(&state, &path).await;
        assert!(matches!(status, 200 | 409), "after the faults: {status}");
        assert_eq!(f.draft_status(*draft).await?, "confirmed");
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
    let draft = f
        .draft(
            RecordType::Mortality,
            json!({"count": 1, "location": "pen 2"}),
        )
        .await?;
    let path = format!("/farms/{}/drafts/{draft}/confirm", f.farm);
    assert_eq!(confirm(&state, &path).await, 503);
    assert_eq!(f.draft_status(draft).await?, "pending");
    Ok(())
}
