//! Who a request is: the shared router token (`--token`) or one of the named `client_keys`, accepted as
//! `Authorization: Bearer <key>`, `x-api-key: <key>`, or the Gemini clients' `x-goog-api-key: <key>` and
//! `?key=<key>`, on every API route, compared in constant time. The token is the key named `default`.

use std::borrow::Cow;

use http::HeaderMap;
use subtle::ConstantTimeEq;

use crate::limits::{Caller, ClientKeys};

/// Why a request is not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No key, or one the router does not know.
    Unknown,
    /// A configured key past its `expires` (its name, which is not a secret).
    Expired(String),
}

/// The key a request carries: `Ok(None)` when the router is open (no token, no client keys), else the
/// matching key (the token's is `token_key`), or why not. A key's value is only ever hashed and compared.
pub fn identify(
    token: Option<&Token>,
    token_key: Option<&Caller>,
    keys: &ClientKeys,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<Caller>, Refused> {
    if token.is_none() && keys.is_empty() {
        return Ok(None);
    }
    let presented = presented(headers, query);
    // Every form is checked, without short-circuiting, so timing reveals nothing about which was tried.
    let by_token = token.is_some_and(|t| presented.iter().flatten().fold(false, |hit, c| hit | t.matches(c)));
    let mut found = None;
    if !keys.is_empty() {
        for candidate in presented.iter().flatten() {
            if let Some(key) = keys.find(&crate::config::sha256(candidate.as_bytes())) {
                found = Some(key);
            }
        }
    }
    if by_token {
        return Ok(token_key.cloned());
    }
    match found {
        Some(key) if key.expired() => Err(Refused::Expired(key.name().to_owned())),
        Some(key) => Ok(Some(key.clone())),
        None => Err(Refused::Unknown),
    }
}

/// The key in each accepted form, where present: bearer, `x-api-key`, `x-goog-api-key`, `?key=`.
fn presented<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> [Option<Cow<'a, str>>; 4] {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| Cow::Borrowed(token.trim()));
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| Cow::Borrowed(v.trim()))
    };
    [
        bearer,
        header("x-api-key"),
        header("x-goog-api-key"),
        query.and_then(key_param),
    ]
}

/// The configured token. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl Token {
    pub fn new(token: &str) -> Self {
        Self(token.as_bytes().to_vec())
    }

    /// Whether the request carries the token in one of the accepted forms; `query` is the URI's query.
    pub fn accepts(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        // Check all, without short-circuiting, so timing reveals nothing about which was tried.
        presented(headers, query)
            .iter()
            .flatten()
            .fold(false, |hit, candidate| hit | self.matches(candidate))
    }

    /// Whether `candidate` is the token, in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.ct_eq(candidate.as_bytes()).into()
    }

    /// The token's bytes, to derive the status page's session cookie from.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// The `key` query parameter, percent-decoded.
fn key_param(query: &str) -> Option<Cow<'_, str>> {
    let value = query.split('&').find_map(|pair| pair.strip_prefix("key="))?;
    percent_encoding::percent_decode_str(value).decode_utf8().ok()
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (http::HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn accepts_bearer_or_api_key() {
        let t = Token::new("s3cret");
        assert!(t.accepts(&headers(&[("authorization", "Bearer s3cret")]), None));
        assert!(t.accepts(&headers(&[("authorization", "bearer s3cret")]), None));
        assert!(t.accepts(&headers(&[("x-api-key", "s3cret")]), None));
        assert!(t.accepts(
            &headers(&[("authorization", "Bearer wrong"), ("x-api-key", "s3cret")]),
            None
        ));
    }

    #[test]
    fn accepts_the_gemini_clients_forms() {
        let t = Token::new("s3/cret");
        assert!(t.accepts(&headers(&[("x-goog-api-key", "s3/cret")]), None));
        assert!(t.accepts(&headers(&[]), Some("alt=sse&key=s3%2Fcret")));
        assert!(t.accepts(&headers(&[]), Some("key=s3/cret")));
        assert!(!t.accepts(&headers(&[]), Some("alt=sse&key=wrong")));
        assert!(!t.accepts(&headers(&[]), Some("apikey=s3/cret")));
        assert!(!t.accepts(&headers(&[("x-goog-api-key", "")]), Some("alt=sse")));
    }

    #[test]
    fn rejects_everything_else() {
        let t = Token::new("s3cret");
        assert!(!t.accepts(&headers(&[]), None));
        assert!(!t.accepts(&headers(&[("authorization", "Bearer s3cre")]), None));
        assert!(!t.accepts(&headers(&[("authorization", "Bearer s3cret2")]), None));
        assert!(!t.accepts(&headers(&[("authorization", "s3cret")]), None));
        assert!(!t.accepts(&headers(&[("authorization", "Basic s3cret")]), None));
        assert!(!t.accepts(&headers(&[("x-api-key", "")]), None));
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
