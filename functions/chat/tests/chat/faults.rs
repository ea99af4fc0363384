//! Turns under database faults (issue 20): the pool's backends killed mid-turn (while the run
//! is held, while the turn is saved, between a statement and its COMMIT) and a database that
//! cannot be reached both answer 503 `database_unavailable` with `Retry-After`, never 500 and
//! never a partial write: a turn's drafts, records and messages exist exactly when its run
//! succeeded; a run the faults left open is returned by reconcile; the ledger holds throughout;
//! the same state (no cold start) serves the next turn once the database is back.

use std::sync::Arc;

use anyhow::Result;
use chat::State;
use farmops::{
    chat::ChatLimits,
    model::offline::OfflineChat,
    rag::NoRetrieval,
    testing::{
        APP_PASSWORD, TestDb,
        faults::{Killer, pool, unreachable_url},
    },
};
use farmops_http::{
    IdentitySource,
    testing::{apigw_request, body_json, check_unavailable, openapi::assert_conforms_path},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::*;

const APP_NAME: &str = "chat-faults";
const MESSAGE: &str = "3 birds died in pen 2 and we sold 20 crates of eggs for 45,000 naira";

fn state_on(db: farmops::db::Db) -> State {
    State {
        db,
        identity: IdentitySource::default(),
        model: Arc::new(OfflineChat),
        retriever: Arc::new(NoRetrieval),
        limits: ChatLimits::default(),
        alerts: None,
    }
}

/// One turn; checks the answer against the document and, for a 503, its shape.
async fn turn(state: &State, farm: Uuid, user: &str) -> (u16, Value) {
    let path = format!("/farms/{farm}/chat");
    let body = json!({ "message": MESSAGE }).to_string();
    let req = apigw_request(
        "POST",
        &path,
        Some(user),
        &[("content-type", "application/json")],
        Some(&body),
    );
    let res = chat::handle(state, req).await;
    assert_conforms_path("POST", &path, &res);
    (check_unavailable(&res), body_json(&res))
}

/// Per run: its status, and what of its turn was written (drafts, records, messages).
async fn runs(db: &TestDb, farm: Uuid) -> Result<Vec<(Uuid, String, i64)>> {
    let tx = db.app.tenant(farm).await?;
    let rows = tx
        .query(
            "SELECT r.id, r.status,
                    (SELECT count(*) FROM assistant_drafts d WHERE d.ai_run_id = r.id)
                  + (SELECT count(*) FROM mortality_events m WHERE m.ai_run_id = r.id)
                  + (SELECT count(*) FROM sales s WHERE s.ai_run_id = r.id)
                  + (SELECT count(*) FROM messages m WHERE m.ai_run_id = r.id)
                  + (SELECT count(*) FROM ai_evals e WHERE e.ai_run_id = r.id)
               FROM ai_runs r ORDER BY r.created_at",
            &[],
        )
        .await?;
    tx.commit().await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_answer_503_and_the_ledger_holds() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "f", 100_000).await?;
    let state = state_on(pool(&db.app_url(), Some(APP_NAME))?);
    let killer = Killer::start(&db.name, APP_NAME).await?;
    let mut answered = Vec::new();
    for i in 0..150 {
        // every other request runs unharmed, however slow the machine
        killer.arm(i % 2 == 0);
        let (status, body) = turn(&state, farm, &owner).await;
        assert!(matches!(status, 200 | 503), "turn {i}: {status} {body}");
        answered.push((status, body));
        let n = |s| answered.iter().filter(|a| a.0 == s).count();
        if n(503) >= 5 && n(200) >= 5 {
            break;
        }
    }
    let killed = killer.stop().await?;
    let n = |s| answered.iter().filter(|a| a.0 == s).count();
    assert!(
        n(503) > 0 && killed > 0,
        "no turn met a killed connection ({killed} killed, {} turns)",
        answered.len()
    );
    assert!(
        ledger_holds(&db, farm).await?,
        "the ledger after the faults"
    );

    // never a partial write: a run's turn is written exactly when the run succeeded, and
    // every 200 is a succeeded run with what it answered
    let before = runs(&db, farm).await?;
    for (id, status, written) in &before {
        match status.as_str() {
            "succeeded" => assert!(*written > 0, "run {id} succeeded with nothing written"),
            "failed" | "reserved" => {
                let evals = scalar(
                    &db,
                    farm,
                    &format!("SELECT count(*) FROM ai_evals WHERE ai_run_id = '{id}'"),
                )
                .await?;
                assert_eq!(
                    *written, evals,
                    "run {id} ({status}) wrote part of its turn"
                );
            }
            other => panic!("run {id}: {other}"),
        }
    }
    for (_, body) in answered.iter().filter(|a| a.0 == 200) {
        let run = body["run_id"].as_str().expect("run_id");
        let (status, _, _) = run_row(&db, farm, run).await?;
        assert_eq!(status, "succeeded", "{body}");
    }
    let succeeded = before.iter().filter(|r| r.1 == "succeeded").count() as i64;
    assert!(succeeded >= n(200) as i64);
    assert_eq!(
        scalar(&db, farm, "SELECT count(*) FROM messages").await?,
        2 * succeeded,
        "a question and its reply per succeeded turn"
    );

    // a run the faults left open is returned by reconcile, once; the ledger still holds
    let cutoff = chrono::Utc::now() + chrono::Duration::seconds(1);
    farmops::reconcile::run_at(&db.app, cutoff).await?;
    let after = runs(&db, farm).await?;
    assert!(after.iter().all(|r| r.1 != "reserved"), "{after:?}");
    assert!(ledger_holds(&db, farm).await?, "the ledger after reconcile");
    let charged = scalar(
        &db,
        farm,
        "SELECT coalesce(sum(credits_charged), 0)::bigint FROM ai_runs",
    )
    .await?;
    assert_eq!(balance(&db, farm).await?, 100_000 - charged);

    // the database is back: the same state (no cold start) serves a turn
    let (status, body) = turn(&state, farm, &owner).await;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_database_answers_503_with_retry_after() -> Result<()> {
    let db = TestDb::new().await?;
    let (farm, owner) = farm(&db, "f", 10_000).await?;
    let state = state_on(pool(
        &unreachable_url("farmops_app", APP_PASSWORD, &db.name)?,
        None,
    )?);
    let (status, body) = turn(&state, farm, &owner).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(written(&db, farm).await?, 0, "nothing written");
    assert_eq!(scalar(&db, farm, "SELECT count(*) FROM ai_runs").await?, 0);
    assert_eq!(balance(&db, farm).await?, 10_000);
    Ok(())
}
