//! A local EventBridge stub: a plain HTTP server answering `PutEvents` (awsJson1.1, `POST /`)
//! with the statuses it is given (then 200s), recording every request body, driven by the
//! REAL `aws-sdk-eventbridge` client (endpoint override, dummy static credentials).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use anyhow::Result;
use serde_json::{Value, json};
use tokio::{io::AsyncWriteExt, net::TcpListener};

use super::converse::{read_request, stub_sdk_config};
use crate::credits::alerts::AlertBus;

pub struct EventBridgeStub {
    pub url: String,
    /// Every request's JSON body, in arrival order (failed ones too).
    pub requests: Arc<Mutex<Vec<Value>>>,
}

impl EventBridgeStub {
    /// `statuses`: the first requests' answers (500: an InternalException); after them, 200
    /// with an event id per entry.
    pub async fn start(statuses: Vec<u16>) -> Result<EventBridgeStub> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let script = Arc::new(Mutex::new(VecDeque::from(statuses)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        tokio::spawn(async move {
            let mut next_id = 0u64;
            while let Ok((mut socket, _)) = listener.accept().await {
                let Some((_, body)) = read_request(&mut socket).await else {
                    continue;
                };
                let status = script.lock().unwrap().pop_front().unwrap_or(200);
                let entries = body["Entries"].as_array().map_or(0, Vec::len);
                seen.lock().unwrap().push(body);
                let (payload, error) = if status == 200 {
                    let ids: Vec<Value> = (0..entries)
                        .map(|_| {
                            next_id += 1;
                            json!({ "EventId": format!("stub-event-{next_id}") })
                        })
                        .collect();
                    (json!({ "FailedEntryCount": 0, "Entries": ids }), None)
                } else {
                    (
                        json!({ "__type": "InternalException", "message": "stub says no" }),
                        Some("InternalException"),
                    )
                };
                let payload = payload.to_string();
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\nx-amzn-requestid: stub\r\n",
                    payload.len()
                );
                if let Some(t) = error {
                    head.push_str(&format!("x-amzn-errortype: {t}\r\n"));
                }
                head.push_str("\r\n");
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(payload.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        Ok(EventBridgeStub { url, requests })
    }

    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }

    /// The real client pointed at this stub, one attempt per publish (no retries, so a 500
    /// is the dispatcher's to handle).
    pub async fn bus(&self, bus_name: &str) -> AlertBus {
        let base = stub_sdk_config().await;
        let base = base
            .into_builder()
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
            .build();
        AlertBus::new(&base, bus_name, Some(&self.url))
    }
}
