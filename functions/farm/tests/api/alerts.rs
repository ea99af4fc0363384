//! Low-balance thresholds over HTTP (issue 18): `PUT /farms/{farm_id}/alerts` (owner,
//! manager); unsorted, duplicated or non-integer thresholds are a 422 naming the field; a
//! worker or a viewer gets 403; a refusal changes nothing.

use anyhow::Result;
use serde_json::json;

use super::*;

#[tokio::test]
async fn owners_and_managers_set_thresholds_and_bad_ones_change_nothing() -> Result<()> {
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "al", 60).await?;
    let path = format!("/farms/{farm}/alerts");
    let (status, body) = api
        .call(
            "PUT",
            &path,
            "manager-al",
            Some(json!({"thresholds": [100, 20]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"thresholds": [{"threshold": 100, "armed": false}, {"threshold": 20, "armed": true}]}),
        "100 is above the balance (60): armed once credits bring it back"
    );
    for bad in [
        json!({"thresholds": [20, 100]}),
        json!({"thresholds": [50, 50]}),
        json!({"thresholds": [1.5]}),
        json!({"thresholds": [-1]}),
        json!({"thresholds": ["5"]}),
        json!({"thresholds": [1_000_000_001]}),
        json!({}),
    ] {
        let (status, answer) = api.call("PUT", &path, "owner-al", Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad}: {answer}");
        assert_eq!(
            answer["error"]["fields"][0]["field"], "thresholds",
            "{answer}"
        );
    }
    for user in ["worker-al", "viewer-al"] {
        let (status, answer) = api
            .call("PUT", &path, user, Some(json!({"thresholds": []})))
            .await;
        assert_eq!(
            (status, &answer["error"]["code"]),
            (403, &json!("forbidden"))
        );
    }
    assert_eq!(
        api.call("PUT", &path, "stranger", Some(json!({"thresholds": []})))
            .await
            .0,
        404
    );
    let owner = api.db.owner_client().await?;
    let kept: i64 = owner
        .query_one(
            "SELECT count(*) FROM credit_alert_thresholds WHERE farm_id = $1",
            &[&farm],
        )
        .await?
        .get(0);
    assert_eq!(kept, 2, "nothing changed");
    let events: i64 = owner
        .query_one(
            "SELECT count(*) FROM farm_events WHERE farm_id = $1 AND kind = 'credit_alerts_set'",
            &[&farm],
        )
        .await?
        .get(0);
    assert_eq!(events, 1);
    Ok(())
}
