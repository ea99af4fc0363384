//! Members: who may change whom, the last owner (409 over HTTP, refused by the database for
//! anyone, also when two owners demote each other at once), and a removed member's next
//! request (404).

use anyhow::Result;
use serde_json::json;

use super::*;

#[tokio::test]
async fn the_last_owner_stays_and_a_removed_member_finds_no_farm() -> Result<()> {
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "m", 0).await?;
    let f = format!("/farms/{farm}");
    let put = |user: &'static str, member: &'static str, role: &'static str| {
        let path = format!("{f}/members/{member}");
        let api = &api;
        async move {
            api.call("PUT", &path, user, Some(json!({ "role": role })))
                .await
        }
    };

    // the last owner can be neither demoted nor removed (409, the error shape)
    let (status, body) = put("owner-m", "owner-m", "manager").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "conflict");
    let (status, body) = api
        .call("DELETE", &format!("{f}/members/owner-m"), "owner-m", None)
        .await;
    assert_eq!(status, 409, "{body}");

    // a manager adds workers and viewers, and nothing more
    assert_eq!(put("manager-m", "wanda", "worker").await.0, 200);
    assert_eq!(put("manager-m", "wanda", "viewer").await.0, 200);
    for (member, role) in [
        ("wanda", "manager"),
        ("otto", "owner"),
        ("owner-m", "viewer"),
        ("manager-m", "worker"),
    ] {
        let (status, body) = put("manager-m", member, role).await;
        assert_eq!(status, 403, "manager makes {member} a {role}: {body}");
    }
    // with a second owner, the first may step down; then the second is the last
    let (status, member) = put("owner-m", "olga", "owner").await;
    assert_eq!(
        (status, &member["role"]),
        (200, &json!("owner")),
        "{member}"
    );
    assert_eq!(put("owner-m", "owner-m", "manager").await.0, 200);
    assert_eq!(put("olga", "olga", "viewer").await.0, 409);
    let (_, list) = api.get(&format!("{f}/members"), "olga").await;
    assert_eq!(
        list["members"][0]["user_id"], "olga",
        "newest member first: {list}"
    );

    // removed: the next request, read or write, finds no farm
    let (status, _) = api.get(&format!("{f}/settings"), "worker-m").await;
    assert_eq!(status, 200);
    let (status, body) = api
        .call("DELETE", &format!("{f}/members/worker-m"), "olga", None)
        .await;
    assert_eq!(status, 200, "{body}");
    for (method, path) in [
        ("GET", format!("{f}/settings")),
        ("GET", format!("{f}/records")),
        ("GET", format!("{f}/conversations")),
    ] {
        let (status, body) = api.call(method, &path, "worker-m", None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = api
        .call("DELETE", &format!("{f}/members/worker-m"), "olga", None)
        .await;
    assert_eq!(status, 404, "removed already");
    Ok(())
}

/// Plain SQL as the application role (the door) and as the owner role (no door at all): the
/// trigger refuses the last owner's demotion or removal; two owners demoting each other
/// concurrently cannot both succeed.
#[tokio::test]
async fn the_database_keeps_an_owner_whoever_tries() -> Result<()> {
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "k", 0).await?;
    for sql in [
        "SELECT remove_member('owner-k', 'owner-k')",
        "SELECT set_member_role('owner-k', 'owner-k', 'viewer')",
    ] {
        let client = app_session(&api.db, farm).await?;
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err), "FO409", "{sql}");
    }
    let owner = api.db.owner_client().await?;
    for sql in [
        format!("DELETE FROM farm_members WHERE farm_id = '{farm}' AND role = 'owner'"),
        format!("UPDATE farm_members SET role = 'manager' WHERE farm_id = '{farm}'"),
    ] {
        let err = owner.batch_execute(&sql).await.expect_err(&sql);
        assert_eq!(sqlstate(&err), "FO409", "{sql}");
    }
    // the door re-checks the role rules when the Rust layer is bypassed
    for (sql, want) in [
        (
            "SELECT set_member_role('manager-k', 'manager-k', 'owner')",
            "FO403",
        ),
        (
            "SELECT set_member_role('worker-k', 'new', 'viewer')",
            "FO403",
        ),
        ("SELECT remove_member('manager-k', 'worker-k')", "FO403"),
        ("SELECT set_member_role('owner-k', 'new', 'admin')", "FO422"),
        (
            "SELECT set_member_role('owner-k', E'new\\n', 'viewer')",
            "FO422",
        ),
        ("SELECT remove_member('stranger', 'worker-k')", "FO404"),
    ] {
        let client = app_session(&api.db, farm).await?;
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert_eq!(sqlstate(&err), want, "{sql}");
    }

    // two owners, each demoting the other at the same moment, 20 times
    for round in 0..20 {
        let farm = api.db.farm(&format!("race {round}"), 0).await?;
        api.db.member(farm, "a", "owner").await?;
        api.db.member(farm, "b", "owner").await?;
        let (x, y) = (
            app_session(&api.db, farm).await?,
            app_session(&api.db, farm).await?,
        );
        let (rx, ry) = futures::join!(
            x.batch_execute("SELECT set_member_role('a', 'b', 'manager'); COMMIT"),
            y.batch_execute("SELECT set_member_role('b', 'a', 'manager'); COMMIT"),
        );
        let owners = scalar(
            &api.db,
            farm,
            "SELECT count(*) FROM farm_members WHERE role = 'owner'",
        )
        .await?;
        assert_eq!(owners, 1, "round {round}: {rx:?} {ry:?}");
        let failed: Vec<String> = [rx, ry]
            .iter()
            .filter_map(|r| r.as_ref().err())
            .map(sqlstate)
            .collect();
        assert_eq!(failed.len(), 1, "round {round}");
        assert!(
            ["FO409", "FO403"].contains(&failed[0].as_str()),
            "round {round}: {failed:?}"
        );
    }
    Ok(())
}

/// Removed: every write route (and the members list) answers 404 and changes nothing, like
/// the reads; demoted to viewer: 403.
#[tokio::test]
async fn a_removed_member_finds_no_farm_on_the_write_routes() -> Result<()> {
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "w", 0).await?;
    api.db.member(farm, "manager2-w", "manager").await?;
    let mem = memory(&api.db, farm, "vet", "Our vet is Dr Ade.").await?;
    let f = format!("/farms/{farm}");
    // the owner removes one manager and demotes the other
    let (status, body) = api
        .call("DELETE", &format!("{f}/members/manager-w"), "owner-w", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = api
        .call(
            "PUT",
            &format!("{f}/members/manager2-w"),
            "owner-w",
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let events_before = scalar(&api.db, farm, "SELECT count(*) FROM farm_events").await?;

    let writes = [
        (
            "PUT",
            format!("{f}/settings/autonomy"),
            Some(json!({"tier": "suggest"})),
        ),
        (
            "PUT",
            format!("{f}/members/newcomer"),
            Some(json!({"role": "worker"})),
        ),
        (
            "PUT",
            format!("{f}/members/worker-w"),
            Some(json!({"role": "viewer"})),
        ),
        ("DELETE", format!("{f}/members/worker-w"), None),
        ("DELETE", format!("{f}/memories/{mem}"), None),
        ("GET", format!("{f}/members"), None),
        ("GET", format!("{f}/memories"), None),
    ];
    for (user, want, code) in [
        ("manager-w", 404, "not_found"),
        ("manager2-w", 403, "forbidden"),
    ] {
        for (method, path, body) in &writes {
            let (status, answer) = api.call(method, path, user, body.clone()).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (want, Some(code)),
                "{user}: {method} {path}: {answer}"
            );
        }
    }
    // nothing changed
    assert_eq!(
        scalar(&api.db, farm, "SELECT count(*) FROM farm_events").await?,
        events_before
    );
    assert_eq!(
        scalar(&api.db, farm, "SELECT count(*) FROM memories").await?,
        1
    );
    let (_, settings) = api.get(&format!("{f}/settings"), "owner-w").await;
    assert_eq!(settings["autonomy"]["tier"], "draft", "{settings}");
    let (_, members) = api.get(&format!("{f}/members"), "owner-w").await;
    let mut roles: Vec<String> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}={}",
                m["user_id"].as_str().unwrap(),
                m["role"].as_str().unwrap()
            )
        })
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [
            "manager2-w=viewer",
            "owner-w=owner",
            "viewer-w=viewer",
            "worker-w=worker"
        ]
    );
    Ok(())
}
