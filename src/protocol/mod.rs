//! The protocols the router speaks and the conversions between them. Nothing in here does I/O.
//!
//! - [`Protocol`]: each protocol's facts (route, error shape); `relay::processor` reads their stream facts.
//! - [`hub`]: the shared representation a request, an answer and a stream event are decoded into and
//!   encoded from; [`chat`], [`messages`], [`responses`] and [`gemini`] hold each protocol's codecs around it.
//! - [`convert`]: what the codecs share (deployment options, request facts, ids, signatures, the error
//!   tables, the stream-converter contract) and the Chat ⇄ Messages conversion tests.
//! - [`fields`]: reading client JSON field by field, with errors that name the field.
//! - `json`: the JSON fast paths the codecs parse and write with.
//! - [`sse`] (stream framing), [`raw_body`] (same-protocol edits), [`openai`] and [`anthropic`] (wire shapes
//!   shared by the server and the converters; Google's error shape is in [`gemini`]).

pub mod anthropic;
pub mod chat;
#[cfg(test)]
mod conformance;
pub mod convert;
pub mod features;
pub mod fields;
pub mod gemini;
pub mod hub;
pub(crate) mod json;
pub mod messages;
pub mod openai;
pub mod raw_body;
pub mod responses;
pub mod sse;

use serde::Deserialize;

/// The API dialects the router speaks, on either side: OpenAI Chat Completions (`openai`), Anthropic
/// Messages, the OpenAI Responses API and the Gemini API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    Responses,
    /// The Gemini API (`generateContent`), with the model in the path.
    Gemini,
}

impl Protocol {
    pub const ALL: [Protocol; 4] = [
        Protocol::OpenAi,
        Protocol::Anthropic,
        Protocol::Responses,
        Protocol::Gemini,
    ];

    /// The position of this protocol in [`Protocol::ALL`], for per-protocol tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name of this protocol's client API in metrics and logs: `chat`, `messages`, `responses`, `gemini`.
    pub fn ingress(self) -> &'static str {
        match self {
            Protocol::OpenAi => "chat",
            Protocol::Anthropic => "messages",
            Protocol::Responses => "responses",
            Protocol::Gemini => "gemini",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
            Protocol::Responses => "responses",
            Protocol::Gemini => "gemini",
        }
    }

    /// The client route of this protocol.
    pub fn route(self) -> &'static str {
        match self {
            Protocol::OpenAi => "/v1/chat/completions",
            Protocol::Anthropic => "/v1/messages",
            Protocol::Responses => "/v1/responses",
            Protocol::Gemini => "/v1beta/models/{model}:generateContent",
        }
    }

    /// Whose error shape this protocol's clients expect: the Responses API uses OpenAI's.
    pub fn error_shape(self) -> ErrorShape {
        match self {
            Protocol::OpenAi | Protocol::Responses => ErrorShape::OpenAi,
            Protocol::Anthropic => ErrorShape::Anthropic,
            Protocol::Gemini => ErrorShape::Google,
        }
    }
}

/// `{"error":{"message","type",…}}`, `{"type":"error","error":{…}}` or Google's
/// `{"error":{"code","message","status"}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    OpenAi,
    Anthropic,
    Google,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
