//! Every route × every role: allowed, 403, and 404 for a farm the caller is not a member of;
//! every answer conforms to docs/openapi.yaml (checked in `Api::call`).

use anyhow::Result;
use farmops::{
    db::Type,
    records::{self, RecordType},
};
use serde_json::{Value, json};

use super::*;

const ROLES: [&str; 4] = ["owner", "manager", "worker", "viewer"];

#[tokio::test]
async fn every_route_answers_every_role() -> Result<()> {
    let api = Api::new().await?;
    let db = &api.db;
    let farm = staffed_farm(db, "a", 100).await?;
    let other = db.farm("b", 0).await?;
    db.member(other, "outsider", "owner").await?;
    let workers = conversation(db, farm, "worker-a", &["hello", "hi"]).await?;
    let managers = conversation(db, farm, "manager-a", &["pond 3?", "fine"]).await?;
    let m1 = memory(db, farm, "vet", "Our vet is Dr Ade.").await?;
    let m2 = memory(db, farm, "pond 3", "Pond 3 is the nursery.").await?;
    let tx = db.app.tenant(farm).await?;
    tx.query(
        "INSERT INTO ai_recommendations (farm_id, title, body, created_by) VALUES ($1, 'Vaccinate', 'pen 3', 'worker-a')",
        &[(&farm, Type::UUID)],
    )
    .await?;
    let note = records::validate_payload(
        RecordType::Note,
        &json!({"body": "fence checked"}),
        chrono::Utc::now().date_naive(),
    )?;
    records::insert_record(&tx, &note, &manual("worker-a")).await?;
    tx.commit().await?;

    let f = format!("/farms/{farm}");
    // (path, expected status per role owner, manager, worker, viewer)
    let reads: Vec<(String, [u16; 4])> = vec![
        (format!("{f}/conversations"), [200; 4]),
        (
            format!("{f}/conversations/{workers}/messages"),
            [200, 200, 200, 404],
        ),
        (
            format!("{f}/conversations/{managers}/messages"),
            [200, 200, 404, 404],
        ),
        (format!("{f}/recommendations?status=pending"), [200; 4]),
        (format!("{f}/records"), [200; 4]),
        (format!("{f}/memories"), [200, 200, 403, 403]),
        (format!("{f}/settings"), [200; 4]),
        (format!("{f}/members"), [200, 200, 403, 403]),
    ];
    for (path, want) in &reads {
        for (role, want) in ROLES.iter().zip(want) {
            let (status, body) = api.get(path, &format!("{role}-a")).await;
            assert_eq!(status, *want, "GET {path} as {role}: {body}");
        }
        let (status, body) = api.get(path, "outsider").await;
        assert_eq!(status, 404, "GET {path} as a non-member: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }

    // what each role sees
    let count = |v: &Value, k: &str| v[k].as_array().map(Vec::len).unwrap_or(usize::MAX);
    let (_, all) = api.get(&format!("{f}/conversations"), "owner-a").await;
    assert_eq!(count(&all, "conversations"), 2, "{all}");
    let (_, own) = api.get(&format!("{f}/conversations"), "worker-a").await;
    assert_eq!(count(&own, "conversations"), 1, "{own}");
    assert_eq!(own["conversations"][0]["id"], workers.to_string());
    assert_eq!(own["conversations"][0]["message_count"], 2);
    assert_eq!(own["conversations"][0]["started_by"], "worker-a");
    let (_, none) = api.get(&format!("{f}/conversations"), "viewer-a").await;
    assert_eq!(count(&none, "conversations"), 0);
    let (_, recs) = api.get(&format!("{f}/records"), "viewer-a").await;
    assert_eq!(recs["records"][0]["record_type"], "note");
    assert_eq!(recs["records"][0]["record"]["source"], "manual");
    let (_, settings) = api.get(&format!("{f}/settings"), "viewer-a").await;
    assert_eq!(
        settings["floor"]["record_types"],
        json!(["mortality", "sale", "expense"])
    );
    assert_eq!(settings["effective"]["sale"], "draft");
    assert_eq!(settings["time_zone"], "Africa/Lagos");

    // writes
    let autonomy = json!({"tier": "draft"});
    for (role, want) in ROLES.iter().zip([200, 403, 403, 403]) {
        let (status, body) = api
            .call(
                "PUT",
                &format!("{f}/settings/autonomy"),
                &format!("{role}-a"),
                Some(autonomy.clone()),
            )
            .await;
        assert_eq!(status, want, "PUT autonomy as {role}: {body}");
    }
    for (role, want) in ROLES.iter().zip([200, 200, 403, 403]) {
        let path = format!("{f}/members/new-{role}");
        let (status, body) = api
            .call(
                "PUT",
                &path,
                &format!("{role}-a"),
                Some(json!({"role": "worker"})),
            )
            .await;
        assert_eq!(status, want, "PUT member as {role}: {body}");
    }
    for role in ["manager", "worker", "viewer"] {
        let (status, body) = api
            .call(
                "DELETE",
                &format!("{f}/members/new-owner"),
                &format!("{role}-a"),
                None,
            )
            .await;
        assert_eq!(status, 403, "DELETE member as {role}: {body}");
    }
    let (status, body) = api
        .call("DELETE", &format!("{f}/members/new-owner"), "owner-a", None)
        .await;
    assert_eq!(
        (status, &body["removed"]),
        (200, &json!("new-owner")),
        "{body}"
    );
    for role in ["worker", "viewer"] {
        let (status, _) = api
            .call(
                "DELETE",
                &format!("{f}/memories/{m1}"),
                &format!("{role}-a"),
                None,
            )
            .await;
        assert_eq!(status, 403, "forget as {role}");
    }
    let (status, body) = api
        .call("DELETE", &format!("{f}/memories/{m1}"), "manager-a", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["forgotten"], json!([m1.to_string()]));
    assert_eq!(body["embeddings_deleted"], 1);
    let (status, _) = api
        .call("DELETE", &format!("{f}/memories/{m2}"), "owner-a", None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call("DELETE", &format!("{f}/memories/{m2}"), "owner-a", None)
        .await;
    assert_eq!(status, 404, "forgotten already");

    // a non-member writes nothing anywhere
    let writes = [
        (
            "PUT",
            format!("{f}/settings/autonomy"),
            Some(autonomy.clone()),
        ),
        (
            "PUT",
            format!("{f}/members/x"),
            Some(json!({"role": "viewer"})),
        ),
        ("DELETE", format!("{f}/members/worker-a"), None),
        ("DELETE", format!("{f}/memories/{m1}"), None),
    ];
    for (method, path, body) in writes {
        let (status, answer) = api.call(method, &path, "outsider", body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    // what was done is in the evidence, with who did it
    let (_, ev) = api.get(&format!("{f}/evidence"), "owner-a").await;
    let kinds: Vec<(&str, &str)> = ev["farm_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    for want in [
        ("autonomy_changed", "owner-a"),
        ("member_added", "manager-a"),
        ("member_removed", "owner-a"),
        ("memory_forgotten", "manager-a"),
        ("memory_forgotten", "owner-a"),
    ] {
        assert!(kinds.contains(&want), "{want:?} in {kinds:?}");
    }
    Ok(())
}

/// The governance acts are in the HTML evidence too (the JSON's `farm_events`), escaped.
#[tokio::test]
async fn governance_acts_appear_in_the_html_evidence() -> Result<()> {
    let api = Api::new().await?;
    let farm = staffed_farm(&api.db, "h", 0).await?;
    let mem = memory(&api.db, farm, "vet", "Our vet is Dr Ade.").await?;
    let f = format!("/farms/{farm}");
    let steps = [
        (
            "PUT",
            format!("{f}/settings/autonomy"),
            Some(json!({"tier": "suggest"})),
        ),
        ("DELETE", format!("{f}/members/worker-h"), None),
        ("DELETE", format!("{f}/memories/{mem}"), None),
    ];
    for (method, path, body) in steps {
        let (status, answer) = api.call(method, &path, "owner-h", body).await;
        assert_eq!(status, 200, "{method} {path}: {answer}");
    }
    // a user id is free text: the page must escape it
    let session = app_session(&api.db, farm).await?;
    session
        .batch_execute("SELECT set_member_role('manager-h', '<i>x</i>', 'viewer'); COMMIT")
        .await?;

    let req = apigw_request(
        "GET",
        &format!("{f}/evidence"),
        Some("owner-h"),
        &[("accept", "text/html")],
        None,
    );
    let res = evidence::handle(&api.reads, req).await;
    assert_eq!(res.status().as_u16(), 200);
    let html = match res.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    };
    let section = html
        .split("<table id=\"farm-events\">")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .unwrap_or_else(|| panic!("no governance acts table: {html}"));
    for kind in [
        "autonomy_changed",
        "member_removed",
        "memory_forgotten",
        "member_added",
    ] {
        assert!(
            section.contains(&format!("data-kind=\"{kind}\"")),
            "{kind} in {section}"
        );
    }
    assert_eq!(section.matches("<tr class=\"farm-event\"").count(), 4);
    assert!(section.contains("worker-h") && section.contains(&mem.to_string()));
    assert!(
        section.contains("&quot;suggest&quot;"),
        "the details: {section}"
    );
    assert!(section.contains("&lt;i&gt;x&lt;/i&gt;"), "{section}");
    assert!(!html.contains("<i>x</i>"), "escaped");
    Ok(())
}

/// Every route of the document's for the farm function is served, and every other method on
/// those paths is a 405 with `Allow` (not a 404).
#[tokio::test]
async fn other_methods_answer_405_with_allow() -> Result<()> {
    use farmops_http::testing::openapi::{
        assert_method_not_allowed, assert_routes_are_documented, unsupported_methods,
    };
    let api = Api::new().await?;
    assert_routes_are_documented("farm", farm::ROUTES);
    let cases = unsupported_methods("farm");
    // settings/autonomy, memories/{id}, members/{user_id}/budget and alerts: 7 others each;
    // members/{user_id}: 6
    assert_eq!(cases.len(), 7 + 7 + 7 + 7 + 6);
    for case in &cases {
        let req = apigw_request(case.method, &case.path, Some("owner-a"), &[], None);
        assert_method_not_allowed(case, &farm::handle(&api.writes, req).await);
    }
    Ok(())
}
