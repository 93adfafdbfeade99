//! Server-sent events: an incremental parser that copes with events, lines and UTF-8 characters split across
//! arbitrary chunk boundaries, and the writer for the frames we emit.
//!
//! The parser works on bytes and only turns complete events into text, so a multi-byte character split
//! between two network reads is never decoded half-way. Events relayed untouched are not turned into text at
//! all: their watchers read bytes ([`EventView`]).

use std::ops::ControlFlow;

/// One dispatched SSE event. `event` is the `event:` field (absent for OpenAI streams), `data` the `data:` lines
/// joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// What the stream watchers (usage, errors, end markers) read of an event: its `event:` name and its data
/// as bytes. Converted streams hand them an [`SseEvent`]; relayed ones a [`RawEvent`], whose data is never
/// checked as UTF-8, since the bytes go out as they came.
pub trait EventView {
    fn name(&self) -> Option<&str>;
    fn data(&self) -> &[u8];

    /// OpenAI's end-of-stream sentinel.
    fn is_done_marker(&self) -> bool {
        self.data() == b"[DONE]"
    }
}

impl EventView for SseEvent {
    fn name(&self) -> Option<&str> {
        self.event.as_deref()
    }

    fn data(&self) -> &[u8] {
        self.data.as_bytes()
    }
}

/// An event as the upstream sent it, lent by [`SseParser::feed_raw_until`].
#[derive(Debug, Clone, Copy)]
pub struct RawEvent<'a> {
    pub name: Option<&'a str>,
    pub data: &'a [u8],
}

impl EventView for RawEvent<'_> {
    fn name(&self) -> Option<&str> {
        self.name
    }

    fn data(&self) -> &[u8] {
        self.data
    }
}

/// What a caller of [`SseParser::feed_raw_until`] does with the events it relays untouched.
pub trait RawEvents {
    /// One complete event; breaking stops the parse after it (a stream's final event).
    fn event(&mut self, event: RawEvent<'_>) -> ControlFlow<()>;

    /// The length of a whole event at the start of `rest`, its blank line included, when it is one that
    /// need not be read line by line. Asked only where an event starts and nothing of one is held; the
    /// event then counts as read (and told nothing).
    fn skip(&mut self, _rest: &[u8]) -> Option<usize> {
        None
    }
}

impl<F: FnMut(RawEvent<'_>) -> ControlFlow<()>> RawEvents for F {
    fn event(&mut self, event: RawEvent<'_>) -> ControlFlow<()> {
        self(event)
    }
}

/// How [`SseParser::feed_lines`] hands on what it reads: the text or the raw form of each event.
trait Dispatch {
    /// Lends out the event the parser has completed.
    fn dispatch(&mut self, parser: &mut SseParser) -> ControlFlow<()>;

    /// See [`RawEvents::skip`].
    fn skip(&mut self, _rest: &[u8]) -> Option<usize> {
        None
    }
}

/// The default cap on one event's size (`router_settings.max_event_size_mb`).
pub const DEFAULT_MAX_EVENT: usize = 16 * 1024 * 1024;

/// What one [`SseParser::feed`] did with a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// The whole chunk was read. `boundary` is the length of its prefix that ends with its last blank line
    /// (the end of the last complete event in it), if it has one.
    Read { boundary: Option<usize> },
    /// The callback asked to stop after the event that ends at byte `at` of the chunk; the rest is unread.
    Stopped { at: usize },
    /// The event being read grew past the parser's cap. The parser drops what it held and reads no more;
    /// `boundary` is as for `Read`, for the events completed before it.
    TooLarge { boundary: Option<usize> },
}

/// Incremental SSE parser (the WHATWG event-stream grammar, minus `id`/`retry`, which no LLM API uses).
///
/// Every byte is looked at once: only a partial line is kept between chunks, and a new chunk is scanned from
/// its own start. One event (its lines up to the blank line) may be at most `max_event` bytes, so whatever an
/// upstream sends, the parser holds at most that much.
#[derive(Debug)]
pub struct SseParser {
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// The data lines of the event being read, joined with `\n`, as bytes. Lent to the callback when the
    /// event is complete, then cleared: the buffers are reused, so a stream's events cost no allocation each.
    data: Vec<u8>,
    /// The event's `event:` name (short, so it is made text as it is read).
    name: String,
    has_name: bool,
    has_data: bool,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one belongs to that line end.
    skip_lf: bool,
    /// Bytes of the complete lines of the event being read.
    event_bytes: usize,
    max_event: usize,
    too_large: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_max_event(DEFAULT_MAX_EVENT)
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that gives up on an event larger than `max_event` bytes.
    pub fn with_max_event(max_event: usize) -> Self {
        Self {
            partial: Vec::new(),
            data: Vec::new(),
            name: String::new(),
            has_name: false,
            has_data: false,
            skip_lf: false,
            event_bytes: 0,
            max_event,
            too_large: false,
        }
    }

    /// Feeds one chunk of the byte stream; calls `on_event` for every event completed by it.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(&SseEvent)) -> Fed {
        self.feed_until(chunk, |event| {
            on_event(event);
            ControlFlow::Continue(())
        })
    }

    /// Like [`feed`](Self::feed), but stops reading the chunk when `on_event` breaks (a stream's final event).
    pub fn feed_until(&mut self, chunk: &[u8], on_event: impl FnMut(&SseEvent) -> ControlFlow<()>) -> Fed {
        struct Text<F>(F);
        impl<F: FnMut(&SseEvent) -> ControlFlow<()>> Dispatch for Text<F> {
            fn dispatch(&mut self, parser: &mut SseParser) -> ControlFlow<()> {
                let event = parser.take_event();
                let flow = (self.0)(&event);
                parser.give_back(event);
                flow
            }
        }
        self.feed_lines(chunk, &mut Text(on_event))
    }

    /// Like [`feed_until`](Self::feed_until), for events relayed untouched: each is lent as the bytes the
    /// upstream sent, not checked as UTF-8. `events` may also pass over whole events unread
    /// ([`RawEvents::skip`]).
    pub fn feed_raw_until(&mut self, chunk: &[u8], events: &mut impl RawEvents) -> Fed {
        struct Raw<'a, E>(&'a mut E);
        impl<E: RawEvents> Dispatch for Raw<'_, E> {
            fn dispatch(&mut self, parser: &mut SseParser) -> ControlFlow<()> {
                self.0.event(RawEvent {
                    name: parser.has_name.then_some(parser.name.as_str()),
                    data: &parser.data,
                })
            }

            fn skip(&mut self, rest: &[u8]) -> Option<usize> {
                self.0.skip(rest)
            }
        }
        self.feed_lines(chunk, &mut Raw(events))
    }

    /// Reads the chunk's lines; `dispatch` lends out each completed event.
    fn feed_lines(&mut self, chunk: &[u8], dispatch: &mut impl Dispatch) -> Fed {
        if self.too_large {
            return Fed::TooLarge { boundary: None };
        }
        let mut start = 0;
        if self.skip_lf && !chunk.is_empty() {
            self.skip_lf = false;
            if chunk[0] == b'\n' {
                start = 1;
            }
        }
        let mut boundary = None;
        // Where an event starts with nothing held, whole events may be passed over unread.
        let mut idle = self.partial.is_empty() && self.event_bytes == 0 && !self.has_data && !self.has_name;
        loop {
            if idle {
                while let Some(len) = dispatch.skip(&chunk[start..]).filter(|len| *len <= self.max_event) {
                    start += len;
                    boundary = Some(start);
                }
            }
            let Some(offset) = line_end(&chunk[start..]) else {
                break;
            };
            let end = start + offset;
            let mut next = end + 1;
            if chunk[end] == b'\r' {
                match chunk.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            let line_len = self.partial.len() + (end - start);
            let dispatched = if self.partial.is_empty() {
                self.process_line(&chunk[start..end])
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&chunk[start..end]);
                let dispatched = self.process_line(&line);
                line.clear();
                self.partial = line;
                dispatched
            };
            start = next;
            idle = line_len == 0 && !self.skip_lf;
            if line_len == 0 {
                self.event_bytes = 0;
                boundary = Some(next);
            } else {
                self.event_bytes += line_len + 1;
                if self.event_bytes > self.max_event {
                    return self.give_up(boundary);
                }
            }
            if dispatched {
                let flow = dispatch.dispatch(self);
                self.clear_event();
                if flow.is_break() {
                    return Fed::Stopped { at: next };
                }
            }
        }
        let rest = &chunk[start..];
        if self.event_bytes + self.partial.len() + rest.len() > self.max_event {
            return self.give_up(boundary);
        }
        self.partial.extend_from_slice(rest);
        Fed::Read { boundary }
    }

    fn give_up(&mut self, boundary: Option<usize>) -> Fed {
        self.too_large = true;
        self.partial = Vec::new();
        self.data = Vec::new();
        self.has_data = false;
        self.has_name = false;
        Fed::TooLarge { boundary }
    }

    /// The cap on one event, in bytes.
    pub fn max_event(&self) -> usize {
        self.max_event
    }

    /// The stream ended: returns an event left without its closing blank line, if it carried data.
    pub fn finish(&mut self) -> Option<SseEvent> {
        if self.too_large {
            return None;
        }
        let rest = std::mem::take(&mut self.partial);
        let dispatched = (!rest.is_empty() && self.process_line(&rest)) || self.dispatch();
        dispatched.then(|| self.take_event())
    }

    /// The complete event as text: its data is checked as UTF-8 once, here, and an invalid sequence (a broken
    /// upstream) becomes U+FFFD. The buffers move into the event, without a copy.
    fn take_event(&mut self) -> SseEvent {
        let data = String::from_utf8(std::mem::take(&mut self.data))
            .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned());
        let event = self.has_name.then(|| std::mem::take(&mut self.name));
        SseEvent { event, data }
    }

    /// The buffers of an event lent by [`take_event`](Self::take_event), for the next one.
    fn give_back(&mut self, event: SseEvent) {
        self.data = event.data.into_bytes();
        if let Some(name) = event.event {
            self.name = name;
        }
    }

    /// Bytes received but not yet part of a complete line.
    pub fn pending_bytes(&self) -> usize {
        self.partial.len()
    }

    /// Reads one line; `true` when it completed an event (a blank line after data).
    fn process_line(&mut self, line: &[u8]) -> bool {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return false; // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => {
                // A stream repeats a few names: the last one's text is kept, and made again only for another.
                if self.name.as_bytes() != value {
                    self.name.clear();
                    self.name.push_str(&String::from_utf8_lossy(value));
                }
                self.has_name = true;
            }
            _ => {}
        }
        false
    }

    /// A blank line: `true` when the event it ends carried data (an event without data is dropped).
    fn dispatch(&mut self) -> bool {
        if !self.has_data {
            self.clear_event();
            return false;
        }
        self.has_data = false;
        true
    }

    /// Empties the event lent out (or dropped), keeping its buffers.
    fn clear_event(&mut self) {
        self.data.clear();
        self.has_name = false;
    }
}

/// Where the line at the start of `rest` ends. The blank line after each event ends where it starts: found
/// without a search, which costs more than the rest of reading that line.
#[inline]
fn line_end(rest: &[u8]) -> Option<usize> {
    match rest.first()? {
        b'\n' | b'\r' => Some(0),
        _ => memchr::memchr2(b'\n', b'\r', rest),
    }
}

/// Appends `event: <name>\ndata: <data>\n\n` (Anthropic framing; the `event:` line is mandatory for its SDKs).
pub fn write_named_event(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

/// Appends `data: <data>\n\n` (OpenAI framing).
pub fn write_data_event(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(input: &[u8], cuts: &[usize]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        let mut last = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            parser.feed(&input[last..cut], |e| events.push(e.clone()));
            last = cut;
        }
        events.extend(parser.finish());
        events
    }

    const STREAM: &str = "event: message_start\ndata: {\"a\":\"héllo 你好\"}\n\n: keep-alive\n\r\nevent: ping\r\ndata: {}\r\n\r\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n";

    fn expected() -> Vec<SseEvent> {
        vec![
            SseEvent {
                event: Some("message_start".into()),
                data: "{\"a\":\"héllo 你好\"}".into(),
            },
            SseEvent {
                event: Some("ping".into()),
                data: "{}".into(),
            },
            SseEvent {
                event: None,
                data: "line1\nline2".into(),
            },
            SseEvent {
                event: None,
                data: "[DONE]".into(),
            },
        ]
    }

    #[test]
    fn whole_input() {
        assert_eq!(parse_in_pieces(STREAM.as_bytes(), &[]), expected());
    }

    #[test]
    fn every_single_split_point_gives_the_same_events() {
        let bytes = STREAM.as_bytes();
        for cut in 1..bytes.len() {
            assert_eq!(parse_in_pieces(bytes, &[cut]), expected(), "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte() {
        let bytes = STREAM.as_bytes();
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(parse_in_pieces(bytes, &cuts), expected());
    }

    fn raw_in_pieces(input: &[u8], cuts: &[usize]) -> Vec<(Option<String>, Vec<u8>)> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        let mut last = 0;
        for &cut in cuts.iter().chain(std::iter::once(&input.len())) {
            parser.feed_raw_until(&input[last..cut], &mut |e: RawEvent<'_>| {
                events.push((e.name.map(str::to_owned), e.data.to_vec()));
                ControlFlow::Continue(())
            });
            last = cut;
        }
        events
    }

    /// Reads events, and passes over each `data: s` event it is offered whole.
    #[derive(Default)]
    struct SkipS(Vec<(Option<String>, Vec<u8>)>);

    impl RawEvents for SkipS {
        fn event(&mut self, e: RawEvent<'_>) -> ControlFlow<()> {
            self.0.push((e.name.map(str::to_owned), e.data.to_vec()));
            ControlFlow::Continue(())
        }

        fn skip(&mut self, rest: &[u8]) -> Option<usize> {
            rest.starts_with(b"data: s\n\n").then_some(9)
        }
    }

    #[test]
    fn whole_events_are_passed_over_only_where_one_starts() {
        let input = b"data: s\n\ndata: a\n\nevent: x\ndata: s\n\ndata: s\n\n: c\ndata: s\n\ndata: s\r\n\r\ndata: b\n\n";
        let mut events = SkipS::default();
        let mut parser = SseParser::new();
        assert_eq!(
            parser.feed_raw_until(input, &mut events),
            Fed::Read {
                boundary: Some(input.len())
            }
        );
        let event = |name: Option<&str>, data: &[u8]| (name.map(str::to_owned), data.to_vec());
        let read = [
            event(None, b"a"),
            event(Some("x"), b"s"),
            event(None, b"s"),
            event(None, b"s"),
            event(None, b"b"),
        ];
        assert_eq!(events.0, read);
        // Split anywhere, an event cut in two is read instead: the others are the same.
        for cut in 1..input.len() {
            let (mut events, mut parser) = (SkipS::default(), SseParser::new());
            parser.feed_raw_until(&input[..cut], &mut events);
            parser.feed_raw_until(&input[cut..], &mut events);
            let others: Vec<_> = events.0.iter().filter(|(_, data)| data != b"s").cloned().collect();
            assert_eq!(others, [event(None, b"a"), event(None, b"b")], "cut at {cut}");
            assert!((5..=6).contains(&events.0.len()), "cut at {cut}");
        }
        // An event over the cap is not passed over: it is read, and found too large.
        let mut events = SkipS::default();
        let outcome = SseParser::with_max_event(8).feed_raw_until(b"data: a\n\ndata: s\n\n", &mut events);
        assert_eq!(outcome, Fed::Read { boundary: Some(18) });
        assert_eq!(events.0, [event(None, b"a"), event(None, b"s")]);
    }

    #[test]
    fn raw_events_are_the_text_events_as_bytes_at_every_split_point() {
        let bytes = STREAM.as_bytes();
        let text: Vec<_> = expected().into_iter().map(|e| (e.event, e.data.into_bytes())).collect();
        for cut in 1..bytes.len() {
            assert_eq!(raw_in_pieces(bytes, &[cut]), text, "cut at {cut}");
        }
    }

    /// Relayed bytes are the upstream's, broken or not; only a converted event is made text, with U+FFFD.
    #[test]
    fn invalid_utf8_is_kept_raw_and_replaced_in_text() {
        let input = b"data: a\xff\xc3\ndata: \xa9b\n\n";
        assert_eq!(raw_in_pieces(input, &[9]), [(None, b"a\xff\xc3\n\xa9b".to_vec())]);
        let events = parse_in_pieces(input, &[9]);
        assert_eq!(events[0].data, "a\u{fffd}\u{fffd}\n\u{fffd}b");
    }

    #[test]
    fn an_empty_chunk_between_cr_and_lf_changes_nothing() {
        let text = b"event: ab\r\ndata: x\r\n\r\n";
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for piece in [&text[..10], &b""[..], &text[10..]] {
            parser.feed(piece, |e| events.push(e.clone()));
        }
        assert_eq!(
            events,
            vec![SseEvent {
                event: Some("ab".into()),
                data: "x".into()
            }]
        );
    }

    #[test]
    fn bare_cr_line_endings() {
        let input = b"event: a\rdata: 1\r\rdata: 2\r\r";
        let events = parse_in_pieces(input, &[9, 10]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event.as_deref(), Some("a"));
        assert_eq!(events[1].data, "2");
    }

    #[test]
    fn unterminated_last_event_is_returned_by_finish() {
        let events = parse_in_pieces(b"data: {\"x\":1}", &[3]);
        assert_eq!(
            events,
            vec![SseEvent {
                event: None,
                data: "{\"x\":1}".into()
            }]
        );
    }

    #[test]
    fn event_without_data_is_not_dispatched() {
        assert!(parse_in_pieces(b"event: ping\n\n", &[]).is_empty());
    }

    /// The parser reuses one event's buffers for the next: nothing of an event carries over.
    #[test]
    fn nothing_carries_over_to_the_next_event() {
        let events = parse_in_pieces(
            b"event: a\ndata: long text\n\nevent: b\n\ndata: x\n\nevent: c\ndata: y\n\n",
            &[],
        );
        let seen: Vec<_> = events.iter().map(|e| (e.event.as_deref(), e.data.as_str())).collect();
        assert_eq!(seen, [(Some("a"), "long text"), (None, "x"), (Some("c"), "y")]);
    }

    #[test]
    fn an_event_over_the_cap_stops_the_parser_whatever_the_chunking() {
        let big = format!("data: {}\n", "a".repeat(100));
        for piece in [1, 7, 64, 1000] {
            let mut parser = SseParser::with_max_event(64);
            let mut events = Vec::new();
            let input = format!("data: ok\n\n{big}{big}\n");
            let mut outcome = Fed::Read { boundary: None };
            for chunk in input.as_bytes().chunks(piece) {
                outcome = parser.feed(chunk, |e| events.push(e.clone()));
                if matches!(outcome, Fed::TooLarge { .. }) {
                    break;
                }
            }
            assert!(matches!(outcome, Fed::TooLarge { .. }), "piece {piece}");
            assert_eq!(events.len(), 1, "the event before the big one is still delivered");
            assert!(parser.pending_bytes() == 0 && parser.finish().is_none());
            assert_eq!(
                parser.feed(b"data: x\n\n", |_| panic!("no events after")),
                Fed::TooLarge { boundary: None }
            );
        }
        // Many events of which none is over the cap are fine, however long the stream.
        let mut parser = SseParser::with_max_event(64);
        let mut count = 0;
        for _ in 0..1000 {
            assert!(matches!(
                parser.feed(b"data: 12345678901234567890\n\n", |_| count += 1),
                Fed::Read { .. }
            ));
        }
        assert_eq!(count, 1000);
    }

    #[test]
    fn boundaries_and_stopping() {
        let mut parser = SseParser::new();
        assert_eq!(
            parser.feed(b"data: a\n\ndata: b", |_| {}),
            Fed::Read { boundary: Some(9) }
        );
        assert_eq!(parser.feed(b"\n", |_| {}), Fed::Read { boundary: None });
        let mut seen = Vec::new();
        let outcome = parser.feed_until(b"\ndata: [DONE]\n\ndata: late\n\n", |e| {
            seen.push(e.data.clone());
            if e.is_done_marker() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(seen, ["b", "[DONE]"]);
        assert_eq!(outcome, Fed::Stopped { at: 15 });
    }

    #[test]
    fn writers_frame_events() {
        let mut out = Vec::new();
        write_named_event(&mut out, "ping", b"{\"type\":\"ping\"}");
        write_data_event(&mut out, b"[DONE]");
        assert_eq!(out, b"event: ping\ndata: {\"type\":\"ping\"}\n\ndata: [DONE]\n\n");
    }
}
