//! Fixture tests for the request converters, one file per part of the spec:
//! `route_a` (§1.1), `route_b` (§1.2), `shared` (§1.3 and the same-protocol fix-ups), `edge_cases` (the
//! request rows of §6), `round_trip` (§7) and `robustness` (no input makes a converter panic).

mod claude_code;
mod edge_cases;
mod robustness;
mod round_trip;
mod route_a;
mod route_b;
mod shared;

use serde_json::{Map, Value};

use crate::protocol::Protocol;
use crate::protocol::convert::test_support::{SIGNING_KEY, context};
use crate::protocol::convert::{ConvertContext, ConvertError, ModelOptions, RequestFacts};
use crate::protocol::hub::convert_request;

/// A converted request with its body as a tree, for assertions.
#[derive(Debug)]
pub(super) struct ConvertedRequest {
    pub body: Map<String, Value>,
    pub facts: RequestFacts,
}

fn through_hub(
    client: Protocol,
    upstream: Protocol,
    body: &[u8],
    ctx: &ConvertContext,
) -> Result<ConvertedRequest, ConvertError> {
    let converted = convert_request(client, upstream, body, ctx)?;
    Ok(ConvertedRequest {
        body: serde_json::from_slice(&converted.body).expect("the encoders write a JSON object"),
        facts: converted.facts,
    })
}

/// Route A: a Chat request for an Anthropic upstream.
pub(super) fn openai_to_anthropic(body: &[u8], ctx: &ConvertContext) -> Result<ConvertedRequest, ConvertError> {
    through_hub(Protocol::OpenAi, Protocol::Anthropic, body, ctx)
}

/// Route B: a Messages request for a Chat upstream.
pub(super) fn anthropic_to_openai(body: &[u8], ctx: &ConvertContext) -> Result<ConvertedRequest, ConvertError> {
    through_hub(Protocol::Anthropic, Protocol::OpenAi, body, ctx)
}

/// Route A with the given deployment options; panics (test failure) on a conversion error.
pub(super) fn route_a_with(body: &Value, options: &ModelOptions) -> ConvertedRequest {
    openai_to_anthropic(body.to_string().as_bytes(), &context(options, "claude-x"))
        .unwrap_or_else(|e| panic!("Route A failed: {e:?}"))
}

/// Route A body with default options.
pub(super) fn route_a(body: &Value) -> Value {
    Value::Object(route_a_with(body, &ModelOptions::default()).body)
}

pub(super) fn route_a_error(body: &Value) -> ConvertError {
    match openai_to_anthropic(
        body.to_string().as_bytes(),
        &context(&ModelOptions::default(), "claude-x"),
    ) {
        Ok(converted) => panic!("expected an error, got {:?}", converted.body),
        Err(e) => e,
    }
}

pub(super) fn route_b_with(body: &Value, options: &ModelOptions) -> ConvertedRequest {
    anthropic_to_openai(body.to_string().as_bytes(), &context(options, "gpt-x"))
        .unwrap_or_else(|e| panic!("Route B failed: {e:?}"))
}

pub(super) fn route_b(body: &Value) -> Value {
    Value::Object(route_b_with(body, &ModelOptions::default()).body)
}

pub(super) fn route_b_error(body: &Value) -> ConvertError {
    match anthropic_to_openai(body.to_string().as_bytes(), &context(&ModelOptions::default(), "gpt-x")) {
        Ok(converted) => panic!("expected an error, got {:?}", converted.body),
        Err(e) => e,
    }
}

/// Options with one change from the defaults.
pub(super) fn options(change: impl FnOnce(&mut ModelOptions)) -> ModelOptions {
    let mut options = ModelOptions::default();
    change(&mut options);
    options
}
