//! The API an app is built on (issue 21), against a real PostgreSQL: the reads (served by the
//! evidence function) and the writes (this function), every role, pagination under inserts,
//! bad parameters, the database's doors tested as the application role, and the flows that
//! cross a chat turn (autonomy, forgetting a memory) and the distill job.

mod access;
mod alerts;
mod autonomy;
mod budgets;
mod faults;
mod fields;
mod members;
mod memories;
mod pages;

use anyhow::Result;
use farmops::{db::Type, testing::TestDb};
use farmops_http::{
    IdentitySource,
    testing::{apigw_request, body_json, openapi::assert_conforms_path},
};
use lambda_http::{Body, Response};
use serde_json::Value;
use uuid::Uuid;

pub struct Api {
    pub db: TestDb,
    pub reads: evidence::State,
    pub writes: farm::State,
}

impl Api {
    pub async fn new() -> Result<Api> {
        let db = TestDb::new().await?;
        let state = || farmops_http::DbState {
            db: db.app.clone(),
            identity: IdentitySource::default(),
        };
        Ok(Api {
            reads: state(),
            writes: state(),
            db,
        })
    }

    /// Sends a request to the function that serves it (GET: evidence, else farm) and checks
    /// the answer against docs/openapi.yaml.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        user: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        let headers: &[(&str, &str)] = if text.is_some() {
            &[("content-type", "application/json")]
        } else {
            &[]
        };
        let req = apigw_request(method, path, Some(user), headers, text.as_deref());
        let res: Response<Body> = if method == "GET" {
            evidence::handle(&self.reads, req).await
        } else {
            farm::handle(&self.writes, req).await
        };
        let bare = path.split('?').next().unwrap_or(path);
        assert_conforms_path(method, bare, &res);
        (res.status().as_u16(), body_json(&res))
    }

    pub async fn get(&self, path: &str, user: &str) -> (u16, Value) {
        self.call("GET", path, user, None).await
    }
}

/// A farm with an owner, a manager, a worker and a viewer (`<role>-<name>`), and credits.
pub async fn staffed_farm(db: &TestDb, name: &str, credits: i64) -> Result<Uuid> {
    let farm = db.farm(name, credits).await?;
    for role in ["owner", "manager", "worker", "viewer"] {
        db.member(farm, &format!("{role}-{name}"), role).await?;
    }
    Ok(farm)
}

/// A conversation started by `user` with `messages` (user/assistant alternating), as the app
/// role writes them.
pub async fn conversation(db: &TestDb, farm: Uuid, user: &str, messages: &[&str]) -> Result<Uuid> {
    let tx = db.app.tenant(farm).await?;
    let id: Uuid = tx
        .query_one(
            "INSERT INTO conversations (farm_id, user_id) VALUES ($1, $2) RETURNING id",
            &[(&farm, Type::UUID), (&user, Type::TEXT)],
        )
        .await?
        .get(0);
    for (i, content) in messages.iter().enumerate() {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        tx.query(
            "INSERT INTO messages (farm_id, conversation_id, role, content) VALUES ($1, $2, $3, $4)",
            &[
                (&farm, Type::UUID),
                (&id, Type::UUID),
                (&role, Type::TEXT),
                (content, Type::TEXT),
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// A current memory with its embedding (the offline embedder's vector of its content).
pub async fn memory(db: &TestDb, farm: Uuid, subject: &str, content: &str) -> Result<Uuid> {
    let vector = farmops::embed::offline_vector(content);
    let tx = db.app.tenant(farm).await?;
    let id: Uuid = tx
        .query_one(
            "WITH m AS (INSERT INTO memories (farm_id, subject, content) VALUES ($1, $2, $3) RETURNING id),
                  e AS (INSERT INTO embeddings (farm_id, memory_id, content, content_hash, embedding_model, embedding)
                        SELECT $1, m.id, $3, md5($3), 'offline', $4::float4[]::vector FROM m)
             SELECT id FROM m",
            &[
                (&farm, Type::UUID),
                (&subject, Type::TEXT),
                (&content, Type::TEXT),
                (&vector, Type::FLOAT4_ARRAY),
            ],
        )
        .await?
        .get(0);
    tx.commit().await?;
    Ok(id)
}

/// One bigint from the farm's tenant.
pub async fn scalar(db: &TestDb, farm: Uuid, sql: &str) -> Result<i64> {
    let tx = db.app.tenant(farm).await?;
    let v = tx.query_one(sql, &[]).await?.get(0);
    tx.commit().await?;
    Ok(v)
}

/// The SQLSTATE of a database refusal.
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// A plain connection as the application role with the tenant set (a transaction begun).
pub async fn app_session(db: &TestDb, farm: Uuid) -> Result<tokio_postgres::Client> {
    let client = db.app_client().await?;
    client
        .batch_execute(&format!(
            "BEGIN; SELECT set_config('app.farm_id', '{farm}', true)"
        ))
        .await?;
    Ok(client)
}

/// One chat turn with the offline model and no retrieval, as JSON.
pub async fn offline_turn(api: &Api, farm: Uuid, user: &str, message: &str) -> Result<Value> {
    let limits = farmops::chat::ChatLimits::default();
    let deps = farmops::chat::ChatDeps {
        db: &api.db.app,
        model: &farmops::model::offline::OfflineChat,
        retriever: &farmops::rag::NoRetrieval,
        limits: &limits,
    };
    let request = farmops::chat::TurnRequest {
        message: message.into(),
        conversation_id: None,
    };
    Ok(serde_json::to_value(
        farmops::chat::run_turn(&deps, farm, user, &request).await?,
    )?)
}

/// The provenance of a record a person typed in.
pub fn manual(created_by: &str) -> farmops::records::Provenance<'_> {
    farmops::records::Provenance {
        source: farmops::records::Source::Manual,
        created_by,
        ai_run_id: None,
        draft_id: None,
        confirmed_by: None,
    }
}
