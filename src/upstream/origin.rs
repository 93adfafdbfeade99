//! Keep-alive connections to one origin (scheme, host and port, through one connector). Each deployment holds
//! its origin, found once when the configuration snapshot is built, so a request checks a connection out of a
//! short list under a mutex: no pool key is built or hashed per request, and no task is spawned to hand a
//! connection back (hyper-util's legacy client did both, a fifth of the router's work on a small request).
//!
//! HTTP/1.1 connections serve one exchange at a time: the response body hands its connection back when it
//! has been read to its end; a body dropped earlier closes it. An HTTP/2 connection (by ALPN on https) is
//! shared by every request until it closes.
//!
//! An HTTP/1.1 connection is not spawned as a task of its own: it travels with its sender, and whoever uses
//! it drives it, in the request's task: the exchange while it waits for the response head, the body while
//! it is read (see [`Http1`]). A spawned connection would put two task hops on every request (the request
//! into the connection task, the response out) and one more on every body frame, with their wake-ups: most
//! of tokio's share of a request, and of a stream's events. An idle connection is polled by nothing, so what
//! happened to it meanwhile (the upstream closing it, most often) is read when it is checked out.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_util::client::legacy::connect::Connection;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;
use tower_service::Service;

use super::client::Connector;
use super::connector::BoxError;

/// How long an unused connection is kept (what the legacy client's pool did).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Idle HTTP/1.1 connections kept per origin; one more is closed when it comes back.
const MAX_IDLE: usize = 128;
/// Reused connections a request may find closed before it goes on a new one.
const MAX_UNSENT: u32 = 3;

type RequestBody = Full<Bytes>;
/// What the connector opens (TCP, perhaps through a proxy, perhaps TLS).
type Io = <Connector as Service<Uri>>::Response;

/// A deployment's endpoint in the two forms requests use: absolute (HTTP/2, and HTTP/1.1 through an HTTP
/// proxy) and origin-form (the path, for HTTP/1.1 straight to the host).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub absolute: Uri,
    origin_form: Uri,
}

impl Endpoint {
    pub fn new(absolute: Uri) -> Self {
        let path = absolute.path_and_query().map_or("/", |p| p.as_str());
        let origin_form = Uri::try_from(path).expect("a URI's path is a valid origin-form URI");
        Self { absolute, origin_form }
    }
}

/// Why no response came back.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened (TCP, proxy, TLS or the HTTP/2 handshake).
    Connect(BoxError),
    /// The connection failed during the exchange.
    Exchange(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect error: {e}"),
            SendError::Exchange(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(e) => Some(&**e),
            SendError::Exchange(e) => Some(e),
        }
    }
}

/// The connections to one origin.
pub struct Origin {
    connector: Connector,
    /// The `Host` header of HTTP/1.1 requests (HTTP/2 sends the authority itself).
    host: HeaderValue,
    /// `Proxy-Authorization` for requests that go to an HTTP proxy in absolute form (plain-http targets;
    /// https ones carry it on their CONNECT instead).
    proxy_authorization: Option<HeaderValue>,
    /// Where the endpoint was, for connecting.
    target: Uri,
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    /// Most recently used last: checkout takes the warmest connection.
    http1: Vec<(Http1, Instant)>,
    http2: Option<http2::SendRequest<RequestBody>>,
}

/// An HTTP/1.1 connection with its sender. Nothing polls `connection` but its current user: [`Http1::ready`]
/// at checkout, [`Http1::exchange`] until the response head, then [`UpstreamBody`] until the body's end.
/// While it idles, its socket holds the waker of the task that last used it (a task that may have ended:
/// waking it then does nothing); at most [`MAX_IDLE`] per origin, for at most [`IDLE_TIMEOUT`].
struct Http1 {
    sender: http1::SendRequest<RequestBody>,
    /// Boxed: it holds the connection's buffers, and is moved with every checkout, exchange and body.
    connection: Box<http1::Connection<Io, RequestBody>>,
    /// Requests on it go to an HTTP proxy, in absolute form.
    proxied: bool,
}

impl Http1 {
    /// Whether an idle connection can take a request. Polling it reads what arrived while it idled (an
    /// upstream's close ends it here) and lets it ask its sender for the next request.
    async fn ready(&mut self) -> bool {
        poll_fn(|cx| {
            if Pin::new(&mut *self.connection).poll(cx).is_ready() {
                return Poll::Ready(false);
            }
            self.sender.poll_ready(cx).map(|ready| ready.is_ok())
        })
        .await
    }

    /// Sends `request` and waits for the response head, driving the connection meanwhile (it writes the
    /// request and reads the answer). The connection comes back with the response, unless it ended with it
    /// (an upstream that closes after its answer): then what it read is already in the response's body.
    async fn exchange(
        mut self,
        request: Request<RequestBody>,
    ) -> (
        Result<Response<Incoming>, TrySendError<Request<RequestBody>>>,
        Option<Self>,
    ) {
        let mut response = pin!(self.sender.try_send_request(request));
        let mut open = true;
        let result = poll_fn(|cx| {
            // The connection first: what it reads now, the response future finds below without a wake-up.
            if open && Pin::new(&mut *self.connection).poll(cx).is_ready() {
                // Ended (closed or failed): it gave the request back, or the error or answer, to the response
                // future already. It must not be polled again.
                open = false;
            }
            response.as_mut().poll(cx)
        })
        .await;
        (result, open.then_some(self))
    }
}

enum Checkout {
    Http1(Http1),
    Http2(http2::SendRequest<RequestBody>),
}

impl Origin {
    pub(super) fn new(connector: Connector, proxy_authorization: Option<HeaderValue>, endpoint: &Uri) -> Self {
        let host = endpoint.host().unwrap_or_default();
        let host = match endpoint.port() {
            Some(port) if !is_default_port(endpoint, port.as_u16()) => format!("{host}:{port}"),
            _ => host.to_owned(),
        };
        Self {
            connector,
            host: HeaderValue::try_from(host).expect("a URI's authority is a valid header value"),
            proxy_authorization,
            target: endpoint.clone(),
            idle: Mutex::new(Idle::default()),
        }
    }

    /// Sends one request, on an idle connection when there is one. A request that a reused connection
    /// closed before taking is sent again on another (the upstream may close an idle connection at any
    /// moment), at most [`MAX_UNSENT`] times before a fresh connection is opened; a fresh connection's
    /// failure is final.
    pub async fn send(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        mut request: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, SendError> {
        let mut unsent = 0;
        loop {
            let idle = if unsent < MAX_UNSENT {
                self.checkout().await
            } else {
                None
            };
            let (connection, reused) = match idle {
                Some(connection) => (connection, true),
                // Boxed: the handshakes' futures are large, and every request's future would carry them.
                None => (Box::pin(self.connect()).await?, false),
            };
            let error = match connection {
                Checkout::Http1(connection) => {
                    let headers = request.headers_mut();
                    headers.insert(header::HOST, self.host.clone());
                    let uri = if connection.proxied {
                        if let Some(authorization) = &self.proxy_authorization {
                            headers.insert(header::PROXY_AUTHORIZATION, authorization.clone());
                        }
                        &endpoint.absolute
                    } else {
                        &endpoint.origin_form
                    };
                    *request.uri_mut() = uri.clone();
                    match connection.exchange(request).await {
                        (Ok(response), connection) => {
                            let back = connection.map(|connection| (connection, self.clone()));
                            return Ok(response.map(|inner| UpstreamBody(Source::Wire { inner, back })));
                        }
                        (Err(error), _) => error,
                    }
                }
                Checkout::Http2(mut sender) => {
                    *request.uri_mut() = endpoint.absolute.clone();
                    request.headers_mut().remove(header::HOST);
                    match sender.try_send_request(request).await {
                        Ok(response) => {
                            return Ok(response.map(|inner| UpstreamBody(Source::Wire { inner, back: None })));
                        }
                        Err(error) => error,
                    }
                }
            };
            let mut error = error;
            match error.take_message() {
                Some(back) if reused => {
                    request = back;
                    unsent += 1;
                }
                _ => return Err(SendError::Exchange(error.into_error())),
            }
        }
    }

    /// An idle connection that is still open and ready for a request.
    async fn checkout(&self) -> Option<Checkout> {
        loop {
            let found = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(sender) = &idle.http2 {
                    if !sender.is_closed() {
                        return Some(Checkout::Http2(sender.clone()));
                    }
                    idle.http2 = None;
                }
                let now = Instant::now();
                // Expired ones are the oldest, at the front.
                let expired = idle.http1.partition_point(|(_, since)| now - *since > IDLE_TIMEOUT);
                idle.http1.drain(..expired);
                idle.http1.pop()
            };
            let (mut connection, _) = found?;
            // Handed back when its last response ended, and not polled since.
            if connection.ready().await {
                return Some(Checkout::Http1(connection));
            }
        }
    }

    fn put_back(&self, connection: Http1) {
        if connection.sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.http1.len() < MAX_IDLE {
            idle.http1.push((connection, Instant::now()));
        }
    }

    async fn connect(&self) -> Result<Checkout, SendError> {
        let io = self
            .connector
            .clone()
            .call(self.target.clone())
            .await
            .map_err(SendError::Connect)?;
        let connected = io.connected();
        if connected.is_negotiated_h2() {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|e| SendError::Connect(e.into()))?;
            tokio::spawn(connection);
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).http2 = Some(sender.clone());
            return Ok(Checkout::Http2(sender));
        }
        let (sender, connection) = http1::handshake(io).await.map_err(|e| SendError::Connect(e.into()))?;
        Ok(Checkout::Http1(Http1 {
            sender,
            connection: Box::new(connection),
            proxied: connected.is_proxied(),
        }))
    }
}

fn is_default_port(uri: &Uri, port: u16) -> bool {
    port == if uri.scheme() == Some(&http::uri::Scheme::HTTPS) {
        443
    } else {
        80
    }
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// An upstream response body. Read to its end, it hands its HTTP/1.1 connection back to the origin.
pub struct UpstreamBody(Source);

enum Source {
    Wire {
        inner: Incoming,
        /// The HTTP/1.1 connection the body arrives on, driven by reading the body; none on HTTP/2, or once
        /// the connection has ended (what it read is in `inner`).
        back: Option<(Http1, Arc<Origin>)>,
    },
    /// An answer made by the router itself (the `mock` upstream), one frame per piece.
    Local(VecDeque<Bytes>),
}

impl UpstreamBody {
    /// A body of `frames`, read one by one as a stream's events would be.
    pub fn local(frames: VecDeque<Bytes>) -> Self {
        Self(Source::Local(frames))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let (inner, back) = match &mut self.0 {
            Source::Wire { inner, back } => (inner, back),
            Source::Local(frames) => return Poll::Ready(frames.pop_front().map(|data| Ok(Frame::data(data)))),
        };
        // What the connection has read already first (a small answer arrives with its head): polling the
        // connection costs a pass over its reads and writes. Only when nothing is there is it driven: it
        // reads the socket and hands `inner` what arrived; a `Pending` from both leaves it to wake this task.
        let mut frame = Pin::new(&mut *inner).poll_frame(cx);
        if frame.is_pending()
            && let Some((connection, _)) = back
        {
            if Pin::new(&mut *connection.connection).poll(cx).is_ready() {
                // Ended (the upstream's last answer on it, or broken): `inner` has what it read, or its error.
                *back = None;
            }
            frame = Pin::new(&mut *inner).poll_frame(cx);
        }
        let frame = ready!(frame);
        match &frame {
            None => {
                if let Some((connection, origin)) = back.take() {
                    origin.put_back(connection);
                }
            }
            // A broken body leaves its connection unusable.
            Some(Err(_)) => *back = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Source::Wire { inner, .. } => inner.is_end_stream(),
            Source::Local(frames) => frames.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Source::Wire { inner, .. } => inner.size_hint(),
            Source::Local(frames) => SizeHint::with_exact(frames.iter().map(|f| f.len() as u64).sum()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// An HTTP/1.1 upstream that answers every request on a connection with `ok`, and closes the connection
    /// after each answer when `close` is set. Returns its address, its accepted-connection count and the
    /// request heads it saw.
    async fn upstream(close: bool) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (accepted.clone(), heads.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        // One request: its head, then a two-byte body (`{}`).
                        let end = loop {
                            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                                break at + 4;
                            }
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        };
                        while buffer.len() < end + 2 {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                            }
                        }
                        seen.lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&buffer[..end]).into_owned());
                        buffer.drain(..end + 2);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(answer).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        (address, accepted, heads)
    }

    fn origin(address: &str) -> (Arc<Origin>, Endpoint) {
        let client = super::super::build_client(None, Duration::from_secs(5)).unwrap();
        let endpoint = Endpoint::new(format!("http://{address}/v1/chat/completions?x=1").parse().unwrap());
        (Arc::new(client.origin(&endpoint.absolute)), endpoint)
    }

    fn request() -> Request<RequestBody> {
        let mut request = Request::new(Full::new(Bytes::from_static(b"{}")));
        *request.method_mut() = http::Method::POST;
        request
    }

    async fn read(response: Response<UpstreamBody>) -> Bytes {
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_read_to_its_end_serves_the_next_request() {
        let (address, accepted, heads) = upstream(false).await;
        let (origin, endpoint) = origin(&address);
        for _ in 0..3 {
            assert_eq!(read(origin.send(&endpoint, request()).await.unwrap()).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        let heads = heads.lock().unwrap();
        assert_eq!(heads.len(), 3);
        let head = heads[0].to_ascii_lowercase();
        assert!(head.starts_with("post /v1/chat/completions?x=1 http/1.1\r\n"), "{head}");
        assert!(head.contains(&format!("host: {address}\r\n")), "{head}");
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let (address, accepted, _) = upstream(false).await;
        let (origin, endpoint) = origin(&address);
        drop(origin.send(&endpoint, request()).await.unwrap());
        assert_eq!(read(origin.send(&endpoint, request()).await.unwrap()).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced() {
        let (address, accepted, heads) = upstream(true).await;
        let (origin, endpoint) = origin(&address);
        for _ in 0..3 {
            assert_eq!(read(origin.send(&endpoint, request()).await.unwrap()).await, "ok");
            // Give the connection task time to see the close, and also race it: both must work.
            tokio::task::yield_now().await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert_eq!(
            heads.lock().unwrap().len(),
            3,
            "every request reached the upstream once"
        );
    }

    #[tokio::test]
    async fn connections_that_idled_too_long_are_not_used() {
        let (address, accepted, _) = upstream(false).await;
        let (origin, endpoint) = origin(&address);
        assert_eq!(read(origin.send(&endpoint, request()).await.unwrap()).await, "ok");
        origin.idle.lock().unwrap().http1[0].1 -= IDLE_TIMEOUT + Duration::from_secs(1);
        assert_eq!(read(origin.send(&endpoint, request()).await.unwrap()).await, "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(origin.idle.lock().unwrap().http1.len(), 1);
    }

    /// Nothing but the body's reader drives the connection: a body that arrives in pieces, after its head,
    /// is read through, and its connection serves the next request.
    #[tokio::test]
    async fn a_body_in_pieces_is_read_by_driving_its_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 1024];
            for _ in 0..2 {
                // The request's head and its two-byte body.
                while !buffer.windows(4).any(|w| w == b"\r\n\r\n") || buffer.len() < 6 {
                    let n = stream.read(&mut chunk).await.unwrap();
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let end = buffer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                buffer.drain(..end + 2);
                let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                stream.write_all(head).await.unwrap();
                for piece in [&b"2\r\nab\r\n"[..], b"2\r\ncd\r\n", b"0\r\n\r\n"] {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    stream.write_all(piece).await.unwrap();
                }
            }
        });
        let (origin, endpoint) = origin(&address);
        // The upstream takes one connection: a second would never be answered.
        let both = async {
            for _ in 0..2 {
                assert_eq!(read(origin.send(&endpoint, request()).await.unwrap()).await, "abcd");
            }
        };
        tokio::time::timeout(Duration::from_secs(5), both).await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_origin_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let (origin, endpoint) = origin(&address);
        let Err(error) = origin.send(&endpoint, request()).await else {
            panic!("nothing listens there")
        };
        assert!(matches!(error, SendError::Connect(_)), "{error}");
    }
}
