//! The migrate function's admin credentials, read with the real Secrets Manager client from a
//! local Secrets Manager (moto's server on loopback) holding the shape RDS writes.

use aws_config::{BehaviorVersion, Region};
use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};
use farmops::aws::admin_credentials_from;

use crate::moto::LocalSts;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_master_user_secret() {
    let moto = tokio::task::spawn_blocking(LocalSts::start).await.unwrap();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDMIGRATE",
            "secret",
            None,
            None,
            "test",
        )))
        .load()
        .await;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let created = client
        .create_secret()
        .name("rds!cluster-0123")
        .secret_string(r#"{"username":"farmops_admin","password":"p@ss word"}"#)
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap();

    let (user, password) = admin_credentials_from(&sdk, arn).await.unwrap();
    assert_eq!(user, "farmops_admin");
    assert_eq!(password.expose(), "p@ss word");

    let err = admin_credentials_from(
        &sdk,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope",
    )
    .await
    .unwrap_err();
    assert!(format!("{err:?}").contains("admin secret"), "{err:?}");
}
