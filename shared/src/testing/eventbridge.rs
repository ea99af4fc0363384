//! A local EventBridge stub: a plain HTTP server answering `PutEvents` (awsJson1.1, `POST /`)
//! with the statuses it is given (then 200s), recording every request body, driven by the
//! REAL `aws-sdk-eventbridge` client (endpoint override, dummy static credentials).

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use super::{converse::stub_sdk_config, stub::Reply};
use crate::credits::alerts::AlertBus;
use anyhow::Result;
use serde_json::{Value, json};

pub struct EventBridgeStub {
    pub url: String,
    /// Every request's JSON body, in arrival order (failed ones too).
    pub requests: Arc<Mutex<Vec<Value>>>,
}

impl EventBridgeStub {
    /// `statuses`: the first requests' answers (500: an InternalException); after them, 200
    /// with an event id per entry.
    pub async fn start(statuses: Vec<u16>) -> Result<EventBridgeStub> {
        let script = Arc::new(Mutex::new(VecDeque::from(statuses)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let next_id = Arc::new(AtomicU64::new(0));
        let url = super::stub::serve(move |request| {
            let (script, seen, next_id) =
                (Arc::clone(&script), Arc::clone(&seen), Arc::clone(&next_id));
            async move {
                let body = request.body;
                let status = script.lock().unwrap().pop_front().unwrap_or(200);
                let entries = body["Entries"].as_array().map_or(0, Vec::len);
                seen.lock().unwrap().push(body);
                let (payload, error) = if status == 200 {
                    let ids: Vec<Value> = (0..entries)
                        .map(|_| {
                            let id = next_id.fetch_add(1, Ordering::Relaxed) + 1;
                            json!({ "EventId": format!("stub-event-{id}") })
                        })
                        .collect();
                    (json!({ "FailedEntryCount": 0, "Entries": ids }), None)
                } else {
                    (
                        json!({ "__type": "InternalException", "message": "stub says no" }),
                        Some("InternalException".to_string()),
                    )
                };
                Reply {
                    status,
                    content_type: "application/x-amz-json-1.1",
                    error_type: error,
                    payload: payload.to_string(),
                }
            }
        })
        .await?;
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
