//! Human decisions through `decisions::decide` (the entry point both functions call), against
//! a real PostgreSQL with real concurrent connections.

use std::sync::Arc;

use chrono::Utc;
use farmops::{
    db::{Db, Type},
    decisions::{self, ConfirmBody, Decided, Decision, DecisionRequest, NoteBody, ReasonBody},
    drafts::{self, NewDraft},
    recommendations::{self, NewRecommendation},
    records::{self, RecordType},
    testing::TestDb,
};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use uuid::Uuid;

type R<T = ()> = anyhow::Result<T>;

const ROLES: [&str; 4] = ["owner", "manager", "worker", "viewer"];

/// A valid payload of each record type.
/// A payload as a draft holds it: [`payload`] validated (so normalised).
fn stored(t: RecordType) -> Value {
    records::validate_payload(t, &payload(t), Utc::now().date_naive())
        .expect("a valid payload")
        .into_value()
}

fn payload(t: RecordType) -> Value {
    match t {
        RecordType::Mortality => json!({"count": 3, "animal_group": "layers", "cause": "heat"}),
        RecordType::FeedUse => json!({"quantity": 25, "unit": "kg", "feed_type": "grower mash"}),
        RecordType::Sale => {
            json!({"item": "eggs", "quantity": 30, "unit": "crate", "amount_kobo": 4_500_000})
        }
        RecordType::Expense => {
            json!({"category": "feed", "amount_kobo": 1_200_000, "description": "layer mash"})
        }
        RecordType::Water => json!({"litres": 500}),
        RecordType::Weight => json!({"average_grams": 1800, "sample_size": 20}),
        RecordType::Symptom => json!({"symptoms": "coughing", "severity": "mild"}),
        RecordType::Note => json!({"body": "fence repaired"}),
        RecordType::Task => json!({"title": "clean troughs"}),
    }
}

/// Two farms, each with one member per role: `<role>-a` on farm A, `<role>-b` on farm B.
struct Farms {
    db: TestDb,
    a: Uuid,
    b: Uuid,
    /// One connection as the owner role, to look at what really happened.
    owner: tokio_postgres::Client,
}

async fn farms() -> R<Farms> {
    let db = TestDb::new().await?;
    let a = db.farm("Farm A", 0).await?;
    let b = db.farm("Farm B", 0).await?;
    for role in ROLES {
        db.member(a, &format!("{role}-a"), role).await?;
        db.member(b, &format!("{role}-b"), role).await?;
    }
    let owner = db.owner_client().await?;
    Ok(Farms { db, a, b, owner })
}

async fn draft(db: &Db, farm: Uuid, t: RecordType) -> R<Uuid> {
    let tx = db.tenant(farm).await?;
    let p = records::validate_payload(t, &payload(t), Utc::now().date_naive())?;
    let d = drafts::create_draft(
        &tx,
        &NewDraft {
            ai_run_id: None,
            payload: &p,
            summary: Some("proposed by the assistant"),
            created_by: "assistant",
        },
    )
    .await?;
    tx.commit().await?;
    Ok(d.id)
}

async fn recommendation(db: &Db, farm: Uuid) -> R<Uuid> {
    let tx = db.tenant(farm).await?;
    let r = recommendations::create_recommendation(
        &tx,
        &NewRecommendation {
            ai_run_id: None,
            title: "Vaccinate pen 3",
            body: "The Newcastle booster is due this week.",
            created_by: "assistant",
        },
    )
    .await?;
    tx.commit().await?;
    Ok(r.id)
}

fn confirm(draft_id: Uuid) -> Decision {
    Decision::ConfirmDraft {
        draft_id,
        body: ConfirmBody::default(),
    }
}

fn discard(draft_id: Uuid, reason: &str) -> Decision {
    Decision::DiscardDraft {
        draft_id,
        body: ReasonBody {
            reason: Some(reason.into()),
        },
    }
}

async fn decide(
    db: &Db,
    farm: Uuid,
    user: &str,
    key: Option<&str>,
    decision: Decision,
) -> farmops::Result<Decided> {
    decisions::decide(
        db,
        DecisionRequest {
            farm_id: farm,
            user_id: user,
            idempotency_key: key,
            decision,
            today: Utc::now().date_naive(),
        },
    )
    .await
}

fn status_of(result: &farmops::Result<Decided>) -> u16 {
    match result {
        Ok(d) => d.status,
        Err(e) => e.status(),
    }
}

/// (status, number of records made from it) of a draft, read as the owner role.
async fn draft_state(owner: &tokio_postgres::Client, draft_id: Uuid) -> R<(String, i64)> {
    let row = owner
        .query_typed(
            "SELECT status, record_type FROM assistant_drafts WHERE id = $1",
            &[(&draft_id, Type::UUID)],
        )
        .await?;
    let status: String = row[0].get(0);
    let record_type: String = row[0].get(1);
    let table = RecordType::parse(&record_type).expect("known type").table();
    let n = owner
        .query_typed(
            &format!("SELECT count(*) FROM {table} WHERE draft_id = $1"),
            &[(&draft_id, Type::UUID)],
        )
        .await?;
    Ok((status, n[0].get(0)))
}

async fn recommendation_status(owner: &tokio_postgres::Client, id: Uuid) -> R<String> {
    let row = owner
        .query_typed(
            "SELECT status FROM ai_recommendations WHERE id = $1",
            &[(&id, Type::UUID)],
        )
        .await?;
    Ok(row[0].get(0))
}

/// Runs two decisions on the same draft at the same moment on two pooled connections.
async fn race(
    pool: &Db,
    farm: Uuid,
    first: Decision,
    second: Decision,
    keys: (Option<String>, Option<String>),
) -> (farmops::Result<Decided>, farmops::Result<Decided>) {
    let barrier = Arc::new(Barrier::new(2));
    let spawn = |decision: Decision, key: Option<String>| {
        let pool = pool.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            decide(&pool, farm, "owner-a", key.as_deref(), decision).await
        })
    };
    let one = spawn(first, keys.0);
    let two = spawn(second, keys.1);
    (one.await.expect("task ran"), two.await.expect("task ran"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_confirms_exactly_one_wins_200_times() -> R {
    let f = farms().await?;
    let pool = f.db.app_pool(4)?;
    for rep in 0..200 {
        // Alternate a plain record type and a financial one (the record insert takes longer).
        let t = if rep % 2 == 0 {
            RecordType::Note
        } else {
            RecordType::Sale
        };
        let id = draft(&pool, f.a, t).await?;
        let (x, y) = race(&pool, f.a, confirm(id), confirm(id), (None, None)).await;
        let mut statuses = [status_of(&x), status_of(&y)];
        statuses.sort();
        assert_eq!(statuses, [200, 409], "rep {rep}");
        let loser = if x.is_err() { x } else { y };
        assert_eq!(
            loser.unwrap_err().body()["error"]["status"],
            "confirmed",
            "the loser is told the current status"
        );
        assert_eq!(
            draft_state(&f.owner, id).await?,
            ("confirmed".into(), 1),
            "rep {rep}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_racing_discard_exactly_one_wins_200_times() -> R {
    let f = farms().await?;
    let pool = f.db.app_pool(4)?;
    let mut confirms_won = 0;
    for rep in 0..200 {
        let id = draft(&pool, f.a, RecordType::Expense).await?;
        // Swap who is spawned first so both orders get exercised.
        let (c, d) = if rep % 2 == 0 {
            race(
                &pool,
                f.a,
                confirm(id),
                discard(id, "duplicate"),
                (None, None),
            )
            .await
        } else {
            let (d, c) = race(
                &pool,
                f.a,
                discard(id, "duplicate"),
                confirm(id),
                (None, None),
            )
            .await;
            (c, d)
        };
        let (status, records) = draft_state(&f.owner, id).await?;
        match (status_of(&c), status_of(&d)) {
            (200, 409) => {
                confirms_won += 1;
                assert_eq!((status.as_str(), records), ("confirmed", 1), "rep {rep}");
                assert_eq!(d.unwrap_err().body()["error"]["status"], "confirmed");
                assert_eq!(c.unwrap().body["draft"]["status"], "confirmed");
            }
            (409, 200) => {
                assert_eq!((status.as_str(), records), ("discarded", 0), "rep {rep}");
                assert_eq!(c.unwrap_err().body()["error"]["status"], "discarded");
                assert_eq!(d.unwrap().body["draft"]["decision_note"], "duplicate");
            }
            other => panic!("rep {rep}: expected exactly one winner, got {other:?}"),
        }
    }
    farmops::test_note!("confirm won {confirms_won} of 200 races against discard");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_with_one_key_do_the_work_once() -> R {
    let f = farms().await?;
    let pool = f.db.app_pool(4)?;
    for rep in 0..50 {
        let id = draft(&pool, f.a, RecordType::Sale).await?;
        let key = format!("confirm-{rep}");
        let (x, y) = race(
            &pool,
            f.a,
            confirm(id),
            confirm(id),
            (Some(key.clone()), Some(key)),
        )
        .await;
        let (x, y) = (x?, y?);
        assert_eq!(x.status, 200);
        assert_eq!(x.body, y.body, "identical responses");
        assert!(x.replayed ^ y.replayed, "exactly one replayed");
        assert_eq!(draft_state(&f.owner, id).await?, ("confirmed".into(), 1));
    }
    // One key on two different requests at once: one does its work, the other sees the key
    // taken by a different request (422), whichever came first.
    for rep in 0..50 {
        let id = draft(&pool, f.a, RecordType::Note).await?;
        let key = format!("mixed-{rep}");
        let (c, d) = race(
            &pool,
            f.a,
            confirm(id),
            discard(id, "dup"),
            (Some(key.clone()), Some(key)),
        )
        .await;
        let (status, records) = draft_state(&f.owner, id).await?;
        match (status_of(&c), status_of(&d)) {
            (200, 422) => assert_eq!((status.as_str(), records), ("confirmed", 1)),
            (422, 200) => assert_eq!((status.as_str(), records), ("discarded", 0)),
            other => panic!("rep {rep}: {other:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn another_farms_draft_is_404_whatever_the_role() -> R {
    let f = farms().await?;
    let app = &f.db.app;
    let draft_a = draft(app, f.a, RecordType::Note).await?;
    let rec_a = recommendation(app, f.a).await?;
    for role in ROLES {
        let user = format!("{role}-b");
        let attempts = [
            confirm(draft_a),
            discard(draft_a, "not mine"),
            Decision::ApproveRecommendation {
                id: rec_a,
                body: NoteBody::default(),
            },
            Decision::RejectRecommendation {
                id: rec_a,
                body: ReasonBody {
                    reason: Some("not mine".into()),
                },
            },
        ];
        for decision in attempts {
            // Through their own farm: the id is not one of its drafts.
            let own = decide(app, f.b, &user, None, decision.clone()).await;
            assert_eq!(status_of(&own), 404, "{user} via farm B: {decision:?}");
            // Through farm A directly: not a member.
            let direct = decide(app, f.a, &user, Some("k"), decision.clone()).await;
            assert_eq!(status_of(&direct), 404, "{user} via farm A: {decision:?}");
        }
    }
    assert_eq!(draft_state(&f.owner, draft_a).await?, ("pending".into(), 0));
    assert_eq!(recommendation_status(&f.owner, rec_a).await?, "pending");
    Ok(())
}

#[tokio::test]
async fn each_role_against_each_record_type() -> R {
    let f = farms().await?;
    let app = &f.db.app;
    for role in ROLES {
        let user = format!("{role}-a");
        for t in RecordType::ALL {
            let financial = matches!(
                t,
                RecordType::Sale | RecordType::Expense | RecordType::Mortality
            );
            let allowed = match role {
                "owner" | "manager" => true,
                "worker" => !financial,
                _ => false,
            };
            // confirm
            let id = draft(app, f.a, t).await?;
            let result = decide(app, f.a, &user, None, confirm(id)).await;
            if allowed {
                let d = result.map_err(|e| anyhow::anyhow!("{user} {t}: {e}"))?;
                assert_eq!(d.status, 200);
                let (draft, record) = (&d.body["draft"], &d.body["record"]);
                assert_eq!(draft["status"], "confirmed");
                assert_eq!(draft["decided_by"], user.as_str());
                assert!(draft["decided_at"].is_string());
                assert_eq!(draft["payload"], stored(t), "the AI's payload is kept");
                assert_eq!(draft["edited_payload"], Value::Null);
                assert_eq!(draft["record_id"], record["id"]);
                assert_eq!(record["source"], "ai_draft");
                assert_eq!(record["draft_id"], id.to_string());
                assert_eq!(record["confirmed_by"], user.as_str());
                assert!(record["confirmed_at"].is_string());
                assert_eq!(draft_state(&f.owner, id).await?, ("confirmed".into(), 1));
            } else {
                let e = result.expect_err("refused");
                assert_eq!(e.status(), 403, "{user} confirming {t}");
                assert_eq!(draft_state(&f.owner, id).await?, ("pending".into(), 0));
            }
            // discard
            let id = draft(app, f.a, t).await?;
            let result = decide(app, f.a, &user, None, discard(id, "wrong pen")).await;
            if allowed {
                let d = result.map_err(|e| anyhow::anyhow!("{user} {t}: {e}"))?;
                assert_eq!(d.body["draft"]["status"], "discarded");
                assert_eq!(d.body["draft"]["decision_note"], "wrong pen");
                assert!(d.body.get("record").is_none());
                assert_eq!(draft_state(&f.owner, id).await?, ("discarded".into(), 0));
            } else {
                assert_eq!(status_of(&result), 403, "{user} discarding {t}");
                assert_eq!(draft_state(&f.owner, id).await?, ("pending".into(), 0));
            }
        }
        // recommendations: owner and manager only
        let allowed = matches!(role, "owner" | "manager");
        for approve in [true, false] {
            let id = recommendation(app, f.a).await?;
            let decision = if approve {
                Decision::ApproveRecommendation {
                    id,
                    body: NoteBody {
                        note: Some("booked the vet".into()),
                    },
                }
            } else {
                Decision::RejectRecommendation {
                    id,
                    body: ReasonBody {
                        reason: Some("done last week".into()),
                    },
                }
            };
            let result = decide(app, f.a, &user, None, decision).await;
            let want = if approve { "approved" } else { "rejected" };
            if allowed {
                let d = result.map_err(|e| anyhow::anyhow!("{user}: {e}"))?;
                assert_eq!(d.body["recommendation"]["status"], want);
                assert_eq!(d.body["recommendation"]["decided_by"], user.as_str());
                assert_eq!(recommendation_status(&f.owner, id).await?, want);
            } else {
                assert_eq!(status_of(&result), 403, "{user} deciding a recommendation");
                assert_eq!(recommendation_status(&f.owner, id).await?, "pending");
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn invalid_edits_are_422_and_leave_the_draft_pending() -> R {
    let f = farms().await?;
    let app = &f.db.app;
    let id = draft(app, f.a, RecordType::Sale).await?;
    let bad_edits = [
        json!({"item": "eggs", "quantity": 30, "unit": "crate", "amount_kobo": 12.5}),
        json!({"item": "eggs", "quantity": 30, "unit": "crate"}),
        json!({"item": "eggs", "quantity": 30, "unit": "crate", "amount_kobo": 100, "farm_id": "x"}),
        json!({"item": "eggs", "quantity": -1, "unit": "crate", "amount_kobo": 100}),
        json!("not an object"),
        json!({"item": "eggs", "quantity": 1, "unit": "crate", "amount_kobo": 100, "occurred_on": "2999-01-01"}),
    ];
    for edits in bad_edits {
        let result = decide(
            app,
            f.a,
            "owner-a",
            None,
            Decision::ConfirmDraft {
                draft_id: id,
                body: ConfirmBody {
                    edits: Some(edits.clone()),
                    note: None,
                },
            },
        )
        .await;
        let e = result.expect_err("invalid edits refused");
        assert_eq!(e.status(), 422, "{edits}");
        assert!(e.body()["error"]["fields"].is_array());
        assert_eq!(
            draft_state(&f.owner, id).await?,
            ("pending".into(), 0),
            "{edits}"
        );
    }
    // A note over the limit is refused the same way.
    let long_note = decide(
        app,
        f.a,
        "owner-a",
        None,
        Decision::ConfirmDraft {
            draft_id: id,
            body: ConfirmBody {
                edits: None,
                note: Some("n".repeat(501)),
            },
        },
    )
    .await;
    assert_eq!(status_of(&long_note), 422);
    // Valid edits: the edited payload is stored beside the original and the record uses it.
    let edits =
        json!({"item": " eggs ", "quantity": 28, "unit": "crate", "amount_kobo": 4_200_000});
    let d = decide(
        app,
        f.a,
        "manager-a",
        None,
        Decision::ConfirmDraft {
            draft_id: id,
            body: ConfirmBody {
                edits: Some(edits),
                note: Some("two crates were cracked".into()),
            },
        },
    )
    .await?;
    let draft = &d.body["draft"];
    assert_eq!(draft["payload"], stored(RecordType::Sale));
    assert_eq!(draft["edited_payload"]["item"], "eggs", "normalised");
    assert_eq!(draft["edited_payload"]["amount_kobo"], 4_200_000);
    assert_eq!(draft["decision_note"], "two crates were cracked");
    assert_eq!(d.body["record"]["amount_kobo"], 4_200_000);
    assert_eq!(draft_state(&f.owner, id).await?, ("confirmed".into(), 1));
    Ok(())
}

#[tokio::test]
async fn a_decided_draft_answers_409_with_its_status() -> R {
    let f = farms().await?;
    let app = &f.db.app;
    let id = draft(app, f.a, RecordType::Note).await?;
    decide(app, f.a, "worker-a", None, discard(id, "duplicate")).await?;
    for decision in [confirm(id), discard(id, "again")] {
        let e = decide(app, f.a, "owner-a", None, decision)
            .await
            .expect_err("already decided");
        assert_eq!(e.status(), 409);
        assert_eq!(e.body()["error"]["status"], "discarded");
    }
    // A missing or blank reason on a pending draft is 422 and changes nothing.
    let id = draft(app, f.a, RecordType::Note).await?;
    for body in [
        ReasonBody { reason: None },
        ReasonBody {
            reason: Some("  ".into()),
        },
    ] {
        let r = decide(
            app,
            f.a,
            "owner-a",
            None,
            Decision::DiscardDraft { draft_id: id, body },
        )
        .await;
        assert_eq!(status_of(&r), 422);
    }
    assert_eq!(draft_state(&f.owner, id).await?, ("pending".into(), 0));
    // Recommendations: a blank reason is 422; a second decision is 409 with the status.
    let rec = recommendation(app, f.a).await?;
    let blank = Decision::RejectRecommendation {
        id: rec,
        body: ReasonBody { reason: None },
    };
    assert_eq!(
        status_of(&decide(app, f.a, "owner-a", None, blank).await),
        422
    );
    assert_eq!(recommendation_status(&f.owner, rec).await?, "pending");
    let approve = Decision::ApproveRecommendation {
        id: rec,
        body: NoteBody::default(),
    };
    decide(app, f.a, "manager-a", None, approve.clone()).await?;
    let e = decide(app, f.a, "owner-a", None, approve)
        .await
        .expect_err("decided");
    assert_eq!(
        (e.status(), e.body()["error"]["status"].clone()),
        (409, json!("approved"))
    );
    Ok(())
}

#[tokio::test]
async fn same_idempotency_key_twice_one_record_identical_responses() -> R {
    let f = farms().await?;
    let app = &f.db.app;
    let id = draft(app, f.a, RecordType::Expense).await?;
    let first = decide(app, f.a, "owner-a", Some("key-1"), confirm(id)).await?;
    let second = decide(app, f.a, "owner-a", Some("key-1"), confirm(id)).await?;
    assert_eq!((first.status, &first.body), (second.status, &second.body));
    assert!(!first.replayed && second.replayed);
    assert_eq!(draft_state(&f.owner, id).await?, ("confirmed".into(), 1));

    // The same key for a different request: 422, nothing changes.
    let other = draft(app, f.a, RecordType::Expense).await?;
    let e = decide(app, f.a, "owner-a", Some("key-1"), confirm(other))
        .await
        .expect_err("key reused for another request");
    assert_eq!(e.status(), 422);
    assert_eq!(e.body()["error"]["fields"][0]["field"], "Idempotency-Key");
    assert_eq!(draft_state(&f.owner, other).await?, ("pending".into(), 0));

    // Keys are per caller: another user's identical key is not a replay of the owner's.
    let e = decide(app, f.a, "manager-a", Some("key-1"), confirm(id))
        .await
        .expect_err("already confirmed");
    assert_eq!(e.status(), 409);

    // A refused attempt saves nothing: after 422 the same key may carry a corrected request.
    let bad = Decision::DiscardDraft {
        draft_id: other,
        body: ReasonBody { reason: None },
    };
    assert_eq!(
        status_of(&decide(app, f.a, "owner-a", Some("key-2"), bad).await),
        422
    );
    let ok = decide(app, f.a, "owner-a", Some("key-2"), discard(other, "typo")).await?;
    assert!(!ok.replayed);
    let again = decide(app, f.a, "owner-a", Some("key-2"), discard(other, "typo")).await?;
    assert!(again.replayed);
    assert_eq!(ok.body, again.body);
    // Without the key, the draft is already decided.
    let e = decide(app, f.a, "owner-a", None, discard(other, "typo"))
        .await
        .expect_err("409");
    assert_eq!(e.status(), 409);

    // A malformed key is 400 before anything happens.
    let third = draft(app, f.a, RecordType::Note).await?;
    let r = decide(
        app,
        f.a,
        "owner-a",
        Some("has spaces in it"),
        confirm(third),
    )
    .await;
    assert_eq!(status_of(&r), 400);
    assert_eq!(draft_state(&f.owner, third).await?, ("pending".into(), 0));
    Ok(())
}

#[tokio::test]
async fn the_schema_refuses_unanswered_claims_and_changed_responses() -> R {
    let f = farms().await?;
    let app = f.db.app_client().await?;
    let set = format!("BEGIN; SELECT set_config('app.farm_id', '{}', true);", f.a);
    let fp = "a".repeat(64);
    // A claim committed without its response is refused at commit.
    app.batch_execute(&format!(
        "{set} INSERT INTO idempotency_keys (farm_id, user_id, key, fingerprint) VALUES ('{}', 'owner-a', 'k', '{fp}');",
        f.a
    ))
    .await?;
    let err = app
        .batch_execute("COMMIT")
        .await
        .expect_err("unanswered claim");
    assert_eq!(err.code().map(|c| c.code()), Some("23514"), "{err}");
    // An answered key cannot be changed, nor deleted by the application.
    app.batch_execute(&format!(
        "{set} INSERT INTO idempotency_keys (farm_id, user_id, key, fingerprint) VALUES ('{}', 'owner-a', 'k', '{fp}');
         UPDATE idempotency_keys SET status_code = 200, response = '{{}}' WHERE key = 'k'; COMMIT;",
        f.a
    ))
    .await?;
    let err = app
        .batch_execute(&format!(
            "{set} UPDATE idempotency_keys SET status_code = 201, response = '{{\"x\":1}}' WHERE key = 'k'"
        ))
        .await
        .expect_err("saved response is final");
    assert_eq!(err.code().map(|c| c.code()), Some("23514"), "{err}");
    app.batch_execute("ROLLBACK").await?;
    let err = app
        .batch_execute(&format!("{set} DELETE FROM idempotency_keys"))
        .await
        .expect_err("no delete");
    assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err}");
    app.batch_execute("ROLLBACK").await?;
    // Another farm sees nothing of it.
    app.batch_execute(&format!(
        "BEGIN; SELECT set_config('app.farm_id', '{}', true);",
        f.b
    ))
    .await?;
    let seen = app
        .query_typed("SELECT count(*) FROM idempotency_keys", &[])
        .await?;
    assert_eq!(seen[0].get::<_, i64>(0), 0);
    app.batch_execute("ROLLBACK").await?;
    // A rejected recommendation must say why, even written by hand.
    let rec = recommendation(&f.db.app, f.a).await?;
    let err = app
        .batch_execute(&format!(
            "{set} UPDATE ai_recommendations SET status = 'rejected', decided_by = 'x', decided_at = now() WHERE id = '{rec}'"
        ))
        .await
        .expect_err("rejection without reason");
    assert_eq!(err.code().map(|c| c.code()), Some("23514"), "{err}");
    app.batch_execute("ROLLBACK").await?;
    // ... and so must a discarded draft (0003's rule let a NULL note through).
    let d = draft(&f.db.app, f.a, RecordType::Note).await?;
    let err = app
        .batch_execute(&format!(
            "{set} UPDATE assistant_drafts SET status = 'discarded', decided_by = 'x', decided_at = now() WHERE id = '{d}'"
        ))
        .await
        .expect_err("discard without reason");
    assert_eq!(err.code().map(|c| c.code()), Some("23514"), "{err}");
    app.batch_execute("ROLLBACK").await?;
    Ok(())
}

#[tokio::test]
async fn round_trips_per_decision() -> R {
    let f = farms().await?;
    let pool = f.db.app_pool(2)?;
    let measure = async |key: Option<&str>, decision: Decision| -> R<(u64, bool)> {
        let before = pool.round_trips();
        let d = decide(&pool, f.a, "owner-a", key, decision).await?;
        Ok((pool.round_trips() - before, d.replayed))
    };
    // BEGIN+membership, lock draft, insert record, mark draft, COMMIT.
    let id = draft(&pool, f.a, RecordType::Sale).await?;
    assert_eq!(measure(None, confirm(id)).await?, (5, false));
    // ... plus the claim; the response is saved in the COMMIT's round trip.
    let id = draft(&pool, f.a, RecordType::Sale).await?;
    assert_eq!(measure(Some("rt"), confirm(id)).await?, (6, false));
    // A replay: membership, claim, read the saved response, ROLLBACK.
    assert_eq!(measure(Some("rt"), confirm(id)).await?, (4, true));
    // Discard: BEGIN+membership, lock, mark, COMMIT.
    let id = draft(&pool, f.a, RecordType::Note).await?;
    assert_eq!(measure(None, discard(id, "dup")).await?, (4, false));
    Ok(())
}

#[tokio::test]
async fn a_confirmed_record_carries_its_provenance_and_the_ai_payload_survives() -> R {
    let db = TestDb::new().await?;
    let farm = db.farm("Provenance", 100).await?;
    db.member(farm, "owner-p", "owner").await?;
    // A real run, as the chat turn opens it, and a draft it produced.
    let tx = db.app.tenant(farm).await?;
    let run = farmops::credits::reserve_credits(
        &tx,
        &farmops::credits::NewRun {
            feature: farmops::credits::Feature::Chat,
            model: "local",
            user_id: Some("owner-p"),
            credits: 5,
            request_summary: Some("log 3 dead birds"),
        },
    )
    .await?;
    let p = records::validate_payload(
        RecordType::Mortality,
        &payload(RecordType::Mortality),
        Utc::now().date_naive(),
    )?;
    let d = drafts::create_draft(
        &tx,
        &NewDraft {
            ai_run_id: Some(run.run_id),
            payload: &p,
            summary: Some("3 layers died of heat"),
            created_by: "owner-p",
        },
    )
    .await?;
    tx.commit().await?;
    let edits = json!({"count": 2, "cause": "heat stress"});
    let decided = decide(
        &db.app,
        farm,
        "owner-p",
        None,
        Decision::ConfirmDraft {
            draft_id: d.id,
            body: ConfirmBody {
                edits: Some(edits),
                note: Some("one was only sick".into()),
            },
        },
    )
    .await?;
    let record = &decided.body["record"];
    assert_eq!(record["ai_run_id"], run.run_id.to_string());
    assert_eq!(record["draft_id"], d.id.to_string());
    assert_eq!(record["confirmed_by"], "owner-p");
    assert_eq!(record["source"], "ai_draft");
    assert_eq!(record["count"], 2);
    // Read back later (as evidence would): both payloads, the decision and the link.
    let tx = db.app.tenant(farm).await?;
    let stored = drafts::get_draft(&tx, d.id).await?;
    assert_eq!(
        stored.payload,
        p.to_value(),
        "the AI's proposal is kept as it was"
    );
    assert_eq!(stored.edited_payload.as_ref().unwrap()["count"], 2);
    assert_eq!(stored.decision_note.as_deref(), Some("one was only sick"));
    assert_eq!(stored.ai_run_id, Some(run.run_id));
    assert_eq!(
        stored.record_id.map(|id| id.to_string()),
        record["id"].as_str().map(String::from)
    );
    Ok(())
}
