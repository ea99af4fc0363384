//! `GET /farms/{farm_id}/evidence/export` (#19): the owner's evidence bundle, which verifies
//! offline with the key that signed the checkpoints; other roles are refused; the document.

use farmops::evidence::{
    chain::{self, Bundle, TrustedKey},
    signing::{self, KeyFileSigner},
};
use farmops_http::testing::openapi::assert_conforms;

use super::*;

const EXPORT: &str = "/farms/{farm_id}/evidence/export";

#[tokio::test]
async fn owners_export_a_bundle_that_verifies_offline() -> Result<()> {
    let db = TestDb::new().await?;
    let farm = db.farm("chained", 100).await?;
    for (user, role) in [("olu", "owner"), ("mia", "manager"), ("vic", "viewer")] {
        db.member(farm, user, role).await?;
    }
    let run = reserve(&db.app, farm, 8, "a turn").await?;
    let tx = db.app.tenant(farm).await?;
    credits::settle_run(
        &tx,
        run,
        &Settlement {
            credits_charged: 5,
            ..Default::default()
        },
    )
    .await?;
    tx.commit().await?;
    let key = KeyFileSigner::from_bytes(&[4; 32])?;
    assert_eq!(signing::sign_due(&db.app, &key).await?.len(), 1);

    let state = state(&db);
    let path = format!("/farms/{farm}/evidence/export");
    let res = handle(&state, apigw_request("GET", &path, Some("olu"), &[], None)).await;
    assert_eq!(res.status().as_u16(), 200, "{}", text(&res));
    assert_conforms("GET", EXPORT, &res);
    let bundle: Bundle = serde_json::from_value(body_json(&res))?;
    assert_eq!(
        (bundle.from_seq, bundle.to_seq, bundle.checkpoints.len()),
        (1, 4, 1)
    );
    let v = chain::verify(&bundle, &TrustedKey::Pem(key.public_key_pem()))
        .map_err(|f| anyhow::anyhow!("{f}"))?;
    assert_eq!(v.signed_through, Some(4));

    let res = handle(
        &state,
        apigw_request(
            "GET",
            &format!("{path}?from=2&to=4"),
            Some("olu"),
            &[],
            None,
        ),
    )
    .await;
    assert_eq!(res.status().as_u16(), 200, "{}", text(&res));
    let part: Bundle = serde_json::from_value(body_json(&res))?;
    assert_eq!((part.from_seq, part.to_seq, part.entries.len()), (2, 4, 3));
    chain::verify(&part, &TrustedKey::Pem(key.public_key_pem()))
        .map_err(|f| anyhow::anyhow!("{f}"))?;

    for (user, status) in [("mia", 403), ("vic", 403), ("stranger", 404)] {
        let res = handle(&state, apigw_request("GET", &path, Some(user), &[], None)).await;
        assert_eq!(res.status().as_u16(), status, "{user}: {}", text(&res));
        assert_conforms("GET", EXPORT, &res);
    }
    let res = handle(
        &state,
        apigw_request("GET", &format!("{path}?from=0"), Some("olu"), &[], None),
    )
    .await;
    assert_eq!(res.status().as_u16(), 400, "{}", text(&res));
    assert_conforms("GET", EXPORT, &res);
    Ok(())
}
