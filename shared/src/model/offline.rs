//! The offline chat model: deterministic, no network. It reads ordinary farm-log sentences
//! and answers with the tool calls a capable model would make; after tool results it
//! summarises them; for questions it answers from the farm knowledge in the system prompt.
//! Every reply says it comes from the offline model. Token usage is a words-based estimate
//! (never above the request's byte bound or its `max_tokens`), so metering works locally.

use async_trait::async_trait;
use chrono::{Datelike, NaiveDate, Utc, Weekday};
use serde_json::{Value, json};

use super::{Block, ChatModel, ChatRequest, ChatResponse, Message, Role, StopReason, Usage};
use crate::error::Result;

mod money;

pub const OFFLINE_MODEL_ID: &str = "offline-farm-assistant";
/// The marker under which the chat turn lists retrieved passages in the system prompt.
pub const KNOWLEDGE_MARKER: &str = "## Farm knowledge";
const PREFIX: &str = "(offline model)";

#[derive(Debug, Clone, Copy, Default)]
pub struct OfflineChat;

/// One tool call read from a sentence: tool name and input.
pub type ToolCall = (String, Value);

/// Splits a message into clauses on " and ", ";", and on "," or "." that are not inside a
/// number ("45,000", "3.5").
pub fn clauses(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let digit_around = i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit());
        if (c == ',' || c == '.') && !digit_around || c == ';' || c == '\n' {
            out.push(std::mem::take(&mut current));
        } else {
            current.push(c);
            if current.to_ascii_lowercase().ends_with(" and ") {
                current.truncate(current.len() - 5);
                out.push(std::mem::take(&mut current));
            }
        }
        i += 1;
    }
    out.push(current);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A number as written by a farmer: "45,000", "3.5", "₦12,500", "350g".
fn number(word: &str) -> Option<f64> {
    let cleaned: String = word
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    if cleaned.is_empty() || !word.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    cleaned.trim_end_matches('.').parse().ok()
}

fn words(lower: &str) -> Vec<&str> {
    lower.split_whitespace().collect()
}

/// The original-case text after the first `" {word} "` (e.g. the place after " in ").
fn after<'a>(original: &'a str, lower: &str, word: &str) -> Option<&'a str> {
    let needle = format!(" {word} ");
    let i = lower.find(&needle)?;
    let rest = original.get(i + needle.len()..)?.trim();
    (!rest.is_empty()).then_some(rest)
}

fn singular(unit: &str) -> String {
    let u = unit.trim_matches(|c: char| !c.is_alphanumeric());
    match u {
        "bags" => "bag".into(),
        "kgs" | "kilos" | "kilograms" | "kilogram" => "kg".into(),
        "tonnes" | "tons" | "ton" => "tonne".into(),
        "grams" | "gram" => "g".into(),
        u if u.len() > 3 && u.ends_with('s') => u[..u.len() - 1].to_string(),
        u => u.to_string(),
    }
}

fn next_weekday(today: NaiveDate, day: Weekday) -> NaiveDate {
    let mut d = today.succ_opt().unwrap_or(today);
    while d.weekday() != day {
        d = d.succ_opt().unwrap_or(d);
    }
    d
}

/// What an expense was for: what was bought ("bought 2 bags of layer mash for ..."), else the
/// text after "for" or "on" ("paid 12,500 for vaccines"), never the amount itself.
fn expense_description<'a>(original: &'a str, lower: &str, verb: &str) -> Option<&'a str> {
    let not_amount = |text: &&str| {
        let lower = text.to_ascii_lowercase();
        !money::is_only_amount(&lower.split_whitespace().collect::<Vec<_>>())
    };
    if verb == "bought" {
        let bought = after(original, lower, "bought")?;
        let bought_lower = format!(" {}", bought.to_ascii_lowercase());
        let item = bought_lower
            .find(" for ")
            .map_or(bought, |j| bought[..j].trim());
        return Some(item).filter(|t| !t.is_empty()).filter(not_amount);
    }
    after(original, lower, "for")
        .or_else(|| after(original, lower, "on"))
        .filter(not_amount)
}

fn expense_category(lower: &str) -> &'static str {
    let has = |k: &[&str]| k.iter().any(|w| lower.contains(w));
    if has(&["vaccin"]) {
        "vaccine"
    } else if has(&["vet"]) {
        "veterinary"
    } else if has(&["drug", "medic", "antibiotic", "dewormer"]) {
        "medication"
    } else if has(&["feed", "maize", "soya", "mash", "pellet"]) {
        "feed"
    } else if has(&["labour", "labor", "worker", "salary", "wage"]) {
        "labour"
    } else if has(&["fuel", "diesel", "transport", "truck"]) {
        "transport"
    } else if has(&["electric", "light bill", "water bill", "nepa"]) {
        "utilities"
    } else if has(&["equipment", "drinker", "feeder", "cage", "net"]) {
        "equipment"
    } else {
        "other"
    }
}

const SYMPTOMS: &[&str] = &[
    "cough",
    "sneez",
    "diarrh",
    "letharg",
    "not eating",
    "swollen",
    "limping",
    "bloody",
    "gasping",
    "wheez",
    "droopy",
    "paralys",
];

/// Reads one clause into a tool call, if it is a farm-log sentence this model understands.
pub fn parse_clause(clause: &str, today: NaiveDate) -> Option<ToolCall> {
    let original = format!(" {} ", clause.trim());
    let lower = original.to_ascii_lowercase();
    let w = words(&lower);
    let first_number = || w.iter().find_map(|x| number(x));
    let place = || {
        after(&original, &lower, "in")
            .or_else(|| after(&original, &lower, "at"))
            .map(str::to_string)
    };
    let call = |name: &str, input: Value| Some((format!("record_{name}"), input));

    if lower.contains(" remind me to ") || lower.starts_with(" todo ") {
        let rest = after(&original, &lower, "to").unwrap_or(clause.trim());
        let rest_lower = format!(" {} ", rest.to_ascii_lowercase());
        let mut title = rest.to_string();
        let mut due = None;
        for (name, day) in [
            ("monday", Weekday::Mon),
            ("tuesday", Weekday::Tue),
            ("wednesday", Weekday::Wed),
            ("thursday", Weekday::Thu),
            ("friday", Weekday::Fri),
            ("saturday", Weekday::Sat),
            ("sunday", Weekday::Sun),
        ] {
            if let Some(i) = rest_lower.find(&format!(" on {name}")) {
                title = rest[..i.saturating_sub(1).min(rest.len())]
                    .trim()
                    .to_string();
                due = Some(next_weekday(today, day));
            }
        }
        if let Some(i) = rest_lower.find(" tomorrow") {
            title = rest[..i.saturating_sub(1).min(rest.len())]
                .trim()
                .to_string();
            due = today.succ_opt();
        }
        let mut input = json!({ "title": title });
        if let Some(d) = due {
            input["due_on"] = json!(d.to_string());
        }
        return call("task", input);
    }
    if lower.contains(" died") || lower.contains(" dead ") || lower.contains(" death") {
        let count = first_number()?;
        let mut input = json!({ "count": count as i64 });
        let i = w.iter().position(|x| number(x).is_some())?;
        if let Some(group) = w
            .get(i + 1)
            .filter(|g| !["died", "dead", "are", "were"].contains(g))
        {
            input["animal_group"] = json!(group);
        }
        if let Some(p) = place() {
            input["location"] = json!(p);
        }
        return call("mortality", input);
    }
    if lower.contains(" sold ") {
        let i = w.iter().position(|x| *x == "sold")?;
        let quantity = w.get(i + 1).and_then(|x| number(x))?;
        let unit = singular(w.get(i + 2)?);
        let item = after(&original, &lower, "of")
            .map(|s| {
                let l = s.to_ascii_lowercase();
                l.find(" for ").map_or(s, |j| &s[..j]).trim().to_string()
            })
            .unwrap_or_else(|| unit.clone());
        let amount_kobo = money::price_kobo(&w, i)?;
        return call(
            "sale",
            json!({ "item": item, "quantity": quantity, "unit": unit,
                    "amount_kobo": amount_kobo }),
        );
    }
    if lower.contains(" paid ") || lower.contains(" spent ") || lower.contains(" bought ") {
        let i = w
            .iter()
            .position(|x| ["paid", "spent", "bought"].contains(x))?;
        let amount_kobo = money::price_kobo(&w, i)?;
        let description = expense_description(&original, &lower, w[i]).unwrap_or(clause.trim());
        return call(
            "expense",
            json!({ "category": expense_category(&lower),
                    "amount_kobo": amount_kobo,
                    "description": description }),
        );
    }
    if lower.contains(" used ") && w.iter().any(|x| x.starts_with("feed")) {
        let i = w.iter().position(|x| *x == "used")?;
        let quantity = w.get(i + 1).and_then(|x| number(x))?;
        let unit = singular(w.get(i + 2)?);
        if !["kg", "g", "bag", "tonne"].contains(&unit.as_str()) {
            return None;
        }
        let mut input = json!({ "quantity": quantity, "unit": unit });
        if let Some(kind) = after(&original, &lower, "of") {
            let kind_lower = format!(" {} ", kind.to_ascii_lowercase());
            let kind = kind_lower
                .find(" in ")
                .map_or(kind, |j| kind[..j.saturating_sub(1)].trim());
            input["feed_type"] = json!(kind);
        }
        if let Some(p) = place() {
            input["location"] = json!(p);
        }
        return call("feed_use", input);
    }
    if lower.contains(" weigh") || lower.contains(" average ") {
        let i = w.iter().position(|x| *x == "average" || *x == "avg")?;
        let mut grams = w.get(i + 1).and_then(|x| number(x))?;
        let unit_word = w
            .get(i + 1)
            .map(|x| x.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.'));
        let unit = match unit_word {
            Some(u) if !u.is_empty() => u.to_string(),
            _ => w.get(i + 2).map(|s| s.to_string()).unwrap_or_default(),
        };
        if unit.starts_with("kg") {
            grams *= 1000.0;
        }
        let j = w.iter().position(|x| x.starts_with("weigh")).unwrap_or(i);
        let mut input = json!({ "average_grams": grams });
        if j > 0 {
            let start = original.to_ascii_lowercase().find(w[0]).unwrap_or(0);
            let place: Vec<&str> = original[start..].split_whitespace().take(j).collect();
            input["location"] = json!(place.join(" "));
        }
        return call("weight", input);
    }
    if lower.contains(" litre") || lower.contains(" liter") {
        let litres = first_number()?;
        let mut input = json!({ "litres": litres });
        if let Some(p) = place() {
            input["location"] = json!(p);
        }
        return call("water", input);
    }
    if SYMPTOMS.iter().any(|s| lower.contains(s)) {
        let text = clause.trim();
        let symptoms = text
            .to_ascii_lowercase()
            .find(" in ")
            .map_or(text, |j| &text[..j])
            .trim();
        let mut input = json!({ "symptoms": symptoms });
        if let Some(n) = first_number() {
            input["affected_count"] = json!(n as i64);
        }
        if let Some(p) = place() {
            input["location"] = json!(p);
        }
        return call("symptom", input);
    }
    if let Some(body) = lower
        .strip_prefix(" note ")
        .or(lower.strip_prefix(" note: "))
    {
        let _ = body;
        let text = clause.trim();
        let body = text
            .split_once(' ')
            .map_or(text, |(_, b)| b)
            .trim_start_matches(':')
            .trim();
        return call("note", json!({ "body": body }));
    }
    None
}

/// Every tool call in a message, in order.
pub fn parse_message(text: &str, today: NaiveDate) -> Vec<ToolCall> {
    let mut calls: Vec<ToolCall> = clauses(text)
        .iter()
        .filter_map(|c| parse_clause(c, today))
        .collect();
    // Signs of illness also get a recommendation for a human to approve.
    if let Some((_, input)) = calls.iter().find(|(n, _)| n == "record_symptom") {
        let where_ = input["location"]
            .as_str()
            .map(|l| format!(" in {l}"))
            .unwrap_or_default();
        calls.push((
            "create_recommendation".into(),
            json!({
                "title": format!("Check the sick animals{where_}"),
                "body": format!("Isolate the affected animals{where_}, check water and feed, and call a veterinarian before giving any medicine."),
            }),
        ));
    }
    calls
}

fn is_question(text: &str) -> bool {
    let lower = text.trim().to_ascii_lowercase();
    lower.ends_with('?')
        || [
            "what", "how", "when", "why", "which", "should", "can", "is ", "do ",
        ]
        .iter()
        .any(|w| lower.starts_with(w))
}

/// The passages listed under [`KNOWLEDGE_MARKER`] in the system prompt.
fn knowledge(system: &str) -> Vec<&str> {
    let Some(i) = system.find(KNOWLEDGE_MARKER) else {
        return Vec::new();
    };
    system[i + KNOWLEDGE_MARKER.len()..]
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| l.strip_prefix("- "))
        .collect()
}

fn answer(question: &str, system: &str) -> String {
    let terms: Vec<String> = question
        .to_ascii_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 3)
        .map(str::to_string)
        .collect();
    let best = knowledge(system)
        .into_iter()
        .map(|p| {
            let l = p.to_ascii_lowercase();
            (terms.iter().filter(|t| l.contains(t.as_str())).count(), p)
        })
        .filter(|(score, _)| *score > 0)
        .max_by_key(|(score, _)| *score);
    match best {
        Some((_, passage)) => format!("{PREFIX} From your farm's knowledge: {passage}"),
        None => format!(
            "{PREFIX} I have nothing in this farm's knowledge about that. Tell me what happened on the farm (deaths, feed, sales, expenses, weights, symptoms, tasks) and I will record it."
        ),
    }
}

fn summarise_results(results: &[(&Value, bool)]) -> String {
    let mut done = Vec::new();
    let mut refused = Vec::new();
    for (content, is_error) in results {
        let text = content["summary"]
            .as_str()
            .or(content["error"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| content.to_string());
        if *is_error {
            refused.push(text);
        } else {
            done.push(text);
        }
    }
    let mut reply = PREFIX.to_string();
    if !done.is_empty() {
        reply.push_str(&format!(" Done: {}.", done.join("; ")));
    }
    if !refused.is_empty() {
        reply.push_str(&format!(" Not saved: {}.", refused.join("; ")));
    }
    reply
}

fn estimate_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// The offline tokeniser's count of a request: words of the system prompt and of every message
/// as JSON, 40 per tool, never above the request's byte bound.
fn input_tokens(request: &ChatRequest) -> u64 {
    (estimate_tokens(&request.system)
        + request
            .messages
            .iter()
            .map(|m| estimate_tokens(&serde_json::to_string(&m.content).unwrap_or_default()))
            .sum::<u64>()
        + request.tools.len() as u64 * 40)
        .min(request.input_token_bound())
}

#[async_trait]
impl ChatModel for OfflineChat {
    fn model_id(&self) -> &str {
        OFFLINE_MODEL_ID
    }

    /// Exact: the count [`ChatModel::converse`] reports (its own tokeniser).
    fn input_token_bound(&self, request: &ChatRequest) -> u64 {
        input_tokens(request)
    }

    async fn converse(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let input_tokens = input_tokens(request);
        let last = request.messages.last();
        let results: Vec<(&Value, bool)> = last
            .map(|m| {
                m.content
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolResult {
                            content, is_error, ..
                        } => Some((content, *is_error)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (message, stop_reason) = if !results.is_empty() {
            (
                Message::assistant_text(summarise_results(&results)),
                StopReason::EndTurn,
            )
        } else {
            let text = last
                .filter(|m| m.role == Role::User)
                .map(Message::text)
                .unwrap_or_default();
            let offered: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
            let calls: Vec<ToolCall> = parse_message(&text, Utc::now().date_naive())
                .into_iter()
                .filter(|(name, _)| offered.contains(&name.as_str()))
                .collect();
            if calls.is_empty() {
                (
                    Message::assistant_text(if is_question(&text) {
                        answer(&text, &request.system)
                    } else {
                        answer(&text, "")
                    }),
                    StopReason::EndTurn,
                )
            } else {
                let turn = request.messages.len();
                let content = calls
                    .into_iter()
                    .enumerate()
                    .map(|(i, (name, input))| Block::ToolUse {
                        id: format!("offline-{turn}-{i}"),
                        name,
                        input,
                    })
                    .collect();
                (
                    Message {
                        role: Role::Assistant,
                        content,
                    },
                    StopReason::ToolUse,
                )
            }
        };
        let output_tokens =
            (estimate_tokens(&serde_json::to_string(&message.content).unwrap_or_default()) + 1)
                .min(u64::from(request.max_tokens));
        Ok(ChatResponse {
            message,
            stop_reason,
            usage: Usage {
                input_tokens,
                output_tokens,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap() // a Saturday
    }

    #[test]
    fn clauses_split_on_and_commas_and_full_stops_but_not_inside_numbers() {
        assert_eq!(
            clauses("used 4 bags of feed and sold 20 crates of eggs for 45,000 naira. 3.5 kg left"),
            [
                "used 4 bags of feed",
                "sold 20 crates of eggs for 45,000 naira",
                "3.5 kg left"
            ]
        );
    }

    #[test]
    fn farm_log_sentences_become_tool_calls() {
        let cases: Vec<(&str, &str, Value)> = vec![
            (
                "3 birds died in pen 2",
                "record_mortality",
                json!({"count": 3, "animal_group": "birds", "location": "pen 2"}),
            ),
            (
                "used 4 bags of feed",
                "record_feed_use",
                json!({"quantity": 4.0, "unit": "bag", "feed_type": "feed"}),
            ),
            (
                "sold 20 crates of eggs for 45,000 naira",
                "record_sale",
                json!({"item": "eggs", "quantity": 20.0, "unit": "crate", "amount_kobo": 4_500_000}),
            ),
            (
                "paid 12,500 for vaccines",
                "record_expense",
                json!({"category": "vaccine", "amount_kobo": 1_250_000, "description": "vaccines"}),
            ),
            (
                "Bought 2 bags of layer mash for 18000 naira",
                "record_expense",
                json!({"category": "feed", "amount_kobo": 1_800_000, "description": "2 bags of layer mash"}),
            ),
            (
                "bought 2 bags of layer mash for N18,000",
                "record_expense",
                json!({"category": "feed", "amount_kobo": 1_800_000, "description": "2 bags of layer mash"}),
            ),
            (
                "bought 2 bags of layer mash for ₦18,000",
                "record_expense",
                json!({"category": "feed", "amount_kobo": 1_800_000, "description": "2 bags of layer mash"}),
            ),
            (
                "bought 2 bags of layer mash for 18k naira",
                "record_expense",
                json!({"category": "feed", "amount_kobo": 1_800_000, "description": "2 bags of layer mash"}),
            ),
            (
                "sold 20 crates of eggs for ₦45,000",
                "record_sale",
                json!({"item": "eggs", "quantity": 20.0, "unit": "crate", "amount_kobo": 4_500_000}),
            ),
            (
                "pond 3 weights average 350 g",
                "record_weight",
                json!({"average_grams": 350.0, "location": "pond 3"}),
            ),
            (
                "coughing in house B",
                "record_symptom",
                json!({"symptoms": "coughing", "location": "house B"}),
            ),
            (
                "remind me to vaccinate on Monday",
                "record_task",
                json!({"title": "vaccinate", "due_on": "2026-11-30"}),
            ),
            (
                "gave 200 litres of water in house A",
                "record_water",
                json!({"litres": 200.0, "location": "house A"}),
            ),
        ];
        for (sentence, tool, input) in cases {
            let (name, got) =
                parse_clause(sentence, today()).unwrap_or_else(|| panic!("{sentence}"));
            assert_eq!(name, tool, "{sentence}");
            assert_eq!(got, input, "{sentence}");
        }
        assert!(parse_clause("what is the weather like", today()).is_none());
    }

    #[test]
    fn one_message_may_hold_several_records() {
        let calls = parse_message(
            "3 birds died in pen 2, used 4 bags of feed and coughing in house B",
            today(),
        );
        let names: Vec<&str> = calls.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "record_mortality",
                "record_feed_use",
                "record_symptom",
                "create_recommendation"
            ]
        );
    }

    #[test]
    fn every_parsed_call_passes_its_record_schema() {
        use crate::records::{RecordType, validate_payload};
        for sentence in [
            "3 birds died in pen 2",
            "used 4 bags of feed",
            "sold 20 crates of eggs for 45,000 naira",
            "paid 12,500 for vaccines",
            "pond 3 weights average 350 g",
            "coughing in house B",
            "remind me to vaccinate on Monday",
        ] {
            let (name, input) = parse_clause(sentence, today()).unwrap();
            let t = RecordType::parse(name.trim_start_matches("record_")).unwrap();
            validate_payload(t, &input, today()).unwrap_or_else(|e| panic!("{sentence}: {e}"));
        }
    }

    #[test]
    fn odd_text_never_panics_and_only_yields_valid_tool_names() {
        let odd = [
            "",
            " ",
            "and and and",
            ",,,..",
            "sold",
            "sold 5",
            "sold 5 crates of",
            "paid for",
            "used 3",
            "3 died",
            "died in",
            "remind me to",
            "remind me to on monday",
            "pond weighs average",
            "average 2kg",
            "₦45,000 sold 20 crätes of ęggs for ₦45,000 naira",
            "coughing in",
            "ñ in ñ",
            "note",
            "note: ",
            "💀 3 birds died in pen 💀",
            "used 4 bags of feed in house 2 and 1.5 tonnes of feed",
        ];
        for text in odd {
            for (name, input) in parse_message(text, today()) {
                assert!(
                    crate::chat::tools::parse_tool(&name).is_some(),
                    "{text}: {name}"
                );
                assert!(input.is_object(), "{text}");
            }
        }
    }

    #[tokio::test]
    async fn questions_are_answered_from_the_knowledge_and_say_they_are_offline() {
        let request = ChatRequest {
            system: format!(
                "You help.\n{KNOWLEDGE_MARKER}\n- Layers need 16 hours of light.\n- Catfish ponds need aeration.\n"
            ),
            messages: vec![Message::user_text(
                "How many hours of light do layers need?",
            )],
            tools: vec![],
            tool_choice: None,
            max_tokens: 100,
        };
        let r = OfflineChat.converse(&request).await.unwrap();
        let text = r.message.text();
        assert!(text.starts_with(PREFIX), "{text}");
        assert!(text.contains("16 hours"), "{text}");
        assert_eq!(r.stop_reason, StopReason::EndTurn);
        assert!(r.usage.input_tokens > 0 && r.usage.input_tokens <= request.input_token_bound());
        assert!(r.usage.output_tokens > 0 && r.usage.output_tokens <= 100);
    }
}
