//! Tests of the model-backed fact extractor: strict tool-input parsing, the forced tool call,
//! pricing and the env's choice of model.

use super::*;
use crate::model::{Block, Role, Usage as ModelUsage};

fn fact(subject: &str, content: &str) -> Fact {
    Fact {
        subject: subject.into(),
        content: content.into(),
    }
}

#[test]
fn tool_input_is_parsed_and_validated_strictly() {
    let long = |n: usize| "a".repeat(n);
    type Expected = std::result::Result<(Vec<Fact>, &'static str), &'static str>;
    let cases: Vec<(Value, Expected)> = vec![
        (
            json!({"facts": [{"subject": "  Vaccination   Day ", "content": " We vaccinate on Mondays. "}], "summary": " Talked vaccines. "}),
            Ok((
                vec![fact("vaccination day", "We vaccinate on Mondays.")],
                "Talked vaccines.",
            )),
        ),
        (
            json!({"facts": [], "summary": "Nothing durable."}),
            Ok((vec![], "Nothing durable.")),
        ),
        (
            json!({"facts": [{"subject": "pond 3", "content": "Pond 3 is the nursery."},
                             {"subject": "vet", "content": "Our vet is Dr Ade."},
                             {"subject": "Pond 3", "content": "Pond 3 is the grow-out pond."}],
                   "summary": "s", "note": "extra keys are ignored"}),
            Ok((
                vec![
                    fact("pond 3", "Pond 3 is the grow-out pond."),
                    fact("vet", "Our vet is Dr Ade."),
                ],
                "s",
            )),
        ),
        (json!("not an object"), Err("not a JSON object")),
        (json!({"summary": "s"}), Err("missing facts")),
        (
            json!({"facts": {}, "summary": "s"}),
            Err("facts is not an array"),
        ),
        (json!({"facts": []}), Err("missing summary")),
        (
            json!({"facts": [], "summary": 3}),
            Err("summary is not a string"),
        ),
        (
            json!({"facts": [], "summary": "  "}),
            Err("summary is empty"),
        ),
        (
            json!({"facts": ["x"], "summary": "s"}),
            Err("fact 0 is not an object"),
        ),
        (
            json!({"facts": [{"content": "c"}], "summary": "s"}),
            Err("missing subject"),
        ),
        (
            json!({"facts": [{"subject": " ", "content": "c"}], "summary": "s"}),
            Err("subject is empty"),
        ),
        (
            json!({"facts": [{"subject": "s", "content": ""}], "summary": "s"}),
            Err("content is empty"),
        ),
        (
            json!({"facts": [{"subject": "s", "content": null}], "summary": "s"}),
            Err("content is not a string"),
        ),
        (
            json!({"facts": [{"subject": long(81), "content": "c"}], "summary": "s"}),
            Err("subject has 81 characters"),
        ),
        (
            json!({"facts": [{"subject": "s", "content": long(301)}], "summary": "s"}),
            Err("content has 301 characters"),
        ),
        (
            json!({"facts": [], "summary": long(2001)}),
            Err("summary has 2001 characters"),
        ),
        (
            json!({"facts": [{"subject": "s", "content": "a\u{0}b"}], "summary": "s"}),
            Err("NUL"),
        ),
        (
            json!({"facts": (0..21).map(|i| json!({"subject": format!("s{i}"), "content": "c"})).collect::<Vec<_>>(), "summary": "s"}),
            Err("21 facts (at most 20)"),
        ),
    ];
    for (input, expected) in cases {
        match (parse_tool_input(&input), expected) {
            (Ok((facts, summary)), Ok((want_facts, want_summary))) => {
                assert_eq!(
                    (facts, summary.as_str()),
                    (want_facts, want_summary),
                    "{input}"
                );
            }
            (Err(Error::ModelFailed(m)), Err(want)) => {
                assert!(m.contains(want), "{input}: {m} lacks {want}");
            }
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }
    // the limits themselves are accepted
    let at_limits = json!({
        "facts": (0..MAX_FACTS).map(|i| json!({"subject": format!("{i:0>80}"), "content": long(300)})).collect::<Vec<_>>(),
        "summary": "é".repeat(2000),
    });
    let (facts, summary) = parse_tool_input(&at_limits).unwrap();
    assert_eq!((facts.len(), summary.chars().count()), (MAX_FACTS, 2000));
}

fn response(content: Vec<Block>, stop: StopReason) -> ChatResponse {
    ChatResponse {
        message: Message {
            role: Role::Assistant,
            content,
        },
        stop_reason: stop,
        usage: ModelUsage::default(),
    }
}

#[test]
fn the_answer_must_be_one_call_of_the_tool_within_the_cap() {
    let call = |name: &str| Block::ToolUse {
        id: "t".into(),
        name: name.into(),
        input: json!({"facts": [], "summary": "s"}),
    };
    let cases = [
        (vec![call(TOOL_NAME)], StopReason::ToolUse, None),
        (
            vec![Block::Text("thinking".into()), call(TOOL_NAME)],
            StopReason::ToolUse,
            None,
        ),
        (
            vec![call(TOOL_NAME)],
            StopReason::MaxTokens,
            Some("cut off"),
        ),
        (
            vec![Block::Text("{\"facts\": []}".into())],
            StopReason::EndTurn,
            Some("did not call"),
        ),
        (
            vec![call("record_sale")],
            StopReason::ToolUse,
            Some("did not call"),
        ),
        (
            vec![call(TOOL_NAME), call(TOOL_NAME)],
            StopReason::ToolUse,
            Some("more than once"),
        ),
        (
            vec![Block::Text("Sorry, I can't help with that.".into())],
            StopReason::GuardrailIntervened(json!({"action_reason": "Guardrail blocked."})),
            Some("guardrail_intervened"),
        ),
    ];
    for (content, stop, error) in cases {
        let got = parse_response(&response(content.clone(), stop.clone()));
        match (got, error) {
            (Ok((facts, summary)), None) => {
                assert_eq!((facts.len(), summary.as_str()), (0, "s"))
            }
            (Err(Error::ModelFailed(m)), Some(want)) => assert!(m.contains(want), "{m}"),
            (got, want) => panic!("{content:?}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn the_request_forces_the_tool_and_stays_within_the_input_bound() {
    let t = vec![
        TranscriptMessage {
            role: "user".into(),
            content: "We vaccinate on Mondays.".into(),
        },
        TranscriptMessage {
            role: "assistant".into(),
            content: "Noted.".into(),
        },
    ];
    let r = request(Some("Earlier: ponds."), &t, 500);
    assert_eq!(r.tool_choice.as_deref(), Some(TOOL_NAME));
    assert_eq!(r.tools, vec![tool_spec()]);
    assert_eq!(r.max_tokens, 500);
    let text = r.messages[0].text();
    assert!(text.contains("Earlier: ponds."), "{text}");
    assert!(
        text.contains("[farmer] We vaccinate on Mondays.\n[assistant] Noted."),
        "{text}"
    );
    assert!(request(None, &t, 500).messages[0].text().contains("(none)"));

    // Oversized input (a huge multibyte message, a huge summary, too many messages) is
    // clipped on character boundaries to within the extractor's bound.
    let model: Arc<dyn ChatModel> = Arc::new(crate::model::offline::OfflineChat);
    let ex = ModelFactExtractor::new(model, 500).unwrap();
    let huge: Vec<TranscriptMessage> = (0..300)
        .map(|_| TranscriptMessage {
            role: "user".into(),
            content: "ñ\"".repeat(20_000),
        })
        .collect();
    let r = request(Some(&"é".repeat(50_000)), &huge, 500);
    let raw_bytes = (r.system.len() + r.messages[0].text().len()) as u64;
    assert!(
        raw_bytes < ex.max_input_tokens(),
        "{raw_bytes} vs {}",
        ex.max_input_tokens()
    );
    assert!(
        r.messages[0].text().len()
            <= MAX_TRANSCRIPT_BYTES + MAX_PREVIOUS_SUMMARY_BYTES + 300 * 14 + 64
    );
}

#[test]
fn an_unpriced_model_is_refused_and_the_env_picks_the_model() {
    struct Unpriced;
    #[async_trait]
    impl ChatModel for Unpriced {
        fn model_id(&self) -> &str {
            "vendor.unknown-model"
        }
        async fn converse(&self, _: &ChatRequest) -> Result<ChatResponse> {
            unreachable!("never called")
        }
    }
    assert!(ModelFactExtractor::new(Arc::new(Unpriced), 100).is_err());
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        Env(move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    };
    assert_eq!(
        bedrock_model_id(&env(&[
            ("FARMOPS_DISTILL_MODEL_ID", "amazon.nova-micro-v1:0"),
            ("FARMOPS_CHAT_MODEL_ID", "amazon.nova-lite-v1:0")
        ])),
        "amazon.nova-micro-v1:0"
    );
    assert_eq!(
        bedrock_model_id(&env(&[("FARMOPS_CHAT_MODEL_ID", "amazon.nova-lite-v1:0")])),
        "amazon.nova-lite-v1:0"
    );
    assert_eq!(
        bedrock_model_id(&env(&[])),
        crate::model::DEFAULT_BEDROCK_MODEL_ID
    );
}

#[tokio::test]
async fn extractor_from_env_refuses_unpriced_models_and_defaults_offline() {
    let offline = extractor_from_env(&Env(|_: &str| None), &Default::default())
        .await
        .unwrap();
    assert_eq!(offline.model_id(), super::super::extract::OFFLINE_MODEL);
    let unpriced = extractor_from_env(
        &Env(|k: &str| match k {
            "FARMOPS_CHAT_PROVIDER" => Some("bedrock".into()),
            "FARMOPS_DISTILL_MODEL_ID" => Some("vendor.unknown-model".into()),
            _ => None,
        }),
        &Default::default(),
    )
    .await;
    assert!(unpriced.is_err());
}

#[tokio::test]
async fn extractor_from_env_refuses_a_misspelt_provider_naming_the_variable() {
    let misspelt = extractor_from_env(
        &Env(|k: &str| match k {
            "FARMOPS_CHAT_PROVIDER" => Some("bedrok".into()),
            _ => None,
        }),
        &Default::default(),
    )
    .await;
    let message = misspelt
        .err()
        .expect("a misspelt provider must stop the cold start")
        .to_string();
    assert!(message.contains("FARMOPS_CHAT_PROVIDER"), "{message}");
    assert!(message.contains("bedrok"), "{message}");
}
