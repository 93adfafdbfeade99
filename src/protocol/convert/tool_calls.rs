//! Tool-call pieces both directions share: the synthetic structured-output tool (§1.1.8) and the conversion
//! between OpenAI `arguments` (a JSON string) and Anthropic `input` (a JSON object), used by the request,
//! response and stream converters alike.

use serde_json::{Value, json};

/// The synthetic tool that carries structured output for models without `output_config.format` (§1.1.8).
pub const JSON_OUTPUT_TOOL: &str = "json_output";

/// The key under which [`parse_tool_arguments`] keeps arguments that are not a JSON object.
pub(crate) const RAW_ARGUMENTS_KEY: &str = "_raw_arguments";

/// OpenAI arguments (a JSON string) → Anthropic input (an object): blank → `{}`, an object → itself,
/// anything else → `{"_raw_arguments": original}` so the request still validates and the model sees what
/// it produced (§1.1.2, §1.3.4). Responses and streams use it too (§2.2).
pub fn parse_tool_arguments(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(input)) => Value::Object(input),
        _ => json!({ RAW_ARGUMENTS_KEY: arguments }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_become_an_object_input() {
        assert_eq!(parse_tool_arguments(" \n"), json!({}));
        assert_eq!(parse_tool_arguments(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(parse_tool_arguments("[1]"), json!({"_raw_arguments": "[1]"}));
        assert_eq!(parse_tool_arguments(r#"{"a":"#), json!({"_raw_arguments": "{\"a\":"}));
    }
}
