//! The pool asks its password provider (in AWS: a fresh IAM token) for EVERY new connection,
//! and only then: a reused connection needs none, a connection past its maximum age is
//! replaced by a new one with a new password.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use farmops::{
    config::DatabaseConfig,
    db::{ConnectError, Db, PasswordProvider, Tls},
    testing::{self, TestDb},
};

/// Hands out the app role's password and counts the requests.
struct Counting(AtomicUsize);

#[async_trait]
impl PasswordProvider for Counting {
    async fn password(&self) -> Result<Option<String>, ConnectError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(Some(testing::APP_PASSWORD.to_string()))
    }
}

async fn use_once(db: &Db) -> anyhow::Result<()> {
    let client = db.client().await?;
    client.query_typed("SELECT 1", &[]).await?;
    Ok(())
}

#[tokio::test]
async fn a_password_is_fetched_for_each_new_connection_only() -> anyhow::Result<()> {
    let test = TestDb::new().await?;
    // no password in the URL: the provider is the only source
    let url = testing::url("farmops_app", "", &test.name).replace("farmops_app:@", "farmops_app@");
    let counting = Arc::new(Counting(AtomicUsize::new(0)));

    let mut config = DatabaseConfig::for_url(url.clone());
    config.pool_size = 2;
    let db = Db::connect(&config, counting.clone(), Tls::Disabled)?;
    assert_eq!(
        counting.0.load(Ordering::SeqCst),
        0,
        "nothing at pool build"
    );
    use_once(&db).await?;
    use_once(&db).await?;
    assert_eq!(
        counting.0.load(Ordering::SeqCst),
        1,
        "a reused connection needs none"
    );
    let (a, b) = (db.client().await?, db.client().await?);
    assert_eq!(
        counting.0.load(Ordering::SeqCst),
        2,
        "a second connection, a second one"
    );
    drop((a, b));

    // past its maximum age a connection is replaced, with a new password
    let aged = Arc::new(Counting(AtomicUsize::new(0)));
    let mut config = DatabaseConfig::for_url(url);
    config.pool_size = 1;
    config.max_connection_age = Duration::from_millis(1);
    let db = Db::connect(&config, aged.clone(), Tls::Disabled)?;
    for _ in 0..3 {
        use_once(&db).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(aged.0.load(Ordering::SeqCst), 3);
    Ok(())
}
