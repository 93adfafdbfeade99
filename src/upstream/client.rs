//! How upstream connections are made: rustls over TCP, directly or through the optional `--proxy`. A
//! [`Client`] opens the [`Origin`]s that pool the connections; requests are built directly as
//! `http::Request`s with precomputed `Uri`s, so nothing on the request path parses URLs.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::uri::Scheme;
use http::{HeaderValue, Uri};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use percent_encoding::percent_decode_str;

use super::ClientError;
use super::connector::{ProxyConnector, Route, Timed};
use super::origin::Origin;

pub(super) type Connector = Timed<hyper_rustls::HttpsConnector<ProxyConnector>>;

/// Opens connections with one connect timeout, behind the router's proxy.
#[derive(Clone)]
pub struct Client {
    connector: Connector,
    /// `Proxy-Authorization` for plain-http targets, which go to an HTTP proxy in absolute form (https targets
    /// carry it on their CONNECT instead).
    proxy_authorization: Option<HeaderValue>,
}

impl Client {
    /// A new, empty pool of connections to `endpoint`'s origin.
    pub fn origin(&self, endpoint: &Uri) -> Origin {
        let authorization = self
            .proxy_authorization
            .clone()
            .filter(|_| endpoint.scheme() == Some(&Scheme::HTTP));
        Origin::new(self.connector.clone(), authorization, endpoint)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

/// The TLS set-up every client shares: ring, and the system's trust store. Native roots rather than
/// `webpki-roots` because that is what the router trusted before (reqwest's platform verifier reads the
/// system store on Linux): private CAs added to the host (corporate proxies, self-hosted upstreams) keep
/// working, and `SSL_CERT_FILE`/`SSL_CERT_DIR` are honoured. Loaded once per process.
fn tls_config() -> &'static rustls::ClientConfig {
    static CONFIG: OnceLock<rustls::ClientConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!(errors = ?native.errors, "no trusted root certificates found; https upstreams will fail");
        }
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    })
}

/// Builds the client all deployments with this connect timeout share: TCP_NODELAY, HTTP/2 by ALPN on https,
/// HTTP/1.1 on http, rustls.
pub fn build_client(proxy: Option<&str>, connect_timeout: Duration) -> Result<Client, ClientError> {
    // Only `ring` is compiled in; installing it as the process default (for any other rustls user) twice is
    // harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let (route, proxy_authorization) = match proxy {
        None => (Route::Direct(http), None),
        Some(proxy) => proxy_route(&parse_proxy(proxy)?, http),
    };
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls_config().clone())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(ProxyConnector { route });
    let connector = Timed {
        inner: https,
        timeout: connect_timeout,
    };
    Ok(Client {
        connector,
        proxy_authorization,
    })
}

/// A deployment's endpoint as the request `Uri`, computed once per deployment. Credentials in the URL
/// (`https://user:pw@host/…`) become an `Authorization: Basic` value, sent when the request has no
/// `Authorization` of its own (as reqwest did), and are removed from the `Uri`.
pub fn endpoint_target(url: &url::Url) -> Result<(Uri, Option<HeaderValue>), http::uri::InvalidUri> {
    let mut url = url.clone();
    let mut authorization = None;
    if !url.username().is_empty() || url.password().is_some() {
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let user = decode(url.username());
        let password = url.password().map(decode).unwrap_or_default();
        authorization = Some(basic_authorization(&user, &password));
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    Ok((Uri::try_from(url.as_str())?, authorization))
}

fn basic_authorization(user: &str, password: &str) -> HeaderValue {
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut value = HeaderValue::from_str(&format!("Basic {token}")).expect("base64 is a valid header value");
    value.set_sensitive(true);
    value
}

/// Checks a proxy URL as `--proxy` takes it (the error shows it without credentials).
pub fn check_proxy(proxy: &str) -> Result<(), ClientError> {
    parse_proxy(proxy).map(drop)
}

/// A checked `--proxy`.
#[derive(Debug)]
pub(super) struct Proxy {
    kind: ProxyKind,
    /// `scheme://host:port` with the port made explicit.
    uri: Uri,
    credentials: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProxyKind {
    Http,
    Socks { remote_dns: bool },
}

pub(super) fn parse_proxy(proxy: &str) -> Result<Proxy, ClientError> {
    let bad = || ClientError::BadProxy(redact_userinfo(proxy));
    let url = url::Url::parse(proxy).map_err(|_| bad())?;
    let (kind, default_port) = match url.scheme() {
        "http" => (ProxyKind::Http, 80),
        "https" => (ProxyKind::Http, 443),
        "socks5" => (ProxyKind::Socks { remote_dns: false }, 1080),
        "socks5h" => (ProxyKind::Socks { remote_dns: true }, 1080),
        _ => return Err(bad()),
    };
    let host = match url.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => name.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        _ => return Err(bad()),
    };
    let port = url.port().unwrap_or(default_port);
    // The hop to the proxy is TLS only for `https://` proxies.
    let scheme = if url.scheme() == "https" { "https" } else { "http" };
    let uri = Uri::try_from(format!("{scheme}://{host}:{port}/")).map_err(|_| bad())?;
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let credentials =
        (!url.username().is_empty()).then(|| (decode(url.username()), decode(url.password().unwrap_or(""))));
    Ok(Proxy { kind, uri, credentials })
}

/// The connection route for a proxy, and the `Proxy-Authorization` value for absolute-form requests.
fn proxy_route(proxy: &Proxy, http: HttpConnector) -> (Route, Option<HeaderValue>) {
    match proxy.kind {
        ProxyKind::Socks { remote_dns } => {
            let mut socks = SocksV5::new(proxy.uri.clone(), http);
            if let Some((user, password)) = &proxy.credentials {
                socks = socks.with_auth(user.clone(), password.clone());
            }
            // Names are either resolved by the connector before the handshake (socks5) or sent as names
            // (socks5h); the SOCKS connector itself never resolves (it would block).
            let route = Route::Socks {
                socks: socks.local_dns(false),
                local_dns: !remote_dns,
            };
            (route, None)
        }
        ProxyKind::Http => {
            // HTTP/1.1 only to the proxy itself.
            let hop = HttpsConnectorBuilder::new()
                .with_tls_config(tls_config().clone())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            let authorization = proxy
                .credentials
                .as_ref()
                .map(|(user, password)| basic_authorization(user, password));
            let mut tunnel = Tunnel::new(proxy.uri.clone(), hop.clone());
            if let Some(value) = &authorization {
                tunnel = tunnel.with_auth(value.clone());
            }
            let route = Route::Http {
                hop,
                proxy: proxy.uri.clone(),
                tunnel,
            };
            (route, authorization)
        }
    }
}

/// A proxy URL may carry credentials; error messages show it without them.
pub(super) fn redact_userinfo(proxy: &str) -> String {
    match proxy.rsplit_once('@') {
        Some((before, after)) => match before.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***@{after}"),
            None => format!("***@{after}"),
        },
        None => proxy.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_forms() {
        let p = parse_proxy("socks5h://us%40er:p%3Aw@h:1").unwrap();
        assert_eq!(p.kind, ProxyKind::Socks { remote_dns: true });
        assert_eq!(p.uri, "http://h:1/");
        assert_eq!(p.credentials, Some(("us@er".into(), "p:w".into())));
        let p = parse_proxy("socks5://127.0.0.1").unwrap();
        assert_eq!(p.kind, ProxyKind::Socks { remote_dns: false });
        assert_eq!(p.uri, "http://127.0.0.1:1080/");
        assert_eq!(parse_proxy("https://p").unwrap().uri, "https://p:443/");
        assert_eq!(parse_proxy("http://[::1]:3128").unwrap().uri, "http://[::1]:3128/");
        let (_, auth) = proxy_route(&parse_proxy("http://u:pw@p:1").unwrap(), HttpConnector::new());
        assert_eq!(auth.unwrap(), "Basic dTpwdw==");
    }

    #[test]
    fn endpoint_targets() {
        let url = url::Url::parse("https://api.example.com/v1/chat/completions").unwrap();
        let (uri, auth) = endpoint_target(&url).unwrap();
        assert_eq!(uri, "https://api.example.com/v1/chat/completions");
        assert!(auth.is_none());
        let url = url::Url::parse("http://u:p%40w@[::1]:8080/v1/messages").unwrap();
        let (uri, auth) = endpoint_target(&url).unwrap();
        assert_eq!(uri, "http://[::1]:8080/v1/messages");
        assert_eq!(auth.unwrap(), "Basic dTpwQHc=");
    }

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    async fn request_head(stream: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        String::from_utf8(head).unwrap()
    }

    async fn post(client: &Client, uri: &str) -> u16 {
        let endpoint = super::super::origin::Endpoint::new(uri.parse().unwrap());
        let origin = Arc::new(client.origin(&endpoint.absolute));
        let body = bytes::Bytes::from_static(b"{}");
        origin
            .send(&endpoint, &http::HeaderMap::new(), body)
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    #[tokio::test]
    async fn http_proxy_gets_absolute_form_with_credentials() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = format!("http://us%65r:pw@{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let head = request_head(&mut stream).await;
            stream.write_all(ANSWER).await.unwrap();
            head
        });
        let client = build_client(Some(&proxy), Duration::from_secs(5)).unwrap();
        assert_eq!(post(&client, "http://upstream.invalid/v1/chat/completions").await, 200);
        let head = server.await.unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("post http://upstream.invalid/v1/chat/completions http/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("proxy-authorization: basic dxnlcjpwdw==\r\n"), "{head}");
        assert!(head.contains("host: upstream.invalid\r\n"), "{head}");
    }

    /// A SOCKS5 server that checks the credentials and answers one HTTP request; returns the address type
    /// and address bytes the client asked for.
    async fn socks5_once(listener: TcpListener) -> (u8, Vec<u8>) {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut greeting = [0u8; 2];
        s.read_exact(&mut greeting).await.unwrap();
        let mut methods = vec![0u8; greeting[1] as usize];
        s.read_exact(&mut methods).await.unwrap();
        assert!(methods.contains(&2), "user/password offered: {methods:?}");
        s.write_all(&[5, 2]).await.unwrap();
        let mut version_and_len = [0u8; 2];
        s.read_exact(&mut version_and_len).await.unwrap();
        let mut user = vec![0u8; version_and_len[1] as usize];
        s.read_exact(&mut user).await.unwrap();
        let mut len = [0u8; 1];
        s.read_exact(&mut len).await.unwrap();
        let mut password = vec![0u8; len[0] as usize];
        s.read_exact(&mut password).await.unwrap();
        assert_eq!((&user[..], &password[..]), (&b"u"[..], &b"p w"[..]));
        s.write_all(&[1, 0]).await.unwrap();
        let mut request = [0u8; 4];
        s.read_exact(&mut request).await.unwrap();
        let len = match request[3] {
            1 => 4,
            4 => 16,
            _ => {
                let mut len = [0u8; 1];
                s.read_exact(&mut len).await.unwrap();
                len[0] as usize
            }
        };
        let mut address = vec![0u8; len + 2];
        s.read_exact(&mut address).await.unwrap();
        s.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
        let head = request_head(&mut s).await;
        assert!(head.starts_with("POST /v1/messages HTTP/1.1\r\n"), "{head}");
        s.write_all(ANSWER).await.unwrap();
        (request[3], address)
    }

    #[tokio::test]
    async fn socks5h_sends_names_and_socks5_resolves_them() {
        for (scheme, host) in [("socks5h", "upstream.invalid"), ("socks5", "localhost")] {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let proxy = format!("{scheme}://u:p%20w@{}", listener.local_addr().unwrap());
            let server = tokio::spawn(socks5_once(listener));
            let client = build_client(Some(&proxy), Duration::from_secs(5)).unwrap();
            assert_eq!(post(&client, &format!("http://{host}/v1/messages")).await, 200);
            let (kind, address) = server.await.unwrap();
            if scheme == "socks5h" {
                assert_eq!(kind, 3);
                assert_eq!(&address[..address.len() - 2], host.as_bytes());
            } else {
                assert_ne!(kind, 3, "resolved before the handshake");
            }
            // The default port of an http target, not the connector's 443.
            assert_eq!(&address[address.len() - 2..], &80u16.to_be_bytes());
        }
    }
}
