//! The migrate function's admin credentials, read with the real Secrets Manager client from a
//! local Secrets Manager (moto's server on loopback) holding the shape RDS writes.

use farmops::aws::admin_credentials_from;

use crate::moto::LocalSecrets;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_master_user_secret() {
    let secrets = LocalSecrets::start("us-east-1", "AKIDMIGRATE").await;
    let arn = secrets
        .create(
            "rds!cluster-0123",
            r#"{"username":"farmops_admin","password":"p@ss word"}"#,
        )
        .await;

    let (user, password) = admin_credentials_from(&secrets.sdk, &arn).await.unwrap();
    assert_eq!(user, "farmops_admin");
    assert_eq!(password.expose(), "p@ss word");

    let err = admin_credentials_from(
        &secrets.sdk,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope",
    )
    .await
    .unwrap_err();
    assert!(format!("{err:?}").contains("admin secret"), "{err:?}");
}
