//! The tool executor: turns a model's tool call into a governed effect.
//!
//! * The farm and the user come from the authenticated request (the [`Executor`] is built
//!   from them), never from model output: no tool schema has a farm field and unknown fields
//!   are refused by [`records::validate_payload`].
//! * A write is validated against its record schema (invalid: tool error + a failed
//!   `schema_conformance` eval, nothing planned), then autonomy is resolved
//!   ([`autonomy::resolve_autonomy`]): `suggest` refuses (a tool error, so the model answers
//!   in words), `draft` plans a draft, `auto` plans a record with `Source::AiAuto`.
//! * Writes are PLANNED here and applied by [`apply`] in the transaction that settles the
//!   run, so a failed turn leaves nothing behind and no transaction stays open across a
//!   model call.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::{
    evals::{self, Eval, SCHEMA_CONFORMANCE},
    tools::Tool,
};
use crate::{
    autonomy::{AutonomySettings, Tier, resolve_autonomy, resolve_recommendation},
    db::{Db, TenantTx, Type},
    drafts::{self, Draft, NewDraft},
    error::{Error, Result},
    recommendations::{self, NewRecommendation, Recommendation},
    records::{self, Provenance, RecordType, Source, ValidatedPayload},
};

/// A write the turn will make if it succeeds.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// A draft of the payload's record type.
    Draft {
        payload: ValidatedPayload,
        summary: String,
    },
    /// A record of the payload's record type.
    Record {
        payload: ValidatedPayload,
    },
    Recommendation {
        title: String,
        body: String,
    },
}

/// What one tool call produced: the result for the model, and the plan and eval if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub result: Value,
    pub is_error: bool,
    pub planned: Option<Planned>,
    pub eval: Option<Eval>,
}

impl Outcome {
    fn error(message: impl Into<String>, eval: Option<Eval>) -> Outcome {
        Outcome {
            result: json!({ "error": message.into() }),
            is_error: true,
            planned: None,
            eval,
        }
    }
}

pub struct Executor<'a> {
    pub farm_id: Uuid,
    pub user_id: &'a str,
    pub autonomy: &'a AutonomySettings,
    pub today: NaiveDate,
}

fn schema_eval(tool: &str, tool_use_id: &str, errors: Option<&Error>) -> Eval {
    let errors = match errors {
        Some(Error::Invalid(fields)) => json!(fields),
        Some(other) => json!([{ "field": "input", "message": other.to_string() }]),
        None => json!([]),
    };
    Eval {
        name: SCHEMA_CONFORMANCE.into(),
        passed: errors.as_array().is_some_and(|a| a.is_empty()),
        details: json!({ "tool": tool, "tool_use_id": tool_use_id, "errors": errors }),
    }
}

/// A short human summary of a record payload.
pub fn summarize(record_type: RecordType, p: &Map<String, Value>) -> String {
    let s = |k: &str| {
        p.get(k)
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .unwrap_or_default()
    };
    let naira = |k: &str| {
        p.get(k)
            .and_then(Value::as_i64)
            .map(|kobo| format!("NGN {}.{:02}", kobo / 100, kobo % 100))
            .unwrap_or_default()
    };
    match record_type {
        RecordType::Mortality => format!("{} dead {}", s("count"), s("location")),
        RecordType::FeedUse => format!("{} {} of feed used", s("quantity"), s("unit")),
        RecordType::Sale => format!(
            "sold {} {} {} for {}",
            s("quantity"),
            s("unit"),
            s("item"),
            naira("amount_kobo")
        ),
        RecordType::Expense => format!(
            "{} expense {} ({})",
            s("category"),
            naira("amount_kobo"),
            s("description")
        ),
        RecordType::Water => format!("{} litres of water", s("litres")),
        RecordType::Weight => format!("average weight {} g {}", s("average_grams"), s("location")),
        RecordType::Symptom => format!("symptoms: {} {}", s("symptoms"), s("location")),
        RecordType::Note => format!("note: {}", s("body")),
        RecordType::Task => format!("task: {} {}", s("title"), s("due_on")),
    }
    .trim()
    .to_string()
}

impl Executor<'_> {
    /// Plans a write tool (pure: no database). Read tools are answered by [`read_tool`].
    pub fn plan_write(&self, tool: Tool, tool_use_id: &str, name: &str, input: &Value) -> Outcome {
        match tool {
            Tool::Record(record_type) => {
                let payload = match records::validate_payload(record_type, input, self.today) {
                    Ok(p) => p,
                    Err(e) => {
                        let eval = schema_eval(name, tool_use_id, Some(&e));
                        return Outcome::error(
                            format!("invalid input, nothing was saved: {e}"),
                            Some(eval),
                        );
                    }
                };
                // What the assistant writes passes the clinical rules, like a reply does.
                if let Some((message, eval)) =
                    evals::screen_tool_text(name, tool_use_id, payload.as_map())
                {
                    return Outcome::error(message, Some(eval));
                }
                let eval = Some(schema_eval(name, tool_use_id, None));
                let summary = summarize(record_type, payload.as_map());
                match resolve_autonomy(self.autonomy, record_type) {
                    Tier::Suggest => Outcome::error(
                        format!(
                            "not saved: this farm lets the assistant only suggest; tell the user to record it themselves ({summary})"
                        ),
                        eval,
                    ),
                    Tier::Draft => Outcome {
                        result: json!({ "status": "draft_created", "record_type": record_type,
                                        "summary": format!("draft {summary} (awaiting confirmation)") }),
                        is_error: false,
                        planned: Some(Planned::Draft { payload, summary }),
                        eval,
                    },
                    Tier::Auto => Outcome {
                        result: json!({ "status": "record_written", "record_type": record_type,
                                        "summary": format!("recorded {summary}") }),
                        is_error: false,
                        planned: Some(Planned::Record { payload }),
                        eval,
                    },
                }
            }
            Tool::Recommendation => {
                let parsed = (|| {
                    let o = input
                        .as_object()
                        .ok_or_else(|| Error::invalid("input", "must be an object"))?;
                    if let Some(k) = o.keys().find(|k| *k != "title" && *k != "body") {
                        return Err(Error::invalid(
                            k.as_str(),
                            "is not a field of a recommendation",
                        ));
                    }
                    let text = |k: &str| {
                        o.get(k)
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .trim()
                            .to_string()
                    };
                    let (title, body) = (text("title"), text("body"));
                    recommendations::validate_new(&NewRecommendation {
                        ai_run_id: None,
                        title: &title,
                        body: &body,
                        created_by: self.user_id,
                    })?;
                    Ok((title, body))
                })();
                let (title, body) = match parsed {
                    Ok(tb) => tb,
                    Err(e) => {
                        let eval = schema_eval(name, tool_use_id, Some(&e));
                        return Outcome::error(format!("invalid input: {e}"), Some(eval));
                    }
                };
                let eval = Some(schema_eval(name, tool_use_id, None));
                if resolve_recommendation(self.autonomy) == Tier::Suggest {
                    return Outcome::error(
                        "not saved: this farm lets the assistant only suggest; say it in words",
                        eval,
                    );
                }
                let mut text = Map::new();
                text.insert("title".into(), json!(title));
                text.insert("body".into(), json!(body));
                if let Some((message, eval)) = evals::screen_tool_text(name, tool_use_id, &text) {
                    return Outcome::error(message, Some(eval));
                }
                Outcome {
                    result: json!({ "status": "recommendation_created", "summary": format!("recommendation \"{title}\" for approval") }),
                    is_error: false,
                    planned: Some(Planned::Recommendation { title, body }),
                    eval,
                }
            }
            Tool::RecentRecords | Tool::FarmSummary => {
                Outcome::error("read tools are not planned", None)
            }
        }
    }
}

/// Answers a read tool in a short read-only tenant transaction of the caller's farm.
pub async fn read_tool(db: &Db, farm_id: Uuid, tool: Tool, input: &Value) -> Result<Value> {
    let object = input.as_object().cloned().unwrap_or_default();
    let tx = db.tenant(farm_id).await?;
    let value = match tool {
        Tool::RecentRecords => {
            if let Some(k) = object.keys().find(|k| *k != "record_type" && *k != "limit") {
                return Err(Error::invalid(
                    k.as_str(),
                    "is not an argument of recent_records",
                ));
            }
            let types: Vec<RecordType> = match object.get("record_type") {
                None | Some(Value::Null) => RecordType::ALL.to_vec(),
                Some(v) => vec![
                    v.as_str()
                        .and_then(RecordType::parse)
                        .ok_or_else(|| Error::invalid("record_type", "unknown record type"))?,
                ],
            };
            let limit = match object.get("limit") {
                None | Some(Value::Null) => 10,
                Some(v) => v
                    .as_i64()
                    .filter(|n| (1..=20).contains(n))
                    .ok_or_else(|| Error::invalid("limit", "must be 1 to 20"))?,
            };
            let union = types
                .iter()
                .map(|t| {
                    format!(
                        "SELECT '{name}' AS record_type, r.created_at, to_jsonb(r) - 'farm_id' AS row FROM {table} r WHERE r.farm_id = $1",
                        name = t.as_str(),
                        table = t.table()
                    )
                })
                .collect::<Vec<_>>()
                .join(" UNION ALL ");
            let row = tx
                .query_one(
                    &format!(
                        "SELECT coalesce(jsonb_agg(jsonb_build_object('record_type', record_type, 'record', row) ORDER BY created_at DESC), '[]')
                           FROM (SELECT * FROM ({union}) u ORDER BY created_at DESC LIMIT $2) x"
                    ),
                    &[(&farm_id, Type::UUID), (&limit, Type::INT8)],
                )
                .await?;
            json!({ "records": row.get::<_, Value>(0) })
        }
        Tool::FarmSummary => {
            if !object.is_empty() {
                return Err(Error::invalid("input", "farm_summary takes no arguments"));
            }
            let counts = RecordType::ALL
                .iter()
                .map(|t| {
                    format!(
                        "'{}', (SELECT count(*) FROM {} WHERE farm_id = $1 AND occurred_on > current_date - 30)",
                        t.as_str(),
                        t.table()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            let row = tx
                .query_one(
                    &format!(
                        "SELECT jsonb_build_object(
                           'records_last_30_days', jsonb_build_object({counts}),
                           'pending_drafts', (SELECT count(*) FROM assistant_drafts WHERE farm_id = $1 AND status = 'pending'),
                           'pending_recommendations', (SELECT count(*) FROM ai_recommendations WHERE farm_id = $1 AND status = 'pending'),
                           'credit_balance', (SELECT credit_balance FROM farms WHERE id = $1))"
                    ),
                    &[(&farm_id, Type::UUID)],
                )
                .await?;
            row.get(0)
        }
        _ => return Err(Error::unexpected("not a read tool")),
    };
    // Read-only: dropping the transaction rolls it back.
    drop(tx);
    Ok(value)
}

/// One write the turn made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Written {
    Draft(Draft),
    Record {
        record_type: RecordType,
        record: Value,
    },
    Recommendation(Recommendation),
}

/// Applies one planned write on `tx` (the turn polls them together with its other
/// statements, so they are pipelined in one round trip).
pub async fn apply_one(
    tx: &TenantTx,
    run_id: Uuid,
    user_id: &str,
    planned: &Planned,
) -> Result<Written> {
    match planned {
        Planned::Draft { payload, summary } => Ok(Written::Draft(
            drafts::create_draft(
                tx,
                &NewDraft {
                    ai_run_id: Some(run_id),
                    payload,
                    summary: Some(summary),
                    created_by: user_id,
                },
            )
            .await?,
        )),
        Planned::Record { payload } => Ok(Written::Record {
            record_type: payload.record_type(),
            record: records::insert_record(
                tx,
                payload,
                &Provenance {
                    source: Source::AiAuto,
                    created_by: user_id,
                    ai_run_id: Some(run_id),
                    draft_id: None,
                    confirmed_by: None,
                },
            )
            .await?,
        }),
        Planned::Recommendation { title, body } => Ok(Written::Recommendation(
            recommendations::create_recommendation(
                tx,
                &NewRecommendation {
                    ai_run_id: Some(run_id),
                    title,
                    body,
                    created_by: user_id,
                },
            )
            .await?,
        )),
    }
}

#[cfg(test)]
mod tests;
