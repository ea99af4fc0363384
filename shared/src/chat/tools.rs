//! The tools offered to the model: one write tool per record type (`record_<type>`, input
//! schema = [`records::json_schema`]), `create_recommendation`, and two read tools. None takes
//! a farm id: the farm is the authenticated request's, always.

use serde_json::{Value, json};

use crate::{
    model::ToolSpec,
    recommendations,
    records::{self, RecordType},
    text::TitleKind,
};

pub const CREATE_RECOMMENDATION: &str = "create_recommendation";
pub const RECENT_RECORDS: &str = "recent_records";
pub const FARM_SUMMARY: &str = "farm_summary";

/// What a tool name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Record(RecordType),
    Recommendation,
    RecentRecords,
    FarmSummary,
}

pub fn write_tool_name(t: RecordType) -> String {
    format!("record_{}", t.as_str())
}

pub fn parse_tool(name: &str) -> Option<Tool> {
    match name {
        CREATE_RECOMMENDATION => Some(Tool::Recommendation),
        RECENT_RECORDS => Some(Tool::RecentRecords),
        FARM_SUMMARY => Some(Tool::FarmSummary),
        other => other
            .strip_prefix("record_")
            .and_then(RecordType::parse)
            .map(Tool::Record),
    }
}

pub fn recommendation_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": TitleKind::Recommendation.max()},
            "body": {"type": "string", "minLength": 1, "maxLength": recommendations::BODY_MAX},
        },
        "required": ["title", "body"],
        "additionalProperties": false,
    })
}

pub fn recent_records_schema() -> Value {
    let types: Vec<&str> = RecordType::ALL.iter().map(|t| t.as_str()).collect();
    json!({
        "type": "object",
        "properties": {
            "record_type": {"type": "string", "enum": types},
            "limit": {"type": "integer", "minimum": 1, "maximum": 20},
        },
        "additionalProperties": false,
    })
}

/// Every tool spec sent to the model.
pub fn tool_specs() -> Vec<ToolSpec> {
    let mut specs: Vec<ToolSpec> = RecordType::ALL
        .iter()
        .map(|t| ToolSpec {
            name: write_tool_name(*t),
            description: format!(
                "Record on the farm's log: {} Sales, expenses and deaths always wait for a person to confirm.",
                t.description()
            ),
            input_schema: records::json_schema(*t),
        })
        .collect();
    specs.push(ToolSpec {
        name: CREATE_RECOMMENDATION.into(),
        description: "Propose an action for the farm's managers to approve or reject (never give drug doses; refer to a veterinarian).".into(),
        input_schema: recommendation_schema(),
    });
    specs.push(ToolSpec {
        name: RECENT_RECORDS.into(),
        description: "Read the farm's most recent records, optionally of one type.".into(),
        input_schema: recent_records_schema(),
    });
    specs.push(ToolSpec {
        name: FARM_SUMMARY.into(),
        description: "Read a summary of the farm: records of the last 30 days by type, pending drafts and recommendations, credit balance.".into(),
        input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
    });
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_name_parses_back_and_no_schema_mentions_a_farm() {
        let specs = tool_specs();
        assert_eq!(specs.len(), RecordType::ALL.len() + 3);
        for s in &specs {
            assert!(parse_tool(&s.name).is_some(), "{}", s.name);
            assert!(
                !s.input_schema.to_string().contains("farm_id"),
                "{}",
                s.name
            );
            assert_eq!(s.input_schema["additionalProperties"], json!(false));
        }
        assert_eq!(parse_tool("record_harvest"), None);
        assert_eq!(parse_tool("drop_table"), None);
    }
}
