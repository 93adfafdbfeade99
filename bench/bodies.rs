//! The answers of the bench's mock upstream (`examples/bench_upstream.rs`), shared with the codec cost
//! example (`examples/codec_cost.rs`) so that both measure the same bytes.

/// The text every answer carries, cut into this many streamed pieces.
const WORDS: [&str; 20] = [
    "The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ",", " and", " the", " router",
    " relays", " every", " token", " without", " delay", ".", " Done",
];
const CREATED: u64 = 1_700_000_000;
const PROMPT_TOKENS: usize = 42;

/// Every answer the mock upstream sends, as the bytes it sends.
pub struct Answers {
    pub openai_json: String,
    /// One SSE event each.
    pub openai_sse: Vec<String>,
    pub anthropic_json: String,
    /// One SSE event each.
    pub anthropic_sse: Vec<String>,
}

impl Answers {
    pub fn build() -> Self {
        let text: String = WORDS.concat();
        let completion_tokens = WORDS.len();
        let total_tokens = PROMPT_TOKENS + completion_tokens;

        let openai_json = format!(
            r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":{CREATED},"model":"bench-model","system_fingerprint":"fp_bench","choices":[{{"index":0,"message":{{"role":"assistant","content":{text:?},"refusal":null,"annotations":[]}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{PROMPT_TOKENS},"completion_tokens":{completion_tokens},"total_tokens":{total_tokens},"prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}},"service_tier":"default"}}"#
        );

        let chunk = |delta: &str, finish: &str| {
            format!(
                "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":\"bench-model\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}],\"usage\":null}}\n\n"
            )
        };
        let mut openai_sse = vec![chunk(r#"{"role":"assistant","content":"","refusal":null}"#, "null")];
        for word in WORDS {
            openai_sse.push(chunk(&format!(r#"{{"content":{word:?}}}"#), "null"));
        }
        openai_sse.push(chunk("{}", r#""stop""#));
        openai_sse.push(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":{CREATED},\"model\":\"bench-model\",\"system_fingerprint\":\"fp_bench\",\"choices\":[],\"usage\":{{\"prompt_tokens\":{PROMPT_TOKENS},\"completion_tokens\":{completion_tokens},\"total_tokens\":{total_tokens}}}}}\n\n"
        ));
        openai_sse.push("data: [DONE]\n\n".to_owned());

        let anthropic_json = format!(
            r#"{{"id":"msg_bench","type":"message","role":"assistant","model":"bench-model","content":[{{"type":"text","text":{text:?}}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":{PROMPT_TOKENS},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":{completion_tokens},"service_tier":"standard"}}}}"#
        );

        let event = |name: &str, data: String| format!("event: {name}\ndata: {data}\n\n");
        let mut anthropic_sse = vec![
            event(
                "message_start",
                format!(
                    r#"{{"type":"message_start","message":{{"id":"msg_bench","type":"message","role":"assistant","model":"bench-model","content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{PROMPT_TOKENS},"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1,"service_tier":"standard"}}}}}}"#
                ),
            ),
            event(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_owned(),
            ),
            event("ping", r#"{"type": "ping"}"#.to_owned()),
        ];
        for word in WORDS {
            anthropic_sse.push(event(
                "content_block_delta",
                format!(
                    r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{word:?}}}}}"#
                ),
            ));
        }
        anthropic_sse.push(event(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#.to_owned(),
        ));
        anthropic_sse.push(event(
            "message_delta",
            format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":"end_turn","stop_sequence":null}},"usage":{{"output_tokens":{completion_tokens}}}}}"#
            ),
        ));
        anthropic_sse.push(event("message_stop", r#"{"type":"message_stop"}"#.to_owned()));

        Self {
            openai_json,
            openai_sse,
            anthropic_json,
            anthropic_sse,
        }
    }
}
