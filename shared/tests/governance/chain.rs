//! The evidence hash chain (migrations 0090 and 0096, #19): the database's encoding against the golden
//! vectors, one linear chain per farm under 32 concurrent writers, signed checkpoints, and an
//! exported bundle that `farmops verify`'s check accepts until a superuser tampers with the rows
//! (triggers off), when it names the first bad entry.

use std::sync::Arc;

use farmops::{
    Error,
    db::Db,
    evidence::{
        chain::{self, Bundle, Failure, TrustedKey},
        export, signing,
        signing::{CheckpointSigner, KeyFileSigner},
    },
    testing::{TestDb, admin_client},
};
use uuid::Uuid;

use crate::{
    credits::{reserve, settle},
    exec,
};

const GOLDEN: &str = include_str!("../../fixtures/evidence-chain-golden.json");

pub(crate) fn signer() -> KeyFileSigner {
    KeyFileSigner::from_bytes(&[7; 32]).unwrap()
}

async fn fingerprint(s: &KeyFileSigner) -> String {
    chain::fingerprint(&s.public_key_der().await.unwrap())
}

pub(crate) async fn checkpoint(db: &Db, farm: Uuid, s: &KeyFileSigner) -> Option<signing::Signed> {
    let fp = fingerprint(s).await;
    let tx = db.tenant(farm).await.unwrap();
    let signed = signing::sign_checkpoint(&tx, s, &fp).await.unwrap();
    tx.commit().await.unwrap();
    signed
}

async fn bundle(db: &Db, farm: Uuid) -> Bundle {
    let tx = db.tenant(farm).await.unwrap();
    let b = export::export_bundle(&tx, None, None, None, Some(signer().public_key_pem()))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    b
}

fn verify(b: &Bundle) -> Result<chain::Verified, Failure> {
    chain::verify(b, &TrustedKey::Pem(signer().public_key_pem()))
}

/// A farm with a history of every kind: a grant, two settled runs, an AI note, a discarded
/// draft and a rejected recommendation.
pub(crate) async fn history(db: &TestDb) -> (Uuid, Uuid) {
    let farm = db.farm("chain", 1000).await.unwrap();
    let r1 = reserve(&db.app, farm, 10).await.unwrap();
    let run = r1.run_id;
    settle(&db.app, farm, run, 4).await.unwrap();
    let (d, r) = (Uuid::from_u128(1), Uuid::from_u128(2));
    for sql in [
        format!(
            "INSERT INTO notes (farm_id, body, source, ai_run_id, created_by)
             VALUES ('{farm}', E'pen 2\\nlooks \\\\ fine', 'ai_auto', '{run}', 'u')"
        ),
        format!(
            "INSERT INTO assistant_drafts (farm_id, id, ai_run_id, record_type, payload, created_by)
             VALUES ('{farm}', '{d}', '{run}', 'sale', '{{\"item\": \"eggs\", \"amount_kobo\": 4500000}}', 'u')"
        ),
        format!(
            "INSERT INTO ai_recommendations (farm_id, id, ai_run_id, title, body, created_by)
             VALUES ('{farm}', '{r}', '{run}', 'Vaccinate', 'Newcastle is due', 'u')"
        ),
        format!(
            "UPDATE assistant_drafts SET status = 'discarded', decided_by = 'o', decided_at = now(),
                    decision_note = 'buyer cancelled' WHERE id = '{d}'"
        ),
        format!(
            "UPDATE ai_recommendations SET status = 'rejected', decided_by = 'o', decided_at = now(),
                    decision_note = 'done already' WHERE id = '{r}'"
        ),
    ] {
        exec(&db.app, farm, &sql).await.unwrap();
    }
    let r2 = reserve(&db.app, farm, 20).await.unwrap();
    settle(&db.app, farm, r2.run_id, 20).await.unwrap();
    (farm, run)
}

fn kinds(b: &Bundle) -> Vec<&str> {
    b.entries.iter().map(|e| e.kind.as_str()).collect()
}

#[tokio::test]
async fn the_database_encodes_the_golden_vectors() {
    let db = TestDb::new().await.unwrap();
    let client = db.owner_client().await.unwrap();
    let golden: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    let farm: Uuid = golden["farm_id"].as_str().unwrap().parse().unwrap();
    for v in golden["vectors"].as_array().unwrap() {
        let fields: Vec<Option<String>> = serde_json::from_value(v["fields"].clone()).unwrap();
        let (seq, kind, source) = (
            v["seq"].as_i64().unwrap(),
            v["kind"].as_str().unwrap().to_string(),
            v["source_id"].as_str().unwrap().to_string(),
        );
        let prev = hex::decode(v["prev"].as_str().unwrap()).unwrap();
        let row = client
            .query_one(
                "SELECT evidence_canonical($1, $2, $3, $4, $5),
                        encode(sha256($6 || convert_to(evidence_canonical($1, $2, $3, $4, $5), 'UTF8')), 'hex')",
                &[&farm, &seq, &kind, &source, &fields, &prev],
            )
            .await
            .unwrap();
        let (text, hash): (String, String) = (row.get(0), row.get(1));
        assert_eq!(text, v["canonical"].as_str().unwrap(), "{kind} {seq}");
        assert_eq!(hash, v["hash"].as_str().unwrap(), "{kind} {seq}");
    }
}

#[tokio::test]
async fn every_kind_is_chained_exported_and_verified() {
    let db = TestDb::new().await.unwrap();
    let (farm, _) = history(&db).await;
    let b = bundle(&db.app, farm).await;
    assert_eq!(
        kinds(&b),
        [
            "ledger",
            "run_opened_with_hold",
            "run_closed",
            "ledger",
            "record",
            "draft_decided",
            "recommendation_decided",
            "run_opened_with_hold",
            "run_closed",
            "ledger"
        ]
    );
    // unsigned: it verifies as a chain, with nothing signed yet
    assert_eq!(verify(&b).unwrap().signed_through, None);
    let signed = checkpoint(&db.app, farm, &signer()).await.unwrap();
    assert_eq!(signed.seq, 10);
    assert_eq!(
        checkpoint(&db.app, farm, &signer()).await,
        None,
        "head already signed"
    );
    let r = reserve(&db.app, farm, 5).await.unwrap();
    settle(&db.app, farm, r.run_id, 5).await.unwrap();
    checkpoint(&db.app, farm, &signer()).await.unwrap();
    let b = bundle(&db.app, farm).await;
    let v = verify(&b).unwrap();
    assert_eq!(
        (v.to_seq, v.checkpoints, v.signed_through),
        (13, 2, Some(13))
    );
    // the stored head is the last entry's hash
    let head = exec(
        &db.app,
        farm,
        "SELECT encode(hash, 'hex') FROM evidence_chain ORDER BY seq DESC LIMIT 1",
    )
    .await
    .unwrap();
    assert_eq!(head[0].get::<_, String>(0), v.head_hash);
    // a range: from the middle, anchored by the stored hash before it and the checkpoints
    let tx = db.app.tenant(farm).await.unwrap();
    let part = export::export_bundle(&tx, Some(4), Some(12), None, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let v = verify(&part).unwrap();
    assert_eq!((v.from_seq, v.to_seq, v.checkpoints), (4, 12, 1));
    // a trusted fingerprint works when the bundle carries the key; another key fails
    let mut with_key = b.clone();
    with_key.public_key_pem = Some(signer().public_key_pem());
    let fp = fingerprint(&signer()).await;
    chain::verify(&with_key, &TrustedKey::Fingerprint(fp)).unwrap();
    let other = KeyFileSigner::from_bytes(&[9; 32]).unwrap();
    let f = chain::verify(&b, &TrustedKey::Pem(other.public_key_pem())).unwrap_err();
    assert_eq!(f.seq, Some(10), "{f}");
}

#[tokio::test]
async fn the_application_cannot_write_the_chain_or_forge_a_checkpoint() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("A", 10).await.unwrap();
    for sql in [
        format!("SELECT chain_append('{farm}', 'ledger', 'x', '{{}}')"),
        format!(
            "INSERT INTO evidence_chain (farm_id, seq, kind, source_id, hash) VALUES ('{farm}', 9, 'ledger', 'x', sha256(''))"
        ),
        "UPDATE evidence_chain SET source_id = 'y'".into(),
        "DELETE FROM evidence_chain".into(),
        "DELETE FROM evidence_checkpoints".into(),
    ] {
        assert_eq!(
            crate::sqlstate(exec(&db.app, farm, &sql).await),
            "42501",
            "{sql}"
        );
    }
    // the door takes only the hash the chain holds at that seq
    let forged = format!(
        "SELECT evidence_record_checkpoint('{farm}', 1, sha256('x'), now(), '{}', '\\x3006020101020101')",
        "0".repeat(64)
    );
    assert_eq!(crate::sqlstate(exec(&db.app, farm, &forged).await), "23514");
    // the owner cannot edit the chain either
    assert!(
        exec(&db.owner, farm, "UPDATE evidence_chain SET seq = seq + 1")
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_concurrent_writers_make_one_linear_chain_per_farm() {
    let db = TestDb::new().await.unwrap();
    let hot = db.farm("hot", 100_000).await.unwrap();
    let cold: Vec<Uuid> = futures::future::join_all((0..4).map(|i| {
        let db = &db;
        async move { db.farm(&format!("cold{i}"), 100_000).await.unwrap() }
    }))
    .await;
    let pool = db.app_pool(32).unwrap();
    let warm: Vec<_> = futures::future::join_all((0..32).map(|_| pool.client())).await;
    drop(
        warm.into_iter()
            .collect::<Result<Vec<_>, _>>()
            .expect("32 connections"),
    );
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (pool, barrier) = (pool.clone(), barrier.clone());
            // 24 writers on the hot farm, 8 spread over the others
            let farm = if i < 24 { hot } else { cold[i % 4] };
            tokio::spawn(async move {
                barrier.wait().await;
                for _ in 0..5 {
                    let r = reserve(&pool, farm, 3).await?;
                    settle(&pool, farm, r.run_id, 1).await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for farm in std::iter::once(hot).chain(cold.iter().copied()) {
        let b = bundle(&db.app, farm).await;
        let v = verify(&b).unwrap_or_else(|f| panic!("farm {farm}: {f}"));
        // the grant, then 3 entries per reserve and settle (opened with its hold, closed, leg)
        let runs = b
            .entries
            .iter()
            .filter(|e| e.kind == "run_opened_with_hold")
            .count() as i64;
        assert_eq!(v.to_seq, 1 + 3 * runs, "no gap, no fork");
        let seqs: Vec<i64> = b.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=v.to_seq).collect::<Vec<_>>());
        if farm == hot {
            assert_eq!(runs, 24 * 5);
        }
    }
}

// ---------------------------------------------------------------- tampering as a superuser

/// A farm with a signed history, then `sql` run as a superuser with every trigger off; the
/// fresh export's verification failure.
async fn tampered(sql: impl FnOnce(Uuid, Uuid) -> String) -> (Failure, Bundle) {
    let db = TestDb::new().await.unwrap();
    let (farm, run) = history(&db).await;
    checkpoint(&db.app, farm, &signer()).await.unwrap();
    let r = reserve(&db.app, farm, 5).await.unwrap();
    settle(&db.app, farm, r.run_id, 5).await.unwrap();
    checkpoint(&db.app, farm, &signer()).await.unwrap();
    verify(&bundle(&db.app, farm).await).expect("untouched, it verifies");
    let admin = admin_client(&db.name).await.unwrap();
    admin
        .batch_execute(&format!(
            "SET session_replication_role = replica; {}",
            sql(farm, run)
        ))
        .await
        .unwrap();
    let b = bundle(&db.app, farm).await;
    (verify(&b).expect_err("tampering must fail verification"), b)
}

fn seq_of(b: &Bundle, kind: &str, nth: usize) -> i64 {
    b.entries
        .iter()
        .filter(|e| e.kind == kind)
        .nth(nth)
        .unwrap()
        .seq
}

#[tokio::test]
async fn tampering_with_a_delta_fails_at_its_entry() {
    let (f, b) = tampered(|farm, _| {
        format!(
            "UPDATE credit_ledger SET delta = delta - 1, balance_after = balance_after - 1
              WHERE farm_id = '{farm}' AND entry_type = 'settle'
                AND id = (SELECT min(id) FROM credit_ledger WHERE farm_id = '{farm}' AND entry_type = 'settle')"
        )
    })
    .await;
    assert_eq!(f.seq, Some(seq_of(&b, "ledger", 1)), "{f}");
    assert!(f.what.contains("does not hash"), "{f}");
}

#[tokio::test]
async fn deleting_a_source_row_or_a_chain_row_fails_at_its_entry() {
    let (f, b) = tampered(|farm, _| format!("DELETE FROM notes WHERE farm_id = '{farm}'")).await;
    assert_eq!(f.seq, Some(seq_of(&b, "record", 0)), "{f}");
    assert!(f.what.contains("missing"), "{f}");
    let (f, _) = tampered(|farm, _| {
        format!("DELETE FROM evidence_chain WHERE farm_id = '{farm}' AND seq = 7")
    })
    .await;
    assert_eq!(f.seq, Some(7), "{f}");
    assert!(f.what.contains("gap"), "{f}");
}

#[tokio::test]
async fn inserting_a_row_outside_the_chain_fails() {
    let (f, _) = tampered(|farm, _| {
        format!(
            "INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, reason, actor, lot_id)
             SELECT farm_id, 'adjust', 500, balance_after + 500, 'forged', 'x', NULL
               FROM credit_ledger WHERE farm_id = '{farm}' ORDER BY id DESC LIMIT 1"
        )
    })
    .await;
    assert!(f.what.contains("no chain entry"), "{f}");
    assert!(f.what.contains("ledger source row 8"), "{f}");
    // a forged chain entry appended after the last checkpoint: its hash is not a hash of the chain
    let (f, b) = tampered(|farm, _| {
        format!(
            "INSERT INTO evidence_chain (farm_id, seq, kind, source_id, hash)
             SELECT '{farm}', max(seq) + 1, 'ledger', '999', sha256('forged') FROM evidence_chain
              WHERE farm_id = '{farm}'"
        )
    })
    .await;
    assert_eq!(f.seq, Some(b.to_seq), "{f}");
}

#[tokio::test]
async fn reordering_two_entries_fails_at_the_first() {
    let (f, _) = tampered(|farm, _| {
        format!(
            "UPDATE evidence_chain SET seq = seq + 1000 WHERE farm_id = '{farm}' AND seq IN (3, 4);
             UPDATE evidence_chain SET seq = 4 WHERE farm_id = '{farm}' AND seq = 1003;
             UPDATE evidence_chain SET seq = 3 WHERE farm_id = '{farm}' AND seq = 1004"
        )
    })
    .await;
    assert_eq!(f.seq, Some(3), "{f}");
}

#[tokio::test]
async fn cutting_the_tail_after_a_checkpoint_fails() {
    let (f, b) = tampered(|farm, _| {
        format!("DELETE FROM evidence_chain WHERE farm_id = '{farm}' AND seq > 10")
    })
    .await;
    assert_eq!(b.entries.len(), 10);
    assert_eq!(f.seq, Some(11), "{f}");
}

#[tokio::test]
async fn a_replaced_signature_fails_at_its_checkpoint() {
    let (f, _) = tampered(|farm, _| {
        format!(
            "UPDATE evidence_checkpoints SET signature = (SELECT signature FROM evidence_checkpoints
                                                          WHERE farm_id = '{farm}' AND seq = 10)
              WHERE farm_id = '{farm}' AND seq = 13"
        )
    })
    .await;
    assert_eq!(f.seq, Some(13), "{f}");
    assert!(f.what.contains("signature"), "{f}");
}

#[tokio::test]
async fn a_swapped_public_key_fails_at_the_first_checkpoint() {
    // the attacker re-signs the checkpoints with their own key and names it
    let attacker = KeyFileSigner::from_bytes(&[5; 32]).unwrap();
    let fp = chain::fingerprint(&attacker.public_key_der().await.unwrap());
    let db = TestDb::new().await.unwrap();
    let (farm, _) = history(&db).await;
    checkpoint(&db.app, farm, &signer()).await.unwrap();
    let admin = admin_client(&db.name).await.unwrap();
    let b = bundle(&db.app, farm).await;
    let cp = &b.checkpoints[0];
    let message = chain::checkpoint_message(
        farm,
        cp.seq,
        &hex::decode(&cp.hash).unwrap().try_into().unwrap(),
        &cp.signed_at,
    );
    let sig = attacker.sign(message.as_bytes()).await.unwrap();
    admin
        .execute("SET session_replication_role = replica", &[])
        .await
        .unwrap();
    admin
        .execute(
            "UPDATE evidence_checkpoints SET key_fingerprint = $1, signature = $2 WHERE farm_id = $3",
            &[&fp, &sig, &farm],
        )
        .await
        .unwrap();
    let mut b = bundle(&db.app, farm).await;
    b.public_key_pem = Some(attacker.public_key_pem());
    // it verifies with the attacker's key, but not with the key the auditor trusts
    chain::verify(&b, &TrustedKey::Pem(attacker.public_key_pem())).unwrap();
    let f = verify(&b).unwrap_err();
    assert_eq!(f.seq, Some(10), "{f}");
    assert!(f.what.contains("not the trusted key"), "{f}");
    let trusted = fingerprint(&signer()).await;
    let f = chain::verify(&b, &TrustedKey::Fingerprint(trusted)).unwrap_err();
    assert!(f.what.contains("fingerprint"), "{f}");
}

#[tokio::test]
async fn checkpoints_signed_through_the_kms_client_verify_with_the_kms_public_key() {
    let stub = farmops::testing::kms::KmsStub::start([11; 32])
        .await
        .unwrap();
    let kms = stub.signer().await;
    let der = kms.public_key_der().await.unwrap();
    let pem = signing::public_key_pem(&der).unwrap();
    assert_eq!(pem, stub.key.public_key_pem());
    let db = TestDb::new().await.unwrap();
    let (farm, _) = history(&db).await;
    let signed = signing::sign_due(&db.app, &kms).await.unwrap();
    assert_eq!(signed.len(), 1);
    assert_eq!((signed[0].farm_id, signed[0].signed.seq), (farm, 10));
    let targets: Vec<String> = stub.requests().into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        targets,
        ["TrentService.GetPublicKey", "TrentService.Sign"],
        "the public key once (cached), then one Sign"
    );
    let tx = db.app.tenant(farm).await.unwrap();
    let b = export::export_bundle(&tx, None, None, None, Some(pem.clone()))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let v = chain::verify(&b, &TrustedKey::Pem(pem)).unwrap();
    assert_eq!(v.signed_through, Some(10));
    // the local test key is not the KMS key
    assert!(verify(&b).is_err());
}

#[tokio::test]
async fn a_top_up_is_a_ledger_entry_and_a_tampered_hold_fails_at_its_run() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("top-up", 100).await.unwrap();
    let r = reserve(&db.app, farm, 10).await.unwrap();
    let tx = db.app.tenant(farm).await.unwrap();
    farmops::credits::top_up_committed(tx, r.run_id, 5)
        .await
        .unwrap();
    settle(&db.app, farm, r.run_id, 12).await.unwrap();
    let b = bundle(&db.app, farm).await;
    assert_eq!(
        kinds(&b),
        [
            "ledger",
            "run_opened_with_hold",
            "ledger",
            "run_closed",
            "ledger"
        ]
    );
    let opened = &b.entries[1];
    assert_eq!(opened.source_id, r.run_id.to_string());
    let fields = opened.fields.as_ref().unwrap();
    assert_eq!(
        (fields[6].as_deref(), fields[7].as_deref()),
        (Some("-10"), Some("90")),
        "the first hold's delta and balance"
    );
    verify(&b).unwrap();
    // the first hold edited with the balance kept consistent: its run's entry no longer hashes
    let admin = admin_client(&db.name).await.unwrap();
    admin
        .batch_execute(&format!(
            "SET session_replication_role = replica;
             UPDATE credit_ledger SET actor = 'someone else'
              WHERE ai_run_id = '{}' AND entry_type = 'reserve'
                AND id = (SELECT min(id) FROM credit_ledger WHERE ai_run_id = '{}')",
            r.run_id, r.run_id
        ))
        .await
        .unwrap();
    let f = verify(&bundle(&db.app, farm).await).unwrap_err();
    assert_eq!(f.seq, Some(2), "{f}");
    assert!(f.what.contains("does not hash"), "{f}");
}

/// A run chained before migration 0096 (its opening and its first hold as two entries) is
/// re-derived the way it was chained, so old history still verifies, and still detects edits.
#[tokio::test]
async fn a_run_chained_before_0096_still_verifies() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("legacy", 100).await.unwrap();
    let admin = admin_client(&db.name).await.unwrap();
    // what 0090's triggers wrote: the run's opening, then its reserve leg, each its own entry
    admin
        .batch_execute(&format!(
            "SET session_replication_role = replica;
             INSERT INTO ai_runs (farm_id, feature, model, user_id, credits_reserved)
             VALUES ('{farm}', 'chat', 'legacy-model', 'w', 4);
             SELECT chain_append('{farm}', 'run_opened', r.id::text, evidence_run_opened_fields(r))
               FROM ai_runs r WHERE r.farm_id = '{farm}';
             INSERT INTO credit_ledger (farm_id, entry_type, delta, balance_after, ai_run_id, actor)
             SELECT '{farm}', 'reserve', -4, 96, r.id, 'w' FROM ai_runs r WHERE r.farm_id = '{farm}';
             SELECT chain_append('{farm}', 'ledger', l.id::text, evidence_ledger_fields(l))
               FROM credit_ledger l WHERE l.farm_id = '{farm}' AND l.entry_type = 'reserve'"
        ))
        .await
        .unwrap();
    let b = bundle(&db.app, farm).await;
    assert_eq!(kinds(&b), ["ledger", "run_opened", "ledger"]);
    assert!(b.unchained.is_empty(), "{:?}", b.unchained);
    verify(&b).unwrap();
    admin
        .batch_execute(&format!(
            "SET session_replication_role = replica;
             UPDATE ai_runs SET model = 'another' WHERE farm_id = '{farm}'"
        ))
        .await
        .unwrap();
    let f = verify(&bundle(&db.app, farm).await).unwrap_err();
    assert_eq!(f.seq, Some(2), "{f}");
}

#[tokio::test]
async fn the_signer_from_env_signs_with_the_kms_key_over_the_cold_starts_config() {
    let stub = farmops::testing::kms::KmsStub::start([12; 32])
        .await
        .unwrap();
    // the cold start's one configuration (fixed credentials), the stub as KMS's endpoint
    let aws = farmops::aws::ColdStartAws::with_sdk_config(
        farmops::testing::converse::stub_sdk_config().await,
    );
    let url = stub.url.clone();
    let lookup = move |k: &str| match k {
        "FARMOPS_EVIDENCE_KMS_KEY_ID" => Some(farmops::testing::kms::KEY_ID.to_string()),
        "FARMOPS_EVIDENCE_KMS_ENDPOINT" => Some(url.clone()),
        _ => None,
    };
    let kms = signing::signer_from_env(lookup, &aws)
        .await
        .unwrap()
        .expect("a KMS signer");
    assert_eq!(
        kms.public_key_der().await.unwrap(),
        stub.key.public_key_der().await.unwrap()
    );
    kms.sign(b"a chain head").await.unwrap();
    let targets: Vec<String> = stub.requests().into_iter().map(|(t, _)| t).collect();
    assert_eq!(targets, ["TrentService.GetPublicKey", "TrentService.Sign"]);
    // nothing named: no signer
    let none = signing::signer_from_env(|_| None, &aws).await.unwrap();
    assert!(none.is_none());
}

/// Migration 0097: no foreign key from the chain to farms; its two halves, each as the owner
/// (the only role that could break them): no entry for a farm that does not exist, and no farm
/// deleted from under its chain.
#[tokio::test]
async fn the_chain_keeps_its_farm_without_a_foreign_key() {
    let db = TestDb::new().await.unwrap();
    let farm = db.farm("kept", 10).await.unwrap();
    let nowhere = Uuid::new_v4();
    assert_eq!(
        crate::sqlstate(
            exec(
                &db.owner,
                farm,
                &format!("SELECT chain_append('{nowhere}', 'ledger', 'x', '{{}}')")
            )
            .await
        ),
        "P0002"
    );
    // the application role cannot delete a farm at all
    assert_eq!(
        crate::sqlstate(
            exec(
                &db.app,
                farm,
                &format!("DELETE FROM farms WHERE id = '{farm}'")
            )
            .await
        ),
        "42501"
    );
    let owner = db.owner_client().await.unwrap();
    let refused = owner
        .execute("DELETE FROM farms WHERE id = $1", &[&farm])
        .await
        .unwrap_err();
    assert_eq!(
        refused.code().map(|c| c.code()),
        Some("23503"),
        "{refused:?}"
    );
    assert!(
        refused
            .as_db_error()
            .is_some_and(|e| e.message().contains("evidence chain")),
        "the chain's trigger refuses first: {refused:?}"
    );
    // a farm with no history (so no chain) can still be deleted
    let empty: Uuid = owner
        .query_one(
            "INSERT INTO farms (name) VALUES ('empty') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    owner
        .execute("DELETE FROM farms WHERE id = $1", &[&empty])
        .await
        .unwrap();
}
