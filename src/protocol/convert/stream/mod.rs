//! The contract of a stream converter (spec §3): a small state machine fed one upstream SSE event at a time,
//! appending the client-facing SSE frames to a buffer. The hub's [`HubStream`](crate::protocol::hub::HubStream)
//! (an upstream decoder and a client encoder) is the one for every converted pair.
//!
//! How the I/O layer drives a converter:
//! 1. Before answering the client, read the upstream status and its first SSE event. A non-2xx status, or a
//!    first event for which [`openai_stream_event_error`](super::error::openai_stream_event_error) /
//!    [`anthropic_stream_event_error`](super::error::anthropic_stream_event_error) returns `Some`, becomes a
//!    plain HTTP error response (§3.5.1). Otherwise commit the 200 and feed that first event to
//!    [`StreamConverter::on_event`].
//! 2. Feed every further event; when `on_event` returns anything but [`StreamStatus::Continue`], end the
//!    client's response at once and drop the upstream request (an upstream may hold the connection open
//!    after its last event).
//! 3. At upstream EOF: hand the parser's unterminated last event (`SseParser::finish`) to `on_event`, then
//!    call [`StreamConverter::on_eof`]. It writes the normal end only if the upstream finished cleanly, and an
//!    in-band error otherwise.
//! 4. On a transport error or idle timeout after the 200 was committed, call [`StreamConverter::on_error`].
//! 5. While the upstream is silent (15 s), send [`StreamConverter::keep_alive`] bytes.
//!
//! After a terminal status every method writes nothing, so calling `on_eof` once more is harmless.

use crate::protocol::sse::SseEvent;

/// A converter from one upstream stream format to the client's.
pub trait StreamConverter: Send {
    /// Feeds one upstream SSE event; appends the client-facing SSE bytes (zero or more frames) to `out`.
    fn on_event(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> StreamStatus;
    /// The upstream body ended (EOF). Appends the closing frames: the normal end if the upstream finished
    /// cleanly, otherwise an in-band error. A truncated stream never gets a normal end. Returns how the
    /// stream ended.
    fn on_eof(&mut self, out: &mut Vec<u8>) -> StreamStatus;
    /// A transport error or idle timeout after the client's stream started: appends the in-band error
    /// (§3.5.2).
    fn on_error(&mut self, kind: StreamFailure, message: &str, out: &mut Vec<u8>);
    /// Bytes for a keep-alive while the upstream is silent (§3.5.4).
    fn keep_alive(&self, out: &mut Vec<u8>);
    /// The latest usage the upstream reported, for the request's record.
    fn usage(&self) -> Option<crate::protocol::hub::Usage> {
        None
    }
    /// Whether a content delta (text, reasoning, a tool call) has been seen: the time to first token.
    fn content_started(&self) -> bool {
        false
    }
}

/// What the I/O layer should do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Keep reading.
    Continue,
    /// The normal end was written; ignore the rest of the upstream body.
    Finished,
    /// An in-band error was written; stop.
    Failed,
}

/// Why the I/O layer gave up on an upstream stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFailure {
    /// No bytes within the idle timeout.
    Timeout,
    /// The connection broke or the body could not be read.
    Upstream,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relay moves converters into spawned tasks and boxes them as trait objects.
    #[test]
    fn converters_are_owned_send_trait_objects() {
        fn boxed<T: StreamConverter + 'static>(_: Option<T>) -> Option<Box<dyn StreamConverter>> {
            None
        }
        use crate::protocol::hub::HubStream;
        use crate::protocol::{chat, messages};
        assert!(
            boxed::<HubStream<chat::response::ChatChunks, messages::stream::MessagesStreamEncoder>>(None).is_none()
        );
        assert!(
            boxed::<HubStream<messages::response::MessagesEvents, chat::stream::ChatStreamEncoder>>(None).is_none()
        );
    }
}
