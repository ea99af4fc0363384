//! A local Bedrock stub: a plain HTTP server answering `POST /model/{id}/converse` (or, with
//! [`ConverseStub::start_on`], another operation such as Titan's `/invoke`) from a script,
//! recording every request, driven by the REAL `aws-sdk-bedrockruntime` client (endpoint
//! override, dummy static credentials). Used by the chat, distill-memories, knowledge and
//! reembed tests.

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::stub::Reply;
use crate::{
    aws::BedrockSettings,
    embed::TitanEmbedder,
    model::{ChatModel, bedrock::BedrockChat, guardrail::GuardrailSettings},
};
use anyhow::Result;
use serde_json::{Value, json};

/// The model id [`ConverseStub::model`] prices its runs under.
pub const HAIKU: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";

/// One scripted answer of the stub.
#[derive(Clone)]
pub struct Scripted {
    pub status: u16,
    pub error_type: Option<&'static str>,
    pub body: Value,
    /// Sent instead of `body` when set (answers that are not JSON).
    pub raw: Option<String>,
    pub delay: Duration,
    /// Where the reported usage comes from.
    pub usage: StubUsage,
}

/// What usage the stub reports for an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StubUsage {
    /// The scripted body's `usage` as it is.
    Scripted,
    /// A worst-case tokeniser for the request received ([`worst_case_usage`]).
    WorstCase,
    /// A typical one ([`typical_usage`]): a token per 3 bytes read and written.
    Typical,
}

impl Scripted {
    pub fn text(text: &str) -> Scripted {
        Scripted::ok(json!([{ "text": text }]), "end_turn")
    }

    pub fn tool_use(calls: &[(&str, &str, Value)]) -> Scripted {
        let content: Vec<Value> = calls
            .iter()
            .map(|(id, name, input)| json!({ "toolUse": { "toolUseId": id, "name": name, "input": input } }))
            .collect();
        Scripted::ok(Value::Array(content), "tool_use")
    }

    pub fn ok(content: Value, stop: &str) -> Scripted {
        Scripted {
            status: 200,
            error_type: None,
            body: json!({
                "output": { "message": { "role": "assistant", "content": content } },
                "stopReason": stop,
                "usage": { "inputTokens": 1200, "outputTokens": 80, "totalTokens": 1280 },
                "metrics": { "latencyMs": 5 }
            }),
            raw: None,
            delay: Duration::ZERO,
            usage: StubUsage::Scripted,
        }
    }

    /// This answer with the usage of a worst-case tokeniser for the request it answers: one
    /// input token per byte the model reads and `maxTokens` output tokens.
    pub fn at_worst_usage(self) -> Scripted {
        Scripted {
            usage: StubUsage::WorstCase,
            ..self
        }
    }

    /// This answer with a typical tokeniser's usage ([`typical_usage`]).
    pub fn at_typical_usage(self) -> Scripted {
        Scripted {
            usage: StubUsage::Typical,
            ..self
        }
    }

    /// A guardrail intervention as Converse sends it: the guardrail's blocked message as the
    /// output, `stopReason: guardrail_intervened`, and `trace.guardrail` with an output
    /// assessment in which the topic `topic` (a DENY topic) and the custom word `word` matched.
    pub fn guardrail_intervened(blocked_message: &str, topic: &str, word: &str) -> Scripted {
        let mut s = Scripted::ok(json!([{ "text": blocked_message }]), "guardrail_intervened");
        s.body["trace"] = json!({
            "guardrail": {
                "modelOutput": ["(the model's reply, withheld)"],
                "actionReason": "Guardrail blocked.",
                "outputAssessments": {
                    "farmops-guardrail": [{
                        "topicPolicy": { "topics": [
                            { "name": topic, "type": "DENY", "action": "BLOCKED", "detected": true }
                        ] },
                        "wordPolicy": {
                            "customWords": [{ "match": word, "action": "BLOCKED", "detected": true }],
                            "managedWordLists": []
                        }
                    }]
                }
            }
        });
        s
    }

    /// A 200 with this JSON body as it is (e.g. a Titan InvokeModel answer).
    pub fn json(body: Value) -> Scripted {
        Scripted {
            status: 200,
            error_type: None,
            body,
            raw: None,
            delay: Duration::ZERO,
            usage: StubUsage::Scripted,
        }
    }

    /// A 200 whose body is `raw`, JSON or not.
    pub fn raw(raw: &str) -> Scripted {
        Scripted {
            raw: Some(raw.to_string()),
            ..Scripted::json(Value::Null)
        }
    }

    pub fn error(status: u16, error_type: &'static str) -> Scripted {
        Scripted {
            status,
            error_type: Some(error_type),
            body: json!({ "message": format!("stub says {error_type}") }),
            raw: None,
            delay: Duration::ZERO,
            usage: StubUsage::Scripted,
        }
    }
}

/// A local HTTP server that answers `POST /model/{id}/converse` from a script and records
/// every request (path and JSON body). A request past the script, or to another path, gets a
/// 400 ValidationException.
pub struct ConverseStub {
    pub url: String,
    pub requests: Arc<Mutex<Vec<(String, Value)>>>,
}

impl ConverseStub {
    pub async fn start(script: Vec<Scripted>) -> Result<ConverseStub> {
        ConverseStub::start_on(script, "/converse").await
    }

    /// The same stub for the operation whose path ends with `operation` (`"/invoke"`: Titan
    /// embeddings through InvokeModel).
    pub async fn start_on(script: Vec<Scripted>, operation: &'static str) -> Result<ConverseStub> {
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let url = super::stub::serve(move |request| {
            let (script, seen) = (Arc::clone(&script), Arc::clone(&seen));
            async move {
                let (path, body) = (request.path, request.body);
                let answer = if path.starts_with("/model/") && path.ends_with(operation) {
                    script.lock().unwrap().pop_front()
                } else {
                    None
                };
                let mut answer =
                    answer.unwrap_or_else(|| Scripted::error(400, "ValidationException"));
                match answer.usage {
                    StubUsage::Scripted => {}
                    StubUsage::WorstCase => answer.body["usage"] = worst_case_usage(&body),
                    StubUsage::Typical => answer.body["usage"] = typical_usage(&body, &answer.body),
                }
                seen.lock().unwrap().push((path, body));
                tokio::time::sleep(answer.delay).await;
                Reply {
                    status: answer.status,
                    content_type: "application/json",
                    error_type: answer.error_type.map(|t| {
                        format!("{t}:http://internal.amazon.com/coral/com.amazon.bedrock/")
                    }),
                    payload: answer.raw.unwrap_or_else(|| answer.body.to_string()),
                }
            }
        })
        .await?;
        Ok(ConverseStub { url, requests })
    }

    pub fn requests(&self) -> Vec<(String, Value)> {
        self.requests.lock().unwrap().clone()
    }

    /// The real Bedrock client (explicit timeouts, retries) pointed at this stub with dummy
    /// static credentials.
    pub async fn model(&self, attempt_timeout: Duration) -> Arc<dyn ChatModel> {
        self.model_with_guardrail(attempt_timeout, None).await
    }

    /// [`ConverseStub::model`] whose every call carries `guardrail` (`guardrailConfig`).
    pub async fn model_with_guardrail(
        &self,
        attempt_timeout: Duration,
        guardrail: Option<GuardrailSettings>,
    ) -> Arc<dyn ChatModel> {
        let base = stub_sdk_config().await;
        let settings = BedrockSettings {
            endpoint: Some(self.url.clone()),
            operation_timeout: attempt_timeout * 2,
            attempt_timeout,
            max_attempts: 1,
            ..BedrockSettings::default()
        };
        let client = crate::aws::bedrock_client_from(&settings, &base).await;
        Arc::new(BedrockChat::new(client, HAIKU).with_guardrail(guardrail))
    }

    /// The real Titan embedder (one attempt) pointed at this stub.
    pub async fn titan(&self) -> TitanEmbedder {
        let settings = BedrockSettings {
            endpoint: Some(self.url.clone()),
            max_attempts: 1,
            ..BedrockSettings::default()
        };
        TitanEmbedder::new(
            crate::aws::bedrock_client_from(&settings, &stub_sdk_config().await).await,
        )
    }
}

/// The usage a worst-case tokeniser reports for a Converse request: one input token per
/// UTF-8 byte of everything the model reads (system texts, every message block: text, a tool
/// call's name and input, a tool result's content; the tool specifications), and the whole
/// `maxTokens` as output. No real tokeniser counts more (a token is at least one byte).
pub fn worst_case_usage(request: &Value) -> Value {
    let input = bytes_read(request);
    let output = request["inferenceConfig"]["maxTokens"]
        .as_u64()
        .unwrap_or(0);
    json!({ "inputTokens": input, "outputTokens": output, "totalTokens": input + output })
}

/// The usage of a typical tokeniser (English and JSON run at 3 to 4 bytes a token): a token
/// per 3 bytes the model reads (as [`worst_case_usage`] counts them) and per 3 bytes of the
/// content it answers, rounded up.
pub fn typical_usage(request: &Value, answer: &Value) -> Value {
    let input = bytes_read(request).div_ceil(3);
    let written: u64 = answer["output"]["message"]["content"]
        .as_array()
        .into_iter()
        .flatten()
        .map(block_bytes)
        .sum();
    let output = written.div_ceil(3).max(1);
    json!({ "inputTokens": input, "outputTokens": output, "totalTokens": input + output })
}

fn bytes(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.len() as u64,
        other => other.to_string().len() as u64,
    }
}

fn block_bytes(b: &Value) -> u64 {
    if let Some(t) = b.get("text") {
        bytes(t)
    } else if let Some(u) = b.get("toolUse") {
        bytes(&u["name"]) + bytes(&u["input"])
    } else if let Some(r) = b.get("toolResult") {
        bytes(&r["content"])
    } else {
        bytes(b)
    }
}

/// Bytes of everything a Converse request makes the model read.
fn bytes_read(request: &Value) -> u64 {
    let mut input = 0;
    for s in request["system"].as_array().into_iter().flatten() {
        input += bytes(&s["text"]);
    }
    for m in request["messages"].as_array().into_iter().flatten() {
        input += m["content"]
            .as_array()
            .into_iter()
            .flatten()
            .map(block_bytes)
            .sum::<u64>();
    }
    if !request["toolConfig"].is_null() {
        input += bytes(&request["toolConfig"]);
    }
    input
}

/// The SDK configuration the stubs' clients start from: a region and dummy static
/// credentials (SigV4 signs with them; the stub does not check the signature).
pub async fn stub_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "AKIDSTUB",
            "stub-secret",
            None,
            None,
            "stub",
        ))
        .load()
        .await
}
