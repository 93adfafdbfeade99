//! Shared test servers: scriptable mock upstreams speaking both wire formats, the router under test, and
//! tiny HTTP/SOCKS5 proxies. Everything listens on 127.0.0.1 and stops when dropped.
#![allow(dead_code)] // each test file uses a different part of this module

pub mod prometheus;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A request as the mock upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request target as sent (absolute-form when it came through an HTTP proxy).
    pub uri: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("upstream body is JSON")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the mock answers.
#[derive(Debug, Clone)]
pub enum Reply {
    Json {
        status: u16,
        body: String,
        headers: Vec<(&'static str, String)>,
    },
    /// A raw body with a given content type (e.g. an HTML error page).
    Raw {
        status: u16,
        content_type: &'static str,
        body: String,
    },
    /// `text/event-stream`, written in the given pieces with `gap` between them (the first goes at once). With `then_break`, the
    /// connection is cut after the last piece instead of ending the body cleanly.
    Sse {
        pieces: Vec<Vec<u8>>,
        gap: Duration,
        then_break: bool,
    },
    /// Waits, then answers.
    Delayed(Duration, Box<Reply>),
}

impl Reply {
    pub fn json(body: serde_json::Value) -> Self {
        Reply::Json {
            status: 200,
            body: body.to_string(),
            headers: vec![],
        }
    }
    pub fn status(status: u16, body: serde_json::Value) -> Self {
        Reply::Json {
            status,
            body: body.to_string(),
            headers: vec![],
        }
    }
    /// An SSE body cut into `piece`-byte pieces (so events, lines and UTF-8 characters split across writes).
    pub fn sse(text: &str, piece: usize) -> Self {
        Reply::Sse {
            pieces: split(text.as_bytes(), piece),
            gap: Duration::from_millis(1),
            then_break: false,
        }
    }
}

pub fn split(bytes: &[u8], piece: usize) -> Vec<Vec<u8>> {
    bytes.chunks(piece.max(1)).map(<[u8]>::to_vec).collect()
}

type Responder = dyn Fn(&Recorded) -> Reply + Send + Sync;

/// A scriptable upstream.
pub struct MockUpstream {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// Requests being answered right now: a handler still running or a stream body not yet dropped. Drops
    /// to zero when the router abandons its upstream requests.
    pub in_flight: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

/// Counts one request in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl MockUpstream {
    pub async fn start(responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let responder: Arc<Responder> = Arc::new(responder);
        let seen = requests.clone();
        let counter = in_flight.clone();
        let app = Router::new().fallback(move |request: Request| {
            let responder = responder.clone();
            let seen = seen.clone();
            let guard = InFlight::new(&counter);
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    path: parts.uri.path().to_string(),
                    headers: parts.headers,
                    body,
                };
                let reply = responder(&recorded);
                seen.lock().unwrap().push(recorded);
                respond(reply, guard).await
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            requests,
            in_flight,
            task,
        }
    }

    /// Always answers the same.
    pub async fn fixed(reply: Reply) -> Self {
        Self::start(move |_| reply.clone()).await
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.recorded().pop().expect("the upstream was called")
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Waits until no request is in flight at the upstream; false if that takes longer than `limit`.
    pub async fn settles_within(&self, limit: Duration) -> bool {
        let started = std::time::Instant::now();
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            if started.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The response for `reply`; `guard` lives as long as the handler or, for streams, the body.
fn respond(reply: Reply, guard: InFlight) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>> {
    Box::pin(async move {
        match reply {
            Reply::Json { status, body, headers } => {
                let mut response = Response::new(Body::from(body));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                response
                    .headers_mut()
                    .insert("content-type", "application/json".parse().unwrap());
                for (name, value) in headers {
                    response.headers_mut().insert(name, value.parse().unwrap());
                }
                response
            }
            Reply::Raw {
                status,
                content_type,
                body,
            } => {
                let mut response = Response::new(Body::from(body));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                response
                    .headers_mut()
                    .insert("content-type", content_type.parse().unwrap());
                response
            }
            Reply::Sse {
                pieces,
                gap,
                then_break,
            } => {
                let stream = futures_util::stream::unfold(
                    (pieces.into_iter(), false, guard, true),
                    move |(mut it, ended, guard, first)| async move {
                        if ended {
                            return None;
                        }
                        match it.next() {
                            Some(piece) => {
                                if !first {
                                    tokio::time::sleep(gap).await;
                                }
                                Some((Ok::<_, std::io::Error>(Bytes::from(piece)), (it, false, guard, false)))
                            }
                            None if then_break => {
                                // Let the last piece leave before the connection is cut.
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                Some((Err(std::io::Error::other("cut")), (it, true, guard, false)))
                            }
                            None => None,
                        }
                    },
                );
                let mut response = Response::new(Body::from_stream(stream));
                response
                    .headers_mut()
                    .insert("content-type", "text/event-stream".parse().unwrap());
                response
            }
            Reply::Delayed(wait, reply) => {
                tokio::time::sleep(wait).await;
                respond(*reply, guard).await
            }
        }
    })
}

/// The router under test, started in-process on 127.0.0.1 with its config in a temporary directory.
pub struct TestRouter {
    pub base: String,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    running: Option<llm_router::Running>,
}

impl TestRouter {
    pub async fn start(config: &str) -> Self {
        Self::start_with(config, None, None).await
    }

    pub async fn start_with(config: &str, token: Option<&str>, proxy: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.yaml");
        std::fs::write(&config_path, config).unwrap();
        let running = llm_router::start(llm_router::Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            config: config_path.clone(),
            token: token.map(str::to_owned),
            proxy: proxy.map(str::to_owned),
        })
        .await
        .expect("router starts");
        Self {
            base: format!("http://{}", running.local_addr),
            dir,
            config_path,
            running: Some(running),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs `body` as JSON to `path` on the router.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        http().post(self.url(path)).json(body).send().await.unwrap()
    }

    /// GETs `path` on the router and reads the answer as JSON.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        http().get(self.url(path)).send().await.unwrap().json().await.unwrap()
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.unwrap();
        }
    }
}

/// A one-model config: `m1` in a group named `group`, with a 1 MiB request limit.
pub fn config_one(group: &str, api_type: &str, base: &str, extra: &str) -> String {
    format!(
        r#"
model_list:
  - model_name: m1
    llm_params:
      api_type: {api_type}
      model: upstream-model
      api_base: {base}
      api_key: sk-upstream-secret
{extra}
router_settings:
  strategy: roundrobin
  max_request_size_mb: 1
  model_groups:
    - name: {group}
      models:
        - name: m1
"#
    )
}

/// A plain HTTP client for talking to the router.
/// The text of `/metrics` at `url`, with `token` as the bearer when one is given.
pub async fn metrics_text(url: String, token: Option<&str>) -> String {
    let mut request = http().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().text().await.unwrap()
}

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// A test proxy on 127.0.0.1: one `session` per accepted connection, each recording the target it relays to.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub targets: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl TestProxy {
    async fn start<F, Fut>(session: F) -> Self
    where
        F: Fn(TcpStream, Arc<Mutex<Vec<String>>>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let seen = targets.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(session(client, seen.clone()));
            }
        });
        Self { addr, targets, task }
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP forward proxy for plain-http targets: reads one request in absolute form, records its target and
/// relays the bytes both ways.
pub struct HttpProxy;

impl HttpProxy {
    pub async fn start() -> TestProxy {
        TestProxy::start(|mut client, seen| async move {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n") {
                if client.read_exact(&mut byte).await.is_err() {
                    return;
                }
                head.push(byte[0]);
            }
            let line = String::from_utf8_lossy(&head).to_string();
            let target = line.split(' ').nth(1).unwrap_or("").to_string();
            seen.lock().unwrap().push(target.clone());
            let Ok(url) = url::Url::parse(&target) else {
                return;
            };
            let host = format!("{}:{}", url.host_str().unwrap(), url.port_or_known_default().unwrap());
            let Ok(mut upstream) = TcpStream::connect(host).await else {
                return;
            };
            // Rewrite the request line to origin form and relay everything else untouched.
            let origin = line.replacen(&target, &url[url::Position::BeforePath..], 1);
            if upstream.write_all(origin.as_bytes()).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        })
        .await
    }
}

/// A minimal SOCKS5 proxy (no auth, CONNECT only) that records the targets it connected to.
pub struct Socks5Proxy;

impl Socks5Proxy {
    pub async fn start() -> TestProxy {
        TestProxy::start(|mut client, seen| async move {
            let _ = socks5_session(&mut client, &seen).await;
        })
        .await
    }
}

async fn socks5_session(client: &mut TcpStream, seen: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await?;
    let mut methods = vec![0u8; greeting[1] as usize];
    client.read_exact(&mut methods).await?;
    client.write_all(&[5, 0]).await?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; len[0] as usize];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).to_string()
        }
        _ => return Err(std::io::Error::other("unsupported address type")),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let target = format!("{host}:{}", u16::from_be_bytes(port));
    seen.lock().unwrap().push(target.clone());
    let mut upstream = TcpStream::connect(&target).await?;
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(client, &mut upstream).await?;
    Ok(())
}

/// Reads a streamed response, returning each body chunk with the time it arrived.
pub async fn read_chunks(response: reqwest::Response) -> Vec<(std::time::Instant, Bytes)> {
    let mut chunks = Vec::new();
    let mut stream = response.bytes_stream();
    use futures_util::StreamExt;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => chunks.push((std::time::Instant::now(), chunk)),
            Err(_) => break,
        }
    }
    chunks
}

pub fn concat(chunks: &[(std::time::Instant, Bytes)]) -> String {
    let bytes: Vec<u8> = chunks.iter().flat_map(|(_, c)| c.to_vec()).collect();
    String::from_utf8(bytes).expect("stream is UTF-8")
}

/// One request relayed by a [`RecordingProxy`], with the status its target answered (502 when the target
/// could not be reached).
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: Recorded,
    pub status: u16,
}

/// A reverse proxy in front of another local server (typically the router): records every request exactly as
/// the client sent it, with the status of the answer, and relays the answer, streams included, as it arrives.
pub struct RecordingProxy {
    pub addr: SocketAddr,
    pub exchanges: Arc<Mutex<Vec<Exchange>>>,
    task: JoinHandle<()>,
}

/// Headers that belong to one connection, not to the message, and are not relayed.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
];

impl RecordingProxy {
    /// Relays to `target` (`http://host:port`, no trailing slash).
    pub async fn start(target: &str) -> Self {
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let seen = exchanges.clone();
        let target = target.trim_end_matches('/').to_owned();
        let client = http();
        let app = Router::new().fallback(move |request: Request| {
            let seen = seen.clone();
            let target = target.clone();
            let client = client.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
                let mut headers = parts.headers.clone();
                for name in HOP_BY_HOP {
                    headers.remove(*name);
                }
                let sent = client
                    .request(parts.method.clone(), format!("{target}{path_and_query}"))
                    .headers(headers)
                    .body(body.clone())
                    .send()
                    .await;
                let recorded = Recorded {
                    method: parts.method.to_string(),
                    uri: parts.uri.to_string(),
                    path: parts.uri.path().to_string(),
                    headers: parts.headers,
                    body,
                };
                let status = sent.as_ref().map_or(502, |r| r.status().as_u16());
                seen.lock().unwrap().push(Exchange {
                    request: recorded,
                    status,
                });
                match sent {
                    Ok(answer) => {
                        let mut response = Response::builder().status(answer.status().as_u16());
                        for (name, value) in answer.headers() {
                            if !HOP_BY_HOP.contains(&name.as_str()) {
                                response = response.header(name.as_str(), value.as_bytes());
                            }
                        }
                        response.body(Body::from_stream(answer.bytes_stream())).unwrap()
                    }
                    Err(e) => {
                        let mut response = Response::new(Body::from(format!("proxy: {e}")));
                        *response.status_mut() = StatusCode::BAD_GATEWAY;
                        response
                    }
                }
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, exchanges, task }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap().clone()
    }

    /// Asserts that `client` reached the router and that every request it made was answered 200, showing
    /// the first failing request's body and `report()` otherwise; returns the exchanges.
    pub fn assert_all_answered_200(&self, client: &str, report: impl Fn() -> String) -> Vec<Exchange> {
        let exchanges = self.exchanges();
        assert!(!exchanges.is_empty(), "{client} never reached the router");
        for e in &exchanges {
            assert_eq!(
                e.status,
                200,
                "{} {} answered {}:\n{}{}",
                e.request.method,
                e.request.uri,
                e.status,
                String::from_utf8_lossy(&e.request.body)
                    .chars()
                    .take(2000)
                    .collect::<String>(),
                report()
            );
        }
        exchanges
    }
}

/// Every part of every turn of a Gemini request body.
pub fn gemini_parts(body: &serde_json::Value) -> Vec<serde_json::Value> {
    body["contents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["parts"].as_array())
        .flatten()
        .cloned()
        .collect()
}

/// The turns of a Gemini request body, and the index of the model turn that replays a function call.
pub fn gemini_replayed_call(body: &serde_json::Value) -> (&Vec<serde_json::Value>, usize) {
    let contents = body["contents"].as_array().unwrap();
    let at = contents
        .iter()
        .position(|c| {
            c["parts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p.get("functionCall").is_some())
        })
        .expect("the call is replayed");
    assert_eq!(contents[at]["role"], "model");
    (contents, at)
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One step of a [`RawUpstream`]'s answer, written straight to the socket.
#[derive(Debug, Clone)]
pub enum Step {
    Write(Vec<u8>),
    Sleep(Duration),
    /// `total` bytes of `piece` repeated, written as fast as the router reads them, in HTTP chunks.
    Flood {
        piece: Vec<u8>,
        total: usize,
    },
    /// Keep the connection open, doing nothing, until the router closes it (at most 30 s).
    Hold,
}

/// An upstream that misbehaves at the byte level: it reads one request per connection, then plays its
/// script (stalled bodies, endless events, connections held open after the last event).
pub struct RawUpstream {
    pub addr: SocketAddr,
    /// Requests received.
    pub requests: Arc<AtomicUsize>,
    /// Connections the router closed while a `Hold` step waited, with how long after the hold began.
    pub closed_by_router: Arc<Mutex<Vec<Duration>>>,
    task: JoinHandle<()>,
}

impl RawUpstream {
    pub async fn start(script: Vec<Step>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let closed_by_router = Arc::new(Mutex::new(Vec::new()));
        let (seen, closed) = (requests.clone(), closed_by_router.clone());
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (script, seen, closed) = (script.clone(), seen.clone(), closed.clone());
                tokio::spawn(async move {
                    let _ = play(socket, &script, &seen, &closed).await;
                });
            }
        });
        Self {
            addr,
            requests,
            closed_by_router,
            task,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn play(
    mut socket: TcpStream,
    script: &[Step],
    seen: &AtomicUsize,
    closed: &Mutex<Vec<Duration>>,
) -> std::io::Result<()> {
    read_request(&mut socket).await?;
    seen.fetch_add(1, Ordering::SeqCst);
    for step in script {
        match step {
            Step::Write(bytes) => socket.write_all(bytes).await?,
            Step::Sleep(wait) => tokio::time::sleep(*wait).await,
            Step::Flood { piece, total } => {
                let mut sent = 0;
                while sent < *total {
                    socket.write_all(&http_chunk(piece)).await?;
                    sent += piece.len();
                }
            }
            Step::Hold => {
                let held = std::time::Instant::now();
                let mut buf = [0u8; 1024];
                let read = tokio::time::timeout(Duration::from_secs(30), async {
                    loop {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                if read.is_ok() {
                    closed.lock().unwrap().push(held.elapsed());
                }
            }
        }
    }
    Ok(())
}

/// Reads one request's head and its `Content-Length` body.
async fn read_request(socket: &mut TcpStream) -> std::io::Result<()> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::Error::other("closed before the request"));
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Ok(())
}

/// A response head: status line and the given header lines (each ending in `\r\n`).
pub fn http_head(status: u16, headers: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} X\r\n{headers}\r\n").into_bytes()
}

/// The head of a chunked `text/event-stream` answer.
pub fn sse_head() -> Vec<u8> {
    http_head(200, "content-type: text/event-stream\r\ntransfer-encoding: chunked\r\n")
}

/// One HTTP/1.1 chunk.
pub fn http_chunk(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

/// `text` as chunked writes of `piece` bytes, so events and lines split across reads.
pub fn sse_chunks(text: &str, piece: usize) -> Vec<Step> {
    split(text.as_bytes(), piece)
        .into_iter()
        .map(|p| Step::Write(http_chunk(&p)))
        .collect()
}

/// A short OpenAI chat stream: role, one text delta (with a multi-byte character), finish, `[DONE]`.
pub const OAI_STREAM: &str = concat!(
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok ✓\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
    "data: [DONE]\n\n"
);

/// The Anthropic stream of the same answer, ending at `message_stop`.
pub const ANT_STREAM: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok ✓\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
);

/// A non-streamed OpenAI answer whose model and text are `from`, to tell deployments apart.
pub fn oai_answer(from: &str) -> serde_json::Value {
    serde_json::json!({"id":"chatcmpl-1","object":"chat.completion","created":1,"model":from,
           "choices":[{"index":0,"message":{"role":"assistant","content":from},"finish_reason":"stop"}],
           "usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})
}

/// The real binary, started on 127.0.0.1 with a free port; its stderr is collected line by line. Killed when
/// dropped.
pub struct RouterProcess {
    child: std::process::Child,
    pub base: String,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl RouterProcess {
    /// Starts `llm-router -c <config> -i 127.0.0.1 -p 0` with `args` after, and waits for its listening line.
    pub fn start(config: &std::path::Path, args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_llm-router"));
        command.env_remove("RUST_LOG");
        for (key, _) in std::env::vars() {
            if key.starts_with("LLM_ROUTER_") {
                command.env_remove(key);
            }
        }
        command
            .args(["-c", config.to_str().unwrap(), "-i", "127.0.0.1", "-p", "0"])
            .args(args)
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        let started = std::time::Instant::now();
        let addr = loop {
            first.clear();
            assert!(
                stderr.read_line(&mut first).unwrap() > 0,
                "the router exited before listening"
            );
            if let Some(rest) = first.split("listening on http://").nth(1) {
                break rest.split([' ', '"']).next().unwrap().to_owned();
            }
            assert!(started.elapsed() < Duration::from_secs(10), "no listening line");
        };
        let lines = Arc::new(Mutex::new(vec![first.trim_end().to_owned()]));
        let collected = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                collected.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            base: format!("http://{addr}"),
            lines,
            reader: Some(reader),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends `signal` (a name `kill` knows, e.g. `HUP`) to the router.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Every line the router wrote to stderr so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// SIGTERM, a clean exit, and every line the router wrote to stderr.
    pub fn stop(mut self) -> Vec<String> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "{exit:?}");
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `redis-server` of its own on a free 127.0.0.1 port, without persistence, stopped when dropped.
pub struct RedisServer {
    child: Option<std::process::Child>,
    pub port: u16,
}

impl RedisServer {
    /// Starts one, or `None` (the test skips) when `redis-server` is not installed; with
    /// `LLM_ROUTER_REQUIRE_REDIS=1` (`scripts/test.sh` sets it once it is installed) a missing one fails.
    pub fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let spawned = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) => {
                assert!(
                    std::env::var("LLM_ROUTER_REQUIRE_REDIS").as_deref() != Ok("1"),
                    "redis-server is required (LLM_ROUTER_REQUIRE_REDIS=1) but cannot be started: {error}"
                );
                eprintln!("redis-server not found ({error}); skipping");
                return None;
            }
        };
        let server = Self {
            child: Some(child),
            port,
        };
        let started = std::time::Instant::now();
        while !server.answers_ping() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn answers_ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = [0; 7];
        stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
    }

    /// Kills the server (as a crash or a network cut would look to the routers).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
