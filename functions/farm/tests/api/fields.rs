//! The fields and filters of the lists, checked on real data: the run of an assistant message
//! (a real chat turn), superseded memories hidden unless asked for, the recommendations'
//! `status` filter, the records' `from`/`to` filter, and the provenance of a confirmed
//! draft's record (`confirmed_by`, `confirmed_at`, its draft and run).

use anyhow::Result;
use chrono::Utc;
use farmops::{
    db::Type,
    drafts::{self, Decider},
    membership::Role,
    recommendations,
    records::{self, RecordType},
};
use serde_json::{Value, json};

use super::*;

fn list<'a>(page: &'a Value, what: &str) -> &'a Vec<Value> {
    page[what]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: {page}"))
}

#[tokio::test]
async fn an_assistant_message_carries_its_run_and_a_confirmed_record_its_provenance() -> Result<()>
{
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "fr", 1000).await?;
    let f = format!("/farms/{farm}");
    let said = offline_turn(&api, farm, "worker-fr", "3 birds died in pen 2").await?;
    let run_id = said["run_id"].as_str().unwrap().to_string();
    let conv = said["conversation_id"].as_str().unwrap();

    let (status, page) = api
        .get(&format!("{f}/conversations/{conv}/messages"), "worker-fr")
        .await;
    assert_eq!(status, 200, "{page}");
    let messages = list(&page, "messages");
    assert_eq!(messages.len(), 2, "{page}");
    assert_eq!(messages[0]["role"], "user");
    assert_eq!(messages[0]["content"], "3 birds died in pen 2");
    assert_eq!(messages[0]["run"], Value::Null, "a user message has no run");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["content"], said["reply"]);
    let run = &messages[1]["run"];
    assert_eq!(run["id"], json!(run_id), "{page}");
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["model"], said["model"]);
    assert_eq!(run["credits_charged"], said["credits"]["charged"], "{said}");

    // the turn's mortality draft, confirmed by the manager: the record says who, when, from
    // which draft and run
    let drafts = said["drafts"].as_array().unwrap();
    assert_eq!(drafts.len(), 1, "{said}");
    let draft_id: Uuid = drafts[0]["id"].as_str().unwrap().parse()?;
    let tx = api.db.app.tenant(farm).await?;
    let by = Decider {
        user_id: "manager-fr",
        role: Role::Manager,
    };
    drafts::confirm_draft(&tx, draft_id, by, None, None, Utc::now().date_naive()).await?;
    tx.commit().await?;
    // and a manual note beside it: no draft, no run, nobody confirmed it
    insert_note(&api, farm, "fence checked", "2026-01-01").await?;

    let (status, page) = api.get(&format!("{f}/records"), "viewer-fr").await;
    assert_eq!(status, 200, "{page}");
    let records = list(&page, "records");
    assert_eq!(records.len(), 2, "{page}");
    let confirmed = records
        .iter()
        .find(|r| r["record_type"] == "mortality")
        .unwrap_or_else(|| panic!("{page}"));
    let r = &confirmed["record"];
    assert_eq!(r["source"], "ai_draft", "{r}");
    assert_eq!(r["draft_id"], json!(draft_id.to_string()), "{r}");
    assert_eq!(r["ai_run_id"], json!(run_id), "{r}");
    assert_eq!(r["confirmed_by"], "manager-fr", "{r}");
    assert_eq!(r["created_by"], "worker-fr", "{r}");
    let at: chrono::DateTime<Utc> = serde_json::from_value(r["confirmed_at"].clone())?;
    assert!((Utc::now() - at).num_seconds().abs() < 600, "{r}");
    let manual = &records.iter().find(|r| r["record_type"] == "note").unwrap()["record"];
    for field in ["draft_id", "ai_run_id", "confirmed_by", "confirmed_at"] {
        assert_eq!(manual[field], Value::Null, "{field}: {manual}");
    }
    assert_eq!(manual["source"], "manual");
    Ok(())
}

async fn insert_note(api: &Api, farm: Uuid, body: &str, day: &str) -> Result<()> {
    let tx = api.db.app.tenant(farm).await?;
    let note = records::validate_payload(
        RecordType::Note,
        &json!({"body": body, "occurred_on": day}),
        Utc::now().date_naive(),
    )?;
    records::insert_record(&tx, &note, &manual("owner-fl")).await?;
    tx.commit().await?;
    Ok(())
}

#[tokio::test]
async fn the_filters_filter() -> Result<()> {
    let api = Api::new().await?;
    let db = &api.db;
    let farm = staffed_farm(db, "fl", 0).await?;
    let f = format!("/farms/{farm}");

    // records: `from` and `to` are inclusive days of occurred_on
    for day in ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05"] {
        insert_note(&api, farm, &format!("on {day}"), day).await?;
    }
    let days = |page: &Value| -> Vec<String> {
        let mut d: Vec<String> = list(page, "records")
            .iter()
            .map(|r| r["record"]["occurred_on"].as_str().unwrap().to_string())
            .collect();
        d.sort();
        d
    };
    for (query, want) in [
        (
            "",
            vec!["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05"],
        ),
        (
            "?from=2026-01-02",
            vec!["2026-01-02", "2026-01-03", "2026-01-05"],
        ),
        ("?to=2026-01-02", vec!["2026-01-01", "2026-01-02"]),
        (
            "?from=2026-01-02&to=2026-01-03",
            vec!["2026-01-02", "2026-01-03"],
        ),
        ("?from=2026-01-04&to=2026-01-04", vec![]),
        (
            "?from=2026-01-05&to=2026-01-05&type=note",
            vec!["2026-01-05"],
        ),
        ("?from=2026-01-01&type=feed_use", vec![]),
    ] {
        let (status, page) = api.get(&format!("{f}/records{query}"), "viewer-fl").await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(days(&page), want, "{query}");
    }

    // recommendations: `status` keeps only that status
    let tx = db.app.tenant(farm).await?;
    let mut ids = Vec::new();
    for title in ["stays pending", "approved", "rejected"] {
        let id: Uuid = tx
            .query_one(
                "INSERT INTO ai_recommendations (farm_id, title, body, created_by)
                 VALUES ($1, $2, 'body', 'worker-fl') RETURNING id",
                &[(&farm, Type::UUID), (&title, Type::TEXT)],
            )
            .await?
            .get(0);
        ids.push(id);
    }
    let by = Decider {
        user_id: "owner-fl",
        role: Role::Owner,
    };
    recommendations::approve_recommendation(&tx, ids[1], by, None).await?;
    recommendations::reject_recommendation(&tx, ids[2], by, "not now").await?;
    tx.commit().await?;
    let titles = |page: &Value| -> Vec<String> {
        let mut t: Vec<String> = list(page, "recommendations")
            .iter()
            .map(|r| r["title"].as_str().unwrap().to_string())
            .collect();
        t.sort();
        t
    };
    for (query, want) in [
        ("", vec!["approved", "rejected", "stays pending"]),
        ("?status=pending", vec!["stays pending"]),
        ("?status=approved", vec!["approved"]),
        ("?status=rejected", vec!["rejected"]),
    ] {
        let (status, page) = api
            .get(&format!("{f}/recommendations{query}"), "worker-fl")
            .await;
        assert_eq!(status, 200, "{query}: {page}");
        assert_eq!(titles(&page), want, "{query}: {page}");
        for r in list(&page, "recommendations") {
            if let Some(s) = query.strip_prefix("?status=") {
                assert_eq!(r["status"], s, "{r}");
            }
        }
    }

    // memories: a superseded one is hidden unless `include=superseded`
    let new = memory(db, farm, "vet", "Our vet is now Dr Bello.").await?;
    let tx = db.app.tenant(farm).await?;
    let old: Uuid = tx
        .query_one(
            "INSERT INTO memories (farm_id, subject, content, superseded_by, superseded_at)
             VALUES ($1, 'vet', 'Our vet is Dr Ade.', $2, now()) RETURNING id",
            &[(&farm, Type::UUID), (&new, Type::UUID)],
        )
        .await?
        .get(0);
    tx.commit().await?;
    let other = memory(db, farm, "pond 3", "Pond 3 is the nursery.").await?;
    let ids_of = |page: &Value| -> Vec<String> {
        let mut i: Vec<String> = list(page, "memories")
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        i.sort();
        i
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let (status, current) = api.get(&format!("{f}/memories"), "manager-fl").await;
    assert_eq!(status, 200, "{current}");
    assert_eq!(
        ids_of(&current),
        sorted(vec![new.to_string(), other.to_string()]),
        "{current}"
    );
    let (status, all) = api
        .get(&format!("{f}/memories?include=superseded"), "manager-fl")
        .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        ids_of(&all),
        sorted(vec![new.to_string(), old.to_string(), other.to_string()]),
        "{all}"
    );
    let replaced = list(&all, "memories")
        .iter()
        .find(|m| m["id"] == json!(old.to_string()))
        .unwrap();
    assert_eq!(
        replaced["superseded_by"],
        json!(new.to_string()),
        "{replaced}"
    );
    assert!(replaced["superseded_at"].is_string(), "{replaced}");
    Ok(())
}
