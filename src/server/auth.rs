//! The shared router token: accepted as `Authorization: Bearer <token>` or `x-api-key: <token>` on every
//! `/v1` route, compared in constant time.

use http::HeaderMap;
use subtle::ConstantTimeEq;

/// The configured token. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl Token {
    pub fn new(token: &str) -> Self {
        Self(token.as_bytes().to_vec())
    }

    /// Whether the headers carry the token in either accepted form.
    pub fn accepts(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim);
        // Check both, without short-circuiting, so timing reveals nothing about which was tried.
        let by_bearer = bearer.is_some_and(|t| self.matches(t));
        let by_key = api_key.is_some_and(|t| self.matches(t));
        by_bearer | by_key
    }

    fn matches(&self, candidate: &str) -> bool {
        self.0.ct_eq(candidate.as_bytes()).into()
    }
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
        assert!(t.accepts(&headers(&[("authorization", "Bearer s3cret")])));
        assert!(t.accepts(&headers(&[("authorization", "bearer s3cret")])));
        assert!(t.accepts(&headers(&[("x-api-key", "s3cret")])));
        assert!(t.accepts(&headers(&[("authorization", "Bearer wrong"), ("x-api-key", "s3cret")])));
    }

    #[test]
    fn rejects_everything_else() {
        let t = Token::new("s3cret");
        assert!(!t.accepts(&headers(&[])));
        assert!(!t.accepts(&headers(&[("authorization", "Bearer s3cre")])));
        assert!(!t.accepts(&headers(&[("authorization", "Bearer s3cret2")])));
        assert!(!t.accepts(&headers(&[("authorization", "s3cret")])));
        assert!(!t.accepts(&headers(&[("authorization", "Basic s3cret")])));
        assert!(!t.accepts(&headers(&[("x-api-key", "")])));
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
