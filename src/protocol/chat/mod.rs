//! Chat Completions codecs around the hub: the request encoder for OpenAI-compatible upstreams, and the
//! decoders of their answers and stream chunks. (The pairwise Chat ⇄ Messages converters in
//! `protocol::convert` predate the hub and move onto these codecs next.)

pub mod request;
pub mod response;
pub mod stream;
pub mod usage;
