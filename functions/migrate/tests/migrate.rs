//! The migrate function against the real local PostgreSQL: a fresh, EMPTY database is
//! bootstrapped as the admin (superuser here, the Aurora master user in AWS), migrated as the
//! owner, and a second run changes nothing.

use std::collections::HashMap;

use anyhow::Result;
use farmops::testing;
use tokio_postgres::{NoTls, types::Type};

async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

#[tokio::test]
async fn bootstraps_an_empty_database_then_is_idempotent() -> Result<()> {
    let name = format!("farmops_boot_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(&testing::url("postgres", "postgres", "postgres")).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;

    let result = async {
        let vars: HashMap<&str, String> = HashMap::from([
            (
                "FARMOPS_OWNER_DATABASE_URL",
                testing::url("postgres", "postgres", &name),
            ),
            ("FARMOPS_MIGRATE_BOOTSTRAP", "1".to_string()),
        ]);
        let state = migrate::State::from_lookup(|k| vars.get(k).cloned())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let first = migrate::handle(&state, serde_json::json!({})).await?;
        let applied = first["applied"].as_array().unwrap();
        assert_eq!(
            applied.len(),
            farmops::db::migrate::MIGRATIONS.len(),
            "{first}"
        );
        assert_eq!(first["bootstrapped"], true);
        assert_eq!(first["rds_iam"], false, "no rds_iam role outside RDS");

        let second = migrate::handle(&state, serde_json::json!({})).await?;
        assert_eq!(second["applied"], serde_json::json!([]), "idempotent");
        state.db.close();

        // objects belong to the owner role, not to the admin that ran the function
        let db = connect(&testing::url("postgres", "postgres", &name)).await?;
        let owners = db
            .query_typed(
                "SELECT DISTINCT tableowner::text FROM pg_tables WHERE schemaname = 'public'",
                &[],
            )
            .await?;
        let owners: Vec<String> = owners.iter().map(|r| r.get(0)).collect();
        assert_eq!(owners, vec!["farmops_owner".to_string()]);
        drop(db);

        // the application role logs in, sees nothing without a tenant, cannot write the ledger
        let app = connect(&testing::url("farmops_app", testing::APP_PASSWORD, &name)).await?;
        let farms = app.query_typed("SELECT count(*) FROM farms", &[]).await?;
        assert_eq!(farms[0].get::<_, i64>(0), 0, "RLS: no tenant, no rows");
        let err = app
            .query_typed(
                "DELETE FROM credit_ledger WHERE farm_id = $1",
                &[(&uuid::Uuid::nil(), Type::UUID)],
            )
            .await
            .unwrap_err();
        assert_eq!(err.code().map(|c| c.code()), Some("42501"), "{err}");
        Ok::<_, anyhow::Error>(())
    }
    .await;

    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    result
}

#[tokio::test]
async fn bad_configuration_names_the_variable() {
    let err = migrate::State::from_lookup(|_| None).await.err().unwrap();
    assert!(
        err.to_string().contains("FARMOPS_OWNER_DATABASE_URL"),
        "{err}"
    );
    let err = migrate::State::from_lookup(|k| match k {
        "FARMOPS_OWNER_DATABASE_URL" => Some("postgres://u@127.0.0.1/db".into()),
        "FARMOPS_MIGRATE_BOOTSTRAP" => Some("yes".into()),
        _ => None,
    })
    .await
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("FARMOPS_MIGRATE_BOOTSTRAP"),
        "{err}"
    );
}
