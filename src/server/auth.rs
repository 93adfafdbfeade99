//! The shared router token: accepted as `Authorization: Bearer <token>`, `x-api-key: <token>`, or the
//! Gemini clients' `x-goog-api-key: <token>` and `?key=<token>`, on every API route, compared in constant
//! time.

use http::HeaderMap;
use subtle::ConstantTimeEq;

/// The configured token. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl Token {
    pub fn new(token: &str) -> Self {
        Self(token.as_bytes().to_vec())
    }

    /// Whether the request carries the token in one of the accepted forms; `query` is the URI's query.
    pub fn accepts(&self, headers: &HeaderMap, query: Option<&str>) -> bool {
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let key_param = query.and_then(key_param);
        // Check all, without short-circuiting, so timing reveals nothing about which was tried.
        let by_bearer = bearer.is_some_and(|t| self.matches(t));
        let by_key = header("x-api-key").is_some_and(|t| self.matches(t));
        let by_goog_key = header("x-goog-api-key").is_some_and(|t| self.matches(t));
        let by_param = key_param.is_some_and(|t| self.matches(&t));
        by_bearer | by_key | by_goog_key | by_param
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
fn key_param(query: &str) -> Option<std::borrow::Cow<'_, str>> {
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
