//! Reading farm-log sentences into tool calls (pure): clauses, numbers, units, dates,
//! expenses and symptoms.

use chrono::{Datelike, NaiveDate, Weekday};
use num_traits::ToPrimitive;
use serde_json::{Value, json};

use super::money;
use crate::tokens::{self, Split};

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

/// A number as a count for the record: its whole part (a count read as "2.5" is 2), or the
/// number as read when no `i64` holds it (beyond 9.2e18), which the record schema then refuses
/// instead of a count quietly clamped to `i64::MAX`.
fn count_value(n: f64) -> Value {
    n.to_i64().map_or_else(|| json!(n), |count| json!(count))
}

/// A clause's tokens with their punctuation ([`Split::Whitespace`]): amounts like "45,000".
fn words(text: &str) -> Vec<&str> {
    tokens::split(text, Split::Whitespace)
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
        !money::is_only_amount(&words(&lower))
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
        let mut input = json!({ "count": count_value(count) });
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
            let place: Vec<&str> = words(&original[start..]).into_iter().take(j).collect();
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
            input["affected_count"] = count_value(n);
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
