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

use serde_json::Value;

use super::{ConvertedRequest, anthropic_to_openai, openai_to_anthropic};
use crate::protocol::convert::test_support::{SIGNING_KEY, context};
use crate::protocol::convert::{ConvertError, ModelOptions};

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
