//! The evidence function against a real PostgreSQL: a scripted history read back as JSON, CSV
//! and in headless Chromium; pagination under concurrent inserts; roles and tenants; the page
//! query's plan on 100,000 runs.

use std::collections::HashMap;

use anyhow::{Context, Result, bail, ensure};
use chrono::Utc;
use evidence::{State, handle};
use farmops::{
    credits::{self, Feature, NewRun, Settlement},
    db::{Db, Type},
    drafts::{self, Decider, NewDraft},
    evidence as ev,
    membership::Role,
    records::{self, RecordType},
    testing::TestDb,
};
use farmops_http::{
    IdentitySource,
    testing::{apigw_request, body_json},
};
use lambda_http::{Body, Response};
use serde_json::{Value, json};
use uuid::Uuid;

#[path = "handler/export.rs"]
mod export;
#[path = "handler/faults.rs"]
mod faults;
#[path = "handler/grants.rs"]
mod grants;
#[path = "handler/openapi.rs"]
mod openapi;

const XSS: &str = "<script>document.title='pwned'</script>wrong buyer";

fn state(db: &TestDb) -> State {
    State {
        db: db.app.clone(),
        identity: IdentitySource::default(),
    }
}

fn text(res: &Response<Body>) -> String {
    match res.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

async fn get(state: &State, path: &str, user: &str, accept: Option<&str>) -> (u16, Response<Body>) {
    let headers: Vec<(&str, &str)> = accept.map(|a| vec![("accept", a)]).unwrap_or_default();
    let res = handle(
        state,
        apigw_request("GET", path, Some(user), &headers, None),
    )
    .await;
    (res.status().as_u16(), res)
}

struct History {
    farm: Uuid,
    other: Uuid,
    confirmed_run: Uuid,
    failed_run: Uuid,
    expired_run: Uuid,
    recommend_run: Uuid,
    edited_draft: Uuid,
    discarded_draft: Uuid,
    pending_draft: Uuid,
}

async fn reserve(db: &Db, farm: Uuid, credits: i64, summary: &str) -> Result<Uuid> {
    let tx = db.tenant(farm).await?;
    let r = credits::reserve_credits(
        &tx,
        &NewRun {
            feature: Feature::Chat,
            model: "offline-farm-assistant",
            user_id: Some("alice"),
            credits,
            request_summary: Some(summary),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(r.run_id)
}

/// What chat turns and decisions record: drafts confirmed (one edited), discarded and
/// pending, a failed model call, an expired reservation, a recommendation, evals, feedback.
async fn scripted_history(db: &TestDb) -> Result<History> {
    let farm = db.farm("Green Acres", 1000).await?;
    let other = db.farm("Other Farm", 100).await?;
    db.member(farm, "alice", "owner").await?;
    db.member(farm, "mia", "manager").await?;
    db.member(farm, "wes", "worker").await?;
    db.member(farm, "vic", "viewer").await?;
    db.member(other, "bob", "owner").await?;
    let today = Utc::now().date_naive();
    let app = &db.app;
    let alice = Decider {
        user_id: "alice",
        role: Role::Owner,
    };

    // 1. a chat turn that proposes three drafts: 20 reserved, 3 charged, 17 refunded
    let confirmed_run = reserve(app, farm, 20, "used 4 bags of feed, sold eggs").await?;
    let tx = app.tenant(farm).await?;
    let mk = |t: RecordType, p: Value| {
        records::validate_payload(t, &p, Utc::now().date_naive()).unwrap()
    };
    let p1 = mk(RecordType::FeedUse, json!({"quantity": 4, "unit": "bag"}));
    let p2 = mk(
        RecordType::Sale,
        json!({"item": "eggs", "quantity": 20, "unit": "crate", "amount_kobo": 4_500_000}),
    );
    let p3 = mk(RecordType::Note, json!({"body": "check the <b>fence</b>"}));
    let mut ids = Vec::new();
    for p in [&p1, &p2, &p3] {
        let d = drafts::create_draft(
            &tx,
            &NewDraft {
                ai_run_id: Some(confirmed_run),
                payload: p,
                summary: Some("proposed by the assistant"),
                created_by: "alice",
            },
        )
        .await?;
        ids.push(d.id);
    }
    ev::record_eval(&tx, confirmed_run, "schema_conformance", true, &json!({})).await?;
    ev::record_eval(
        &tx,
        confirmed_run,
        "clinical_safety",
        false,
        &json!({"flag": "dose"}),
    )
    .await?;
    credits::settle_run(
        &tx,
        confirmed_run,
        &Settlement {
            credits_charged: 3,
            input_tokens: 1200,
            output_tokens: 300,
            latency_ms: 850,
            response_summary: Some("three drafts proposed"),
            ..Default::default()
        },
    )
    .await?
    .context("settled")?;
    tx.commit().await?;
    let tx = app.tenant(farm).await?;
    drafts::confirm_draft(
        &tx,
        ids[0],
        alice,
        Some(&json!({"quantity": 5, "unit": "bag"})),
        Some("it was five bags"),
        today,
    )
    .await?;
    drafts::discard_draft(&tx, ids[1], alice, XSS).await?;
    ev::record_feedback(&tx, confirmed_run, "alice", "up", Some("useful")).await?;
    tx.commit().await?;

    // 2. a failed model call: 10 reserved, everything refunded
    let failed_run = reserve(app, farm, 10, "what is wrong with my hens?").await?;
    let tx = app.tenant(farm).await?;
    credits::settle_run(
        &tx,
        failed_run,
        &Settlement {
            failed: true,
            credits_charged: 0,
            latency_ms: 30000,
            error: Some("model throttled"),
            ..Default::default()
        },
    )
    .await?
    .context("settled")?;
    tx.commit().await?;

    // 3. a run whose Lambda died: expired by the reconciler, 15 refunded in full
    let expired_run = reserve(app, farm, 15, "lambda died mid-turn").await?;
    let tx = app.tenant(farm).await?;
    let expired =
        credits::expire_reservations(&tx, Utc::now() + chrono::Duration::seconds(1)).await?;
    ensure!(
        expired.runs == 1 && expired.credits_refunded == 15,
        "{expired:?}"
    );
    tx.commit().await?;

    // 4. a recommendation, rejected by the manager; 5 reserved, 5 charged
    let recommend_run = reserve(app, farm, 5, "should I vaccinate?").await?;
    let tx = app.tenant(farm).await?;
    ev::record_recommendation(
        &tx,
        recommend_run,
        "Vaccinate pen 2",
        "Newcastle risk",
        "alice",
    )
    .await?;
    credits::settle_run(
        &tx,
        recommend_run,
        &Settlement {
            credits_charged: 5,
            input_tokens: 2000,
            output_tokens: 800,
            latency_ms: 400,
            response_summary: Some("recommend vaccination"),
            ..Default::default()
        },
    )
    .await?
    .context("settled")?;
    tx.commit().await?;

    Ok(History {
        farm,
        other,
        confirmed_run,
        failed_run,
        expired_run,
        recommend_run,
        edited_draft: ids[0],
        discarded_draft: ids[1],
        pending_draft: ids[2],
    })
}

fn run(page: &Value, id: Uuid) -> &Value {
    page["runs"]
        .as_array()
        .and_then(|runs| runs.iter().find(|r| r["id"] == id.to_string()))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn scripted_history_appears_with_every_leg_matched_and_totals_equal_the_ledger() -> Result<()>
{
    let db = TestDb::new().await?;
    let h = scripted_history(&db).await?;
    let state = state(&db);
    let (status, res) = get(
        &state,
        &format!("/farms/{}/evidence", h.farm),
        "alice",
        None,
    )
    .await;
    assert_eq!(status, 200, "{}", text(&res));
    let page = body_json(&res);
    assert_eq!(page["runs"].as_array().map(Vec::len), Some(4));
    assert_eq!(page["next_cursor"], Value::Null);
    // newest first
    let order: Vec<&str> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = [
        h.recommend_run,
        h.expired_run,
        h.failed_run,
        h.confirmed_run,
    ]
    .iter()
    .map(Uuid::to_string)
    .collect();
    assert_eq!(order, expected);

    // every leg matched to its run: reserved, charged, refunded, expired
    let legs = |id| {
        let m = &run(&page, id)["matched"];
        (
            m["reserved"].as_i64().unwrap(),
            m["charged"].as_i64().unwrap(),
            m["refunded"].as_i64().unwrap(),
            m["expired"].as_i64().unwrap(),
            m["open"].as_i64().unwrap(),
            m["consistent"].as_bool().unwrap(),
        )
    };
    assert_eq!(legs(h.confirmed_run), (20, 3, 17, 0, 0, true));
    assert_eq!(legs(h.failed_run), (10, 0, 10, 0, 0, true));
    assert_eq!(legs(h.expired_run), (15, 0, 0, 15, 0, true));
    assert_eq!(legs(h.recommend_run), (5, 5, 0, 0, 0, true));
    assert_eq!(run(&page, h.failed_run)["status"], "failed");
    assert_eq!(run(&page, h.failed_run)["error"], "model throttled");
    assert_eq!(run(&page, h.expired_run)["status"], "expired");
    assert_eq!(run(&page, h.confirmed_run)["user_id"], "alice");
    assert_eq!(run(&page, h.confirmed_run)["input_tokens"], 1200);
    assert_eq!(run(&page, h.confirmed_run)["latency_ms"], 850);

    // the ledger: every run-linked row appears on exactly one run, with the same amounts
    let owner = db.owner_client().await?;
    let ledger = owner
        .query_typed(
            "SELECT id, ai_run_id, entry_type, delta FROM credit_ledger WHERE farm_id = $1 AND ai_run_id IS NOT NULL",
            &[(&h.farm, Type::UUID)],
        )
        .await?;
    assert_eq!(ledger.len(), 8, "4 reserves, 3 settles, 1 expire");
    for row in &ledger {
        let (id, run_id, kind, delta): (i64, Uuid, String, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let on_run: Vec<&Value> = run(&page, run_id)["legs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["id"] == id)
            .collect();
        assert_eq!(on_run.len(), 1, "leg {id} on its run");
        assert_eq!(on_run[0]["entry_type"], kind.as_str());
        assert_eq!(on_run[0]["delta"], delta);
    }

    // totals equal the ledger
    let sums = owner
        .query_typed(
            "SELECT entry_type, sum(delta)::bigint FROM credit_ledger WHERE farm_id = $1 GROUP BY 1",
            &[(&h.farm, Type::UUID)],
        )
        .await?;
    let sum: HashMap<String, i64> = sums.iter().map(|r| (r.get(0), r.get(1))).collect();
    let t = &page["farm_totals"];
    assert_eq!(t["granted"], sum["grant"]);
    assert_eq!(t["reserved"], -sum["reserve"]);
    assert_eq!(t["refunded"], sum["settle"]);
    assert_eq!(t["expired"], sum["expire"]);
    assert_eq!(t["charged"], 8);
    assert_eq!(t["open"], 0);
    let p = &page["page_totals"];
    assert_eq!(
        (
            p["reserved"].as_i64(),
            p["charged"].as_i64(),
            p["refunded"].as_i64(),
            p["expired"].as_i64()
        ),
        (Some(50), Some(8), Some(27), Some(15))
    );
    let balance: i64 = owner
        .query_typed(
            "SELECT credit_balance FROM farms WHERE id = $1",
            &[(&h.farm, Type::UUID)],
        )
        .await?[0]
        .get(0);
    assert_eq!(balance, 1000 - 8);
    assert_eq!(t["expected_balance"], balance);
    assert_eq!(page["ledger"]["holds"], true);
    assert_eq!(page["ledger"]["credit_balance"], balance);

    // drafts with their decisions: who, when, why, original vs edited, record
    let drafts = run(&page, h.confirmed_run)["drafts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(drafts.len(), 3);
    let d = |id: Uuid| drafts.iter().find(|d| d["id"] == id.to_string()).unwrap();
    let edited = d(h.edited_draft);
    assert_eq!(edited["status"], "confirmed");
    assert_eq!(edited["decided_by"], "alice");
    assert!(edited["decided_at"].is_string());
    assert_eq!(edited["decision_note"], "it was five bags");
    assert_eq!(edited["payload"]["quantity"].as_f64(), Some(4.0));
    assert_eq!(edited["edited_payload"]["quantity"].as_f64(), Some(5.0));
    let record_id: Uuid = edited["record_id"].as_str().unwrap().parse()?;
    let rec = owner
        .query_typed(
            "SELECT quantity::float8, draft_id FROM feed_logs WHERE id = $1",
            &[(&record_id, Type::UUID)],
        )
        .await?;
    assert_eq!(rec[0].get::<_, f64>(0), 5.0, "the record holds the edit");
    assert_eq!(rec[0].get::<_, Uuid>(1), h.edited_draft);
    assert_eq!(d(h.discarded_draft)["status"], "discarded");
    assert_eq!(d(h.discarded_draft)["decision_note"], XSS);
    assert_eq!(d(h.discarded_draft)["record_id"], Value::Null);
    assert_eq!(d(h.pending_draft)["status"], "pending");
    // evals, feedback, recommendations
    let evals = run(&page, h.confirmed_run)["evals"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(evals.len(), 2);
    assert!(
        evals
            .iter()
            .any(|e| e["name"] == "clinical_safety" && e["passed"] == false)
    );
    assert_eq!(run(&page, h.confirmed_run)["feedback"][0]["rating"], "up");
    assert_eq!(
        run(&page, h.recommend_run)["recommendations"][0]["title"],
        "Vaccinate pen 2"
    );

    // filters
    let (_, res) = get(
        &state,
        &format!("/farms/{}/evidence?status=failed", h.farm),
        "mia",
        None,
    )
    .await;
    let only = body_json(&res);
    assert_eq!(only["runs"].as_array().map(Vec::len), Some(1));
    assert_eq!(only["runs"][0]["id"], h.failed_run.to_string());
    assert_eq!(only["filters"]["status"], "failed", "filters echoed");
    let tomorrow = (Utc::now() + chrono::Duration::days(1)).date_naive();
    let (_, res) = get(
        &state,
        &format!("/farms/{}/evidence?from={tomorrow}", h.farm),
        "alice",
        None,
    )
    .await;
    assert_eq!(body_json(&res)["runs"].as_array().map(Vec::len), Some(0));
    for bad in [
        "status=done",
        "feature=x",
        "limit=500",
        "cursor=abc",
        "from=soon",
    ] {
        let (status, res) = get(
            &state,
            &format!("/farms/{}/evidence?{bad}", h.farm),
            "alice",
            None,
        )
        .await;
        assert_eq!(status, 422, "{bad}");
        assert_eq!(body_json(&res)["error"]["code"], "invalid_payload");
    }

    // content negotiation: nothing we offer is acceptable -> 406 with the JSON error shape
    for accept in ["image/png", "application/xml", "text/html;q=0"] {
        let (status, res) = get(
            &state,
            &format!("/farms/{}/evidence", h.farm),
            "alice",
            Some(accept),
        )
        .await;
        assert_eq!(status, 406, "{accept}");
        assert_eq!(
            body_json(&res)["error"]["code"],
            "not_acceptable",
            "{accept}"
        );
    }
    for (accept, content_type) in [
        ("*/*", "application/json"),
        ("image/png, text/csv;q=0.2", "text/csv"),
    ] {
        let (status, res) = get(
            &state,
            &format!("/farms/{}/evidence", h.farm),
            "alice",
            Some(accept),
        )
        .await;
        assert_eq!(status, 200, "{accept}");
        let ct = res.headers()["content-type"].to_str()?;
        assert!(ct.starts_with(content_type), "{accept}: {ct}");
    }

    // roles and tenants
    let (status, _) = get(&state, &format!("/farms/{}/evidence", h.farm), "wes", None).await;
    assert_eq!(status, 403, "worker");
    let (status, _) = get(&state, &format!("/farms/{}/credits", h.farm), "wes", None).await;
    assert_eq!(status, 403, "worker on credits");
    for route in ["evidence", "credits"] {
        let (status, res) = get(&state, &format!("/farms/{}/{route}", h.farm), "vic", None).await;
        assert_eq!(status, 403, "viewer on {route}");
        assert_eq!(body_json(&res)["error"]["code"], "forbidden");
    }
    let (status, _) = get(&state, &format!("/farms/{}/drafts", h.farm), "vic", None).await;
    assert_eq!(status, 200, "every member lists drafts, a viewer too");
    let (status, res) = get(
        &state,
        &format!("/farms/{}/evidence", h.other),
        "alice",
        None,
    )
    .await;
    assert_eq!(status, 404, "other farm");
    assert_eq!(body_json(&res)["error"]["code"], "not_found");
    let (status, _) = get(&state, &format!("/farms/{}/evidence", h.farm), "bob", None).await;
    assert_eq!(status, 404, "not a member");
    let res = handle(
        &state,
        apigw_request(
            "GET",
            &format!("/farms/{}/evidence", h.farm),
            None,
            &[],
            None,
        ),
    )
    .await;
    assert_eq!(res.status().as_u16(), 401);

    // credits: balance, entries, invariant
    let (status, res) = get(&state, &format!("/farms/{}/credits", h.farm), "mia", None).await;
    assert_eq!(status, 200);
    let c = body_json(&res);
    assert_eq!(c["balance"], balance);
    assert_eq!(c["invariant"]["holds"], true);
    assert_eq!(
        c["entries"].as_array().map(Vec::len),
        Some(9),
        "grant + 8 run legs"
    );
    assert_eq!(c["entries"][0]["balance_after"], balance, "newest first");

    // drafts list: every member, status validated
    let (status, res) = get(
        &state,
        &format!("/farms/{}/drafts?status=pending", h.farm),
        "wes",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let pending = body_json(&res);
    assert_eq!(pending["drafts"].as_array().map(Vec::len), Some(1));
    assert_eq!(pending["drafts"][0]["id"], h.pending_draft.to_string());
    let (_, res) = get(&state, &format!("/farms/{}/drafts", h.farm), "wes", None).await;
    assert_eq!(body_json(&res)["drafts"].as_array().map(Vec::len), Some(3));
    let (status, _) = get(
        &state,
        &format!("/farms/{}/drafts?status=bogus", h.farm),
        "wes",
        None,
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = get(&state, &format!("/farms/{}/drafts", h.farm), "bob", None).await;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn csv_parses_with_one_row_per_run() -> Result<()> {
    let db = TestDb::new().await?;
    let h = scripted_history(&db).await?;
    let state = state(&db);
    let (status, res) = get(
        &state,
        &format!("/farms/{}/evidence", h.farm),
        "alice",
        Some("text/csv"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        res.headers()["content-type"]
            .to_str()?
            .starts_with("text/csv")
    );
    let body = text(&res);
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let headers = reader.headers()?.clone();
    assert_eq!(headers.len(), ev::csv::HEADER.len());
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().collect::<Result<_, _>>()?;
    assert_eq!(rows.len(), 4, "one row per run");
    let by_id: HashMap<&str, &csv::StringRecord> =
        rows.iter().map(|r| (&r[col("run_id")], r)).collect();
    let confirmed = by_id[h.confirmed_run.to_string().as_str()];
    assert_eq!(&confirmed[col("leg_reserved")], "20");
    assert_eq!(&confirmed[col("leg_charged")], "3");
    assert_eq!(&confirmed[col("leg_refunded")], "17");
    assert_eq!(
        &confirmed[col("request_summary")],
        "used 4 bags of feed, sold eggs",
        "comma survives quoting"
    );
    assert_eq!(&confirmed[col("evals_failed")], "clinical_safety");
    let expired = by_id[h.expired_run.to_string().as_str()];
    assert_eq!(&expired[col("leg_expired")], "15");
    assert_eq!(&expired[col("status")], "expired");
    assert!(rows.iter().all(|r| &r[col("legs_consistent")] == "true"));
    Ok(())
}

fn find_chromium() -> Result<String> {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if std::process::Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Ok(c.to_string());
        }
    }
    bail!("chromium is not installed: run scripts/setup-browser.sh (scripts/test.sh does)")
}

#[tokio::test]
async fn html_page_renders_in_headless_chromium_with_matched_legs_and_no_injected_script()
-> Result<()> {
    let chromium = find_chromium()?;
    let db = TestDb::new().await?;
    let h = scripted_history(&db).await?;
    let state = state(&db);
    let (status, res) = get(
        &state,
        &format!("/farms/{}/evidence", h.farm),
        "alice",
        Some("text/html,application/xhtml+xml,*/*;q=0.8"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        res.headers()["content-type"]
            .to_str()?
            .starts_with("text/html")
    );
    assert!(
        res.headers()["content-security-policy"]
            .to_str()?
            .contains("script-src 'sha256-"),
        "CSP header"
    );
    let html = text(&res);
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "no external assets"
    );

    // the artefacts go to $CARGO_TARGET_DIR/evidence (the workspace's target/ by default)
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target")
        })
        .join("evidence");
    std::fs::create_dir_all(&target)?;
    let page = target.join("evidence.html");
    std::fs::write(&page, &html)?;
    let url = format!("file://{}", page.canonicalize()?.display());
    let profile = target.join(format!("chromium-profile-{}", Uuid::new_v4().simple()));
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ];
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let run_chromium = |extra: Vec<String>| -> Result<std::process::Output> {
        let out = std::process::Command::new(&chromium)
            .args(base)
            .arg(&profile_arg)
            .args(extra)
            .output()?;
        ensure!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out)
    };
    let dom = String::from_utf8(run_chromium(vec!["--dump-dom".into(), url.clone()])?.stdout)?;
    let screenshot = target.join("evidence.png");
    let _ = std::fs::remove_file(&screenshot);
    run_chromium(vec![
        format!("--screenshot={}", screenshot.display()),
        "--window-size=1280,900".into(),
        url,
    ])?;
    let _ = std::fs::remove_dir_all(&profile);
    ensure!(
        std::fs::metadata(&screenshot)?.len() > 1000,
        "screenshot written"
    );

    // the inline script ran in the browser: the summary it fills is in the rendered DOM only
    assert!(
        dom.contains("4 runs on this page; every run matches its ledger legs"),
        "rendered summary missing"
    );
    let unrendered = "<p id=\"summary\">4 runs on this page.</p>";
    assert!(
        html.contains(unrendered),
        "the source holds the placeholder"
    );
    assert!(!dom.contains(unrendered), "the browser replaced it");
    // the runs table rows and their matched legs
    for (id, reserved, charged, refunded, expired) in [
        (h.confirmed_run, 20, 3, 17, 0),
        (h.failed_run, 10, 0, 10, 0),
        (h.expired_run, 15, 0, 0, 15),
        (h.recommend_run, 5, 5, 0, 0),
    ] {
        let start = dom
            .find(&format!("id=\"run-{id}\""))
            .context("run row in the DOM")?;
        let row = &dom[start..start + dom[start..].find("</tr>").context("row end")?];
        for (class, v) in [
            ("leg-reserved", reserved),
            ("leg-charged", charged),
            ("leg-refunded", refunded),
            ("leg-expired", expired),
        ] {
            assert!(
                row.contains(&format!("class=\"{class}\">{v}</td>")),
                "{id} {class} {v}"
            );
        }
    }
    assert!(dom.contains("data-holds=\"true\""), "invariant status");
    // the draft note with <script> stayed text: no injected element, title untouched
    assert!(
        dom.contains("&lt;script&gt;document.title="),
        "escaped note shown as text"
    );
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(!dom.contains("<title>pwned</title>"));
    Ok(())
}

#[tokio::test]
async fn pagination_returns_every_run_once_while_runs_are_inserted() -> Result<()> {
    let db = TestDb::new().await?;
    let farm = db.farm("Busy Farm", 100_000).await?;
    db.member(farm, "alice", "owner").await?;
    let mut before = Vec::new();
    for batch in 0..4 {
        // a batch shares one created_at: the id breaks the tie
        let tx = db.app.tenant(farm).await?;
        for i in 0..30 {
            let r = credits::reserve_credits(
                &tx,
                &NewRun {
                    feature: Feature::Chat,
                    model: "offline-farm-assistant",
                    user_id: Some("alice"),
                    credits: 1,
                    request_summary: Some(&format!("batch {batch} run {i}")),
                },
            )
            .await?;
            before.push(r.run_id);
        }
        tx.commit().await?;
    }
    let state = state(&db);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let app = db.app.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                reserve(&app, farm, 1, "concurrent").await?;
                n += 1;
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            anyhow::Ok(n)
        })
    };
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/farms/{farm}/evidence?limit=7&cursor={c}"),
            None => format!("/farms/{farm}/evidence?limit=7"),
        };
        let (status, res) = get(&state, &path, "alice", None).await;
        assert_eq!(status, 200, "{}", text(&res));
        let page = body_json(&res);
        let runs = page["runs"].as_array().unwrap();
        assert!(runs.len() <= 7);
        seen.extend(runs.iter().map(|r| r["id"].as_str().unwrap().to_string()));
        pages += 1;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let inserted = writer.await??;
    assert!(inserted > 0, "runs were inserted during the walk");
    assert!(pages >= 18, "{pages} pages");
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no run twice");
    for id in &before {
        assert!(unique.contains(&id.to_string()), "run {id} missing");
    }
    Ok(())
}

fn seq_scans(plan: &Value, out: &mut Vec<String>, index_scans: &mut Vec<String>) {
    match plan {
        Value::Object(m) => {
            let node = m.get("Node Type").and_then(Value::as_str).unwrap_or("");
            let rel = m.get("Relation Name").and_then(Value::as_str).unwrap_or("");
            if node == "Seq Scan" {
                out.push(rel.to_string());
            }
            if node.contains("Index") {
                index_scans.push(format!("{node} {rel}"));
            }
            m.values().for_each(|v| seq_scans(v, out, index_scans));
        }
        Value::Array(a) => a.iter().for_each(|v| seq_scans(v, out, index_scans)),
        _ => {}
    }
}

#[tokio::test]
async fn page_query_uses_index_scans_on_100k_runs() -> Result<()> {
    let db = TestDb::new().await?;
    let big = db.farm("Big Farm", 1_000_000).await?;
    let small = db.farm("Small Farm", 1000).await?;
    db.member(big, "alice", "owner").await?;
    let owner = db.owner_client().await?;
    let lot = farmops::testing::seeded_lot_debit(big, 100_000);
    // 100,000 settled runs, each with its reserve (-2) and settle (+1) legs, chained: after
    // run n the balance is 1,000,000 - n. One INSERT ... SELECT per table.
    owner
        .batch_execute(&format!(
            "BEGIN;
             CREATE TEMP TABLE gen AS
               SELECT n, gen_random_uuid() AS id FROM generate_series(1, 100000) n;
             INSERT INTO ai_runs (farm_id, id, feature, model, user_id, status, credits_reserved,
                                  credits_charged, input_tokens, output_tokens, latency_ms,
                                  created_at, finished_at)
               SELECT '{big}', id, CASE WHEN n % 3 = 0 THEN 'embed' ELSE 'chat' END,
                      'offline-farm-assistant', 'alice', 'succeeded', 2, 1, 100, 10, 50,
                      now() - n * interval '1 minute', now() - n * interval '1 minute' + interval '1 second'
                 FROM gen;
             INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor)
               SELECT '{big}', k.t, k.d, 1000000 - n + CASE k.t WHEN 'reserve' THEN -1 ELSE 0 END, id, 'system'
                 FROM gen CROSS JOIN (VALUES (1, 'reserve', -2), (2, 'settle', 1)) k(o, t, d)
                ORDER BY n, k.o;
             UPDATE farms SET credit_balance = 1000000 - 100000 WHERE id = '{big}';
             {lot}
             COMMIT;
             ANALYZE ai_runs; ANALYZE credit_ledger; ANALYZE assistant_drafts;
             ANALYZE ai_recommendations; ANALYZE ai_evals; ANALYZE ai_feedback;"
        ))
        .await
        .context("generating 100k runs")?;
    let _ = small;

    // the ledger still holds, and a page reads right
    let tx = db.app.tenant(big).await?;
    let audit = credits::audit_ledger(&tx).await?;
    assert!(audit.holds, "{audit:?}");
    assert_eq!(audit.entries, 200_001);
    let q = ev::EvidenceQuery {
        limit: 50,
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let page = ev::evidence_page(&tx, &q).await?;
    let elapsed = started.elapsed();
    tx.commit().await?;
    assert_eq!(page.runs.len(), 50);
    assert!(
        page.runs
            .iter()
            .all(|r| r.matched.consistent && r.matched.charged == 1)
    );
    assert_eq!(page.farm_totals.charged, 100_000);
    farmops::test_note!("evidence page of 50 over 100k runs: {elapsed:?}");

    // the page statement's plan, as the application role under its tenant: first page, a
    // cursor page, and a filtered one
    let cursor = page.runs.last().map(|r| (r.created_at, r.id)).unwrap();
    let app = db.app_client().await?;
    app.batch_execute(&format!("SET app.farm_id = '{big}'"))
        .await?;
    let none_t: Option<chrono::DateTime<Utc>> = None;
    let none_s: Option<String> = None;
    let none_id: Option<Uuid> = None;
    let chat = Some("chat".to_string());
    // the page statement alone (best of 5), for the record
    let mut best = std::time::Duration::MAX;
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let rows = app
            .query_typed(
                ev::PAGE_SQL,
                &[
                    (&big, Type::UUID),
                    (&none_s, Type::TEXT),
                    (&none_s, Type::TEXT),
                    (&none_t, Type::TIMESTAMPTZ),
                    (&none_t, Type::TIMESTAMPTZ),
                    (&Some(cursor.0), Type::TIMESTAMPTZ),
                    (&Some(cursor.1), Type::UUID),
                    (&51i64, Type::INT8),
                ],
            )
            .await?;
        best = best.min(started.elapsed());
        assert_eq!(rows.len(), 51);
    }
    farmops::test_note!("page statement alone (51 runs with children, after a cursor): {best:?}");
    type PlanCase = (
        &'static str,
        Option<String>,
        Option<chrono::DateTime<Utc>>,
        Option<Uuid>,
    );
    let cases: Vec<PlanCase> = vec![
        ("first page", none_s.clone(), none_t, none_id),
        (
            "cursor page",
            none_s.clone(),
            Some(cursor.0),
            Some(cursor.1),
        ),
        ("feature filter", chat, Some(cursor.0), Some(cursor.1)),
    ];
    for (name, feature, at, id) in cases {
        let rows = app
            .query_typed(
                &format!("EXPLAIN (FORMAT JSON) {}", ev::PAGE_SQL),
                &[
                    (&big, Type::UUID),
                    (&feature, Type::TEXT),
                    (&none_s, Type::TEXT),
                    (&none_t, Type::TIMESTAMPTZ),
                    (&none_t, Type::TIMESTAMPTZ),
                    (&at, Type::TIMESTAMPTZ),
                    (&id, Type::UUID),
                    (&51i64, Type::INT8),
                ],
            )
            .await?;
        let plan: Value = rows[0].get(0);
        let (mut seq, mut idx) = (Vec::new(), Vec::new());
        seq_scans(&plan, &mut seq, &mut idx);
        assert!(
            !seq.iter().any(|r| r == "ai_runs" || r == "credit_ledger"),
            "{name}: seq scan on {seq:?}\n{plan:#}"
        );
        assert!(
            idx.iter().any(|s| s.ends_with("ai_runs")),
            "{name}: {idx:?}"
        );
        assert!(
            idx.iter().any(|s| s.ends_with("credit_ledger")),
            "{name}: {idx:?}"
        );
    }

    // the farm's totals and invariant: without a checkpoint they sum the whole ledger; after
    // one (what reconcile-credits takes) they read it plus the rows after it, by index only
    let tx = db.app.tenant(big).await?;
    let started = std::time::Instant::now();
    let (before, audit_before) = ev::farm_ledger(&tx).await?;
    let without = started.elapsed();
    assert!(audit_before.checkpoint.is_none() && audit_before.holds);
    assert_eq!(credits::checkpoint_ledger(&tx).await?, 200_001);
    tx.commit().await?;
    // ten more settled runs after the checkpoint
    for i in 0..10 {
        let run = reserve(&db.app, big, 3, &format!("after the checkpoint {i}")).await?;
        let tx = db.app.tenant(big).await?;
        let settlement = Settlement {
            credits_charged: 1,
            ..Default::default()
        };
        credits::settle_run(&tx, run, &settlement).await?;
        tx.commit().await?;
    }
    let tx = db.app.tenant(big).await?;
    let started = std::time::Instant::now();
    let (after, audit) = ev::farm_ledger(&tx).await?;
    let with = started.elapsed();
    let full = credits::audit_ledger(&tx).await?;
    tx.commit().await?;
    farmops::test_note!(
        "farm totals + invariant: {without:?} summing 200,001 rows, {with:?} from a checkpoint + 20"
    );
    assert!(audit.holds, "{audit:?}");
    let cp = audit.checkpoint.as_ref().expect("checkpoint used");
    assert_eq!(cp.entries_after, 20);
    assert_eq!(after.ledger_entries, 200_021);
    assert_eq!(after.charged, before.charged + 10);
    assert_eq!(after.reserved, before.reserved + 30);
    assert_eq!(after.refunded, before.refunded + 20);
    assert_eq!(after.expected_balance, audit.credit_balance);
    // the full audit re-sums everything and agrees, checkpoint verified
    assert_eq!(
        (full.sum_of_deltas, full.entries, full.credit_balance),
        (audit.sum_of_deltas, audit.entries, audit.credit_balance)
    );
    assert_eq!(full.checkpoint.and_then(|c| c.verified), Some(true));
    let rows = app
        .query_typed(
            &format!("EXPLAIN (FORMAT JSON) {}", ev::LEDGER_SQL),
            &[
                (&big, Type::UUID),
                (&cp.through_id, Type::INT8),
                (&Some(0i64), Type::INT8),
            ],
        )
        .await?;
    let plan: Value = rows[0].get(0);
    let (mut seq, mut idx) = (Vec::new(), Vec::new());
    seq_scans(&plan, &mut seq, &mut idx);
    assert!(
        !seq.iter().any(|r| r == "ai_runs" || r == "credit_ledger"),
        "ledger statement: seq scan on {seq:?}\n{plan:#}"
    );
    Ok(())
}
