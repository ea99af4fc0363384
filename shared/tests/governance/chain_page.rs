//! The evidence page's view of the chain (#19 item 4): the head, the latest signed checkpoint,
//! and, when asked, whether the live rows still match; a superuser's edit (triggers off) shows
//! there as a mismatch at the same entry `farmops verify` names.

use farmops::{
    evidence::{
        self, EvidenceQuery,
        chain::{self, TrustedKey},
        chain_status::LiveRows,
        export,
    },
    testing::{TestDb, admin_client},
};
use uuid::Uuid;

use crate::chain::{checkpoint, history, signer};

async fn page(db: &TestDb, farm: Uuid, verify_chain: bool) -> evidence::EvidencePage {
    let q =
        EvidenceQuery::parse(|k| (k == "verify_chain" && verify_chain).then_some("true")).unwrap();
    let tx = db.app.tenant(farm).await.unwrap();
    let page = evidence::evidence_page(&tx, &q).await.unwrap();
    tx.commit().await.unwrap();
    page
}

async fn as_superuser(db: &TestDb, sql: &str) {
    let admin = admin_client(&db.name).await.unwrap();
    admin
        .batch_execute(&format!("SET session_replication_role = replica; {sql}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_page_shows_the_head_the_checkpoint_and_whether_the_live_rows_match() {
    let db = TestDb::new().await.unwrap();
    let (farm, _) = history(&db).await;

    let before = page(&db, farm, false).await;
    assert!(before.chain.head_seq > 5, "{:?}", before.chain);
    assert_eq!(before.chain.checkpoint, None);
    assert_eq!(before.chain.live_rows, LiveRows::NotChecked);
    assert_eq!(
        page(&db, farm, true).await.chain.live_rows,
        LiveRows::Match {
            through: before.chain.head_seq
        },
        "no checkpoint yet: the live rows match the chain"
    );

    let signed = checkpoint(&db.app, farm, &signer()).await.unwrap();
    let checked = page(&db, farm, true).await;
    let cp = checked.chain.checkpoint.clone().expect("the checkpoint");
    assert_eq!(
        (cp.seq, cp.hash.as_str()),
        (signed.seq, signed.hash.as_str())
    );
    assert_eq!(checked.chain.head_seq, signed.seq);
    assert_eq!(checked.chain.head_hash, cp.hash);
    assert_eq!(checked.chain.live_rows, LiveRows::Match { through: cp.seq });
    let html = evidence::html::render(&checked, None);
    assert!(html.contains("data-status=\"match\""), "the HTML says so");
    assert!(html.contains(&cp.hash), "the HTML shows the signed hash");

    // a superuser changes a settled leg's delta with every trigger off
    as_superuser(
        &db,
        &format!(
            "UPDATE credit_ledger SET delta = delta - 1, balance_after = balance_after - 1
              WHERE id = (SELECT min(id) FROM credit_ledger
                           WHERE farm_id = '{farm}' AND entry_type = 'settle')"
        ),
    )
    .await;
    let tx = db.app.tenant(farm).await.unwrap();
    let bundle = export::export_bundle(&tx, None, None, None, Some(signer().public_key_pem()))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let offline = chain::verify(&bundle, &TrustedKey::Pem(signer().public_key_pem()))
        .expect_err("the edit fails offline verification");
    let tampered = page(&db, farm, true).await;
    match &tampered.chain.live_rows {
        LiveRows::Mismatch { seq, what } => {
            assert_eq!(
                *seq, offline.seq,
                "the page names the entry verify names: {what}"
            );
            assert!(what.contains("does not hash"), "{what}");
        }
        other => panic!("the page must report the edit, got {other:?}"),
    }
    assert_eq!(
        page(&db, farm, false).await.chain.live_rows,
        LiveRows::NotChecked,
        "unasked, the page does not check"
    );
    let html = evidence::html::render(&tampered, None);
    assert!(html.contains("data-status=\"mismatch\""));
}

#[tokio::test]
async fn a_tail_cut_after_the_checkpoint_or_a_row_outside_the_chain_is_a_mismatch() {
    let db = TestDb::new().await.unwrap();
    let (farm, _) = history(&db).await;
    let signed = checkpoint(&db.app, farm, &signer()).await.unwrap();
    as_superuser(
        &db,
        &format!(
            "DELETE FROM evidence_chain WHERE farm_id = '{farm}' AND seq > {}",
            signed.seq - 2
        ),
    )
    .await;
    match page(&db, farm, true).await.chain.live_rows {
        LiveRows::Mismatch { seq, .. } => assert!(seq.is_some()),
        other => panic!("a cut tail must show, got {other:?}"),
    }

    let db = TestDb::new().await.unwrap();
    let (farm, run) = history(&db).await;
    as_superuser(
        &db,
        &format!(
            "INSERT INTO notes (farm_id, body, source, ai_run_id, created_by)
             VALUES ('{farm}', 'written around the chain', 'ai_auto', '{run}', 'u')"
        ),
    )
    .await;
    match page(&db, farm, true).await.chain.live_rows {
        LiveRows::Mismatch { seq: None, what } => {
            assert!(what.contains("no chain entry"), "{what}")
        }
        other => panic!("an unchained row must show, got {other:?}"),
    }
}

#[test]
fn verify_chain_is_true_or_false() {
    let parse = |v: &'static str| EvidenceQuery::parse(move |k| (k == "verify_chain").then_some(v));
    assert!(parse("true").unwrap().verify_chain);
    assert!(!parse("false").unwrap().verify_chain);
    let err = parse("yes").unwrap_err().to_string();
    assert!(err.contains("verify_chain"), "{err}");
}
