//! The built `farmops` binary against a real database: every command's `--help`, the success
//! path of each command (checked in the database), and clear errors with a non-zero exit.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

use farmops::{
    credits::{self, Feature, NewRun},
    testing::TestDb,
};
use serde_json::Value;
use uuid::Uuid;

const COMMANDS: [&str; 16] = [
    "migrate",
    "create-farm",
    "add-member",
    "grant",
    "grants",
    "reconcile",
    "set-autonomy",
    "set-budget",
    "expire",
    "audit",
    "set-pack",
    "payments",
    "clinical-check",
    "sign-checkpoints",
    "export-evidence",
    "verify",
];

fn farmops(db: Option<&TestDb>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_farmops"));
    cmd.args(args).env_remove("FARMOPS_OWNER_DATABASE_URL");
    for var in [
        "FARMOPS_DB_IAM_AUTH",
        "FARMOPS_DB_TLS",
        "FARMOPS_DB_CA_BUNDLE",
    ] {
        cmd.env_remove(var);
    }
    if let Some(db) = db {
        cmd.env("FARMOPS_OWNER_DATABASE_URL", db.owner_url());
    }
    cmd.output().expect("the farmops binary runs")
}

fn ok(out: &Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {stdout}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// Exit 1 and the message on stderr, nothing on stdout.
fn fails(out: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains(message), "{message:?} not in {stderr:?}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn every_command_has_help() {
    let out = farmops(None, &["--help"]);
    let top = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success());
    for command in COMMANDS {
        assert!(top.contains(command), "{command} missing from --help");
        let out = farmops(None, &[command, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{command} --help");
        let usage = text.lines().find(|l| l.starts_with("Usage: farmops"));
        assert!(
            usage.is_some_and(|u| u.contains(&format!(" {command}"))),
            "{text}"
        );
    }
}

#[test]
fn usage_errors_exit_non_zero() {
    fails(
        &farmops(None, &["audit"]),
        "no database: set FARMOPS_OWNER_DATABASE_URL or pass --database-url",
    );
    fails(
        &farmops(
            None,
            &[
                "--database-url",
                "postgres://nobody:x@127.0.0.1:1/x",
                "audit",
            ],
        ),
        "error: database",
    );
    let out = farmops(None, &["no-such-command"]);
    assert!(!out.status.success());
    let out = farmops(
        None,
        &[
            "--database-url",
            "postgres://x@127.0.0.1:1/x",
            "add-member",
            "not-a-uuid",
            "u",
            "--role",
            "owner",
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-a-uuid"));
}

#[tokio::test]
async fn operator_commands_against_a_real_database() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let owner = db.owner_client().await?;
    let id = Uuid::new_v4().to_string();

    let migrated = ok(&farmops(Some(&db), &["migrate"]));
    assert_eq!(
        migrated[0]["applied"],
        serde_json::json!([]),
        "template is migrated"
    );

    let created = ok(&farmops(
        Some(&db),
        &["create-farm", "CLI Farm", "--id", &id],
    ));
    assert_eq!(created[0]["farm_id"], id.as_str());
    let farm: Uuid = id.parse()?;
    let row = owner
        .query_one("SELECT name FROM farms WHERE id = $1", &[&farm])
        .await?;
    assert_eq!(row.get::<_, String>(0), "CLI Farm");

    ok(&farmops(
        Some(&db),
        &["add-member", &id, "alice", "--role", "manager"],
    ));
    ok(&farmops(
        Some(&db),
        &["add-member", &id, "alice", "--role", "owner"],
    ));
    let role: String = owner
        .query_one(
            "SELECT role FROM farm_members WHERE farm_id = $1 AND user_id = 'alice'",
            &[&farm],
        )
        .await?
        .get(0);
    assert_eq!(role, "owner", "a second add-member changes the role");
    fails(
        &farmops(Some(&db), &["add-member", &id, "bob", "--role", "admin"]),
        "role must be owner, manager, worker or viewer",
    );
    let missing = Uuid::new_v4().to_string();
    fails(
        &farmops(
            Some(&db),
            &["add-member", &missing, "bob", "--role", "owner"],
        ),
        "no farm",
    );

    let granted = ok(&farmops(
        Some(&db),
        &["grant", &id, "500", "--reason", "starter pack"],
    ));
    assert_eq!(granted[0]["balance"], 500);
    let reason: String = owner
        .query_one(
            "SELECT reason FROM credit_ledger WHERE farm_id = $1 AND entry_type = 'grant'",
            &[&farm],
        )
        .await?
        .get(0);
    assert_eq!(reason, "starter pack");
    let out = farmops(Some(&db), &["grant", &id, "-5", "--reason", "oops"]);
    assert!(!out.status.success(), "a negative grant is refused");
    let balance: i64 = owner
        .query_one("SELECT credit_balance FROM farms WHERE id = $1", &[&farm])
        .await?
        .get(0);
    assert_eq!(balance, 500, "a refused grant changes nothing");

    let set = ok(&farmops(
        Some(&db),
        &[
            "set-autonomy",
            &id,
            "--tier",
            "auto",
            "--auto-categories",
            "feed_use,water",
            "--override",
            "note=suggest",
        ],
    ));
    assert_eq!(set[0]["autonomy"]["tier"], "auto");
    let row = owner
        .query_one(
            "SELECT ai_autonomy, ai_auto_categories, ai_record_autonomy FROM farms WHERE id = $1",
            &[&farm],
        )
        .await?;
    assert_eq!(row.get::<_, String>(0), "auto");
    assert_eq!(
        row.get::<_, Value>(1),
        serde_json::json!(["feed_use", "water"])
    );
    assert_eq!(
        row.get::<_, Value>(2),
        serde_json::json!({"note": "suggest"})
    );
    fails(
        &farmops(Some(&db), &["set-autonomy", &id, "--tier", "yolo"]),
        "unknown tier \"yolo\"",
    );
    // the API's rules: the floor cannot be lifted from the CLI either
    fails(
        &farmops(
            Some(&db),
            &[
                "set-autonomy",
                &id,
                "--tier",
                "auto",
                "--auto-categories",
                "feed_use,sale",
            ],
        ),
        "floor",
    );
    fails(
        &farmops(
            Some(&db),
            &[
                "set-autonomy",
                &id,
                "--tier",
                "draft",
                "--auto-categories",
                "unicorns",
            ],
        ),
        "unknown record type",
    );
    let tier: String = owner
        .query_one("SELECT ai_autonomy FROM farms WHERE id = $1", &[&farm])
        .await?
        .get(0);
    assert_eq!(tier, "auto", "a refused set-autonomy changes nothing");

    // A reservation that never settles; expire refunds it in full.
    let tx = db.owner.tenant(farm).await?;
    credits::reserve_credits(
        &tx,
        &NewRun {
            feature: Feature::Chat,
            model: "offline-farm-assistant",
            user_id: Some("alice"),
            credits: 40,
            request_summary: None,
        },
    )
    .await?;
    tx.commit().await?;
    let expired = ok(&farmops(Some(&db), &["expire", "--older-than-secs", "0"]));
    let total = &expired.last().unwrap()["total"];
    assert_eq!(total["runs"], 1);
    assert_eq!(total["credits_refunded"], 40);
    let again = ok(&farmops(Some(&db), &["expire", "--older-than-secs", "0"]));
    assert_eq!(again.last().unwrap()["total"]["runs"], 0, "refunds once");

    let audit = ok(&farmops(Some(&db), &["audit", &id]));
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["holds"], true, "{}", audit[0]);
    ok(&farmops(Some(&db), &["audit"]));
    Ok(())
}

#[tokio::test]
async fn grants_are_lots_with_keys_expiry_and_refusals_that_change_nothing() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let farm = db.farm("lots", 0).await?;
    let id = farm.to_string();
    let owner = db.owner_client().await?;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let promo = [
        "grant",
        &id,
        "30",
        "--reason",
        "welcome",
        "--category",
        "promotional",
        "--priority",
        "10",
        "--expires-at",
        &soon,
        "--source",
        "promotion",
        "--idempotency-key",
        "welcome-2026",
    ];
    let first = ok(&farmops(Some(&db), &promo));
    assert_eq!(
        (first[0]["granted"].as_i64(), first[0]["balance"].as_i64()),
        (Some(30), Some(30))
    );
    let again = ok(&farmops(Some(&db), &promo));
    assert_eq!(again[0]["duplicate"], true, "the same key grants once");
    assert_eq!(
        (again[0]["granted"].as_i64(), again[0]["balance"].as_i64()),
        (Some(0), Some(30))
    );
    ok(&farmops(
        Some(&db),
        &["grant", &id, "100", "--reason", "starter pack"],
    ));

    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let refusals: [(&[&str], &str); 6] = [
        (
            &["grant", &id, "5", "--reason", "r", "--expires-at", &past],
            "expires_at: must be in the future",
        ),
        (
            &["grant", &id, "-5", "--reason", "r"],
            "amount: a grant must be positive",
        ),
        (
            &["grant", &id, "5", "--reason", "r", "--category", "free"],
            "--category must be paid or promotional",
        ),
        (
            &["grant", &id, "5", "--reason", "r", "--source", "payment"],
            "--source must be operator or promotion",
        ),
        (
            &["grant", &id, "5", "--reason", "r", "--priority", "101"],
            "priority: must be 0 to 100",
        ),
        (
            &[
                "grant",
                &id,
                "5",
                "--reason",
                "r",
                "--expires-at",
                "tomorrow",
            ],
            "--expires-at must be an RFC 3339 time",
        ),
    ];
    for (args, message) in refusals {
        fails(&farmops(Some(&db), args), message);
    }
    let (lots, balance): (i64, i64) = {
        let r = owner
            .query_one(
                "SELECT (SELECT count(*) FROM credit_lots WHERE farm_id = $1),
                        (SELECT credit_balance FROM farms WHERE id = $1)",
                &[&farm],
            )
            .await?;
        (r.get(0), r.get(1))
    };
    assert_eq!((lots, balance), (2, 130), "refused grants change nothing");

    // spend order: the promotion (priority 10) before the pack
    let listed = ok(&farmops(Some(&db), &["grants", &id]));
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["category"], "promotional");
    assert_eq!(listed[0]["status"], "live");
    assert_eq!(listed[1]["remaining"], 100);

    // the promotion lapses unspent: reconcile closes it with one expire_grant leg
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let run = ok(&farmops(Some(&db), &["reconcile"]));
    assert_eq!(run[0]["lots_closed"], 1, "{}", run[0]);
    assert_eq!(run[0]["grant_credits_expired"], 30);
    let twice = ok(&farmops(Some(&db), &["reconcile"]));
    assert_eq!(twice[0]["lots_closed"], 0);
    let listed = ok(&farmops(Some(&db), &["grants", &id]));
    assert_eq!(listed[1]["status"], "closed", "closed lots last");
    let audit = ok(&farmops(Some(&db), &["audit", &id]));
    assert_eq!(audit[0]["holds"], true, "{}", audit[0]);
    assert_eq!(audit[0]["credit_balance"], 100);
    Ok(())
}

#[tokio::test]
async fn packs_and_the_payments_received() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let farm = db.farm("buyer", 0).await?;
    let set = ok(&farmops(
        Some(&db),
        &[
            "set-pack",
            "starter",
            "--credits",
            "500",
            "--price-kobo",
            "500000",
        ],
    ));
    assert_eq!(
        set[0],
        serde_json::json!({"name": "starter", "credits": 500, "price_kobo": 500000})
    );
    // changed in place
    ok(&farmops(
        Some(&db),
        &[
            "set-pack",
            "starter",
            "--credits",
            "600",
            "--price-kobo",
            "500000",
        ],
    ));
    let owner = db.owner_client().await?;
    let row = owner
        .query_one(
            "SELECT credits, price_kobo FROM credit_packs WHERE name = 'starter'",
            &[],
        )
        .await?;
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (600, 500_000));
    for (args, message) in [
        (
            ["set-pack", "Starter", "--credits", "1", "--price-kobo", "1"],
            "name: 1 to 63 of a-z",
        ),
        (
            ["set-pack", "free", "--credits", "0", "--price-kobo", "1"],
            "credits: must be a positive whole number",
        ),
        (
            ["set-pack", "free", "--credits", "5", "--price-kobo", "0"],
            "price_kobo: must be a positive whole number of kobo",
        ),
    ] {
        fails(&farmops(Some(&db), &args), message);
    }
    let out = farmops(
        Some(&db),
        &["set-pack", "x", "--credits", "many", "--price-kobo", "1"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("many"));

    // two deliveries as the billing role: one granted, one for a pack that does not exist
    let billing = db.billing_pool(1)?;
    let secret = farmops::config::Secret::new("sk_test_cli");
    for (reference, pack) in [("ps-cli-1", "starter"), ("ps-cli-2", "gold")] {
        let body = serde_json::json!({"event": "charge.success", "data": {
            "reference": reference, "status": "success", "currency": "NGN", "amount": 500000,
            "metadata": {"farm_id": farm, "pack": pack}}})
        .to_string();
        let signature = farmops::payments::paystack::sign(body.as_bytes(), b"sk_test_cli");
        farmops::payments::record_paystack_event(
            &billing,
            body.as_bytes(),
            Some(&signature),
            &secret,
            chrono::Utc::now(),
        )
        .await?;
    }
    let listed = ok(&farmops(Some(&db), &["payments"]));
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["verdict"], "granted");
    assert_eq!(listed[0]["credits"], 600);
    assert_eq!(listed[1]["verdict"], "unknown_pack");
    assert!(listed[1]["detail"].as_str().unwrap().contains("gold"));
    assert!(
        listed[0].get("raw").is_none(),
        "the raw body on request only"
    );
    let mine = ok(&farmops(
        Some(&db),
        &["payments", "--farm", &farm.to_string(), "--raw"],
    ));
    assert_eq!(mine.len(), 2);
    assert!(mine[0]["raw"].as_str().unwrap().contains("ps-cli-1"));
    let none = farmops(
        Some(&db),
        &["payments", "--farm", &Uuid::new_v4().to_string()],
    );
    assert!(none.status.success() && none.stdout.is_empty());
    Ok(())
}

#[tokio::test]
async fn set_budget_caps_a_member_removes_caps_explicitly_and_refuses_bad_caps()
-> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let farm = db.farm("budgeted", 100).await?;
    db.member(farm, "ada", "worker").await?;
    let id = farm.to_string();
    let set = ok(&farmops(
        Some(&db),
        &[
            "set-budget",
            &id,
            "ada",
            "--daily",
            "20",
            "--monthly",
            "300",
        ],
    ));
    assert_eq!(
        set[0]["budget"],
        serde_json::json!({"user_id": "ada", "daily": 20, "monthly": 300})
    );
    let set = ok(&farmops(
        Some(&db),
        &["set-budget", &id, "ada", "--daily", "none"],
    ));
    assert_eq!(
        set[0]["budget"],
        serde_json::json!({"user_id": "ada", "daily": null, "monthly": 300})
    );
    for (args, message) in [
        (vec!["--daily", "-5"], "daily"),
        (vec!["--monthly", "1.5"], "--monthly must be a whole number"),
        (vec!["--monthly", "1000000001"], "monthly"),
        (vec![], "name --daily and/or --monthly"),
    ] {
        let mut all = vec!["set-budget", &id, "ada"];
        all.extend(args);
        fails(&farmops(Some(&db), &all), message);
    }
    fails(
        &farmops(Some(&db), &["set-budget", &id, "nobody", "--daily", "1"]),
        "member not found",
    );
    let owner = db.owner_client().await?;
    let row = owner
        .query_one(
            "SELECT daily_cap, monthly_cap, set_by FROM member_budgets WHERE farm_id = $1",
            &[&farm],
        )
        .await?;
    assert_eq!(
        (
            row.get::<_, Option<i64>>(0),
            row.get::<_, Option<i64>>(1),
            row.get::<_, String>(2)
        ),
        (None, Some(300), "operator".to_string()),
        "the refusals changed nothing"
    );
    let events: i64 = owner
        .query_one(
            "SELECT count(*) FROM farm_events WHERE farm_id = $1 AND kind = 'member_budget_set' AND actor = 'operator'",
            &[&farm],
        )
        .await?
        .get(0);
    assert_eq!(events, 2);
    Ok(())
}

#[test]
fn clinical_check_screens_json_lines_from_stdin_without_a_database() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_farmops"))
        .arg("clinical-check")
        .env_remove("FARMOPS_OWNER_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the farmops binary runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(
            concat!(
                "{\"id\": \"r1\", \"text\": \"The vet is expensive, so give doxycycline in the water.\"}\n",
                "{\"id\": \"r2\", \"text\": }\n",
                "{\"id\": \"r3\", \"text\": \"Ask your vet before treating the goats.\"}\n",
                "{\"id\": \"r4\", \"text\": \"Clenbuterol will lean out the pigs before sale.\"}\n",
            )
            .as_bytes(),
        )
        .expect("write stdin");
    let out = child.wait_with_output().expect("farmops exits");
    let lines = ok(&out);
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["id"], "r1");
    assert_eq!(lines[0]["passed"], false);
    let rules: Vec<&str> = lines[0]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"antimicrobial_without_vet"), "{rules:?}");
    assert!(rules.contains(&"vet_dismissed"), "{rules:?}");
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["error"].as_str().unwrap().contains("not JSON"));
    assert_eq!(
        lines[2],
        serde_json::json!({"id": "r3", "passed": true, "violations": []})
    );
    // only a prohibited substance carries where it is prohibited
    assert!(
        lines[0]["violations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v.get("prohibited_where").is_none())
    );
    let banned = &lines[3]["violations"][0];
    assert_eq!(banned["rule"], "prohibited_substance");
    assert_eq!(
        banned["prohibited_where"],
        serde_json::json!(["US 21 CFR 530.41", "EU 96/22/EC", "NG NAFDAC banned list"])
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 passed, 2 failed, 1 invalid"));
}

#[tokio::test]
async fn evidence_is_signed_exported_and_verified_offline() -> anyhow::Result<()> {
    let db = TestDb::new().await?;
    let farm = db.farm("evidence", 100).await?;
    let tx = db.app.tenant(farm).await?;
    let run = credits::reserve_credits(
        &tx,
        &NewRun {
            feature: Feature::Chat,
            model: "m",
            user_id: Some("u"),
            credits: 10,
            request_summary: None,
        },
    )
    .await?;
    tx.commit().await?;
    let dir = std::env::temp_dir().join(format!("farmops-evidence-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let key = dir.join("key.pem");
    let signer = farmops::evidence::signing::KeyFileSigner::from_bytes(&[3; 32])?;
    std::fs::write(&key, pkcs8_pem(&[3; 32]))?;
    let public = dir.join("public.pem");
    std::fs::write(&public, signer.public_key_pem())?;
    let (key_s, public_s) = (key.to_str().unwrap(), public.to_str().unwrap());
    let signed = ok(&farmops(
        Some(&db),
        &["sign-checkpoints", "--key-file", key_s],
    ));
    assert!(
        signed
            .iter()
            .any(|s| s["farm_id"] == farm.to_string() && s["seq"] == 2),
        "{signed:?}"
    );
    let bundle = dir.join("bundle.json");
    let bundle_s = bundle.to_str().unwrap();
    let farm_s = farm.to_string();
    let export = |db: &TestDb| {
        farmops(
            Some(db),
            &[
                "export-evidence",
                &farm_s,
                "--out",
                bundle_s,
                "--key-file",
                key_s,
            ],
        )
    };
    let out = ok(&export(&db));
    assert_eq!(
        (out[0]["entries"].clone(), out[0]["checkpoints"].clone()),
        (2.into(), 1.into())
    );
    // no database needed: none is given
    let verified = ok(&farmops(
        None,
        &["verify", bundle_s, "--public-key", public_s],
    ));
    assert_eq!(verified[0]["signed_through"], 2);
    let fp = serde_json::from_str::<Value>(&std::fs::read_to_string(&bundle)?)?
        ["public_key_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    ok(&farmops(None, &["verify", bundle_s, "--fingerprint", &fp]));
    // a superuser edits the reserve leg with the triggers off: the fresh export fails at seq 2 (the run's opening with its hold)
    let admin = farmops::testing::admin_client(&db.name).await?;
    admin
        .batch_execute(&format!(
            "SET session_replication_role = replica;
             UPDATE credit_ledger SET delta = -1 WHERE farm_id = '{farm}' AND entry_type = 'reserve'"
        ))
        .await?;
    ok(&export(&db));
    fails(
        &farmops(None, &["verify", bundle_s, "--public-key", public_s]),
        "verification failed: seq 2:",
    );
    let _ = run;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A PKCS#8 PEM of a P-256 secret (what `openssl genpkey` writes).
fn pkcs8_pem(secret: &[u8; 32]) -> String {
    use p256::pkcs8::{EncodePrivateKey, LineEnding};
    p256::SecretKey::from_slice(secret)
        .unwrap()
        .to_pkcs8_pem(LineEnding::LF)
        .unwrap()
        .to_string()
}
