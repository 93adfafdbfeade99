//! §7 round trips: OpenAI → Anthropic → OpenAI and Anthropic → OpenAI → Anthropic keep messages, tool
//! pairs, images and tool choice equivalent, modulo the documented lossy fields.

use serde_json::{Value, json};

use super::{route_a, route_b};

fn weather_tool_oai() -> Value {
    json!({"type": "function", "function": {"name": "weather", "description": "Weather by city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
}

fn oai_request() -> Value {
    json!({"model": "m", "max_tokens": 300, "tools": [weather_tool_oai()], "messages": [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": [
            {"type": "text", "text": "Look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/y.jpg"}}]},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_b", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_b", "content": "21C"},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": "You're welcome."},
        {"role": "user", "content": "Bye"}]})
}

#[test]
fn openai_to_anthropic_to_openai_keeps_messages_tool_pairs_images_and_tools() {
    let original = oai_request();
    let back = route_b(&route_a(&original));
    assert_eq!(back["messages"], original["messages"]);
    assert_eq!(back["tools"], original["tools"]);
    assert_eq!(back["max_tokens"], 300);
}

#[test]
fn openai_tool_choice_survives_the_round_trip() {
    let named = json!({"type": "function", "function": {"name": "weather"}});
    for choice in [json!("auto"), json!("none"), json!("required"), named] {
        for parallel in [None, Some(false)] {
            let mut original = oai_request();
            original["tool_choice"] = choice.clone();
            if let Some(parallel) = parallel {
                original["parallel_tool_calls"] = json!(parallel);
            }
            let back = route_b(&route_a(&original));
            assert_eq!(back["tool_choice"], choice, "{choice} {parallel:?}");
            // `none` cannot carry the parallel flag on Anthropic; it does not matter when no tool is called.
            let expected_parallel = if choice == "none" {
                None
            } else {
                parallel.map(Value::from)
            };
            assert_eq!(
                back.get("parallel_tool_calls").cloned(),
                expected_parallel,
                "{choice} {parallel:?}"
            );
        }
    }
    // `parallel_tool_calls:false` alone comes back with its explicit `auto` carrier, which is the default.
    let mut original = oai_request();
    original["parallel_tool_calls"] = json!(false);
    let back = route_b(&route_a(&original));
    assert_eq!(
        (back["tool_choice"].clone(), back["parallel_tool_calls"].clone()),
        (json!("auto"), json!(false))
    );
}

#[test]
fn unparseable_openai_arguments_survive_the_round_trip() {
    let mut original = oai_request();
    original["messages"][2]["tool_calls"][0]["function"]["arguments"] = json!("{\"city\":");
    let back = route_b(&route_a(&original));
    assert_eq!(
        back["messages"][2]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":"
    );
}

fn ant_request() -> Value {
    json!({"model": "m", "max_tokens": 300, "system": [{"type": "text", "text": "Sys."}],
        "tools": [{"name": "weather", "description": "Weather by city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/y.jpg"}}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_a", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_b", "name": "weather", "input": {"city": "Rome"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "21C"},
                {"type": "text", "text": "Thanks"}]}]})
}

#[test]
fn anthropic_to_openai_to_anthropic_keeps_messages_tool_pairs_images_and_tools() {
    let original = ant_request();
    let back = route_a(&route_b(&original));
    assert_eq!(back["system"], original["system"]);
    assert_eq!(back["messages"], original["messages"]);
    assert_eq!(back["tools"], original["tools"]);
    assert_eq!(back["max_tokens"], 300);
}

#[test]
fn anthropic_tool_choice_survives_the_round_trip() {
    let choices = [
        json!({"type": "auto"}),
        json!({"type": "any"}),
        json!({"type": "tool", "name": "weather"}),
        json!({"type": "none"}),
        json!({"type": "auto", "disable_parallel_tool_use": true}),
        json!({"type": "any", "disable_parallel_tool_use": true}),
        json!({"type": "tool", "name": "weather", "disable_parallel_tool_use": true}),
    ];
    for choice in choices {
        let mut original = ant_request();
        original["tool_choice"] = choice.clone();
        assert_eq!(route_a(&route_b(&original))["tool_choice"], choice);
    }
    let mut absent = ant_request();
    absent.as_object_mut().unwrap().remove("tool_choice");
    assert!(route_a(&route_b(&absent)).get("tool_choice").is_none());
}

#[test]
fn documented_lossy_fields() {
    let mut original = ant_request();
    // Thinking cannot be replayed without its signature, which OpenAI has no field for.
    original["messages"][1]["content"].as_array_mut().unwrap().insert(
        0,
        json!({"type": "thinking", "thinking": "plan", "signature": "EqQBreal"}),
    );
    // OpenAI has no error flag: the error becomes a prefix.
    original["messages"][2]["content"][0]["is_error"] = json!(true);
    let back = route_a(&route_b(&original));
    assert_eq!(back["messages"][1]["content"][0]["type"], "text");
    assert_eq!(
        back["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_a", "content": "Error: 18C"})
    );
}
