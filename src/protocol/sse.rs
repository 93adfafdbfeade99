//! Server-sent events: an incremental parser that copes with events, lines and UTF-8 characters split across
//! arbitrary chunk boundaries, and the writer for the frames we emit.
//!
//! The parser works on bytes and only turns complete lines into text, so a multi-byte character split between
//! two network reads is never decoded half-way.

/// One dispatched SSE event. `event` is the `event:` field (absent for OpenAI streams), `data` the `data:` lines
/// joined with `\n`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

impl SseEvent {
    /// OpenAI's end-of-stream sentinel.
    pub fn is_done_marker(&self) -> bool {
        self.data == "[DONE]"
    }
}

/// Incremental SSE parser (the WHATWG event-stream grammar, minus `id`/`retry`, which no LLM API uses).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: String,
    has_data: bool,
    /// The previous chunk ended in `\r`: a `\n` at the start of the next one belongs to that line end.
    skip_lf: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one chunk of the byte stream; calls `on_event` for every event completed by it.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(SseEvent)) {
        if chunk.is_empty() {
            // Nothing to do, and `skip_lf` must survive until a chunk with bytes arrives.
            return;
        }
        let mut chunk = chunk;
        if self.skip_lf {
            self.skip_lf = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        if self.buf.is_empty() {
            // The common case, no partial line pending: lines are read straight from the chunk.
            let consumed = self.lines(chunk, &mut on_event);
            self.buf.extend_from_slice(&chunk[consumed..]);
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(chunk);
            let consumed = self.lines(&buf, &mut on_event);
            buf.drain(..consumed);
            self.buf = buf;
        }
    }

    /// Processes every complete line in `bytes`; returns how many bytes they took.
    fn lines(&mut self, bytes: &[u8], on_event: &mut impl FnMut(SseEvent)) -> usize {
        let mut start = 0;
        while let Some(offset) = memchr::memchr2(b'\n', b'\r', &bytes[start..]) {
            let end = start + offset;
            let mut next = end + 1;
            if bytes[end] == b'\r' {
                match bytes.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            if let Some(event) = self.process_line(&bytes[start..end]) {
                on_event(event);
            }
            start = next;
        }
        start
    }

    /// The stream ended: returns an event left without its closing blank line, if it carried data.
    pub fn finish(&mut self) -> Option<SseEvent> {
        let rest = std::mem::take(&mut self.buf);
        let mut event = None;
        if !rest.is_empty() {
            event = self.process_line(&rest);
        }
        event.or_else(|| self.dispatch())
    }

    /// Bytes received but not yet part of a complete line.
    pub fn pending_bytes(&self) -> usize {
        self.buf.len()
    }

    fn process_line(&mut self, line: &[u8]) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None; // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        // Valid UTF-8 is the norm; the lossy path (which re-scans) is only for broken upstreams.
        let value = match std::str::from_utf8(value) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value),
        };
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = self.event.take();
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        })
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
            parser.feed(&input[last..cut], |e| events.push(e));
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

    #[test]
    fn an_empty_chunk_between_cr_and_lf_changes_nothing() {
        let text = b"event: ab\r\ndata: x\r\n\r\n";
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for piece in [&text[..10], &b""[..], &text[10..]] {
            parser.feed(piece, |e| events.push(e));
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

    #[test]
    fn writers_frame_events() {
        let mut out = Vec::new();
        write_named_event(&mut out, "ping", b"{\"type\":\"ping\"}");
        write_data_event(&mut out, b"[DONE]");
        assert_eq!(out, b"event: ping\ndata: {\"type\":\"ping\"}\n\ndata: [DONE]\n\n");
    }
}
