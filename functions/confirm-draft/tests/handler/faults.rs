//! The handler under database faults (issue 20): the pool's backends killed mid-request (what
//! a restart does to every connection) and a database that cannot be reached both answer 503
//! `database_unavailable` with `Retry-After`, never 500 and never a partial write; the same
//! state (no cold start) serves the next request once the database is back.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use confirm_draft::{State, handle};
use farmops::{
    config::DatabaseConfig,
    db::{Db, Tls, UrlPassword},
    http::IdentitySource,
    records::RecordType,
    testing::{admin_client, apigw_request, body_json, openapi::assert_conforms_path},
};
use serde_json::json;

use crate::{R, fixture};

const APP_NAME: &str = "confirm-draft-faults";

fn pool(url: &str) -> R<Db> {
    let mut config = DatabaseConfig::for_url(url);
    config.pool_size = 4;
    config.connect_timeout = Duration::from_secs(2);
    Ok(Db::connect(&config, Arc::new(UrlPassword), Tls::Disabled)?)
}

/// POSTs a confirm; checks the response against the document and, for a 503, its shape.
async fn confirm(state: &State, path: &str) -> u16 {
    let res = handle(state, apigw_request("POST", path, Some("owner"), &[], None)).await;
    assert_conforms_path("POST", path, &res);
    let status = res.status().as_u16();
    if status == 503 {
        assert_eq!(body_json(&res)["error"]["code"], "database_unavailable");
        let retry = res.headers().get("retry-after").expect("Retry-After");
        assert!(retry.to_str().unwrap().parse::<u64>().unwrap() >= 1);
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_answer_503_and_the_next_request_succeeds() -> R {
    let f = fixture().await?;
    let state = State {
        db: pool(&format!("{}?application_name={APP_NAME}", f.db.app_url()))?,
        identity: IdentitySource::default(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (admin, stop) = (admin_client(&f.db.name).await?, stop.clone());
        tokio::spawn(async move {
            let mut killed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // a backend mid-request: running a statement or between one and its COMMIT
                let rows = admin
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                          WHERE datname = current_database() AND application_name = $1
                            AND state <> 'idle'",
                        &[&APP_NAME],
                    )
                    .await
                    .expect("terminating");
                killed += rows.len() as u64;
                let pause = if rows.is_empty() { 1 } else { 40 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
            killed
        })
    };
    let mut answered = Vec::new();
    for i in 0..150 {
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
    stop.store(true, Ordering::Relaxed);
    let killed = killer.await?;
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
    // a port nobody listens on
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let state = State {
        db: pool(&format!(
            "postgres://farmops_app:farmops_app@127.0.0.1:{port}/{}",
            f.db.name
        ))?,
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
