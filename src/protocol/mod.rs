//! Wire formats: what OpenAI Chat Completions and Anthropic Messages look like on the wire, the SSE framing
//! both use for streams, the raw-body editor used when no conversion is needed, and the pure converters
//! between the two protocols. Nothing in here does I/O.

pub mod anthropic;
pub mod convert;
pub mod openai;
pub mod raw_body;
pub mod sse;

use serde::Deserialize;

/// The two API dialects the router speaks, on either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
