//! `api_type: mock`: an upstream inside the router. It answers in whichever protocol the request is in (the
//! relay hands it the client's own, so nothing is converted), streamed or not, with a fixed text and
//! deterministic usage. Its answer is an ordinary upstream response, so routing, retries, the stream stages,
//! logs and metrics treat it like any other: it is the upstream of the shipped `demo` group, of client
//! set-ups being tried out, and of load tests that should measure the router alone.

use std::collections::VecDeque;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use tokio::time::Instant;

use super::{UpstreamBody, UpstreamError, UpstreamResponse};
use crate::config::MockSpec;
use crate::protocol::convert::ConvertContext;
use crate::protocol::hub::{self, Event, Part, Response, StopReason, StreamEncoder, Usage};
use crate::protocol::{Protocol, convert::stream::StreamStatus};
use crate::server::error::ApiError;

/// The mock's answer to `body`, a request in `protocol`, after the mock's delay. A request the protocol's
/// decoder refuses gets that protocol's 400, as a real upstream would answer it.
pub async fn answer(
    deployment: &str,
    mock: &MockSpec,
    protocol: Protocol,
    body: &[u8],
    ctx: &ConvertContext<'_>,
    deadline: Instant,
) -> Result<UpstreamResponse, UpstreamError> {
    if !mock.delay.is_zero() {
        if Instant::now() + mock.delay > deadline {
            tokio::time::sleep_until(deadline).await;
            return Err(UpstreamError::Timeout {
                deployment: deployment.to_owned(),
            });
        }
        tokio::time::sleep(mock.delay).await;
    }
    Ok(respond(mock, protocol, body, ctx))
}

fn respond(mock: &MockSpec, protocol: Protocol, body: &[u8], ctx: &ConvertContext<'_>) -> UpstreamResponse {
    let (request, mut facts) = match hub::decode_request(protocol, body, ctx) {
        Ok(decoded) => decoded,
        Err(error) => {
            let error = ApiError::from(error);
            let status = error.status_for(protocol);
            return response(
                status,
                "application/json",
                VecDeque::from([Bytes::from(error.body(protocol))]),
            );
        }
    };
    // Like an upstream, it names its own model, not the group the client asked for.
    let ctx = ConvertContext {
        client_model: ctx.upstream_model,
        ..*ctx
    };
    let usage = Usage {
        input: (body.len() as u64).div_ceil(4),
        output: (mock.response.chars().count() as u64).div_ceil(4),
        ..Usage::default()
    };
    if !request.stream {
        let answer = Response {
            output: vec![Part::Text(mock.response.clone())],
            usage,
            ..Response::default()
        };
        let body = hub::encode_answer(protocol, &answer, &ctx, &facts);
        return response(StatusCode::OK, "application/json", VecDeque::from([Bytes::from(body)]));
    }
    // An Anthropic stream states the prompt's size first: the mock's own figure, not a tokenizer's.
    facts.input_tokens_estimate = usage.input;
    let mut encoder = hub::stream_encoder(protocol, &ctx, &mut facts);
    let deltas = chunks(&mock.response, mock.stream_chunk_chars).map(|text| Event::TextDelta(text.to_owned()));
    let end = [Event::Stop(StopReason::End), Event::Usage(usage), Event::Done];
    let mut frames = VecDeque::new();
    for event in deltas.chain(end) {
        let mut out = Vec::new();
        let status = encoder.encode(event, &mut out);
        if !out.is_empty() {
            frames.push_back(Bytes::from(out));
        }
        if status != StreamStatus::Continue {
            break;
        }
    }
    response(StatusCode::OK, "text/event-stream", frames)
}

/// `text` in pieces of `size` characters (the last may be shorter).
fn chunks(text: &str, size: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.char_indices().nth(size).map_or(rest.len(), |(at, _)| at);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

fn response(status: StatusCode, content_type: &'static str, frames: VecDeque<Bytes>) -> UpstreamResponse {
    let mut response = http::Response::new(UpstreamBody::local(frames));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;
    use crate::protocol::convert::ModelOptions;

    fn mock() -> MockSpec {
        MockSpec {
            response: "Hello, wörld!".into(),
            delay: std::time::Duration::ZERO,
            stream_chunk_chars: 4,
        }
    }

    static OPTIONS: std::sync::LazyLock<ModelOptions> = std::sync::LazyLock::new(ModelOptions::default);

    fn context(route_stream: bool) -> ConvertContext<'static> {
        ConvertContext {
            client_model: "group",
            upstream_model: "mock-1",
            options: &OPTIONS,
            created: 1,
            response_id: "0123456789abcdef01234567",
            signing_key: b"k",
            route_stream,
        }
    }

    async fn call(protocol: Protocol, route_stream: bool, body: &str) -> (StatusCode, String, Vec<String>) {
        let ctx = context(route_stream);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        let answer = answer("d", &mock(), protocol, body.as_bytes(), &ctx, deadline)
            .await
            .unwrap();
        let status = answer.status();
        let content_type = answer.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        let mut body = answer.into_body();
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            frames.push(String::from_utf8(frame.unwrap().into_data().unwrap().to_vec()).unwrap());
        }
        (status, content_type, frames)
    }

    #[test]
    fn chunks_split_on_characters() {
        assert_eq!(
            chunks("Hello, wörld!", 4).collect::<Vec<_>>(),
            ["Hell", "o, w", "örld", "!"]
        );
        assert_eq!(chunks("", 4).count(), 0);
    }

    #[tokio::test]
    async fn whole_answers_in_each_protocol() {
        let chat = r#"{"model":"mock-1","messages":[{"role":"user","content":"hi"}]}"#;
        let (status, content_type, frames) = call(Protocol::OpenAi, false, chat).await;
        assert_eq!(
            (status, content_type.as_str(), frames.len()),
            (StatusCode::OK, "application/json", 1)
        );
        let body: serde_json::Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "Hello, wörld!");
        assert_eq!(body["model"], "mock-1");
        let input = (chat.len() as u64).div_ceil(4);
        assert_eq!(body["usage"]["prompt_tokens"], input);
        assert_eq!(body["usage"]["completion_tokens"], 4);

        let messages = r#"{"model":"mock-1","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;
        let (_, _, frames) = call(Protocol::Anthropic, false, messages).await;
        let body: serde_json::Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(body["content"][0]["text"], "Hello, wörld!");
        assert_eq!(body["stop_reason"], "end_turn");

        let (_, _, frames) = call(Protocol::Responses, false, r#"{"model":"mock-1","input":"hi"}"#).await;
        let body: serde_json::Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(body["output"][0]["content"][0]["text"], "Hello, wörld!");

        let (_, _, frames) = call(Protocol::Gemini, false, r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#).await;
        let body: serde_json::Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(body["candidates"][0]["content"]["parts"][0]["text"], "Hello, wörld!");
    }

    #[tokio::test]
    async fn streams_send_one_event_per_frame() {
        let chat = r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}"#;
        let (status, content_type, frames) = call(Protocol::OpenAi, false, chat).await;
        assert_eq!((status, content_type.as_str()), (StatusCode::OK, "text/event-stream"));
        let text: String = frames
            .iter()
            .flat_map(|f| f.lines())
            .filter_map(|line| line.strip_prefix("data: "))
            .filter_map(|data| serde_json::from_str::<serde_json::Value>(data.trim()).ok())
            .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(text, "Hello, wörld!");
        assert!(frames.iter().any(|f| f.contains("\"usage\"")), "{frames:?}");
        assert!(frames.last().unwrap().contains("[DONE]"));

        let messages = r#"{"model":"m","max_tokens":5,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let (_, _, frames) = call(Protocol::Anthropic, false, messages).await;
        assert!(frames[0].starts_with("event: message_start"), "{frames:?}");
        // The prompt's size up front is the mock's own figure (no tokenizer), as in the final usage.
        let input = format!("\"input_tokens\":{}", messages.len().div_ceil(4));
        assert!(
            frames[0].contains(&input) && frames.last().unwrap().contains(&input),
            "{frames:?}"
        );
        assert!(frames.last().unwrap().contains("event: message_stop"), "{frames:?}");

        // Gemini asks for a stream by its route.
        let (_, _, frames) = call(Protocol::Gemini, true, r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#).await;
        assert!(
            frames.len() >= 4 && frames.iter().all(|f| f.starts_with("data: ")),
            "{frames:?}"
        );
    }

    #[tokio::test]
    async fn a_bad_request_gets_the_protocols_400() {
        let (status, _, frames) = call(Protocol::Anthropic, false, r#"{"model":"m","messages":"no"}"#).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let body: serde_json::Value = serde_json::from_str(&frames[0]).unwrap();
        assert_eq!(body["type"], "error");
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }

    #[tokio::test(start_paused = true)]
    async fn a_delay_past_the_deadline_is_a_timeout() {
        let mut spec = mock();
        spec.delay = std::time::Duration::from_secs(10);
        let ctx = context(false);
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        let result = answer("d", &spec, Protocol::OpenAi, b"{}", &ctx, deadline).await;
        assert!(matches!(result, Err(UpstreamError::Timeout { .. })));
    }
}
