//! Member budgets over HTTP (issue 18): `PUT /farms/{farm_id}/members/{user_id}/budget`
//! (owner any member, manager a worker or a viewer), bad caps (422 naming the field), a
//! worker or a viewer setting budgets (403), nothing changed by a refusal; and
//! `GET /farms/{farm_id}/members/{user_id}/usage` (spent and held per window and feature).

use anyhow::Result;
use farmops::credits::{self, Feature, NewRun, Settlement};
use serde_json::json;

use super::*;

/// A run of `member` holding `held`, settled charging `charged` (none: left open).
async fn member_run(
    db: &TestDb,
    farm: Uuid,
    member: &str,
    feature: Feature,
    held: i64,
    charged: Option<i64>,
) -> Result<()> {
    let r = credits::reserve_credits_committed(
        db.app.tenant(farm).await?,
        &NewRun {
            feature,
            model: "offline-farm-assistant",
            user_id: Some(member),
            credits: held,
            request_summary: None,
        },
    )
    .await?;
    if let Some(charged) = charged {
        let tx = db.app.tenant(farm).await?;
        credits::settle_run(
            &tx,
            r.run_id,
            &Settlement {
                credits_charged: charged,
                ..Default::default()
            },
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

async fn budget_events(db: &TestDb, farm: Uuid) -> Result<i64> {
    let owner = db.owner_client().await?;
    Ok(owner
        .query_one(
            "SELECT count(*) FROM farm_events WHERE farm_id = $1 AND kind = 'member_budget_set'",
            &[&farm],
        )
        .await?
        .get(0))
}

#[tokio::test]
async fn owners_and_managers_set_budgets_and_bad_caps_change_nothing() -> Result<()> {
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "b", 1000).await?;
    let budget = |member: &str| format!("/farms/{farm}/members/{member}/budget");

    let (status, body) = api
        .call(
            "PUT",
            &budget("worker-b"),
            "owner-b",
            Some(json!({"daily": 50})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"user_id": "worker-b", "daily": 50, "monthly": null})
    );
    let (status, body) = api
        .call(
            "PUT",
            &budget("worker-b"),
            "manager-b",
            Some(json!({"monthly": 500})),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"user_id": "worker-b", "daily": 50, "monthly": 500})
        )
    );
    assert_eq!(budget_events(&api.db, farm).await?, 2);

    // 422: the field is named, nothing changes
    let bad = [
        (json!({"daily": -1}), "daily"),
        (json!({"daily": 2.5}), "daily"),
        (json!({"daily": "10"}), "daily"),
        (json!({"monthly": 1_000_000_001}), "monthly"),
        (json!({"monthly": true}), "monthly"),
        (json!({}), "body"),
        (json!({"weekly": 5}), "weekly"),
    ];
    for (body, field) in bad {
        let (status, answer) = api
            .call("PUT", &budget("worker-b"), "owner-b", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_payload");
        assert_eq!(answer["error"]["fields"][0]["field"], field, "{answer}");
    }
    // 403: a worker or a viewer sets nothing; a manager caps no owner or manager
    for (caller, member) in [
        ("worker-b", "worker-b"),
        ("viewer-b", "worker-b"),
        ("worker-b", "viewer-b"),
        ("manager-b", "owner-b"),
        ("manager-b", "manager-b"),
    ] {
        let (status, answer) = api
            .call("PUT", &budget(member), caller, Some(json!({"daily": null})))
            .await;
        assert_eq!(status, 403, "{caller} -> {member}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden");
    }
    // a worker's bad body is a 403 too: the role is checked first
    let (status, _) = api
        .call(
            "PUT",
            &budget("worker-b"),
            "worker-b",
            Some(json!({"daily": -1})),
        )
        .await;
    assert_eq!(status, 403);
    // 404: not a member, or a caller who is not one
    let (status, answer) = api
        .call(
            "PUT",
            &budget("nobody"),
            "owner-b",
            Some(json!({"daily": 1})),
        )
        .await;
    assert_eq!(
        (status, &answer["error"]["message"]),
        (404, &json!("member not found"))
    );
    let (status, _) = api
        .call(
            "PUT",
            &budget("worker-b"),
            "stranger",
            Some(json!({"daily": 1})),
        )
        .await;
    assert_eq!(status, 404);

    assert_eq!(budget_events(&api.db, farm).await?, 2, "nothing recorded");
    let (status, usage) = api
        .get(&format!("/farms/{farm}/members/worker-b/usage"), "owner-b")
        .await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(
        (&usage["daily"]["cap"], &usage["monthly"]["cap"]),
        (&json!(50), &json!(500)),
        "nothing changed: {usage}"
    );

    // removing is explicit: null removes one cap, the other stays
    let (status, body) = api
        .call(
            "PUT",
            &budget("worker-b"),
            "owner-b",
            Some(json!({"daily": null})),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"user_id": "worker-b", "daily": null, "monthly": 500})
        )
    );
    // the evidence page shows the acts
    let (_, evidence) = api.get(&format!("/farms/{farm}/evidence"), "owner-b").await;
    let kinds: Vec<_> = evidence["farm_events"]
        .as_array()
        .map(|a| a.iter().map(|e| e["kind"].clone()).collect())
        .unwrap_or_default();
    assert!(
        kinds.iter().filter(|k| **k == "member_budget_set").count() == 3,
        "{kinds:?}"
    );
    Ok(())
}

#[tokio::test]
async fn usage_is_spent_and_held_per_window_and_feature() -> Result<()> {
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "u", 1000).await?;
    let usage = |member: &str| format!("/farms/{farm}/members/{member}/usage");
    api.call(
        "PUT",
        &format!("/farms/{farm}/members/worker-u/budget"),
        "owner-u",
        Some(json!({"daily": 40})),
    )
    .await;
    member_run(&api.db, farm, "worker-u", Feature::Chat, 10, Some(4)).await?;
    member_run(&api.db, farm, "worker-u", Feature::Chat, 6, None).await?;
    member_run(&api.db, farm, "worker-u", Feature::Embed, 3, Some(3)).await?;
    member_run(&api.db, farm, "manager-u", Feature::Chat, 20, Some(20)).await?;

    // a worker reads their own
    let (status, body) = api.get(&usage("worker-u"), "worker-u").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "worker-u");
    assert_eq!(body["time_zone"], "Africa/Lagos");
    let daily = &body["daily"];
    assert_eq!(
        (
            &daily["cap"],
            &daily["spent"],
            &daily["held"],
            &daily["remaining"]
        ),
        (&json!(40), &json!(7), &json!(6), &json!(27)),
        "{body}"
    );
    assert_eq!(
        daily["by_feature"],
        json!([
            {"feature": "chat", "spent": 4, "held": 6, "runs": 2},
            {"feature": "embed", "spent": 3, "held": 0, "runs": 1}
        ])
    );
    assert_eq!(
        (
            &body["monthly"]["cap"],
            &body["monthly"]["spent"],
            &body["monthly"]["remaining"]
        ),
        (&json!(null), &json!(7), &json!(null))
    );
    // the manager reads anyone's; a member without runs has empty windows
    let (status, body) = api.get(&usage("viewer-u"), "manager-u").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["daily"]["spent"], &body["daily"]["by_feature"]),
        (&json!(0), &json!([]))
    );
    // a worker or a viewer reads no one else's; an unknown member is a 404
    assert_eq!(api.get(&usage("manager-u"), "worker-u").await.0, 403);
    assert_eq!(api.get(&usage("worker-u"), "viewer-u").await.0, 403);
    assert_eq!(api.get(&usage("nobody"), "owner-u").await.0, 404);
    assert_eq!(api.get(&usage("worker-u"), "stranger").await.0, 404);
    Ok(())
}
