//! The farm's autonomy over HTTP: the owner's change reaches the next chat turn (feed written
//! directly, a sale still a draft), nobody else may change it, the floor cannot be lifted,
//! and the database's one door holds when the Rust layer is bypassed.

use std::time::Duration;

use anyhow::Result;
use farmops::{
    chat::{ChatDeps, ChatLimits, TurnRequest, run_turn},
    credits::{self, Feature, NewRun},
    model::offline::OfflineChat,
    rag::NoRetrieval,
};
use serde_json::json;

use super::*;

#[tokio::test]
async fn the_owners_change_reaches_the_next_turn_and_the_floor_holds() -> Result<()> {
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "au", 1000).await?;
    let f = format!("/farms/{farm}");
    let said = "used 4 bags of feed and sold 20 crates of eggs for 45,000 naira";

    // before: everything drafts
    let before = offline_turn(&api, farm, "manager-au", said).await?;
    assert_eq!(before["records"], json!([]), "{before}");
    assert_eq!(before["drafts"].as_array().unwrap().len(), 2, "{before}");

    // refused: a manager; the floor, as categories or as an override
    let (status, body) = api
        .call(
            "PUT",
            &format!("{f}/settings/autonomy"),
            "manager-au",
            Some(json!({"tier": "auto", "auto_categories": ["feed_use"]})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    for floor in [
        json!({"auto_categories": ["sale"]}),
        json!({"tier": "auto", "auto_categories": ["feed_use", "expense"]}),
        json!({"overrides": {"mortality": "auto"}}),
    ] {
        let (status, body) = api
            .call(
                "PUT",
                &format!("{f}/settings/autonomy"),
                "owner-au",
                Some(floor.clone()),
            )
            .await;
        assert_eq!(status, 422, "{floor}: {body}");
        let message = body["error"]["fields"][0]["message"].as_str().unwrap_or("");
        assert!(
            message.contains("floor"),
            "{floor}: names the floor: {body}"
        );
    }
    let (_, unchanged) = api.get(&format!("{f}/settings"), "worker-au").await;
    assert_eq!(
        unchanged["autonomy"]["tier"], "draft",
        "refusals changed nothing"
    );

    // the owner opens direct writes for feed
    let (status, settings) = api
        .call(
            "PUT",
            &format!("{f}/settings/autonomy"),
            "owner-au",
            Some(json!({"tier": "auto", "auto_categories": ["feed_use"]})),
        )
        .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(settings["effective"]["feed_use"], "auto");
    assert_eq!(settings["effective"]["sale"], "draft");
    assert_eq!(settings["effective"]["water"], "draft");

    let after = offline_turn(&api, farm, "manager-au", said).await?;
    let records = after["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{after}");
    assert_eq!(records[0]["record_type"], "feed_use");
    assert_eq!(records[0]["record"]["source"], "ai_auto");
    let drafts = after["drafts"].as_array().unwrap();
    assert_eq!(drafts.len(), 1, "{after}");
    assert_eq!(drafts[0]["record_type"], "sale");
    assert_eq!(drafts[0]["status"], "pending");

    // the app reads the record back with its provenance
    let (_, listed) = api
        .get(&format!("{f}/records?type=feed_use"), "viewer-au")
        .await;
    assert_eq!(listed["records"][0]["record"]["source"], "ai_auto");
    assert_eq!(listed["records"][0]["record"]["ai_run_id"], after["run_id"]);

    // a field left out keeps its value
    let (_, kept) = api
        .call(
            "PUT",
            &format!("{f}/settings/autonomy"),
            "owner-au",
            Some(json!({"overrides": {"note": "suggest"}})),
        )
        .await;
    assert_eq!(kept["autonomy"]["auto_categories"], json!(["feed_use"]));
    assert_eq!(kept["effective"]["note"], "suggest");

    // the change is in the evidence: who, when, before and after
    let (_, ev) = api.get(&format!("{f}/evidence"), "owner-au").await;
    let changes: Vec<&Value> = ev["farm_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "autonomy_changed")
        .collect();
    assert_eq!(changes.len(), 2, "{ev}");
    let first = changes[1];
    assert_eq!(first["actor"], "owner-au");
    assert_eq!(first["details"]["before"]["tier"], "draft");
    assert_eq!(
        first["details"]["after"]["auto_categories"],
        json!(["feed_use"])
    );
    Ok(())
}

/// The Rust layer bypassed: the application role, in plain SQL, cannot write the columns,
/// cannot pass the door as a non-owner, cannot lift the floor, cannot forge the record.
#[tokio::test]
async fn the_database_door_holds_for_the_application_role() -> Result<()> {
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "door", 0).await?;
    let other = staffed_farm(&api.db, "door2", 0).await?;
    let cases: Vec<(&str, &str)> = vec![
        ("UPDATE farms SET ai_autonomy = 'auto'", "42501"),
        (
            "UPDATE farms SET ai_auto_categories = '[\"sale\"]'",
            "42501",
        ),
        (
            "SELECT set_farm_autonomy('manager-door', 'auto', NULL, NULL)",
            "FO403",
        ),
        (
            "SELECT set_farm_autonomy('worker-door', 'auto', NULL, NULL)",
            "FO403",
        ),
        (
            "SELECT set_farm_autonomy('owner-door2', 'auto', NULL, NULL)",
            "FO404",
        ),
        (
            "SELECT set_farm_autonomy('owner-door', 'auto', '[\"sale\"]', NULL)",
            "FO422",
        ),
        (
            "SELECT set_farm_autonomy('owner-door', NULL, NULL, '{\"expense\": \"auto\"}')",
            "FO422",
        ),
        (
            "SELECT set_farm_autonomy('owner-door', 'yolo', NULL, NULL)",
            "FO422",
        ),
        (
            "SELECT set_farm_autonomy('owner-door', NULL, '[\"harvest\"]', NULL)",
            "FO422",
        ),
        (
            "SELECT set_farm_autonomy('owner-door', NULL, '{}', NULL)",
            "FO422",
        ),
        (
            "INSERT INTO farm_events (farm_id, kind, actor) VALUES (current_farm_id(), 'autonomy_changed', 'x')",
            "42501",
        ),
        ("UPDATE farm_events SET actor = 'x'", "42501"),
        ("DELETE FROM farm_events", "42501"),
        (
            "INSERT INTO farm_members (farm_id, user_id, role) VALUES (current_farm_id(), 'me', 'owner')",
            "42501",
        ),
        ("UPDATE farm_members SET role = 'owner'", "42501"),
    ];
    for (sql, want) in cases {
        let client = app_session(&api.db, farm).await?;
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err), want, "{sql}: {err:?}");
    }
    // without a tenant the door opens for nobody
    let client = api.db.app_client().await?;
    let err = client
        .batch_execute("SELECT set_farm_autonomy('owner-door', 'auto', NULL, NULL)")
        .await
        .expect_err("no tenant");
    assert_eq!(sqlstate(&err), "FO404");
    // the owner through the door: changed and recorded, in the same transaction
    let client = app_session(&api.db, farm).await?;
    client
        .batch_execute(
            "SELECT set_farm_autonomy('owner-door', 'auto', '[\"water\"]', NULL); COMMIT",
        )
        .await?;
    assert_eq!(
        scalar(
            &api.db,
            farm,
            "SELECT count(*) FROM farm_events WHERE kind = 'autonomy_changed'"
        )
        .await?,
        1
    );
    assert_eq!(
        scalar(&api.db, other, "SELECT count(*) FROM farm_events").await?,
        0,
        "another farm sees none of it"
    );
    Ok(())
}

/// A settings change and a running turn's hold on the farm row: the change waits for the
/// hold's transaction, then applies without touching the balance the hold wrote; the turn
/// keeps the settings it read.
#[tokio::test]
async fn a_settings_change_races_safely_with_a_running_turn() -> Result<()> {
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "race", 500).await?;
    let f = format!("/farms/{farm}");
    let turn_tx = api.db.app.tenant(farm).await?;
    let read = farmops::autonomy::load_autonomy(&turn_tx, farm).await?;
    credits::reserve_credits(
        &turn_tx,
        &NewRun {
            feature: Feature::Chat,
            model: "offline-farm-assistant",
            user_id: Some("manager-race"),
            credits: 40,
            request_summary: None,
        },
    )
    .await?;
    let path = format!("{f}/settings/autonomy");
    let change = api.call("PUT", &path, "owner-race", Some(json!({"tier": "suggest"})));
    tokio::pin!(change);
    // the change waits on the hold's row lock (it does not fail, nor skip the record)
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut change)
            .await
            .is_err(),
        "the change waits for the open hold"
    );
    assert_eq!(
        read.tier,
        farmops::autonomy::Tier::Draft,
        "the turn keeps what it read"
    );
    turn_tx.commit().await?;
    let (status, body) = change.await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["autonomy"]["tier"], "suggest");
    assert_eq!(
        scalar(&api.db, farm, "SELECT credit_balance FROM farms").await?,
        460
    );
    let tx = api.db.app.tenant(farm).await?;
    assert!(credits::audit_ledger(&tx).await?.holds);
    Ok(())
}

/// The offline model, whose first call waits while the owner's autonomy change commits
/// through another connection (a turn already running when the owner changes the settings).
struct ChangedDuringTheCall {
    db: farmops::db::Db,
    farm: Uuid,
    changed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl farmops::model::ChatModel for ChangedDuringTheCall {
    fn model_id(&self) -> &str {
        OfflineChat.model_id()
    }
    fn input_token_bound(&self, request: &farmops::model::ChatRequest) -> u64 {
        OfflineChat.input_token_bound(request)
    }
    async fn converse(
        &self,
        request: &farmops::model::ChatRequest,
    ) -> farmops::Result<farmops::model::ChatResponse> {
        if !self.changed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let tx = self.db.tenant(self.farm).await?;
            let change: farmops::autonomy::AutonomyChange =
                serde_json::from_value(json!({"tier": "auto", "auto_categories": ["feed_use"]}))
                    .expect("a change");
            farmops::farm::settings::set_autonomy(&tx, "owner-mid", &change).await?;
            tx.commit().await?;
        }
        OfflineChat.converse(request).await
    }
}

#[tokio::test]
async fn a_turn_running_when_the_owner_changes_autonomy_keeps_what_it_read() -> Result<()> {
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "mid", 1000).await?;
    let said = "used 4 bags of feed";
    let model = ChangedDuringTheCall {
        db: api.db.app.clone(),
        farm,
        changed: std::sync::atomic::AtomicBool::new(false),
    };
    let limits = ChatLimits::default();
    let deps = ChatDeps {
        db: &api.db.app,
        model: &model,
        retriever: &NoRetrieval,
        limits: &limits,
    };
    let ask = || TurnRequest {
        message: said.into(),
        conversation_id: None,
    };
    // the change committed during this turn's model call; the turn used the tier it read
    let running = serde_json::to_value(run_turn(&deps, farm, "manager-mid", &ask()).await?)?;
    assert!(model.changed.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(running["records"], json!([]), "{running}");
    assert_eq!(running["drafts"][0]["record_type"], "feed_use", "{running}");
    let (_, settings) = api
        .call("GET", &format!("/farms/{farm}/settings"), "owner-mid", None)
        .await;
    assert_eq!(settings["autonomy"]["tier"], "auto", "{settings}");
    // the next turn gets the new settings: the feed is written directly
    let next = serde_json::to_value(run_turn(&deps, farm, "manager-mid", &ask()).await?)?;
    assert_eq!(next["drafts"], json!([]), "{next}");
    assert_eq!(next["records"][0]["record_type"], "feed_use", "{next}");
    let tx = api.db.app.tenant(farm).await?;
    assert!(credits::audit_ledger(&tx).await?.holds);
    Ok(())
}
