//! What happens to each upstream chunk of a stream: a [`StreamProcessor`] turns it into client bytes, either
//! as written ([`PassThrough`], same protocol) or through the route's converter ([`Converting`]).
//!
//! The processor also watches the stream: the first event decides whether the answer is really an error
//! (some hosts send HTTP 200 followed by an error event), and the end marker tells a finished stream from a
//! broken one. A broken stream ends with an in-band error, never with a normal end.

use std::ops::ControlFlow;

use bytes::Bytes;

use crate::protocol::convert::error::{StreamStartError, anthropic_stream_event_error, openai_stream_event_error};
use crate::protocol::convert::stream::{StreamConverter, StreamFailure, StreamStatus};
use crate::protocol::hub::Usage;
use crate::protocol::sse::{
    EventView, Fed, RawEvent, RawEvents, SseEvent, SseParser, write_data_event, write_named_event,
};
use crate::protocol::{Protocol, anthropic, chat, gemini, messages, openai, responses};

/// How a relayed stream ended, for the request log: `status` is what an HTTP answer would have said (200
/// for a complete stream, the in-band error's status otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamEnd {
    pub status: u16,
    pub outcome: &'static str,
}

impl StreamEnd {
    pub const COMPLETE: Self = Self::new(200, "complete");

    pub const fn new(status: u16, outcome: &'static str) -> Self {
        Self { status, outcome }
    }

    fn of_failure(failure: StreamFailure) -> Self {
        match failure {
            StreamFailure::Timeout => Self::new(504, "upstream stream stalled"),
            StreamFailure::Upstream => Self::new(502, "upstream failed mid-stream"),
        }
    }
}

/// Turns upstream bytes into client bytes, one chunk at a time.
pub trait StreamProcessor: Send + 'static {
    /// Client bytes for one upstream chunk (may be empty while an event is incomplete). Nothing once the
    /// stream has ended.
    fn chunk(&mut self, chunk: Bytes) -> Bytes;
    /// The upstream ended. Closing bytes: nothing if the stream had finished, else an in-band error.
    fn eof(&mut self) -> Bytes;
    /// The upstream connection failed or stalled mid-stream: the in-band error.
    fn failed(&mut self, failure: StreamFailure, message: &str) -> Bytes;
    /// Whether at least one complete event has been seen.
    fn started(&self) -> bool;
    /// Set once the final event or an in-band error has been produced: the client's answer is complete and
    /// the upstream is no longer read.
    fn end(&self) -> Option<StreamEnd>;
    /// The first event, if it was an error (in the upstream's protocol).
    fn early_error(&mut self) -> Option<StreamStartError>;
    /// Bytes to send while the upstream is silent; empty when the processor sends none.
    fn keep_alive(&self) -> Bytes;
    /// The usage the upstream has reported so far.
    fn usage(&self) -> Option<Usage>;
    /// Whether a content delta has been relayed: the stream's first token.
    fn content_started(&self) -> bool;
}

/// Same-protocol streams: bytes go out exactly as the upstream wrote them; the events are only watched.
/// Output is cut at event boundaries, so a stream that breaks mid-event ends with a clean error event instead
/// of a half event glued to it.
pub struct PassThrough {
    protocol: Protocol,
    parser: SseParser,
    /// Bytes of an event not yet complete (at most the parser's event cap).
    held: Vec<u8>,
    watch: Watch,
}

/// What the events of a relayed stream have shown so far.
struct Watch {
    started: bool,
    end: Option<StreamEnd>,
    early_error: Option<StreamStartError>,
    usage: UsageWatch,
    quiet: QuietEvents,
}

/// Relayed events that differ from one already watched only in the text of one string, the delta's text,
/// and would be watched the same way (see [`Quiet::covers`]): found, each costs two comparisons instead
/// of a usage and an error search over its bytes, and found in the bytes as the upstream wrote it
/// ([`Quiet::event_len`]), not even the reading of its lines.
///
/// For Chat and Messages streams, whose watches read names, keys and values that are not the text.
/// Responses takes an event's type from its data when the `event:` line is missing, and a Gemini chunk's
/// first content depends on its text being empty or not.
#[derive(Default)]
struct QuietEvents {
    /// The data of the last quiet event watched in full, to find where the next one differs from it.
    last: Vec<u8>,
    learned: Option<Quiet>,
    /// Quiet events in a row the learned layout did not cover: one is a stream's last chunk, two in a row
    /// a new layout (reasoning deltas giving way to content, say).
    misses: u8,
    /// Times a layout was looked for; a stream whose events keep changing elsewhere stops paying for it.
    lessons: u8,
}

/// The layout of a quiet event: its name and the bytes before and after its text.
struct Quiet {
    name: Option<String>,
    before: Vec<u8>,
    after: Vec<u8>,
    /// The event's lines up to its text, as an upstream writes them: its `event:` line, `data: ` and
    /// `before`. `None` when the layout has a line break of its own, and is only ever seen read.
    line_start: Option<Vec<u8>>,
}

const MAX_LESSONS: u8 = 4;
const MISSES_BEFORE_RELEARNING: u8 = 2;

impl Quiet {
    fn new(name: Option<&str>, before: &[u8], after: &[u8]) -> Self {
        let line_break = |bytes: &[u8]| memchr::memchr2(b'\n', b'\r', bytes).is_some();
        let line_start = (!line_break(before) && !line_break(after)).then(|| {
            let mut start = Vec::with_capacity(before.len() + 32);
            if let Some(name) = name {
                start.extend_from_slice(b"event: ");
                start.extend_from_slice(name.as_bytes());
                start.push(b'\n');
            }
            start.extend_from_slice(b"data: ");
            start.extend_from_slice(before);
            start
        });
        Self {
            name: name.map(str::to_owned),
            before: before.to_vec(),
            after: after.to_vec(),
            line_start,
        }
    }

    /// The length of this quiet event with other text at the start of `rest`, as an upstream writes it:
    /// its `event:` line, `data: ` and the layout around a quiet text on one line, and the blank line after
    /// it. Its data is then what [`covers`](Self::covers) takes: the text ends at its closing quote, since
    /// it holds none.
    fn event_len(&self, rest: &[u8]) -> Option<usize> {
        let text = rest.strip_prefix(self.line_start.as_deref()?)?;
        // The text runs to the first quote; with none, `after` (which starts with one) cannot follow.
        let end = crate::protocol::json::plain_text_len(text)?;
        let tail = text[end..].strip_prefix(&self.after[..])?.strip_prefix(b"\n\n")?;
        quiet_word(&text[..end]).then_some(rest.len() - tail.len())
    }

    /// Whether `event` is this quiet event with other text. The text must hold no quote, even escaped, and
    /// whole escapes only, so it cannot end the string early or run on past it, and no watched key can
    /// start or end in it: every byte outside it is the quiet event's own. The quiet event was watched in
    /// full and told nothing (no usage, no error, no end; its first content was already seen), and its text
    /// is a value, not a key, so the same bytes around other text tell nothing either. A text that is
    /// itself a watched word could complete a quoted key with the quotes around it: those are watched in
    /// full.
    fn covers(&self, event: &impl EventView) -> bool {
        let data = event.data();
        event.name() == self.name.as_deref()
            && data.len() >= self.before.len() + self.after.len()
            && data.starts_with(&self.before)
            && data.ends_with(&self.after)
            && quiet_text(&data[self.before.len()..data.len() - self.after.len()])
    }
}

/// Text that can stand in a quiet event: plain, and none of the words the watches search for as keys.
fn quiet_text(text: &[u8]) -> bool {
    quiet_word(text) && crate::protocol::json::is_plain_string_text(text)
}

/// Not one of the words the watches search for as keys.
fn quiet_word(text: &[u8]) -> bool {
    !matches!(text, b"usage" | b"error")
}

impl QuietEvents {
    /// After `event` was watched in full and told nothing: where it differs from the last such event is
    /// its text, if that falls in a string value whose text is quiet. An event with an `"error"` anywhere
    /// teaches nothing: whether it is an error can turn on a string (`{"error":""}` is none). The layout is
    /// this event's own bytes around its text, so what the last event held does not matter to it; the
    /// search for `"error"` is made only when there is a layout to learn.
    fn learn(&mut self, event: &impl EventView) {
        let data = event.data();
        let relearn = self.learned.is_none() || self.misses >= MISSES_BEFORE_RELEARNING;
        if relearn
            && self.lessons < MAX_LESSONS
            && !self.last.is_empty()
            && !crate::protocol::convert::error::has_error_key(data)
        {
            self.lessons += 1;
            self.misses = 0;
            if let Some(text) = crate::protocol::json::string_value_around(data, common_prefix(data, &self.last))
                && quiet_text(&data[text.clone()])
            {
                self.learned = Some(Quiet::new(event.name(), &data[..text.start], &data[text.end..]));
            }
        }
        self.last.clear();
        self.last.extend_from_slice(data);
    }
}

/// How many bytes `a` and `b` start with in common; compared sixteen at a time first.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let whole = a
        .chunks_exact(16)
        .zip(b.chunks_exact(16))
        .take_while(|(a, b)| a == b)
        .count()
        * 16;
    whole + a[whole..].iter().zip(&b[whole..]).take_while(|(a, b)| a == b).count()
}

/// Each protocol's watch of usage and first content in events relayed untouched (a byte scan per event;
/// only the few events with usage are decoded, and only their usage object).
enum UsageWatch {
    Chat(chat::usage::UsageWatch),
    Messages(messages::usage::UsageWatch),
    Responses(responses::usage::UsageWatch),
    Gemini(gemini::usage::UsageWatch),
}

impl UsageWatch {
    fn new(protocol: Protocol) -> Self {
        match protocol {
            Protocol::OpenAi => Self::Chat(Default::default()),
            Protocol::Anthropic => Self::Messages(Default::default()),
            Protocol::Responses => Self::Responses(Default::default()),
            Protocol::Gemini => Self::Gemini(Default::default()),
        }
    }

    /// `true` when the event carried usage.
    fn observe(&mut self, event: &impl EventView) -> bool {
        match self {
            Self::Chat(watch) => watch.observe(event),
            Self::Messages(watch) => watch.observe(event),
            Self::Responses(watch) => watch.observe(event),
            Self::Gemini(watch) => watch.observe(event),
        }
    }

    fn usage(&self) -> Option<Usage> {
        match self {
            Self::Chat(watch) => watch.usage(),
            Self::Messages(watch) => watch.usage(),
            Self::Responses(watch) => watch.usage(),
            Self::Gemini(watch) => watch.usage(),
        }
    }

    fn content_started(&self) -> bool {
        match self {
            Self::Chat(watch) => watch.content_started(),
            Self::Messages(watch) => watch.content_started(),
            Self::Responses(watch) => watch.content_started(),
            Self::Gemini(watch) => watch.content_started(),
        }
    }
}

impl Watch {
    fn new(protocol: Protocol) -> Self {
        Self {
            started: false,
            end: None,
            early_error: None,
            usage: UsageWatch::new(protocol),
            quiet: QuietEvents::default(),
        }
    }

    /// Breaks at the stream's last event: its end marker or an error.
    fn observe(&mut self, protocol: Protocol, event: &impl EventView) -> ControlFlow<()> {
        if self.quiet.learned.as_ref().is_some_and(|quiet| quiet.covers(event)) {
            self.quiet_event();
            return ControlFlow::Continue(());
        }
        // Before the end marker: Gemini's last chunk carries the final usage.
        let usage = self.usage.observe(event);
        let error = stream_error(protocol, event);
        let first = !self.started;
        self.started = true;
        if let Some(error) = error {
            self.end = Some(StreamEnd::new(error.status, "upstream sent an error event"));
            if first {
                self.early_error = Some(error);
            }
        } else if is_end_marker(protocol, event) {
            self.end = Some(StreamEnd::COMPLETE);
        }
        let told_nothing = !usage && self.end.is_none() && self.usage.content_started();
        if told_nothing && matches!(protocol, Protocol::OpenAi | Protocol::Anthropic) {
            self.quiet.misses = self.quiet.misses.saturating_add(1);
            self.quiet.learn(event);
        }
        if self.end.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }

    /// A quiet event went by: it tells nothing but that the stream has started.
    fn quiet_event(&mut self) {
        self.started = true;
        self.quiet.misses = 0;
    }
}

/// A stream's watch as the reader of the events the parser relays.
struct Watching<'a> {
    protocol: Protocol,
    watch: &'a mut Watch,
}

impl RawEvents for Watching<'_> {
    fn event(&mut self, event: RawEvent<'_>) -> ControlFlow<()> {
        self.watch.observe(self.protocol, &event)
    }

    /// A quiet event of the learned layout, found in the bytes without reading its lines.
    fn skip(&mut self, rest: &[u8]) -> Option<usize> {
        let len = self.watch.quiet.learned.as_ref()?.event_len(rest)?;
        self.watch.quiet_event();
        Some(len)
    }
}

impl PassThrough {
    pub fn new(protocol: Protocol, max_event: usize) -> Self {
        Self {
            protocol,
            parser: SseParser::with_max_event(max_event),
            held: Vec::new(),
            watch: Watch::new(protocol),
        }
    }

    /// The bytes of this chunk up to `cut` (an event boundary), after those held from earlier chunks.
    fn complete_events(&mut self, chunk: &Bytes, cut: usize) -> Bytes {
        if self.held.is_empty() {
            // The common case, an upstream writing whole events, goes out without a copy.
            return chunk.slice(..cut);
        }
        self.held.extend_from_slice(&chunk[..cut]);
        Bytes::from(std::mem::take(&mut self.held))
    }
}

impl StreamProcessor for PassThrough {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        if self.watch.end.is_some() {
            return Bytes::new();
        }
        let Self {
            protocol,
            parser,
            watch,
            ..
        } = self;
        let mut watching = Watching {
            protocol: *protocol,
            watch,
        };
        match parser.feed_raw_until(&chunk, &mut watching) {
            Fed::Read { boundary: None } => {
                self.held.extend_from_slice(&chunk);
                Bytes::new()
            }
            Fed::Read { boundary: Some(cut) } => {
                let out = self.complete_events(&chunk, cut);
                self.held.extend_from_slice(&chunk[cut..]);
                out
            }
            // The final event: whatever follows it is not part of the stream.
            Fed::Stopped { at } => self.complete_events(&chunk, at),
            Fed::TooLarge { boundary } => {
                let out = boundary
                    .map(|cut| self.complete_events(&chunk, cut))
                    .unwrap_or_default();
                self.held = Vec::new();
                let message = event_too_large(self.parser.max_event());
                self.watch.end = Some(StreamEnd::new(502, "upstream event too large"));
                [out, in_band_error(self.protocol, &message)].concat().into()
            }
        }
    }

    fn eof(&mut self) -> Bytes {
        if self.watch.end.is_none()
            && let Some(event) = self.parser.finish()
        {
            let _ = self.watch.observe(self.protocol, &event);
            if self.watch.end.is_some() {
                // A final event without its blank line still belongs to the stream.
                return Bytes::from(std::mem::take(&mut self.held));
            }
        }
        if self.watch.end.is_some() {
            return Bytes::new();
        }
        self.watch.end = Some(StreamEnd::new(502, "upstream ended early"));
        in_band_error(self.protocol, "upstream closed the stream before it was complete")
    }

    fn failed(&mut self, failure: StreamFailure, message: &str) -> Bytes {
        if self.watch.end.is_some() {
            return Bytes::new();
        }
        self.watch.end = Some(StreamEnd::of_failure(failure));
        in_band_error(self.protocol, message)
    }

    fn started(&self) -> bool {
        self.watch.started
    }

    fn end(&self) -> Option<StreamEnd> {
        self.watch.end
    }

    fn early_error(&mut self) -> Option<StreamStartError> {
        self.watch.early_error.take()
    }

    fn keep_alive(&self) -> Bytes {
        Bytes::new()
    }

    fn usage(&self) -> Option<Usage> {
        self.watch.usage.usage()
    }

    fn content_started(&self) -> bool {
        self.watch.usage.content_started()
    }
}

/// Streams in the other protocol: each upstream event goes through the route's converter.
pub struct Converting {
    parser: SseParser,
    state: ConvertingState,
}

struct ConvertingState {
    upstream: Protocol,
    converter: Box<dyn StreamConverter>,
    started: bool,
    end: Option<StreamEnd>,
    early_error: Option<StreamStartError>,
}

impl Converting {
    pub fn new(upstream: Protocol, converter: Box<dyn StreamConverter>, max_event: usize) -> Self {
        Self {
            parser: SseParser::with_max_event(max_event),
            state: ConvertingState {
                upstream,
                converter,
                started: false,
                end: None,
                early_error: None,
            },
        }
    }
}

impl ConvertingState {
    /// Breaks once the converter has written the client's last event.
    fn convert(&mut self, event: &SseEvent, out: &mut Vec<u8>) -> ControlFlow<()> {
        if self.end.is_some() {
            return ControlFlow::Break(());
        }
        if !self.started {
            self.started = true;
            if let Some(error) = stream_error(self.upstream, event) {
                self.end = Some(StreamEnd::new(error.status, "upstream sent an error event"));
                self.early_error = Some(error);
                return ControlFlow::Break(());
            }
        }
        match self.converter.on_event(event, out) {
            StreamStatus::Continue => return ControlFlow::Continue(()),
            StreamStatus::Finished => self.end = Some(StreamEnd::COMPLETE),
            StreamStatus::Failed => self.end = Some(StreamEnd::new(502, "upstream sent an error event")),
        }
        ControlFlow::Break(())
    }

    fn fail(&mut self, end: StreamEnd, failure: StreamFailure, message: &str, out: &mut Vec<u8>) {
        if self.end.is_none() {
            self.end = Some(end);
            self.converter.on_error(failure, message, out);
        }
    }
}

impl StreamProcessor for Converting {
    fn chunk(&mut self, chunk: Bytes) -> Bytes {
        if self.state.end.is_some() {
            return Bytes::new();
        }
        // Room for what the events convert to, which is about their size: grown from empty, the buffer was
        // reallocated several times per event, the largest share of a converted stream's cost.
        let mut out = Vec::with_capacity(OUTPUT_ROOM.max(2 * chunk.len()));
        let state = &mut self.state;
        if let Fed::TooLarge { .. } = self.parser.feed_until(&chunk, |event| state.convert(event, &mut out)) {
            let message = event_too_large(self.parser.max_event());
            let end = StreamEnd::new(502, "upstream event too large");
            self.state.fail(end, StreamFailure::Upstream, &message, &mut out);
        }
        out.into()
    }

    fn eof(&mut self) -> Bytes {
        let mut out = Vec::new();
        if self.state.end.is_none()
            && let Some(event) = self.parser.finish()
        {
            let _ = self.state.convert(&event, &mut out);
        }
        if self.state.end.is_none() {
            self.state.end = Some(match self.state.converter.on_eof(&mut out) {
                StreamStatus::Finished => StreamEnd::COMPLETE,
                _ => StreamEnd::new(502, "upstream ended early"),
            });
        }
        out.into()
    }

    fn failed(&mut self, failure: StreamFailure, message: &str) -> Bytes {
        let mut out = Vec::new();
        self.state
            .fail(StreamEnd::of_failure(failure), failure, message, &mut out);
        out.into()
    }

    fn started(&self) -> bool {
        self.state.started
    }

    fn end(&self) -> Option<StreamEnd> {
        self.state.end
    }

    fn early_error(&mut self) -> Option<StreamStartError> {
        self.state.early_error.take()
    }

    fn keep_alive(&self) -> Bytes {
        let mut out = Vec::new();
        self.state.converter.keep_alive(&mut out);
        out.into()
    }

    fn usage(&self) -> Option<Usage> {
        self.state.converter.usage()
    }

    fn content_started(&self) -> bool {
        self.state.converter.content_started()
    }
}

/// The smallest output buffer of a converted chunk: one or two converted events.
const OUTPUT_ROOM: usize = 1024;

fn event_too_large(max_event: usize) -> String {
    format!(
        "upstream sent a stream event larger than {} MiB (router_settings.max_event_size_mb)",
        max_event as f64 / (1024.0 * 1024.0)
    )
}

/// An error event in an upstream stream, or `None` for a normal event.
fn stream_error(upstream: Protocol, event: &impl EventView) -> Option<StreamStartError> {
    match upstream {
        Protocol::OpenAi => openai_stream_event_error(event),
        Protocol::Anthropic => anthropic_stream_event_error(event),
        Protocol::Responses => {
            let (status, body) = responses::stream_error(event)?;
            Some(StreamStartError { upstream, status, body })
        }
        Protocol::Gemini => {
            let status = gemini::stream_error(event)?;
            Some(StreamStartError {
                upstream,
                status,
                body: event.data().to_vec(),
            })
        }
    }
}

/// OpenAI streams end with `data: [DONE]`; Anthropic streams with `message_stop`; Responses streams with
/// their terminal event; Gemini streams with the chunk that carries the `finishReason`.
fn is_end_marker(protocol: Protocol, event: &impl EventView) -> bool {
    match protocol {
        Protocol::OpenAi => event.is_done_marker(),
        Protocol::Anthropic => event.name() == Some("message_stop"),
        Protocol::Responses => responses::is_terminal(event),
        Protocol::Gemini => gemini::is_last_chunk(event),
    }
}

/// The in-band error that ends a stream that had already started: Anthropic `event: error`; OpenAI a
/// `data: {"error":…}` line, after which no `[DONE]` follows; Responses a terminal `response.failed`; Gemini
/// a `data: {"error":{"code","message","status"}}` chunk, the one in-band error its SDKs know (reference §5.6).
pub fn in_band_error(protocol: Protocol, message: &str) -> Bytes {
    let mut out = Vec::with_capacity(160 + message.len());
    match protocol {
        Protocol::Anthropic => write_named_event(&mut out, "error", &anthropic::error_body("api_error", message, None)),
        Protocol::OpenAi => write_data_event(&mut out, &openai::error_body(message, "server_error", None, None)),
        Protocol::Responses => {
            let failed = serde_json::json!({"type": "response.failed", "response": {"object": "response",
                "status": "failed", "error": {"code": "server_error", "message": message}, "output": []}});
            write_named_event(&mut out, "response.failed", failed.to_string().as_bytes());
        }
        Protocol::Gemini => write_data_event(&mut out, &gemini::error_body(500, message)),
    }
    out.into()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::protocol::sse::{DEFAULT_MAX_EVENT, RawEvent};

    /// Texts for the events below: plain, escaped, a watched word, and ones that are not plain.
    const TEXTS: [&str; 10] = [
        "hi", " world", "usage", "error", r#"a\"b"#, r"x\\", r"\n", "", r"\u00e9", "é",
    ];

    /// Chat events: text deltas (also around a watched key and with usage), errors of both shapes, usage,
    /// a chunk whose varying string is its `object`, and the end.
    fn chat_event(kind: usize, text: &str) -> (Option<&'static str>, String) {
        let data = match kind {
            0..=3 => format!(
                r#"{{"id":"c","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"{text}"}}}}],"usage":null}}"#
            ),
            4 => format!(
                r#"{{"id":"c","choices":[{{"delta":{{"content":"{text}"}}}}],"usage":{{"prompt_tokens":5,"completion_tokens":2}}}}"#
            ),
            5 => format!(r#"{{"object":"{text}","choices":[]}}"#),
            6 => r#"{"error":{"message":"boom","type":"server_error"}}"#.to_owned(),
            7 => format!(
                r#"{{"choices":[],"usage":{{"prompt_tokens":3,"completion_tokens":{}}}}}"#,
                text.len()
            ),
            8 => format!(r#"{{"id":"c","error":"{text}","choices":[]}}"#),
            _ => "[DONE]".to_owned(),
        };
        (None, data)
    }

    /// Messages events: text deltas, usage, an error event, a delta named `error`, and the end.
    fn messages_event(kind: usize, text: &str) -> (Option<&'static str>, String) {
        let delta = |text: &str| {
            format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{text}"}}}}"#)
        };
        match kind {
            0..=4 => (Some("content_block_delta"), delta(text)),
            5 => (
                Some("message_delta"),
                format!(
                    r#"{{"type":"message_delta","usage":{{"output_tokens":{}}}}}"#,
                    text.len()
                ),
            ),
            6 => (
                Some("error"),
                r#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#.to_owned(),
            ),
            7 => (Some("error"), delta(text)),
            8 => (
                Some("content_block_delta"),
                format!(r#"{{"type":"error","error":{{"message":"{text}"}}}}"#),
            ),
            _ => (Some("message_stop"), r#"{"type":"message_stop"}"#.to_owned()),
        }
    }

    /// What a watch has concluded after each event: skipping quiet events must never change it.
    fn verdicts(
        protocol: Protocol,
        events: &[(Option<&str>, String)],
        learn: bool,
    ) -> Vec<(bool, Option<StreamEnd>, Option<Usage>, bool)> {
        let mut watch = Watch::new(protocol);
        if !learn {
            watch.quiet.lessons = MAX_LESSONS;
        }
        let mut seen = Vec::new();
        for (name, data) in events {
            let flow = watch.observe(
                protocol,
                &RawEvent {
                    name: *name,
                    data: data.as_bytes(),
                },
            );
            seen.push((
                flow.is_break(),
                watch.end,
                watch.usage.usage(),
                watch.usage.content_started(),
            ));
            if flow.is_break() {
                break;
            }
        }
        seen
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn skipping_quiet_events_concludes_what_reading_them_does(
            chat in any::<bool>(),
            // Runs of one kind of event with several texts: what a layout is learned from.
            runs in prop::collection::vec((0usize..10, prop::collection::vec(0usize..TEXTS.len(), 1..5)), 1..10),
        ) {
            let (protocol, event): (_, fn(usize, &str) -> _) = match chat {
                true => (Protocol::OpenAi, chat_event),
                false => (Protocol::Anthropic, messages_event),
            };
            let events: Vec<_> = runs
                .iter()
                .flat_map(|(kind, texts)| texts.iter().map(|&text| event(*kind, TEXTS[text])))
                .collect();
            prop_assert_eq!(verdicts(protocol, &events, true), verdicts(protocol, &events, false));
        }
    }

    #[test]
    fn text_deltas_of_one_layout_are_covered_and_others_are_read() {
        let mut watch = Watch::new(Protocol::OpenAi);
        for text in ["Hel", "lo", " there"] {
            let (_, data) = chat_event(0, text);
            assert!(
                watch
                    .observe(
                        Protocol::OpenAi,
                        &RawEvent {
                            name: None,
                            data: data.as_bytes()
                        }
                    )
                    .is_continue()
            );
        }
        let quiet = watch.quiet.learned.as_ref().expect("a layout is learned");
        let (_, next) = chat_event(0, r"more\ntext");
        assert!(quiet.covers(&RawEvent {
            name: None,
            data: next.as_bytes()
        }));
        for text in ["usage", "error", r#"say \"hi\""#, "trailing\\"] {
            let (_, data) = chat_event(0, text);
            assert!(
                !quiet.covers(&RawEvent {
                    name: None,
                    data: data.as_bytes()
                }),
                "{text}"
            );
        }
        // vLLM's error shape in a layout learned from its `object`: the word is read in full.
        let mut watch = Watch::new(Protocol::OpenAi);
        let (_, first) = chat_event(0, "x");
        let _ = watch.observe(
            Protocol::OpenAi,
            &RawEvent {
                name: None,
                data: first.as_bytes(),
            },
        );
        for object in ["chat.completion.chunk", "chunk", "error"] {
            let (_, data) = chat_event(5, object);
            let _ = watch.observe(
                Protocol::OpenAi,
                &RawEvent {
                    name: None,
                    data: data.as_bytes(),
                },
            );
        }
        assert_eq!(watch.end.map(|end| end.status), Some(500));
    }

    /// A watch that has seen `events`.
    fn watch_of(protocol: Protocol, events: impl IntoIterator<Item = (Option<&'static str>, String)>) -> Watch {
        let mut watch = Watch::new(protocol);
        for (name, data) in events {
            let _ = watch.observe(
                protocol,
                &RawEvent {
                    name,
                    data: data.as_bytes(),
                },
            );
        }
        watch
    }

    #[test]
    fn a_quiet_event_is_found_in_the_bytes_as_an_upstream_writes_it() {
        let watch = watch_of(
            Protocol::OpenAi,
            ["Hel", "lo", " there"].map(|text| chat_event(0, text)),
        );
        let quiet = watch.quiet.learned.as_ref().expect("a layout is learned");
        let line = |text: &str| format!("data: {}\n\n", chat_event(0, text).1);
        for text in ["more", r"two\nlines", "é", ""] {
            let bytes = line(text) + "data: [DONE]\n\n";
            assert_eq!(quiet.event_len(bytes.as_bytes()), Some(line(text).len()), "{text}");
        }
        let unread = [
            line("usage"),
            line("error"),
            line(r#"say \"hi\""#),
            line("tab\there"),
            line("x").replace("\n\n", "\r\n\r\n"),
            line("x").replace("data: ", "data:"),
            format!("event: delta\n{}", line("x")),
            line("x")[..line("x").len() - 1].to_owned(),
            line("x").replace("chunk", "chunks"),
        ];
        for bytes in unread {
            assert_eq!(quiet.event_len(bytes.as_bytes()), None, "{bytes:?}");
        }
        // A Messages layout has its `event:` line.
        let watch = watch_of(Protocol::Anthropic, ["Hel", "lo"].map(|text| messages_event(0, text)));
        let quiet = watch.quiet.learned.as_ref().expect("a layout is learned");
        let line = format!("event: content_block_delta\ndata: {}\n\n", messages_event(0, "more").1);
        assert_eq!(quiet.event_len(line.as_bytes()), Some(line.len()));
        let unnamed = line.replace("event: content_block_delta\n", "");
        assert_eq!(quiet.event_len(unnamed.as_bytes()), None);
        let renamed = line.replace("event: content_block_delta", "event: error");
        assert_eq!(quiet.event_len(renamed.as_bytes()), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        #[test]
        fn a_relayed_stream_is_watched_alike_whether_quiet_events_are_skipped_or_read(
            chat in any::<bool>(),
            kinds in prop::collection::vec((0usize..9, 0usize..TEXTS.len()), 1..16),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let (protocol, event): (_, fn(usize, &str) -> _) = match chat {
                true => (Protocol::OpenAi, chat_event),
                false => (Protocol::Anthropic, messages_event),
            };
            let mut input = String::new();
            for (kind, text) in kinds.into_iter().chain([(9, 0)]) {
                let (name, data) = event(kind, TEXTS[text]);
                if let Some(name) = name {
                    input += &format!("event: {name}\n");
                }
                input += &format!("data: {data}\n\n");
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len())).collect();
            cuts.sort();
            let run = |learn: bool| {
                let mut p = PassThrough::new(protocol, DEFAULT_MAX_EVENT);
                if !learn {
                    p.watch.quiet.lessons = MAX_LESSONS;
                }
                let mut out = Vec::new();
                let mut last = 0;
                for &cut in cuts.iter().chain([&input.len()]) {
                    out.extend_from_slice(&p.chunk(Bytes::copy_from_slice(&input.as_bytes()[last..cut])));
                    last = cut;
                }
                out.extend_from_slice(&p.eof());
                (out, p.end(), p.usage(), p.content_started(), p.started())
            };
            let skipped = run(true);
            prop_assert_eq!(&skipped, &run(false));
        }
    }

    fn feed(p: &mut PassThrough, input: &str, cut: usize) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&p.chunk(Bytes::copy_from_slice(&input.as_bytes()[..cut])));
        out.extend_from_slice(&p.chunk(Bytes::copy_from_slice(&input.as_bytes()[cut..])));
        out
    }

    #[test]
    fn openai_stream_passes_through_and_ends_cleanly() {
        let input = "data: {\"choices\":[{\"delta\":{\"content\":\"hé\"}}]}\n\ndata: [DONE]\n\n";
        for cut in 0..input.len() {
            let mut p = PassThrough::new(Protocol::OpenAi, DEFAULT_MAX_EVENT);
            assert_eq!(feed(&mut p, input, cut), input.as_bytes());
            assert!(p.started() && p.early_error().is_none());
            assert!(p.eof().is_empty(), "cut {cut}");
        }
    }

    #[test]
    fn usage_and_the_first_content_are_watched_across_split_chunks() {
        let input = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"é\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":4}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let first_delta = input.find("event: content_block_delta").unwrap();
        for cut in 0..input.len() {
            let mut p = PassThrough::new(Protocol::Anthropic, DEFAULT_MAX_EVENT);
            p.chunk(Bytes::copy_from_slice(&input.as_bytes()[..cut]));
            // Content starts once the whole delta event is in.
            if cut < first_delta + 20 {
                assert!(!p.content_started(), "cut {cut}");
            }
            p.chunk(Bytes::copy_from_slice(&input.as_bytes()[cut..]));
            assert!(p.content_started() && p.end() == Some(StreamEnd::COMPLETE), "cut {cut}");
            let usage = p.usage().unwrap();
            assert_eq!((usage.input, usage.output), (9, 4), "cut {cut}");
        }
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_still_sent() {
        let mut p = PassThrough::new(Protocol::OpenAi, DEFAULT_MAX_EVENT);
        assert_eq!(p.chunk(Bytes::from_static(b"data: {}\n\n")), &b"data: {}\n\n"[..]);
        assert!(p.chunk(Bytes::from_static(b"data: [DONE]")).is_empty());
        assert_eq!(p.eof(), &b"data: [DONE]"[..]);
    }

    #[test]
    fn output_is_cut_at_event_boundaries() {
        let mut p = PassThrough::new(Protocol::OpenAi, DEFAULT_MAX_EVENT);
        assert!(p.chunk(Bytes::from_static(b"data: {\"a\"")).is_empty());
        assert_eq!(
            p.chunk(Bytes::from_static(b":1}\n\ndata: {")),
            &b"data: {\"a\":1}\n\n"[..]
        );
        assert_eq!(p.chunk(Bytes::from_static(b"}\r\n\r\n")), &b"data: {}\r\n\r\n"[..]);
        // A half event is dropped when the stream breaks, so the error event stands on its own.
        p.chunk(Bytes::from_static(b"data: {\"half"));
        let tail = p.failed(StreamFailure::Upstream, "boom");
        assert!(tail.starts_with(b"data: {\"error\""));
    }

    #[test]
    fn truncated_streams_end_with_an_in_band_error() {
        let mut p = PassThrough::new(Protocol::OpenAi, DEFAULT_MAX_EVENT);
        p.chunk(Bytes::from_static(b"data: {\"choices\":[]}\n\n"));
        let tail = String::from_utf8(p.eof().to_vec()).unwrap();
        assert!(tail.starts_with("data: {\"error\":{"), "{tail}");
        assert!(!tail.contains("[DONE]"));

        let mut p = PassThrough::new(Protocol::Anthropic, DEFAULT_MAX_EVENT);
        p.chunk(Bytes::from_static(b"event: message_start\ndata: {}\n\n"));
        let tail = String::from_utf8(p.failed(StreamFailure::Upstream, "boom").to_vec()).unwrap();
        assert!(tail.starts_with("event: error\ndata: {\"type\":\"error\""), "{tail}");
        assert!(p.eof().is_empty(), "only one closing error");
    }

    #[test]
    fn anthropic_stream_ends_at_message_stop() {
        let mut p = PassThrough::new(Protocol::Anthropic, DEFAULT_MAX_EVENT);
        p.chunk(Bytes::from_static(
            b"event: message_start\ndata: {}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ));
        assert!(p.eof().is_empty());
    }

    #[test]
    fn first_event_errors_are_early_errors() {
        let mut p = PassThrough::new(Protocol::Anthropic, DEFAULT_MAX_EVENT);
        p.chunk(Bytes::from_static(
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        ));
        let e = p.early_error().unwrap();
        assert_eq!(e.status, 529);
        assert!(p.eof().is_empty(), "an upstream error event is a terminal event");

        let mut p = PassThrough::new(Protocol::OpenAi, DEFAULT_MAX_EVENT);
        p.chunk(Bytes::from_static(
            b"data: {\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}\n\n",
        ));
        assert_eq!(p.early_error().unwrap().status, 429);

        let mut p = PassThrough::new(Protocol::OpenAi, DEFAULT_MAX_EVENT);
        p.chunk(Bytes::from_static(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"error\"}}],\"error\":null}\n\n",
        ));
        assert!(p.early_error().is_none());
    }
}
