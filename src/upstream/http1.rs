//! HTTP/1.1 to an upstream, written by hand: the request goes out in one write, the response head is parsed
//! by `httparse`, and the body comes out of the connection's own read buffer as `Bytes` slices, one frame per
//! chunk of a chunked body. hyper's client, which this replaces for HTTP/1.1 (HTTP/2 still goes through it),
//! cost a stream more than the router's own work on its events: it hands every frame through a channel
//! between its connection and the body, and reads each chunk-size line a byte at a time.
//!
//! What it does not do, because an upstream call never needs it: pipelining, upgrades, `Expect: 100-continue`
//! (a `1xx` head is skipped), and request bodies that are not already whole.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, Version, header};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// A response head larger than this is refused (providers send a few KiB).
const MAX_HEAD: usize = 256 * 1024;
/// Header lines in a response head.
const MAX_HEADERS: usize = 128;
/// A chunk-size line (with any extensions) or a trailer line.
const MAX_LINE: usize = 4096;
/// All trailer lines of a chunked body together.
const MAX_TRAILERS: usize = 64 * 1024;
/// Room made in the read buffer before each read: a stream's event, or a small answer whole.
const READ_SIZE: usize = 16 * 1024;
/// A request body up to this size is copied after its head, so the request goes out in one write.
pub const COPY_BODY: usize = 64 * 1024;

/// Why an exchange or its body failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    /// Before any byte of the response head arrived; on a reused connection the request is sent again.
    #[error("connection closed before the response began")]
    ClosedBeforeResponse,
    #[error("connection closed before the response was complete")]
    Incomplete,
    #[error("invalid response head: {0}")]
    InvalidHead(String),
    #[error("response head larger than {} KiB", MAX_HEAD / 1024)]
    HeadTooLarge,
    #[error("invalid chunked body: {0}")]
    InvalidChunk(&'static str),
}

/// One connection and what it has read but not yet handed out.
pub struct Connection<T> {
    io: T,
    read: BytesMut,
    /// How much of `read` is known to hold no end of a response head: a head that arrives in many small
    /// reads is parsed once it is whole, not again after every read.
    scanned: usize,
}

/// How the body of a response ends (RFC 9112 §6.3), and how far it has been read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`: the bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Neither length nor chunks: the body ends when the upstream closes the connection.
    UntilClose,
    Done,
}

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    Size,
    /// The bytes of the current chunk still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; the bytes read so far.
    Trailers(usize),
}

/// A response head, its body's framing, and whether the connection can serve another request after it.
pub struct Head {
    pub response: Response<()>,
    pub framing: Framing,
    pub reusable: bool,
}

/// Writes the head of a `POST`-like request: the request line, `host`, the caller's headers and the body's
/// `content-length`, which replaces any the caller set.
pub fn write_request_head(
    out: &mut Vec<u8>,
    method: &http::Method,
    target: &str,
    host: &HeaderValue,
    headers: &HeaderMap,
    body_len: usize,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if matches!(*name, header::HOST | header::CONTENT_LENGTH | header::TRANSFER_ENCODING) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

impl<T: AsyncRead + AsyncWrite + Unpin> Connection<T> {
    pub fn new(io: T) -> Self {
        Self {
            io,
            read: BytesMut::new(),
            scanned: 0,
        }
    }

    /// Whether an idle connection can take a request: nothing arrived on it while it idled, neither bytes
    /// (an upstream never speaks first) nor the upstream's close. It looks without waiting.
    pub fn is_open(&mut self) -> bool {
        if !self.read.is_empty() {
            return false;
        }
        let mut probe = [0u8; 1];
        let mut probe = ReadBuf::new(&mut probe);
        let mut cx = Context::from_waker(Waker::noop());
        matches!(Pin::new(&mut self.io).poll_read(&mut cx, &mut probe), Poll::Pending)
    }

    /// Sends a request (`head` from [`write_request_head`], then `body`) and reads the response head.
    pub async fn exchange(&mut self, head: &mut Vec<u8>, body: &[u8]) -> Result<Head, Error> {
        if let Err(error) = self.send(head, body).await {
            // An upstream may answer (a 413, a 401) and close before it has read the whole request: that
            // answer, when it arrived, says more than the failed write.
            return match std::future::poll_fn(|cx| self.poll_head(cx)).await {
                Ok(head) => Ok(Head {
                    reusable: false,
                    ..head
                }),
                Err(_) => Err(error),
            };
        }
        std::future::poll_fn(|cx| self.poll_head(cx)).await
    }

    async fn send(&mut self, head: &mut Vec<u8>, body: &[u8]) -> Result<(), Error> {
        if body.len() <= COPY_BODY {
            head.extend_from_slice(body);
            self.write(head).await?;
        } else {
            self.write(head).await?;
            self.write(body).await?;
        }
        self.io.flush().await.map_err(sent_error)
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.io.write_all(bytes).await.map_err(sent_error)
    }

    fn poll_head(&mut self, cx: &mut Context<'_>) -> Poll<Result<Head, Error>> {
        self.scanned = 0;
        loop {
            if self.head_may_be_whole() {
                let before = self.read.len();
                if let Some(head) = parse_head(&mut self.read)? {
                    return Poll::Ready(Ok(head));
                }
                if self.read.len() != before {
                    // Only an informational head was whole, and is gone: look again from the start.
                    self.scanned = 0;
                    continue;
                }
                self.scanned = before.saturating_sub(2);
            }
            if self.read.len() > MAX_HEAD {
                return Poll::Ready(Err(Error::HeadTooLarge));
            }
            let had = self.read.len();
            if ready!(self.poll_fill(cx))? == 0 {
                return Poll::Ready(Err(if had == 0 {
                    Error::ClosedBeforeResponse
                } else {
                    Error::Incomplete
                }));
            }
        }
    }

    /// Whether `read` holds a blank line (`\n\n` or `\n\r\n`), which ends a head; what was searched is not
    /// searched again.
    fn head_may_be_whole(&mut self) -> bool {
        let read = &self.read[..];
        let mut from = self.scanned;
        while let Some(at) = memchr::memchr(b'\n', &read[from..]) {
            let line_end = from + at;
            match &read[line_end + 1..] {
                [b'\n', ..] | [b'\r', b'\n', ..] => return true,
                // Not known yet: look at this line end again when more has arrived.
                [] | [b'\r'] => break,
                _ => from = line_end + 1,
            }
        }
        self.scanned = read.len().saturating_sub(2).max(self.scanned);
        false
    }

    /// The body's next frame: what is in the read buffer first, the socket only when that is used up.
    pub fn poll_body(&mut self, cx: &mut Context<'_>, framing: &mut Framing) -> Poll<Option<Result<Bytes, Error>>> {
        loop {
            match framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(0) => {
                    *framing = Framing::Done;
                    return Poll::Ready(None);
                }
                Framing::Length(left) if !self.read.is_empty() => {
                    let take = (*left).min(self.read.len() as u64);
                    *left -= take;
                    return Poll::Ready(Some(Ok(self.read.split_to(take as usize).freeze())));
                }
                Framing::UntilClose if !self.read.is_empty() => {
                    return Poll::Ready(Some(Ok(self.read.split().freeze())));
                }
                Framing::Chunked(chunk) => match decode_chunk(&mut self.read, chunk) {
                    Err(e) => return Poll::Ready(Some(Err(e))),
                    Ok(Step::Frame(data)) => return Poll::Ready(Some(Ok(data))),
                    Ok(Step::End) => {
                        *framing = Framing::Done;
                        return Poll::Ready(None);
                    }
                    Ok(Step::More) => {}
                },
                Framing::Length(_) | Framing::UntilClose => {}
            }
            match ready!(self.poll_fill(cx)) {
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(0) if *framing == Framing::UntilClose => {
                    *framing = Framing::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => return Poll::Ready(Some(Err(Error::Incomplete))),
                Ok(_) => {}
            }
        }
    }

    /// Reads what the socket has into the read buffer; `Ok(0)` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Error>> {
        if self.read.capacity() - self.read.len() < READ_SIZE / 4 {
            self.read.reserve(READ_SIZE);
        }
        let read = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.io),
            cx,
            &mut self.read
        ));
        Poll::Ready(read.map_err(Error::Io))
    }
}

/// A failed write: a reused connection the upstream closed meanwhile took nothing, so the request may go again.
fn sent_error(error: io::Error) -> Error {
    match error.kind() {
        io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            Error::ClosedBeforeResponse
        }
        _ => Error::Io(error),
    }
}

/// Parses a response head at the start of `read`, skipping informational (`1xx`) ones; `None` until it is
/// all there. The header values are slices of the head's bytes, not copies.
fn parse_head(read: &mut BytesMut) -> Result<Option<Head>, Error> {
    loop {
        // Left uninitialised: filling 128 empty headers cost more than parsing the few an answer has.
        let mut headers = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut []);
        let config = httparse::ParserConfig::default();
        let len = match config.parse_response_with_uninit_headers(&mut parsed, read, &mut headers) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if read.len() > MAX_HEAD => return Err(Error::HeadTooLarge),
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(Error::InvalidHead(e.to_string())),
        };
        if len > MAX_HEAD {
            return Err(Error::HeadTooLarge);
        }
        let code = parsed.code.unwrap_or_default();
        let status = StatusCode::from_u16(code).map_err(|_| Error::InvalidHead(format!("status {code}")))?;
        if status.is_informational() {
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(Error::InvalidHead("an upgrade nobody asked for".into()));
            }
            read.advance(len);
            continue;
        }
        let http10 = parsed.version == Some(0);
        // Where each name and value sits in the head, so the values can be slices of it once it is split off.
        let base = read.as_ptr() as usize;
        let spans: Vec<_> = parsed
            .headers
            .iter()
            .map(|h| {
                let at = h.value.as_ptr() as usize - base;
                (h.name, at..at + h.value.len())
            })
            .map(|(name, value)| HeaderName::from_bytes(name.as_bytes()).map(|name| (name, value)))
            .collect::<Result<_, _>>()
            .map_err(|_| Error::InvalidHead("a header name".into()))?;
        let bytes = read.split_to(len).freeze();

        let mut headers = HeaderMap::with_capacity(spans.len());
        let mut length: Option<u64> = None;
        let mut chunked = None;
        let mut close = http10;
        for (name, span) in spans {
            let value = HeaderValue::from_maybe_shared(bytes.slice(span))
                .map_err(|_| Error::InvalidHead(format!("the value of {name}")))?;
            match name {
                header::CONTENT_LENGTH => {
                    let n =
                        parse_length(value.as_bytes()).ok_or_else(|| Error::InvalidHead("content-length".into()))?;
                    if length.is_some_and(|m| m != n) {
                        return Err(Error::InvalidHead("two different content-lengths".into()));
                    }
                    length = Some(n);
                }
                // Only the last coding says how the body ends.
                header::TRANSFER_ENCODING => chunked = Some(last_token_is(value.as_bytes(), b"chunked")),
                header::CONNECTION => {
                    if has_token(value.as_bytes(), b"close") {
                        close = true;
                    } else if http10 && has_token(value.as_bytes(), b"keep-alive") {
                        close = false;
                    }
                }
                _ => {}
            }
            headers.append(name, value);
        }

        let framing = if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Done
        } else {
            match (chunked, length) {
                (Some(true), _) => Framing::Chunked(Chunk::Size),
                (Some(false), _) => Framing::UntilClose,
                (None, Some(n)) => Framing::Length(n),
                (None, None) => Framing::UntilClose,
            }
        };
        // A body that ends at the close ends the connection with it; a head with both a length and chunks
        // is a smuggling attempt or a broken upstream, so its connection is not trusted again either.
        let reusable = !close && framing != Framing::UntilClose && !(chunked.is_some() && length.is_some());
        let mut response = Response::new(());
        *response.status_mut() = status;
        *response.version_mut() = if http10 { Version::HTTP_10 } else { Version::HTTP_11 };
        *response.headers_mut() = headers;
        return Ok(Some(Head {
            response,
            framing,
            reusable,
        }));
    }
}

/// A `Content-Length` value: digits, or the same digits repeated in a list (`5, 5`).
fn parse_length(value: &[u8]) -> Option<u64> {
    let mut found = None;
    for item in value.split(|b| *b == b',') {
        let item = item.trim_ascii();
        if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let n = std::str::from_utf8(item).ok()?.parse::<u64>().ok()?;
        if found.is_some_and(|m| m != n) {
            return None;
        }
        found = Some(n);
    }
    found
}

fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|b| *b == b',').map(<[u8]>::trim_ascii)
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    tokens(value).any(|t| t.eq_ignore_ascii_case(token))
}

fn last_token_is(value: &[u8], token: &[u8]) -> bool {
    tokens(value).last().is_some_and(|t| t.eq_ignore_ascii_case(token))
}

/// What one step of the chunked decoder found.
enum Step {
    Frame(Bytes),
    End,
    /// Nothing more until more bytes are read.
    More,
}

/// Decodes what `read` holds of a chunked body, up to one frame of data.
fn decode_chunk(read: &mut BytesMut, state: &mut Chunk) -> Result<Step, Error> {
    loop {
        match state {
            Chunk::Size => {
                let Some(end) = memchr::memchr(b'\n', read) else {
                    return if read.len() > MAX_LINE {
                        Err(Error::InvalidChunk("chunk-size line too long"))
                    } else {
                        Ok(Step::More)
                    };
                };
                let size = parse_chunk_size(&read[..end])?;
                read.advance(end + 1);
                *state = if size == 0 {
                    Chunk::Trailers(0)
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(left) => {
                if read.is_empty() {
                    return Ok(Step::More);
                }
                let take = (*left).min(read.len() as u64);
                *left -= take;
                if *left > 0 {
                    return Ok(Step::Frame(read.split_to(take as usize).freeze()));
                }
                *state = Chunk::DataEnd;
                let (data, framing) = join_whole_chunks(read, take as usize);
                let frame = read.split_to(data).freeze();
                read.advance(framing);
                return Ok(Step::Frame(frame));
            }
            Chunk::DataEnd => match &read[..] {
                [b'\r', b'\n', ..] => {
                    read.advance(2);
                    *state = Chunk::Size;
                }
                // A bare LF, as some servers write.
                [b'\n', ..] => {
                    read.advance(1);
                    *state = Chunk::Size;
                }
                [] | [b'\r'] => return Ok(Step::More),
                _ => return Err(Error::InvalidChunk("chunk data longer than its size")),
            },
            Chunk::Trailers(seen) => {
                let Some(end) = memchr::memchr(b'\n', read) else {
                    return if *seen + read.len() > MAX_TRAILERS {
                        Err(Error::InvalidChunk("trailers too long"))
                    } else {
                        Ok(Step::More)
                    };
                };
                let empty = read[..end].trim_ascii().is_empty();
                read.advance(end + 1);
                if empty {
                    return Ok(Step::End);
                }
                *seen += end + 1;
                if *seen > MAX_TRAILERS {
                    return Err(Error::InvalidChunk("trailers too long"));
                }
            }
        }
    }
}

/// Joins the whole chunks already read behind a chunk's data (the first `data` bytes of `read`) to it, in
/// place: each one's data is moved up behind the data before it. A burst of events, one chunk each, then
/// goes up as one frame rather than one per event, and each frame costs every layer above a poll. Stops
/// at the last chunk, at one not all read yet, and at anything unusual, which [`decode_chunk`] then reads
/// as usual. Returns the joined data's length and how many framing bytes were left behind it; what
/// follows those is the last joined chunk's line end, where [`Chunk::DataEnd`] reads on.
fn join_whole_chunks(read: &mut [u8], mut data: usize) -> (usize, usize) {
    let mut framing = 0;
    loop {
        let rest = &read[data + framing..];
        let line_end = match rest {
            [b'\r', b'\n', ..] => 2,
            [b'\n', ..] => 1,
            _ => break,
        };
        let line = &rest[line_end..];
        let Some((size, size_line)) = plain_size_line(line).or_else(|| {
            let end = memchr::memchr(b'\n', line)?;
            Some((parse_chunk_size(&line[..end]).ok()?, end + 1))
        }) else {
            break;
        };
        let head = line_end + size_line;
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        if size == 0 || rest.len() - head < size {
            break;
        }
        let from = data + framing + head;
        read.copy_within(from..from + size, data);
        data += size;
        framing += head;
    }
    (data, framing)
}

/// A chunk-size line as servers write it, hex digits and a line end, read without searching for the line
/// end: the size and the line's length. Anything else (an extension, padding) is `None`, for the general
/// reading.
fn plain_size_line(line: &[u8]) -> Option<(u64, usize)> {
    let mut size: u64 = 0;
    for (at, &byte) in line.iter().enumerate().take(16) {
        let digit = match byte {
            b'\r' if at > 0 && line.get(at + 1) == Some(&b'\n') => return Some((size, at + 2)),
            b'\n' if at > 0 => return Some((size, at + 1)),
            _ => hex_digit(byte)?,
        };
        size = size << 4 | u64::from(digit);
    }
    None
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The hex size at the start of a chunk-size line; extensions (`;name=value`) are ignored.
fn parse_chunk_size(line: &[u8]) -> Result<u64, Error> {
    let mut size: u64 = 0;
    let mut digits = 0;
    for digit in line.iter().map_while(|&byte| hex_digit(byte)) {
        size = size << 4 | u64::from(digit);
        digits += 1;
    }
    let rest = line[digits..].trim_ascii_start();
    // Fifteen digits cannot overflow; no upstream sends chunks of a petabyte.
    if digits == 0 || digits > 15 || !(rest.is_empty() || rest.starts_with(b";") || rest == b"\r") {
        return Err(Error::InvalidChunk("bad chunk size"));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Reads a whole response from `wire` given in pieces of `step` bytes: its head and its body frames.
    async fn read_response(wire: &[u8], step: usize) -> Result<(Head, Vec<u8>, Framing), Error> {
        let (client, mut server) = tokio::io::duplex(64);
        let pieces: Vec<Vec<u8>> = wire.chunks(step).map(<[u8]>::to_vec).collect();
        let writer = tokio::spawn(async move {
            let mut request = vec![0u8; 1];
            let _ = server.read(&mut request).await;
            for piece in pieces {
                if server.write_all(&piece).await.is_err() {
                    return;
                }
                tokio::task::yield_now().await;
            }
        });
        let mut connection = Connection::new(client);
        let mut head_bytes = b"x".to_vec();
        let head = connection.exchange(&mut head_bytes, b"").await?;
        let mut framing = head.framing;
        let mut body = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| connection.poll_body(cx, &mut framing)).await {
            body.extend_from_slice(&frame?);
        }
        writer.abort();
        Ok((head, body, framing))
    }

    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
        5;ext=1\r\nhello\r\n1A\r\n, world, in many chunks!!\n\r\n0\r\nx-trailer: 1\r\n\r\n";

    #[tokio::test]
    async fn chunked_bodies_read_alike_in_pieces_of_any_size() {
        for step in [1, 2, 3, 7, 64, CHUNKED.len()] {
            let (head, body, framing) = read_response(CHUNKED, step).await.unwrap();
            assert_eq!(head.response.status(), 200);
            assert_eq!(head.response.headers()["content-type"], "text/event-stream");
            assert!(head.reusable);
            assert_eq!(body, b"hello, world, in many chunks!!\n", "step {step}");
            assert_eq!(framing, Framing::Done);
        }
    }

    /// Decodes `read` until it needs more bytes or the body ends: the frames, and how it stopped.
    fn decode_all(read: &[u8]) -> (Vec<String>, Result<Step, Error>) {
        let (mut read, mut state, mut frames) = (BytesMut::from(read), Chunk::Size, Vec::new());
        loop {
            match decode_chunk(&mut read, &mut state) {
                Ok(Step::Frame(data)) => frames.push(String::from_utf8(data.to_vec()).unwrap()),
                end => return (frames, end),
            }
        }
    }

    #[test]
    fn whole_chunks_read_together_come_up_as_one_frame() {
        // A bare LF ends the second chunk; the fourth is not all there yet.
        let (frames, end) = decode_all(b"5\r\nhello\r\n7;x=y\r\n, world\n1\r\n!\r\n3\r\nab");
        assert_eq!(frames, ["hello, world!", "ab"]);
        assert!(matches!(end, Ok(Step::More)));

        // Hex sizes of either case, and a size line ended by a bare LF.
        let (frames, end) = decode_all(b"2\r\nhi\r\nA\r\n0123456789\r\na\r\nabcdefghij\r\n3\n!!!\r\n0\r\n\r\n");
        assert_eq!(frames, ["hi0123456789abcdefghij!!!"]);
        assert!(matches!(end, Ok(Step::End)));

        let (frames, end) = decode_all(b"5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n");
        assert_eq!(frames, ["hello!"]);
        assert!(matches!(end, Ok(Step::End)));

        // What cannot be joined is read as it would be alone: here, an error after the good data.
        let (frames, end) = decode_all(b"5\r\nhello\r\nzz\r\nabc\r\n");
        assert_eq!(frames, ["hello"]);
        assert!(matches!(end, Err(Error::InvalidChunk(_))));
        let (frames, end) = decode_all(b"5\r\nhello!!\r\n1\r\n!\r\n");
        assert_eq!(frames, ["hello"]);
        assert!(matches!(end, Err(Error::InvalidChunk(_))));
    }

    #[tokio::test]
    async fn lengths_informational_heads_and_empty_answers() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many Requests\r\ncontent-length: 4\r\nretry-after: 3\r\n\r\nslow";
        let (head, body, _) = read_response(wire, 5).await.unwrap();
        assert_eq!(head.response.status(), 429);
        assert_eq!(head.response.headers()["retry-after"], "3");
        assert_eq!(body, b"slow");
        assert!(head.reusable);

        let (head, body, _) = read_response(b"HTTP/1.1 204 No Content\r\n\r\n", 3).await.unwrap();
        assert_eq!((head.response.status().as_u16(), body.len()), (204, 0));

        let wire = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok";
        let (head, body, _) = read_response(wire, 4).await.unwrap();
        assert!(!head.reusable);
        assert_eq!(body, b"ok");
    }

    #[tokio::test]
    async fn a_body_without_length_ends_with_the_connection() {
        let wire = b"HTTP/1.0 200 OK\r\n\r\nall of it";
        let (head, body, _) = read_response(wire, 4).await.unwrap();
        assert!(!head.reusable);
        assert_eq!(head.response.version(), Version::HTTP_10);
        assert_eq!(body, b"all of it");
    }

    #[tokio::test]
    async fn broken_responses_are_errors() {
        let cut = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort";
        assert!(matches!(read_response(cut, 4).await, Err(Error::Incomplete)));
        let cut_chunks = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhel";
        assert!(matches!(read_response(cut_chunks, 4).await, Err(Error::Incomplete)));
        let bad_size = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n";
        assert!(matches!(read_response(bad_size, 4).await, Err(Error::InvalidChunk(_))));
        let too_long = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhello\r\n0\r\n\r\n";
        assert!(matches!(read_response(too_long, 64).await, Err(Error::InvalidChunk(_))));
        let two_lengths = b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nok";
        assert!(matches!(
            read_response(two_lengths, 64).await,
            Err(Error::InvalidHead(_))
        ));
        assert!(matches!(read_response(b"", 1).await, Err(Error::ClosedBeforeResponse)));
        assert!(matches!(
            read_response(b"HTTP/1.1 200", 4).await,
            Err(Error::Incomplete)
        ));
        assert!(matches!(
            read_response(b"SMTP ready\r\n\r\n", 64).await,
            Err(Error::InvalidHead(_))
        ));
        let huge = [&b"HTTP/1.1 200 OK\r\nx: "[..], &vec![b'a'; MAX_HEAD + 1]].concat();
        assert!(matches!(read_response(&huge, 8192).await, Err(Error::HeadTooLarge)));
        let huge_whole = [&huge[..], b"\r\n\r\n"].concat();
        assert!(matches!(
            read_response(&huge_whole, 8192).await,
            Err(Error::HeadTooLarge)
        ));
    }

    /// An upstream that answers before it has read the request, and goes: its answer is what comes back.
    #[tokio::test]
    async fn an_answer_sent_before_the_request_was_read_is_still_read() {
        let (client, mut server) = tokio::io::duplex(1024);
        server
            .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 5\r\n\r\nlarge")
            .await
            .unwrap();
        drop(server);
        let mut connection = Connection::new(client);
        let mut head = b"POST / HTTP/1.1\r\n\r\n".to_vec();
        let head = connection.exchange(&mut head, &vec![b'x'; 1 << 20]).await.unwrap();
        assert_eq!(head.response.status(), 413);
        assert!(!head.reusable);
        let mut framing = head.framing;
        let body = std::future::poll_fn(|cx| connection.poll_body(cx, &mut framing)).await;
        assert_eq!(&body.unwrap().unwrap()[..], b"large");
    }

    #[test]
    fn the_request_head_has_host_and_length_and_no_framing_of_its_own() {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("Bearer k"));
        headers.insert("content-length", HeaderValue::from_static("999"));
        headers.insert("host", HeaderValue::from_static("elsewhere"));
        let mut out = Vec::new();
        let host = HeaderValue::from_static("api.example:8080");
        write_request_head(
            &mut out,
            &http::Method::POST,
            "/v1/messages?beta=true",
            &host,
            &headers,
            12,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /v1/messages?beta=true HTTP/1.1\r\nhost: api.example:8080\r\nauthorization: Bearer k\r\n\
             content-length: 12\r\n\r\n"
        );
    }
}
