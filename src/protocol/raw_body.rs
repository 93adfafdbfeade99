//! Same-protocol forwarding without re-serialising the body.
//!
//! A request body is split into its top-level `(key, raw value)` pairs, borrowed from the input. Only `model`
//! and the deployment's `rewrite_body` keys are replaced; every other value is copied through as the exact
//! bytes the client sent, in the client's order. This is the cheapest correct way to honour "unknown fields
//! survive": no `serde_json::Value` tree is built and nothing is re-formatted.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The top level of a JSON object, borrowed from the request bytes.
#[derive(Debug)]
pub struct RawBody<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> RawBody<'a> {
    /// Parses `bytes`, which must hold one JSON object.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        crate::protocol::json::parse(bytes)
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The value of a top-level field decoded as `T`; `Ok(None)` when absent or `null`.
    pub fn decode<T: Deserialize<'a>>(&self, key: &str) -> Result<Option<T>, serde_json::Error> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<Option<T>>(raw.get()),
        }
    }

    /// Writes the object back with `overrides` applied: a key already present keeps its position with the new
    /// value, new keys are appended in the order given. Everything else is copied byte for byte.
    pub fn write_with(&self, overrides: &[(&str, &RawValue)]) -> Vec<u8> {
        let size = self
            .fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>()
            + overrides
                .iter()
                .map(|(k, v)| k.len() + v.get().len() + 4)
                .sum::<usize>()
            + 2;
        let mut out = Vec::with_capacity(size);
        out.push(b'{');
        let mut first = true;
        let mut push = |out: &mut Vec<u8>, key: &str, value: &RawValue| {
            if !first {
                out.push(b',');
            }
            first = false;
            crate::protocol::json::push_str(out, key);
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        };
        for (key, value) in &self.fields {
            // The last override for a key wins, as with repeated keys in JSON itself.
            let value = overrides
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map_or(*value, |(_, v)| *v);
            push(&mut out, key, value);
        }
        for (i, (key, value)) in overrides.iter().enumerate() {
            let later_duplicate = overrides[i + 1..].iter().any(|(k, _)| k == key);
            if !later_duplicate && !self.fields.iter().any(|(k, _)| k == key) {
                push(&mut out, key, value);
            }
        }
        out.push(b'}');
        out
    }
}

/// The first top-level `key` of a JSON object, when its value is a string without escapes, found without
/// validating the rest of the body: routing needs `model` before it knows which parse the body needs, and a
/// converted request is checked and read by its protocol's decoder anyway. `None` for anything unusual (not
/// an object, an escaped key before it, another kind of value, a broken structure): the caller then parses
/// the body in full, which gives the precise error.
pub fn peek_str<'a>(bytes: &'a [u8], key: &str) -> Option<&'a str> {
    let mut scan = Scan { bytes, at: 0 };
    scan.expect(b'{')?;
    loop {
        scan.expect(b'"')?;
        let (name, escaped) = scan.string()?;
        if escaped {
            return None;
        }
        scan.expect(b':')?;
        if name == key.as_bytes() {
            scan.expect(b'"')?;
            let (value, escaped) = scan.string()?;
            return if escaped { None } else { std::str::from_utf8(value).ok() };
        }
        scan.skip_value()?;
        scan.expect(b',')?;
    }
}

/// Calls `visit` with each top-level key (as written, escapes and all) and its value's raw text, without
/// validating the body: a cheap look at what a request asks for (see [`crate::protocol::features`]). Stops
/// quietly at anything malformed; the parse that follows reports it.
pub fn visit_top_level<'a>(bytes: &'a [u8], mut visit: impl FnMut(&'a [u8], &'a [u8])) {
    let mut scan = Scan { bytes, at: 0 };
    if scan.expect(b'{').is_none() {
        return;
    }
    loop {
        if scan.expect(b'"').is_none() {
            return;
        }
        let Some((name, _)) = scan.string() else { return };
        if scan.expect(b':').is_none() {
            return;
        }
        scan.skip_whitespace();
        let start = scan.at;
        if scan.skip_value().is_none() {
            return;
        }
        visit(name, &bytes[start..scan.at]);
        if scan.expect(b',').is_none() {
            return;
        }
    }
}

/// A cursor over JSON text that finds its structure without checking its tokens.
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn skip_whitespace(&mut self) {
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// After an opening quote: the string's raw bytes, and whether they hold escapes.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.at;
        let mut escaped = false;
        loop {
            let rest = &self.bytes[self.at..];
            let end = |b: &u8| *b == b'"' || *b == b'\\';
            // Keys and model names are short: a plain loop finds their end sooner than memchr starts up.
            let found = match rest.iter().take(32).position(end) {
                Some(at) => Some(at),
                None if rest.len() > 32 => memchr::memchr2(b'"', b'\\', &rest[32..]).map(|at| at + 32),
                None => None,
            };
            let at = self.at + found?;
            if self.bytes[at] == b'"' {
                self.at = at + 1;
                return Some((&self.bytes[start..at], escaped));
            }
            escaped = true;
            self.at = at + 2;
            if self.at > self.bytes.len() {
                return None;
            }
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        self.skip_whitespace();
        match *self.bytes.get(self.at)? {
            b'"' => {
                self.at += 1;
                self.string()?;
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    let byte = *self.bytes.get(self.at)?;
                    self.at += 1;
                    match byte {
                        b'"' => {
                            self.string()?;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                while self
                    .bytes
                    .get(self.at)
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                {
                    self.at += 1;
                }
            }
        }
        Some(())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawBody<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = RawBody<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    fields.push((key.0, value));
                }
                Ok(RawBody { fields })
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// An object key, borrowed unless it contained escapes. (`Cow<str>` alone always deserialises as owned.)
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn replaces_in_place_and_keeps_unknown_fields_byte_for_byte() {
        let input = br#"{"model":"group","messages":[{"role":"user","content":"hi \u00e9"}],"x_custom": {"a" : 1.50},"stream":true}"#;
        let body = RawBody::parse(input).unwrap();
        let model = raw(r#""qwen3-8b""#);
        let out = body.write_with(&[("model", &model)]);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"qwen3-8b","messages":[{"role":"user","content":"hi \u00e9"}],"x_custom":{"a" : 1.50},"stream":true}"#
        );
    }

    #[test]
    fn appends_new_keys_and_sends_null() {
        let body = RawBody::parse(br#"{"model":"g","metadata":{"user_id":"u"}}"#).unwrap();
        let (model, null, max) = (raw(r#""m""#), raw("null"), raw("8192"));
        let out = body.write_with(&[("model", &model), ("metadata", &null), ("max_tokens", &max)]);
        assert_eq!(out, br#"{"model":"m","metadata":null,"max_tokens":8192}"#);
    }

    #[test]
    fn later_override_wins() {
        let body = RawBody::parse(br#"{"model":"g"}"#).unwrap();
        let (a, b) = (raw(r#""a""#), raw(r#""b""#));
        assert_eq!(body.write_with(&[("model", &a), ("model", &b)]), br#"{"model":"b"}"#);
        assert_eq!(body.write_with(&[("x", &a), ("x", &b)]), br#"{"model":"g","x":"b"}"#);
    }

    #[test]
    fn escaped_keys_are_re_escaped() {
        let body = RawBody::parse(br#"{"we\"ird":1}"#).unwrap();
        assert_eq!(body.write_with(&[]), br#"{"we\"ird":1}"#);
    }

    #[test]
    fn decode_reads_typed_fields() {
        let body = RawBody::parse(br#"{"model":"g","stream":true,"n":null}"#).unwrap();
        assert_eq!(body.decode::<&str>("model").unwrap(), Some("g"));
        assert_eq!(body.decode::<bool>("stream").unwrap(), Some(true));
        assert_eq!(body.decode::<u32>("n").unwrap(), None);
        assert!(body.decode::<bool>("model").is_err());
    }

    #[test]
    fn peeking_finds_the_first_plain_top_level_string() {
        let body = br#" { "messages" : [{"role":"user","content":"a \"model\": [x] {"}], "n": -1.5e3, "t": true,
            "o": {"model": "inner"}, "model" : "g-1", "model": "second" } "#;
        assert_eq!(peek_str(body, "model"), Some("g-1"));
        assert_eq!(peek_str(br#"{"model":"g"}"#, "model"), Some("g"));
        assert_eq!(peek_str(br#"{"a":null,"model":"g"}"#, "model"), Some("g"));
        for unusual in [
            &br#"{"model":"g\u0031"}"#[..],
            br#"{"mod\u0065l":"a","model":"b"}"#,
            br#"{"model":1}"#,
            br#"{"messages":[]}"#,
            br#"{"messages":[}"#,
            br#"["model","g"]"#,
            br#"{"a":"unterminated"#,
            br#"{"a":"\"#,
            b"",
        ] {
            assert_eq!(peek_str(unusual, "model"), None, "{}", String::from_utf8_lossy(unusual));
        }
    }

    #[test]
    fn rejects_non_objects() {
        assert!(RawBody::parse(b"[1,2]").is_err());
        assert!(RawBody::parse(b"{\"a\":").is_err());
        assert!(RawBody::parse(b"").is_err());
    }
}
