//! Anthropic Messages codecs around the hub: the request encoder for Anthropic-protocol upstreams, and the
//! decoders of their answers and stream events. (The pairwise Messages ⇄ Chat converters in
//! `protocol::convert` predate the hub and move onto these codecs next.)

pub mod request;
pub mod response;
pub mod stream;
pub(crate) mod tool_ids;
pub mod usage;

use serde_json::value::RawValue;

/// A content block as a Messages answer carries it (whole, or in a stream's `content_block_start`): the
/// fields every kind of block may have, read borrowed.
#[derive(serde::Deserialize, Default, Debug)]
pub(super) struct Block<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub thinking: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(borrow, default)]
    pub input: Option<&'a RawValue>,
    /// `redacted_thinking`'s opaque payload.
    #[serde(default)]
    pub data: Option<String>,
}

#[derive(serde::Deserialize)]
pub(super) struct Source<'a> {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    /// A `content` document's blocks.
    #[serde(borrow, default)]
    pub content: Option<&'a RawValue>,
}
