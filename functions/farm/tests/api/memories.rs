//! Forgetting a memory: a chat turn through `PgRetriever` no longer retrieves it; forgetting
//! while the distill job writes memories leaves a consistent state.

use std::sync::Arc;

use anyhow::Result;
use chrono::Utc;
use farmops::{
    chat::{ChatDeps, ChatLimits, TurnRequest, run_turn},
    embed::OfflineEmbedder,
    memory::{
        distill::{self, DistillConfig, DistillState},
        extract::OfflineFactExtractor,
    },
    model::offline::OfflineChat,
    testing::retrieval::ServedPassages,
};
use serde_json::json;

use super::*;

#[tokio::test]
async fn a_forgotten_memory_is_never_retrieved_again() -> Result<()> {
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "fm", 1000).await?;
    let vet = memory(&api.db, farm, "vet", "Our veterinarian is Dr Ade.").await?;
    let pond = memory(&api.db, farm, "pond 3", "Pond 3 is the nursery.").await?;
    let retriever = ServedPassages::new(Arc::new(OfflineEmbedder::default()));
    let limits = ChatLimits::default();
    let deps = ChatDeps {
        db: &api.db.app,
        model: &OfflineChat,
        retriever: &retriever,
        limits: &limits,
    };
    let ask = || TurnRequest {
        message: "who is our veterinarian?".into(),
        conversation_id: None,
    };
    let before = run_turn(&deps, farm, "worker-fm", &ask()).await?;
    let served: Vec<String> = retriever.take();
    assert!(
        served.iter().any(|s| s.contains(&format!("memory:{vet}"))),
        "served before: {served:?}"
    );
    assert!(before.reply.contains("Ade"), "{}", before.reply);

    let (status, body) = api
        .call(
            "DELETE",
            &format!("/farms/{farm}/memories/{vet}"),
            "manager-fm",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        scalar(
            &api.db,
            farm,
            &format!("SELECT count(*) FROM embeddings WHERE memory_id = '{vet}'")
        )
        .await?,
        0
    );

    let after = run_turn(&deps, farm, "worker-fm", &ask()).await?;
    let served = retriever.served.lock().unwrap().clone();
    assert!(
        served
            .iter()
            .all(|s| !s.contains(&vet.to_string()) && !s.contains("Ade")),
        "served after: {served:?}"
    );
    assert!(!after.reply.contains("Ade"), "{}", after.reply);
    // the other memory is still there; the list no longer has the forgotten one
    let (_, list) = api
        .get(
            &format!("/farms/{farm}/memories?include=superseded"),
            "owner-fm",
        )
        .await;
    let ids: Vec<&str> = list["memories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [pond.to_string()], "{list}");
    // recorded: who and when, never the content
    let (_, ev) = api
        .get(&format!("/farms/{farm}/evidence"), "owner-fm")
        .await;
    let event = &ev["farm_events"][0];
    assert_eq!(event["kind"], "memory_forgotten");
    assert_eq!(
        (&event["actor"], &event["subject"]),
        (&json!("manager-fm"), &json!(vet.to_string()))
    );
    assert!(!event.to_string().contains("Ade"), "{event}");
    Ok(())
}

#[tokio::test]
async fn forgetting_an_old_version_takes_its_history_and_the_summary_that_repeats_it() -> Result<()>
{
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "fh", 0).await?;
    let conv = conversation(&api.db, farm, "worker-fh", &["our vet is Dr Ade", "noted"]).await?;
    let old = memory(&api.db, farm, "vet", "Our vet is Dr Ade.").await?;
    let new = memory(&api.db, farm, "vet", "Our vet is Dr Bello.").await?;
    let tx = api.db.app.tenant(farm).await?;
    tx.query(
        &format!("UPDATE memories SET superseded_by = '{new}', superseded_at = now(), conversation_id = '{conv}' WHERE id = '{old}'"),
        &[],
    )
    .await?;
    tx.query(
        &format!("UPDATE conversations SET summary = 'vet is Dr Ade' WHERE id = '{conv}'"),
        &[],
    )
    .await?;
    tx.commit().await?;
    let (status, body) = api
        .call(
            "DELETE",
            &format!("/farms/{farm}/memories/{new}"),
            "owner-fh",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut forgotten: Vec<String> = body["forgotten"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    forgotten.sort();
    let mut want = vec![old.to_string(), new.to_string()];
    want.sort();
    assert_eq!(forgotten, want, "the version it superseded goes too");
    assert_eq!(
        scalar(&api.db, farm, "SELECT count(*) FROM memories").await?,
        0
    );
    assert_eq!(
        scalar(
            &api.db,
            farm,
            "SELECT count(*) FROM conversations WHERE summary IS NOT NULL"
        )
        .await?,
        0,
        "the summary that may repeat it is dropped"
    );
    Ok(())
}

#[tokio::test]
async fn forget_and_distill_at_once_leave_a_consistent_state() -> Result<()> {
    let api = Api::new().await?;
    let state = DistillState {
        db: api.db.app.clone(),
        extractor: Arc::new(OfflineFactExtractor::default()),
        embedder: Arc::new(OfflineEmbedder::default()),
        config: DistillConfig::default(),
    };
    for round in 0..6 {
        let farm = staffed_farm(&api.db, &format!("fd{round}"), 1000).await?;
        let old = memory(&api.db, farm, "vet", "Our vet is dr ade.").await?;
        conversation(&api.db, farm, "worker", &["Our vet is Dr Bello."]).await?;
        let (path, owner) = (
            format!("/farms/{farm}/memories/{old}"),
            format!("owner-fd{round}"),
        );
        let forget = api.call("DELETE", &path, &owner, None);
        let (distilled, (status, body)) = futures::join!(
            distill::run_at(&state, Utc::now() + chrono::Duration::minutes(1)),
            forget
        );
        let distilled = distilled?;
        assert_eq!(status, 200, "round {round}: {body}");
        assert_eq!(
            distilled.conversations_failed, 0,
            "round {round}: {distilled:?}"
        );
        let q = |sql: &'static str| scalar(&api.db, farm, sql);
        assert_eq!(
            q("SELECT count(*) FROM memories WHERE content ILIKE '%ade%'").await?,
            0,
            "round {round}: forgotten"
        );
        assert_eq!(
            q("SELECT count(*) FROM memories WHERE subject = 'vet' AND superseded_by IS NULL")
                .await?,
            1,
            "round {round}: the new fact is the one current memory"
        );
        assert_eq!(
            q("SELECT count(*) FROM memories m WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.memory_id = m.id)").await?,
            0,
            "round {round}: every memory keeps its embedding"
        );
        assert_eq!(
            q("SELECT count(*) FROM embeddings WHERE memory_id IS NOT NULL").await?,
            q("SELECT count(*) FROM memories").await?,
            "round {round}"
        );
    }
    Ok(())
}
