//! Direct SQL as the application role trying to break each invariant: the database refuses
//! with its own error, whatever the Rust code would have done.

use farmops::{
    credits::{self, Feature, NewRun},
    drafts::{self, Decider, NewDraft},
    membership::Role,
    records::{self, RecordType},
    testing::TestDb,
};
use serde_json::json;

use crate::{exec, sqlstate};

const CHECK: &str = "23514";
const FOREIGN_KEY: &str = "23503";
const PRIVILEGE: &str = "42501";

async fn reserved_run(db: &TestDb, farm: uuid::Uuid) -> uuid::Uuid {
    let tx = db.app.tenant(farm).await.unwrap();
    let r = credits::reserve_credits(
        &tx,
        &NewRun {
            feature: Feature::Chat,
            model: "offline-farm-assistant",
            user_id: Some("u"),
            credits: 2,
            request_summary: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    r.run_id
}

#[tokio::test]
async fn balance_cannot_go_negative_or_change_without_a_ledger_row() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 10).await.unwrap();
    // the application role cannot write the balance at all (migration 0060) ...
    for sql in [
        "UPDATE farms SET credit_balance = -1",
        "UPDATE farms SET credit_balance = 1000",
    ] {
        assert_eq!(sqlstate(exec(&db.app, farm, sql).await), PRIVILEGE, "{sql}");
    }
    // ... and the owner cannot make it negative or raise it without a ledger row (at commit)
    assert_eq!(
        sqlstate(exec(&db.owner, farm, "UPDATE farms SET credit_balance = -1").await),
        CHECK
    );
    assert_eq!(
        sqlstate(exec(&db.owner, farm, "UPDATE farms SET credit_balance = 1000").await),
        CHECK
    );
    // a ledger row whose balance_after does not continue the chain is refused
    let bad_leg = format!(
        "WITH f AS (UPDATE farms SET credit_balance = 15 WHERE id = '{farm}' RETURNING id)
         INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason)
         SELECT id, 'adjust', 3, 15, 'x', 'off by two' FROM f"
    );
    assert_eq!(sqlstate(exec(&db.owner, farm, &bad_leg).await), CHECK);
    // a ledger row with a negative balance_after
    let negative = format!(
        "INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, actor, reason)
         VALUES ('{farm}', 'adjust', -11, -1, 'x', 'y')"
    );
    assert_eq!(sqlstate(exec(&db.app, farm, &negative).await), PRIVILEGE);
    assert_eq!(sqlstate(exec(&db.owner, farm, &negative).await), CHECK);
    let tx = db.app.tenant(farm).await.unwrap();
    let audit = credits::audit_ledger(&tx).await.unwrap();
    assert!(audit.holds && audit.credit_balance == 10, "{audit:?}");
}

#[tokio::test]
async fn the_ledger_is_append_only_for_the_app_and_the_owner() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 10).await.unwrap();
    for sql in [
        "UPDATE credit_ledger SET delta = 100",
        "DELETE FROM credit_ledger",
        "TRUNCATE credit_ledger",
    ] {
        assert_eq!(
            sqlstate(exec(&db.app, farm, sql).await),
            PRIVILEGE,
            "app: {sql}"
        );
        // the owner has the grants; the trigger still refuses
        assert_eq!(
            sqlstate(exec(&db.owner, farm, sql).await),
            PRIVILEGE,
            "owner: {sql}"
        );
    }
    let rows = exec(&db.owner, farm, "SELECT count(*) FROM credit_ledger")
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
}

#[tokio::test]
async fn decisions_are_final_and_drafts_are_typed() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 0).await.unwrap();
    let tx = db.app.tenant(farm).await.unwrap();
    let payload = records::validate_payload(
        RecordType::Note,
        &json!({"body": "fence mended"}),
        chrono::Utc::now().date_naive(),
    )
    .unwrap();
    let draft = drafts::create_draft(
        &tx,
        &NewDraft {
            ai_run_id: None,
            payload: &payload,
            summary: None,
            created_by: "ai-user",
        },
    )
    .await
    .unwrap();
    drafts::discard_draft(
        &tx,
        draft.id,
        Decider {
            user_id: "boss",
            role: Role::Owner,
        },
        "duplicate",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let id = draft.id;
    let confirm = format!(
        "UPDATE assistant_drafts SET status = 'confirmed', decided_by = 'x', decided_at = now(), record_id = gen_random_uuid() WHERE id = '{id}'"
    );
    assert_eq!(
        sqlstate(exec(&db.app, farm, &confirm).await),
        CHECK,
        "a discarded draft cannot be confirmed"
    );
    let reopen = format!(
        "UPDATE assistant_drafts SET status = 'pending', decided_by = NULL, decided_at = NULL WHERE id = '{id}'"
    );
    assert_eq!(sqlstate(exec(&db.app, farm, &reopen).await), CHECK);
    assert_eq!(
        sqlstate(
            exec(
                &db.app,
                farm,
                &format!("DELETE FROM assistant_drafts WHERE id = '{id}'")
            )
            .await
        ),
        PRIVILEGE
    );

    let unknown = format!(
        "INSERT INTO assistant_drafts (farm_id, record_type, payload, created_by) VALUES ('{farm}', 'harvest', '{{}}', 'ai')"
    );
    assert_eq!(sqlstate(exec(&db.app, farm, &unknown).await), CHECK);

    // a pending draft cannot pretend to be confirmed without its record
    let fresh = exec(
        &db.app,
        farm,
        &format!("INSERT INTO assistant_drafts (farm_id, record_type, payload, created_by) VALUES ('{farm}', 'note', '{{\"body\":\"x\"}}', 'ai') RETURNING id"),
    )
    .await
    .unwrap()[0]
        .get::<_, uuid::Uuid>(0);
    let fake = format!(
        "UPDATE assistant_drafts SET status = 'confirmed', decided_by = 'x', decided_at = now(), record_id = gen_random_uuid() WHERE id = '{fresh}'"
    );
    assert_eq!(sqlstate(exec(&db.app, farm, &fake).await), CHECK);
    // and its payload cannot be rewritten while pending
    let rewrite =
        format!("UPDATE assistant_drafts SET payload = '{{\"body\":\"y\"}}' WHERE id = '{fresh}'");
    assert_eq!(sqlstate(exec(&db.app, farm, &rewrite).await), CHECK);
}

#[tokio::test]
async fn the_ai_never_writes_money_or_deaths_directly() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 10).await.unwrap();
    let run = reserved_run(&db, farm).await;
    for (table, cols, values) in [
        (
            "sales",
            "item, quantity, unit, amount_kobo",
            "'eggs', 20, 'crate', 4500000",
        ),
        (
            "expenses",
            "category, amount_kobo, description",
            "'vaccine', 1250000, 'vaccines'",
        ),
        ("mortality_events", "count", "3"),
    ] {
        let sql = format!(
            "INSERT INTO {table} (farm_id, source, ai_run_id, created_by, {cols}) VALUES ('{farm}', 'ai_auto', '{run}', 'u', {values})"
        );
        assert_eq!(sqlstate(exec(&db.app, farm, &sql).await), CHECK, "{table}");
    }
    // the same as a non-financial record is allowed
    let ok = format!(
        "INSERT INTO feed_logs (farm_id, source, ai_run_id, created_by, quantity, unit) VALUES ('{farm}', 'ai_auto', '{run}', 'u', 4, 'bag')"
    );
    exec(&db.app, farm, &ok).await.unwrap();
    // an ai_draft record without a confirmed draft is refused
    let orphan = format!(
        "INSERT INTO notes (farm_id, source, draft_id, confirmed_by, confirmed_at, created_by, body) VALUES ('{farm}', 'ai_draft', gen_random_uuid(), 'x', now(), 'u', 'x')"
    );
    let state = sqlstate(exec(&db.app, farm, &orphan).await);
    assert!(state == FOREIGN_KEY || state == CHECK, "{state}");
}

#[tokio::test]
async fn rows_cannot_point_at_another_farms_rows() {
    let db = TestDb::new().await.unwrap();
    let a = db.farm("A", 10).await.unwrap();
    let b = db.farm("B", 10).await.unwrap();
    let b_run = reserved_run(&db, b).await;
    // as the owner (sees both farms) so RLS is not what stops it: the composite key is
    let sql = format!(
        "INSERT INTO assistant_drafts (farm_id, ai_run_id, record_type, payload, created_by) VALUES ('{a}', '{b_run}', 'note', '{{\"body\":\"x\"}}', 'ai')"
    );
    assert_eq!(sqlstate(exec(&db.owner, a, &sql).await), FOREIGN_KEY);
    let sql = format!(
        "INSERT INTO ai_evals (farm_id, ai_run_id, name, passed) VALUES ('{a}', '{b_run}', 'x', true)"
    );
    assert_eq!(sqlstate(exec(&db.owner, a, &sql).await), FOREIGN_KEY);
}

#[tokio::test]
async fn tenants_see_and_write_only_their_own_farm() {
    let db = TestDb::new().await.unwrap();
    let a = db.farm("A", 10).await.unwrap();
    let b = db.farm("B", 20).await.unwrap();
    db.member(b, "bob", "owner").await.unwrap();
    reserved_run(&db, b).await;
    exec(&db.owner, b, &format!("INSERT INTO notes (farm_id, source, created_by, body) VALUES ('{b}', 'manual', 'bob', 'secret')"))
        .await
        .unwrap();

    // as farm A: nothing of B is visible...
    for table in ["farms", "farm_members", "credit_ledger", "ai_runs", "notes"] {
        let rows = exec(
            &db.app,
            a,
            &format!(
                "SELECT count(*) FROM {table} WHERE {} = '{b}'",
                if table == "farms" { "id" } else { "farm_id" }
            ),
        )
        .await
        .unwrap();
        assert_eq!(rows[0].get::<_, i64>(0), 0, "{table} of B visible to A");
    }
    // ...nor changeable; and the app cannot raise its own farm's autonomy
    assert_eq!(
        sqlstate(exec(&db.app, a, "UPDATE farms SET ai_autonomy = 'auto'").await),
        PRIVILEGE
    );
    let raise = format!("UPDATE farms SET credit_balance = 0 WHERE id = '{b}' RETURNING id");
    assert_eq!(sqlstate(exec(&db.app, a, &raise).await), PRIVILEGE);
    let write = format!(
        "INSERT INTO notes (farm_id, source, created_by, body) VALUES ('{b}', 'manual', 'mallory', 'x')"
    );
    assert_eq!(
        sqlstate(exec(&db.app, a, &write).await),
        PRIVILEGE,
        "RLS WITH CHECK refuses the write"
    );

    // with no tenant at all, every tenant table is empty
    let client = db.app_client().await.unwrap();
    for table in [
        "farms",
        "farm_members",
        "credit_ledger",
        "ai_runs",
        "assistant_drafts",
        "ai_recommendations",
        "notes",
        "sales",
        "conversations",
        "messages",
        "memories",
        "documents",
        "embeddings",
        "ai_evals",
        "ai_feedback",
    ] {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "{table} visible without app.farm_id");
    }
    // the application role owns nothing and cannot bypass RLS
    let row = client
        .query_one(
            "SELECT rolbypassrls OR rolsuper, (SELECT count(*) FROM pg_class WHERE relowner = r.oid) FROM pg_roles r WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert!(!row.get::<_, bool>(0));
    assert_eq!(row.get::<_, i64>(1), 0);
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let db = TestDb::new().await.unwrap();
    let owner = db.owner.client().await.unwrap();
    let applied = farmops::db::migrate::migrate(&owner).await.unwrap();
    assert!(applied.is_empty(), "already applied: {applied:?}");
}
