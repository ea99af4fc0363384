//! Keyset pagination: a walk through the pages sees every row that existed exactly once while
//! rows are being inserted between the pages; bad parameters are 422 naming the field.

use std::collections::HashMap;

use anyhow::Result;
use farmops::{
    db::Type,
    records::{self, RecordType},
    testing::TestDb,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::*;

/// Inserts one row of the list `what` (several in one transaction share `created_at`, so ties
/// are broken by id).
async fn insert(db: &TestDb, farm: Uuid, what: &str, n: usize, conv: Uuid) -> Result<()> {
    if what == "members" {
        // the application role has no write on farm_members: the owner adds them, in one
        // statement (one created_at, so ties are broken by user id)
        let users: Vec<String> = (0..n)
            .map(|i| format!("user {i} {}", Uuid::new_v4()))
            .collect();
        db.owner_client()
            .await?
            .query_typed(
                "INSERT INTO farm_members (farm_id, user_id, role) SELECT $1, u, 'worker' FROM unnest($2::text[]) u",
                &[(&farm, Type::UUID), (&users, Type::TEXT_ARRAY)],
            )
            .await?;
        return Ok(());
    }
    let tx = db.app.tenant(farm).await?;
    for i in 0..n {
        let text = format!("row {i} {}", Uuid::new_v4());
        match what {
            "conversations" => {
                tx.query(
                    "INSERT INTO conversations (farm_id, user_id) VALUES ($1, 'owner-p')",
                    &[(&farm, Type::UUID)],
                )
                .await?;
            }
            "recommendations" => {
                tx.query(
                    "INSERT INTO ai_recommendations (farm_id, title, body, created_by) VALUES ($1, 't', $2, 'owner-p')",
                    &[(&farm, Type::UUID), (&text, Type::TEXT)],
                )
                .await?;
            }
            "memories" => {
                tx.query(
                    "INSERT INTO memories (farm_id, content) VALUES ($1, $2)",
                    &[(&farm, Type::UUID), (&text, Type::TEXT)],
                )
                .await?;
            }
            "messages" => {
                tx.query(
                    "INSERT INTO messages (farm_id, conversation_id, role, content) VALUES ($1, $2, 'user', $3)",
                    &[(&farm, Type::UUID), (&conv, Type::UUID), (&text, Type::TEXT)],
                )
                .await?;
            }
            _ => {
                let (t, p) = if i % 2 == 0 {
                    (RecordType::Note, json!({"body": text}))
                } else {
                    (RecordType::FeedUse, json!({"quantity": 2, "unit": "bag"}))
                };
                let p = records::validate_payload(t, &p, chrono::Utc::now().date_naive())?;
                records::insert_record(&tx, &p, &manual("owner-p")).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

fn ids(page: &Value, what: &str) -> Vec<String> {
    page[what]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: {page}"))
        .iter()
        .map(|item| match what {
            "records" => item["record"]["id"].to_string(),
            "members" => item["user_id"].to_string(),
            _ => item["id"].to_string(),
        })
        .collect()
}

#[tokio::test]
async fn every_list_walks_each_row_once_while_rows_are_inserted() -> Result<()> {
    let api = Api::new().await?;
    let db = &api.db;
    let farm = staffed_farm(db, "p", 0).await?;
    let conv = conversation(db, farm, "owner-p", &[]).await?;
    let f = format!("/farms/{farm}");
    for what in [
        "conversations",
        "recommendations",
        "records",
        "memories",
        "messages",
        "members",
    ] {
        let path = match what {
            "messages" => format!("{f}/conversations/{conv}/messages"),
            _ => format!("{f}/{what}"),
        };
        // 13 rows in one transaction (one created_at), 10 more in their own
        insert(db, farm, what, 13, conv).await?;
        for _ in 0..10 {
            insert(db, farm, what, 1, conv).await?;
        }
        let (_, before) = api.get(&format!("{path}?limit=200"), "owner-p").await;
        let existing = ids(&before, what);
        let expected = match what {
            "conversations" => 24,
            "members" => 27, // and the four staff
            _ => 23,
        };
        assert_eq!(existing.len(), expected, "{what}: {before}");

        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let url = match &cursor {
                Some(c) => format!("{path}?limit=4&cursor={c}"),
                None => format!("{path}?limit=4"),
            };
            let (status, page) = api.get(&url, "owner-p").await;
            assert_eq!(status, 200, "{what}: {page}");
            assert!(page[what].as_array().unwrap().len() <= 4);
            for id in ids(&page, what) {
                *seen.entry(id).or_default() += 1;
            }
            // rows keep arriving while the app pages
            insert(db, farm, what, 2, conv).await?;
            pages += 1;
            assert!(pages < 100, "{what}: the walk never ends");
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        for id in &existing {
            assert_eq!(
                seen.get(id),
                Some(&1),
                "{what}: {id} seen {:?} times",
                seen.get(id)
            );
        }
        assert!(seen.values().all(|n| *n == 1), "{what}: a row seen twice");
        assert!(pages >= 6, "{what}: {pages} pages of 4 for {expected} rows");
    }
    Ok(())
}

#[tokio::test]
async fn bad_parameters_are_422_naming_the_field() -> Result<()> {
    let api = Api::new().await?;
    let db = &api.db;
    let farm = staffed_farm(db, "q", 0).await?;
    let conv = conversation(db, farm, "owner-q", &["hi", "hello"]).await?;
    let f = format!("/farms/{farm}");
    let lists = [
        format!("{f}/conversations"),
        format!("{f}/conversations/{conv}/messages"),
        format!("{f}/recommendations"),
        format!("{f}/records"),
        format!("{f}/memories"),
        format!("{f}/members"),
    ];
    let mut cases: Vec<(String, &str)> = Vec::new();
    for list in &lists {
        for (q, field) in [
            ("limit=0", "limit"),
            ("limit=201", "limit"),
            ("limit=ten", "limit"),
            ("cursor=zz", "cursor"),
            ("cursor=00", "cursor"),
        ] {
            cases.push((format!("{list}?{q}"), field));
        }
    }
    cases.extend([
        (format!("{f}/recommendations?status=done"), "status"),
        (format!("{f}/records?type=harvest"), "type"),
        (format!("{f}/records?from=yesterday"), "from"),
        (format!("{f}/records?to=2026-13-01"), "to"),
        (format!("{f}/records?from=2026-02-01&to=2026-01-01"), "to"),
        (format!("{f}/memories?include=everything"), "include"),
    ]);
    for (url, field) in cases {
        let (status, body) = api.get(&url, "owner-q").await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["code"], "invalid_payload", "{url}");
        assert_eq!(body["error"]["fields"][0]["field"], field, "{url}: {body}");
    }
    // good filters pass
    for url in [
        format!("{f}/records?type=note&from=2026-01-01&to=2026-01-01"),
        format!("{f}/recommendations?status=rejected&limit=200"),
        format!("{f}/memories?include=superseded"),
    ] {
        let (status, body) = api.get(&url, "owner-q").await;
        assert_eq!(status, 200, "{url}: {body}");
    }
    // bad bodies and ids on the writes: never a 500
    let bad_writes = [
        (
            "PUT",
            format!("{f}/settings/autonomy"),
            Some("{not json"),
            400,
        ),
        ("PUT", format!("{f}/settings/autonomy"), Some("[]"), 422),
        (
            "PUT",
            format!("{f}/settings/autonomy"),
            Some(r#"{"tier": 3}"#),
            422,
        ),
        (
            "PUT",
            format!("{f}/settings/autonomy"),
            Some(r#"{"farm_id": "x"}"#),
            422,
        ),
        ("PUT", format!("{f}/settings/autonomy"), None, 400),
        (
            "PUT",
            format!("{f}/members/x"),
            Some(r#"{"role": "admin"}"#),
            422,
        ),
        ("PUT", format!("{f}/members/x"), Some(r#"{}"#), 422),
        ("DELETE", format!("{f}/memories/not-a-uuid"), None, 404),
        (
            "DELETE",
            format!("{f}/memories/{}", Uuid::new_v4()),
            None,
            404,
        ),
        ("DELETE", format!("{f}/members/nobody"), None, 404),
        ("PATCH", format!("{f}/settings/autonomy"), Some("{}"), 405),
    ];
    for (method, url, body, want) in bad_writes {
        let req = apigw_request(
            method,
            &url,
            Some("owner-q"),
            &[("content-type", "application/json")],
            body,
        );
        let res = farm::handle(&api.writes, req).await;
        assert_eq!(
            res.status().as_u16(),
            want,
            "{method} {url} {body:?}: {:?}",
            res.body()
        );
        assert_conforms_path(method, &url, &res);
    }
    let big = format!(r#"{{"tier": "{}"}}"#, "a".repeat(10_000));
    let req = apigw_request(
        "PUT",
        &format!("{f}/settings/autonomy"),
        Some("owner-q"),
        &[],
        Some(&big),
    );
    assert_eq!(farm::handle(&api.writes, req).await.status().as_u16(), 413);
    Ok(())
}
