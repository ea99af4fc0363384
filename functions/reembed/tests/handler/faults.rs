//! The knowledge base under database faults (issue 20): a database that cannot be reached
//! answers 503 `database_unavailable` with `Retry-After` on every route, never 500, and
//! nothing is written (no document, no run, no credit spent); a document added while the pool's
//! backends are killed is stored whole or not at all, and the same state (no cold start) adds
//! the next one once the database is back.

use farmops::testing::{
    APP_PASSWORD,
    faults::{Killer, pool, unreachable_url},
};
use farmops_http::testing::{check_unavailable, openapi::assert_conforms_path};

use super::*;

const APP_NAME: &str = "reembed-faults";

/// Sends one request as `user`; checks the answer against the document and, for a 503, its
/// shape.
async fn send(state: &State, method: &str, path: &str, user: &str, body: Option<&str>) -> u16 {
    let res = handle(state, apigw_request(method, path, Some(user), &[], body)).await;
    assert_conforms_path(method, path, &res);
    check_unavailable(&res)
}

/// Documents, their embeddings, and the farm's balance.
async fn stored(db: &TestDb, farm: Uuid) -> R<(i64, i64, i64)> {
    let owner = db.owner_client().await?;
    let row = owner
        .query_one(
            "SELECT (SELECT count(*) FROM documents WHERE farm_id = $1),
                    (SELECT count(*) FROM embeddings WHERE farm_id = $1 AND document_id IS NOT NULL),
                    (SELECT credit_balance FROM farms WHERE id = $1)",
            &[&farm],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

#[tokio::test]
async fn an_unreachable_database_answers_503_with_retry_after() -> R {
    let (db, _, farm) = fixture().await?;
    let state = State {
        db: pool(
            &unreachable_url("farmops_app", APP_PASSWORD, &db.name)?,
            None,
        )?,
        identity: IdentitySource::default(),
        embedder: Arc::new(OfflineEmbedder::default()),
    };
    let body = json!({"title": "Irrigation", "body": "Water the tomatoes at dawn."}).to_string();
    let documents = format!("/farms/{farm}/documents");
    assert_eq!(
        send(&state, "POST", &documents, "worker", Some(&body)).await,
        503
    );
    let one = format!("{documents}/{}", Uuid::new_v4());
    assert_eq!(send(&state, "DELETE", &one, "manager", None).await, 503);
    let reembed = format!("/farms/{farm}/reembed");
    assert_eq!(send(&state, "POST", &reembed, "manager", None).await, 503);
    assert_eq!(stored(&db, farm).await?, (0, 0, 10_000), "nothing written");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_answer_503_and_the_next_request_succeeds() -> R {
    let (db, _, farm) = fixture().await?;
    let state = State {
        db: pool(&db.app_url(), Some(APP_NAME))?,
        identity: IdentitySource::default(),
        embedder: Arc::new(OfflineEmbedder::default()),
    };
    let documents = format!("/farms/{farm}/documents");
    let killer = Killer::start(&db.name, APP_NAME).await?;
    let mut answered = Vec::new();
    for i in 0..200 {
        // every other request runs unharmed, however slow the machine
        killer.arm(i % 2 == 0);
        let body = json!({"title": format!("Note {i}"), "body": format!("Water pen {i} at dawn.")})
            .to_string();
        let status = send(&state, "POST", &documents, "worker", Some(&body)).await;
        assert!(matches!(status, 201 | 503), "request {i}: {status}");
        answered.push(status);
        if answered.iter().filter(|s| **s == 503).count() >= 3 {
            break;
        }
    }
    let killed = killer.stop().await?;
    assert!(
        answered.contains(&503) && killed > 0,
        "no request met a killed connection ({killed} killed): {answered:?}"
    );
    // never a partial write: every stored document has its one chunk embedded
    let (docs, chunks, _) = stored(&db, farm).await?;
    assert!(docs >= answered.iter().filter(|s| **s == 201).count() as i64);
    assert_eq!(docs, chunks, "a document without its embedding");
    let tx = db.app.tenant(farm).await?;
    assert!(farmops::credits::audit_ledger(&tx).await?.holds);
    tx.commit().await?;
    // the database is back: the same state (no cold start) adds the next document
    let body = json!({"title": "After", "body": "The database is back."}).to_string();
    assert_eq!(
        send(&state, "POST", &documents, "worker", Some(&body)).await,
        201
    );
    Ok(())
}
