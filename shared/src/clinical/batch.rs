//! Screening a batch: JSON lines `{"id": ..., "text": ...}` in, one line out per input:
//! `{"id", "passed", "violations": [{"rule", "category", "span", "prohibited_where"?}]}`
//! (`prohibited_where`, for a prohibited substance only: where it is prohibited, by
//! instrument), or for a line that is not
//! such an object `{"id" (when it has one), "line", "error"}`. A bad line never stops the
//! batch; other fields of an input line are ignored. `farmops clinical-check` is this over
//! stdin and stdout.

use std::io::{self, BufRead, Write};

use serde_json::{Value, json};

use super::check;

/// How a batch went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub invalid: usize,
}

/// The output line for one input line (`number` counts from 1).
pub fn screen_line(line: &str, number: usize) -> Value {
    let error = |id: Option<&Value>, message: &str| {
        let mut out = json!({ "line": number, "error": message });
        if let Some(id) = id {
            out["id"] = id.clone();
        }
        out
    };
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return error(None, &format!("not JSON: {e}")),
    };
    let Some(object) = value.as_object() else {
        return error(None, "not a JSON object");
    };
    let id = object
        .get("id")
        .filter(|id| id.is_string() || id.is_number());
    let Some(id) = id else {
        return error(None, "\"id\" is missing or not a string or number");
    };
    let Some(text) = object.get("text").and_then(Value::as_str) else {
        return error(Some(id), "\"text\" is missing or not a string");
    };
    let violations = check(text);
    json!({ "id": id, "passed": violations.is_empty(), "violations": violations })
}

/// Screens every line of `input` (blank lines are skipped) and writes the results.
pub fn screen(input: impl BufRead, mut output: impl Write) -> io::Result<Summary> {
    let mut summary = Summary::default();
    for (i, line) in input.lines().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                writeln!(output, "{}", json!({ "line": i + 1, "error": "not UTF-8" }))?;
                summary.invalid += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        if line.trim().is_empty() {
            continue;
        }
        let out = screen_line(&line, i + 1);
        match out.get("passed").and_then(Value::as_bool) {
            Some(true) => summary.passed += 1,
            Some(false) => summary.failed += 1,
            None => summary.invalid += 1,
        }
        writeln!(output, "{out}")?;
    }
    output.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_out_per_line_in_and_bad_lines_do_not_stop_the_batch() {
        let input = concat!(
            "{\"id\": \"a\", \"text\": \"Call your vet and keep the sick birds apart.\"}\n",
            "{\"id\": 7, \"text\": \"Give oxytetracycline 1 g per litre for 5 days.\"}\n",
            "\n",
            "not json\n",
            "{\"id\": \"c\"}\n",
            "{\"text\": \"no id\"}\n",
            "[1, 2]\n",
            "{\"id\": \"d\", \"text\": \"x\", \"farm\": 1}\n",
            "{\"id\": \"e\", \"text\": \"Never use chloramphenicol.\"}\n",
        );
        let mut out = Vec::new();
        let summary = screen(input.as_bytes(), &mut out).unwrap();
        assert_eq!(
            summary,
            Summary {
                passed: 3,
                failed: 1,
                invalid: 4
            }
        );
        let lines: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 8);
        assert_eq!(
            lines[0],
            json!({"id": "a", "passed": true, "violations": []})
        );
        assert_eq!(lines[1]["id"], 7);
        assert_eq!(lines[1]["passed"], false);
        let v = &lines[1]["violations"][0];
        assert_eq!(v["rule"], "antimicrobial_without_vet");
        assert_eq!(v["category"], "prescription_only");
        assert_eq!(v["span"], "Give oxytetracycline 1 g per litre for 5 days");
        assert_eq!(lines[2]["line"], 4);
        assert!(lines[2]["error"].as_str().unwrap().starts_with("not JSON"));
        assert_eq!(lines[3]["id"], "c");
        assert_eq!(lines[4]["line"], 6);
        assert!(lines[4].get("id").is_none());
        assert_eq!(lines[5]["error"], "not a JSON object");
        assert_eq!(lines[6]["passed"], true, "other fields are ignored");
        assert_eq!(lines[7]["passed"], true);
        assert!(v.get("prohibited_where").is_none(), "only where it applies");
    }

    #[test]
    fn a_prohibited_substance_names_where_it_is_prohibited() {
        let out = screen_line(
            r#"{"id": "p", "text": "Ask your vet about chloramphenicol for the layers."}"#,
            1,
        );
        assert_eq!(
            out,
            json!({"id": "p", "passed": false, "violations": [{
                "rule": "prohibited_substance",
                "category": "prohibited_substance",
                "span": "Ask your vet about chloramphenicol for the layers",
                "prohibited_where": ["US 21 CFR 530.41", "EU 37/2010 Table 2", "NG NAFDAC banned list"],
            }]})
        );
    }

    #[test]
    fn invalid_utf8_is_an_error_line() {
        let mut out = Vec::new();
        let input: &[u8] = b"\xff\xfe\n{\"id\":\"x\",\"text\":\"ok\"}\n";
        let summary = screen(input, &mut out).unwrap();
        assert_eq!(summary.invalid, 1);
        assert_eq!(summary.passed, 1);
    }
}
