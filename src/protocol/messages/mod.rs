//! Anthropic Messages codecs around the hub: the request encoder for Anthropic-protocol upstreams, and the
//! decoders of their answers and stream events. (The pairwise Messages ⇄ Chat converters in
//! `protocol::convert` predate the hub and move onto these codecs next.)

pub mod request;
pub mod response;
pub mod stream;
