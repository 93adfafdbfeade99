//! Anthropic Messages codecs around the hub: the request encoder for Anthropic-protocol upstreams, and the
//! decoders of their answers and stream events. (The pairwise Messages ⇄ Chat converters in
//! `protocol::convert` predate the hub and move onto these codecs next.)

pub mod request;
pub mod response;
pub mod stream;
pub(crate) mod tool_ids;

use serde_json::value::RawValue;

/// A content block as any Messages body carries it (request, answer or stream `content_block_start`): the
/// fields every kind of block may have, read borrowed.
#[derive(serde::Deserialize)]
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
    #[serde(default)]
    pub tool_use_id: Option<String>,
    #[serde(borrow, default)]
    pub content: Option<&'a RawValue>,
    #[serde(default)]
    pub is_error: Option<bool>,
    /// A media block's source; a search result's is a string, so it is read by kind.
    #[serde(borrow, default)]
    pub source: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub cache_control: Option<&'a RawValue>,
    /// A `tool_reference` block's tool.
    #[serde(default)]
    pub tool_name: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
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
