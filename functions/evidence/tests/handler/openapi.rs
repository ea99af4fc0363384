//! The evidence function's real responses (JSON, HTML, CSV and every refusal) conform to
//! docs/openapi.yaml, and the check itself fails on bodies that do not.

use farmops_http::testing::openapi::{
    assert_conforms, assert_method_not_allowed, assert_routes_are_documented, conformance_errors,
    conformance_errors_as, parameter_allows, unsupported_methods,
};

use super::*;

const EVIDENCE: &str = "/farms/{farm_id}/evidence";
const CREDITS: &str = "/farms/{farm_id}/credits";
const DRAFTS: &str = "/farms/{farm_id}/drafts";
/// The paths the evidence function serves, each with GET only.
const ROUTES_SERVED: usize = 13;

/// GETs `path` as `user` (none: no identity) and checks the answer against `template`.
async fn checked(
    state: &State,
    template: &str,
    path: &str,
    user: Option<&str>,
    accept: Option<&str>,
    want: u16,
) -> Response<Body> {
    let headers: Vec<(&str, &str)> = accept.map(|a| vec![("accept", a)]).unwrap_or_default();
    let res = handle(state, apigw_request("GET", path, user, &headers, None)).await;
    assert_eq!(
        res.status().as_u16(),
        want,
        "GET {path} as {user:?} ({accept:?}): {}",
        text(&res)
    );
    assert_conforms("GET", template, &res);
    res
}

#[tokio::test]
async fn evidence_credits_and_drafts_conform_to_the_openapi_document() -> Result<()> {
    let db = TestDb::new().await?;
    let h = scripted_history(&db).await?;
    let state = state(&db);
    let farm = h.farm;
    let evidence = format!("/farms/{farm}/evidence");

    // 200 in the three representations, a filtered page and a paginated one.
    let res = checked(&state, EVIDENCE, &evidence, Some("alice"), None, 200).await;
    let page = body_json(&res);
    assert_eq!(page["runs"].as_array().map(Vec::len), Some(4), "{page}");
    assert!(page["runs"].as_array().unwrap().iter().any(|r| {
        !r["drafts"].as_array().unwrap().is_empty()
            && !r["evals"].as_array().unwrap().is_empty()
            && !r["feedback"].as_array().unwrap().is_empty()
    }));
    let first = checked(
        &state,
        EVIDENCE,
        &format!("{evidence}?limit=1"),
        Some("mia"),
        Some("application/json"),
        200,
    )
    .await;
    let cursor = body_json(&first)["next_cursor"]
        .as_str()
        .context("a next page")?
        .to_string();
    checked(
        &state,
        EVIDENCE,
        &format!("{evidence}?limit=1&cursor={cursor}"),
        Some("mia"),
        None,
        200,
    )
    .await;
    let today = Utc::now().date_naive();
    let filtered = checked(
        &state,
        EVIDENCE,
        &format!("{evidence}?feature=chat&status=failed&from=2020-01-01&to={today}"),
        Some("alice"),
        None,
        200,
    )
    .await;
    assert_eq!(
        body_json(&filtered)["runs"][0]["id"],
        h.failed_run.to_string()
    );
    let html = checked(
        &state,
        EVIDENCE,
        &evidence,
        Some("alice"),
        Some("text/html"),
        200,
    )
    .await;
    assert!(html.headers().contains_key("content-security-policy"));
    let csv = checked(
        &state,
        EVIDENCE,
        &evidence,
        Some("alice"),
        Some("text/csv"),
        200,
    )
    .await;
    assert_eq!(text(&csv).lines().count(), 5, "a header and four runs");

    // Every refusal of the evidence route.
    checked(&state, EVIDENCE, &evidence, None, None, 401).await;
    checked(&state, EVIDENCE, &evidence, Some("wes"), None, 403).await;
    checked(
        &state,
        EVIDENCE,
        &evidence,
        Some("vic"),
        Some("text/csv"),
        403,
    )
    .await;
    checked(&state, EVIDENCE, &evidence, Some("bob"), None, 404).await;
    let elsewhere = format!("/farms/{}/evidence", h.other);
    checked(&state, EVIDENCE, &elsewhere, Some("alice"), None, 404).await;
    checked(
        &state,
        EVIDENCE,
        "/farms/nope/evidence",
        Some("alice"),
        None,
        404,
    )
    .await;
    let res = checked(
        &state,
        EVIDENCE,
        &evidence,
        Some("alice"),
        Some("image/png"),
        406,
    )
    .await;
    assert_eq!(body_json(&res)["error"]["code"], "not_acceptable");
    for query in [
        "limit=0",
        "limit=201",
        "limit=ten",
        "cursor=nope",
        "feature=sql",
        "status=done",
        "from=yesterday",
        "from=2026-02-01&to=2026-01-01",
    ] {
        let res = checked(
            &state,
            EVIDENCE,
            &format!("{evidence}?{query}"),
            Some("alice"),
            None,
            422,
        )
        .await;
        assert_eq!(
            body_json(&res)["error"]["code"],
            "invalid_payload",
            "{query}"
        );
    }

    // Credits.
    let credits = format!("/farms/{farm}/credits");
    let res = checked(&state, CREDITS, &credits, Some("alice"), None, 200).await;
    let statement = body_json(&res);
    assert!(!statement["entries"].as_array().unwrap().is_empty());
    assert!(
        statement["invariant"]["checkpoint"].is_null(),
        "{statement}"
    );
    // after the reconcile job's ledger checkpoint, the invariant says which one it read
    let tx = db.app.tenant(farm).await?;
    assert!(credits::checkpoint_ledger(&tx).await? > 0);
    tx.commit().await?;
    let res = checked(&state, CREDITS, &credits, Some("mia"), None, 200).await;
    let invariant = &body_json(&res)["invariant"];
    assert_eq!(invariant["method"], "checkpoint", "{invariant}");
    assert_eq!(invariant["checkpoint"]["entries_after"], 0, "{invariant}");
    assert_eq!(invariant["holds"], true, "{invariant}");
    let res = checked(&state, EVIDENCE, &evidence, Some("alice"), None, 200).await;
    assert_eq!(body_json(&res)["ledger"]["method"], "checkpoint");
    checked(&state, CREDITS, &credits, None, None, 401).await;
    checked(&state, CREDITS, &credits, Some("wes"), None, 403).await;
    checked(&state, CREDITS, &credits, Some("bob"), None, 404).await;

    // Drafts, every status and none.
    let drafts = format!("/farms/{farm}/drafts");
    let res = checked(&state, DRAFTS, &drafts, Some("vic"), None, 200).await;
    assert_eq!(body_json(&res)["drafts"].as_array().map(Vec::len), Some(3));
    for status in ["pending", "confirmed", "discarded"] {
        let res = checked(
            &state,
            DRAFTS,
            &format!("{drafts}?status={status}"),
            Some("wes"),
            None,
            200,
        )
        .await;
        assert_eq!(body_json(&res)["drafts"][0]["status"], status);
    }
    checked(
        &state,
        DRAFTS,
        &format!("{drafts}?status=bogus"),
        Some("wes"),
        None,
        422,
    )
    .await;
    checked(&state, DRAFTS, &drafts, None, None, 401).await;
    checked(&state, DRAFTS, &drafts, Some("bob"), None, 404).await;
    // membership comes first: a stranger learns nothing from a bad filter either
    let bogus = format!("{drafts}?status=bogus");
    checked(&state, DRAFTS, &bogus, Some("bob"), None, 404).await;

    // The check can fail: the real page with a run missing its matched legs, an unknown
    // status, an extra total, a wrong type; CSV without its header row; HTML that is not a
    // page; an undocumented media type or status; an error with the wrong code.
    assert!(conformance_errors("GET", EVIDENCE, 200, &page).is_empty());
    let mut broken = page.clone();
    broken["runs"][0].as_object_mut().unwrap().remove("matched");
    assert!(!conformance_errors("GET", EVIDENCE, 200, &broken).is_empty());
    let mut broken = page.clone();
    broken["runs"][0]["status"] = json!("done");
    assert!(!conformance_errors("GET", EVIDENCE, 200, &broken).is_empty());
    let mut broken = page.clone();
    broken["page_totals"]["secret"] = json!(1);
    assert!(!conformance_errors("GET", EVIDENCE, 200, &broken).is_empty());
    let mut broken = page.clone();
    broken["ledger"]["holds"] = json!("yes");
    assert!(!conformance_errors("GET", EVIDENCE, 200, &broken).is_empty());
    let mut broken = page.clone();
    broken["runs"][0]["legs"][0]["entry_type"] = json!("gift");
    assert!(!conformance_errors("GET", EVIDENCE, 200, &broken).is_empty());
    let csv_text = text(&csv);
    assert!(conformance_errors_as("GET", EVIDENCE, 200, "text/csv", &json!(csv_text)).is_empty());
    let headless = csv_text.split_once("\r\n").unwrap().1;
    assert!(!conformance_errors_as("GET", EVIDENCE, 200, "text/csv", &json!(headless)).is_empty());
    assert!(!conformance_errors_as("GET", EVIDENCE, 200, "text/csv", &page).is_empty());
    assert!(
        !conformance_errors_as("GET", EVIDENCE, 200, "text/html", &json!("<p>hi</p>")).is_empty()
    );
    assert!(
        !conformance_errors_as("GET", EVIDENCE, 200, "application/xml", &json!("<a/>")).is_empty()
    );
    assert!(!conformance_errors("GET", EVIDENCE, 409, &page).is_empty());
    let wrong = json!({"error": {"code": "forbidden", "message": "x"}});
    assert!(!conformance_errors("GET", EVIDENCE, 406, &wrong).is_empty());
    let mut broken = statement.clone();
    broken["entries"][0]["ai_run_id"] = json!(7);
    assert!(!conformance_errors("GET", CREDITS, 200, &broken).is_empty());
    Ok(())
}

/// Every route of the document's for evidence is served, and every other method on those
/// paths is a 405 with `Allow` (not a 404).
#[tokio::test]
async fn other_methods_answer_405_with_allow() -> Result<()> {
    let db = TestDb::new().await?;
    let state = state(&db);
    assert_routes_are_documented("evidence", evidence::ROUTES);
    let cases = unsupported_methods("evidence");
    assert_eq!(cases.len(), ROUTES_SERVED * 7);
    for case in &cases {
        let req = apigw_request(case.method, &case.path, Some("alice"), &[], None);
        assert_method_not_allowed(case, &handle(&state, req).await);
    }
    Ok(())
}

/// The `from` and `to` values the document allows (evidence: RFC 3339 `date-time` or
/// `date`; records: `date`) are exactly the ones the handler takes; every other one, the
/// empty value included, is the documented 422 naming the parameter.
#[tokio::test]
async fn from_and_to_take_exactly_what_the_document_allows() -> Result<()> {
    let db = TestDb::new().await?;
    let state = state(&db);
    let farm = db.farm("Dates", 0).await?;
    db.member(farm, "alice", "owner").await?;
    let values = [
        "2026-01-01",
        "2024-02-29",
        "2026-01-01T10:00:00Z",
        "2026-01-01t10:00:00z",
        "2026-01-01T10:00:00.123456789123+01:30",
        "2026-01-01T00:00:00-23:59",
        "2016-12-31T23:59:60Z",
        "2016-12-31T15:59:60-08:00",
        "",
        "2016-12-31T12:00:60Z",
        "2026-1-1",
        "+2026-01-01",
        "02026-01-01",
        "2026-01-01 10:00:00Z",
        "2026-01-01T10:00:00",
        "2026-01-01T10:00Z",
        "2026-01-01T10:00:00+24:00",
        "2026-01-01T10:00:00+0100",
        "2023-02-29",
        "20260101",
        "yesterday",
    ];
    let mut allowed = 0;
    for (template, route) in [
        (EVIDENCE, "evidence"),
        ("/farms/{farm_id}/records", "records"),
    ] {
        for param in ["from", "to"] {
            for value in values {
                // percent-encoded as a client sends it (a raw `+` would read as a space)
                let encoded = value.replace('+', "%2B").replace(' ', "%20");
                let path = format!("/farms/{farm}/{route}?{param}={encoded}");
                let res = handle(
                    &state,
                    apigw_request("GET", &path, Some("alice"), &[], None),
                )
                .await;
                let documented = parameter_allows("GET", template, param, value);
                let status = res.status().as_u16();
                assert_eq!(status == 200, documented, "{path}: {}", text(&res));
                if !documented {
                    assert_eq!(status, 422, "{path}");
                    assert_eq!(
                        body_json(&res)["error"]["fields"][0]["field"],
                        param,
                        "{path}"
                    );
                }
                assert_conforms("GET", template, &res);
                allowed += usize::from(documented);
            }
        }
    }
    // evidence: 8 values twice; records: the 2 dates twice
    assert_eq!(allowed, 8 * 2 + 2 * 2);
    Ok(())
}
