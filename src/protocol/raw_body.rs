//! Same-protocol forwarding without re-serialising the body.
//!
//! A request body is split into its top-level `(key, raw value)` pairs, borrowed from the input. Only `model`
//! and the deployment's `rewrite_body` keys are replaced; every other value is copied through as the exact
//! bytes the client sent, in the client's order. This is the cheapest correct way to honour "unknown fields
//! survive": no `serde_json::Value` tree is built and nothing is re-formatted.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The top level of a JSON object, borrowed from the request bytes.
#[derive(Debug)]
pub struct RawBody<'a> {
    /// The whole body, which each value's text is a slice of.
    text: &'a [u8],
    /// Each key, and its value's JSON text.
    fields: Vec<(Cow<'a, str>, &'a str)>,
}

impl<'a> RawBody<'a> {
    /// Parses `bytes`, which must hold one JSON object. The strict scan below (`Members`) takes a body
    /// whose top-level keys are plain, as clients write them, at a fraction of serde's cost; serde reads the
    /// rest, and gives the error when the body is not JSON.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        match std::str::from_utf8(bytes).ok().and_then(Self::read) {
            Some(body) => Ok(body),
            None => crate::protocol::json::parse(bytes).map(|Fields(fields)| Self { text: bytes, fields }),
        }
    }

    fn read(text: &'a str) -> Option<Self> {
        let mut members = Members::new(text.as_bytes());
        let mut fields = Vec::with_capacity(8);
        for member in members.by_ref() {
            if member.escaped {
                return None;
            }
            // Spans between ASCII punctuation, so at character boundaries.
            fields.push((Cow::Borrowed(&text[member.key]), &text[member.value]));
        }
        members.complete.then_some(())?;
        members.scan.skip_whitespace();
        (members.scan.at == text.len()).then_some(Self {
            text: text.as_bytes(),
            fields,
        })
    }

    /// The JSON text of a top-level field's value.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The value of a top-level field decoded as `T`; `Ok(None)` when absent or `null`.
    pub fn decode<T: Deserialize<'a>>(&self, key: &str) -> Result<Option<T>, serde_json::Error> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<Option<T>>(raw),
        }
    }

    /// Writes the object back with `overrides` applied: a key already present keeps its position with the new
    /// value (every time it appears; the last override for a key wins, as with repeated keys in JSON itself),
    /// new keys are appended in the order given. Every other byte is the client's, whitespace included: the
    /// text around each replaced value is copied in one piece, not rewritten field by field.
    pub fn write_with(&self, overrides: &[(&str, &RawValue)]) -> Vec<u8> {
        let text = self.text;
        let added = overrides
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>();
        let mut out = Vec::with_capacity(text.len() + added);
        // Both parses borrow each value from `text`.
        let start_of = |value: &str| value.as_ptr() as usize - text.as_ptr() as usize;
        let mut copied = 0;
        if !overrides.is_empty() {
            for (key, value) in &self.fields {
                if let Some((_, new)) = overrides.iter().rev().find(|(k, _)| k == key) {
                    let start = start_of(value);
                    out.extend_from_slice(&text[copied..start]);
                    out.extend_from_slice(new.get().as_bytes());
                    copied = start + value.len();
                }
            }
        }
        // New keys go after the last member, or after the opening brace of an empty object.
        let end = match self.fields.last() {
            Some((_, value)) => start_of(value) + value.len(),
            None => memchr::memchr(b'{', text).map_or(0, |at| at + 1),
        };
        out.extend_from_slice(&text[copied..end]);
        let mut first = self.fields.is_empty();
        for (i, (key, value)) in overrides.iter().enumerate() {
            let later_duplicate = overrides[i + 1..].iter().any(|(k, _)| k == key);
            if !later_duplicate && !self.fields.iter().any(|(k, _)| k == key) {
                if !first {
                    out.push(b',');
                }
                first = false;
                crate::protocol::json::push_str(&mut out, key);
                out.push(b':');
                out.extend_from_slice(value.get().as_bytes());
            }
        }
        out.extend_from_slice(&text[end..]);
        out
    }
}

/// The first top-level `key` of a JSON object, when its value is a string without escapes, found without
/// reading the rest of the body: routing needs `model` before it knows which parse the body needs, and a
/// converted request is checked and read by its protocol's decoder anyway. `None` for anything unusual (not
/// an object, an escaped key before it, another kind of value, a broken structure): the caller then parses
/// the body in full, which gives the precise error.
pub fn peek_str<'a>(bytes: &'a [u8], key: &str) -> Option<&'a str> {
    for member in Members::new(bytes) {
        if member.escaped {
            return None;
        }
        if &bytes[member.key.clone()] == key.as_bytes() {
            let text = bytes[member.value].strip_prefix(b"\"")?.strip_suffix(b"\"")?;
            // The scan passed the string whole, so a backslash is the only byte it can stop at; a model name
            // is short, and this word-at-a-time look costs less there than a vector search's set-up.
            return match crate::protocol::json::find_escape(text, 0) {
                Some(_) => None,
                None => std::str::from_utf8(text).ok(),
            };
        }
    }
    None
}

/// Calls `visit` with each top-level key (as written, escapes and all) and its value's raw text: a cheap
/// look at what a request asks for (see [`crate::protocol::features`]). Stops quietly at anything
/// malformed; the parse that follows reports it.
pub fn visit_top_level<'a>(bytes: &'a [u8], mut visit: impl FnMut(&'a [u8], &'a [u8])) {
    for member in Members::new(bytes) {
        visit(&bytes[member.key], &bytes[member.value]);
    }
}

/// Where one member of a top-level object is, as [`Members`] finds it.
struct Member {
    /// The key's text between its quotes, escapes as written.
    key: Range<usize>,
    escaped: bool,
    /// The value's JSON text, checked.
    value: Range<usize>,
}

/// The members of the top-level object in `bytes`, in order, each checked as serde_json checks a raw value
/// (the checks of [`Scan::skip_value`]). Ends at the closing brace, `complete` then set, or at anything
/// malformed.
struct Members<'a> {
    scan: Scan<'a>,
    started: bool,
    complete: bool,
}

impl<'a> Members<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            scan: Scan { bytes, at: 0 },
            started: false,
            complete: false,
        }
    }

    fn member(&mut self) -> Option<Member> {
        let scan = &mut self.scan;
        if !self.started {
            self.started = true;
            scan.expect(b'{')?;
            if scan.expect(b'}').is_some() {
                self.complete = true;
                return None;
            }
        } else if scan.expect(b',').is_none() {
            self.complete = scan.expect(b'}').is_some();
            return None;
        }
        scan.expect(b'"')?;
        let key_start = scan.at;
        let (key, escaped) = scan.string()?;
        let key = key_start..key_start + key.len();
        scan.expect(b':')?;
        scan.skip_whitespace();
        let start = scan.at;
        scan.skip_value()?;
        Some(Member {
            key,
            escaped,
            value: start..scan.at,
        })
    }
}

impl<'a> Iterator for Members<'a> {
    type Item = Member;

    fn next(&mut self) -> Option<Member> {
        if self.complete {
            return None;
        }
        self.member()
    }
}

/// How deep [`Scan::skip_value`] follows objects and arrays: one bit of its stack each. Deeper values
/// are left to serde_json, which has no limit of its own inside a raw value.
const MAX_DEPTH: u32 = u128::BITS;

/// A cursor over JSON text that checks what it passes as serde_json checks a raw value: strings without
/// raw control characters and with whole escapes (a `\u` escape has four hex digits, whatever code point
/// they name), numbers in JSON's grammar, literals, and the punctuation between them. Not UTF-8: the
/// caller checks that once for the whole text.
struct Scan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    #[inline(always)]
    fn skip_whitespace(&mut self) {
        // JSON's whitespace is all at or below a space: anything above ends it at once.
        if self.bytes.get(self.at).is_some_and(|&b| b > b' ') {
            return;
        }
        while self
            .bytes
            .get(self.at)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    #[inline(always)]
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.bytes.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    /// After an opening quote: the string's raw bytes, and whether they hold escapes.
    #[inline(always)]
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let start = self.at;
        let at = crate::protocol::json::find_escape(self.bytes, start)?;
        if self.bytes[at] != b'"' {
            return self.escaped_string(start, at);
        }
        self.at = at + 1;
        Some((&self.bytes[start..at], false))
    }

    /// The rest of [`string`](Self::string) from the first byte that is not plain text: kept apart so that
    /// the common case, text up to the closing quote, stays short.
    #[cold]
    fn escaped_string(&mut self, start: usize, mut at: usize) -> Option<(&'a [u8], bool)> {
        loop {
            match self.bytes[at] {
                b'"' => {
                    self.at = at + 1;
                    return Some((&self.bytes[start..at], true));
                }
                b'\\' => {
                    let next = crate::protocol::json::escape_end(self.bytes, at)?;
                    at = crate::protocol::json::find_escape(self.bytes, next)?;
                }
                _ => return None, // a raw control character
            }
        }
    }

    /// A number in JSON's grammar. What follows is checked by the caller, as punctuation.
    fn number(&mut self) -> Option<()> {
        self.at = crate::protocol::json::number_end(self.bytes, self.at)?;
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.bytes[self.at..].starts_with(word).then(|| self.at += word.len())
    }

    /// Passes over one value, checked. Objects and arrays are followed without recursion: a stack of one
    /// bit a level, set for an object.
    fn skip_value(&mut self) -> Option<()> {
        let mut objects = 0u128;
        let mut depth = 0;
        loop {
            self.skip_whitespace();
            match *self.bytes.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    self.string()?;
                }
                open @ (b'{' | b'[') => {
                    self.at += 1;
                    if depth == MAX_DEPTH {
                        return None;
                    }
                    let object = open == b'{';
                    objects = objects << 1 | u128::from(object);
                    depth += 1;
                    if self.expect(if object { b'}' } else { b']' }).is_none() {
                        if object {
                            self.key()?;
                        }
                        continue;
                    }
                    objects >>= 1;
                    depth -= 1;
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => self.number()?,
            }
            // After a value: the next one, or the end of the object or array it closes.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let object = objects & 1 == 1;
                self.skip_whitespace();
                match *self.bytes.get(self.at)? {
                    b',' => {
                        self.at += 1;
                        if object {
                            self.key()?;
                        }
                        break;
                    }
                    b'}' if object => {}
                    b']' if !object => {}
                    _ => return None,
                }
                self.at += 1;
                objects >>= 1;
                depth -= 1;
            }
        }
    }

    /// An object's key and the colon after it.
    #[inline(always)]
    fn key(&mut self) -> Option<()> {
        self.expect(b'"')?;
        self.string()?;
        self.expect(b':')
    }
}

/// The top-level members as serde reads them, for the bodies [`Members`] leaves to it.
#[derive(Debug)]
struct Fields<'a>(Vec<(Cow<'a, str>, &'a str)>);

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    fields.push((key.0, value.get()));
                }
                Ok(Fields(fields))
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
            r#"{"model":"qwen3-8b","messages":[{"role":"user","content":"hi \u00e9"}],"x_custom": {"a" : 1.50},"stream":true}"#
        );
    }

    #[test]
    fn the_clients_whitespace_survives_and_new_keys_follow_the_last_member() {
        // The escaped key sends this body through serde, whose values are borrowed from the text too.
        let body = RawBody::parse(b" {\n  \"model\": \"g\",\n  \"we\\\"ird\": [1, 2]\n}\n").unwrap();
        let (model, max) = (raw(r#""m""#), raw("64"));
        assert_eq!(
            body.write_with(&[("model", &model), ("max_tokens", &max)]),
            b" {\n  \"model\": \"m\",\n  \"we\\\"ird\": [1, 2],\"max_tokens\":64\n}\n"
        );
        let empty = RawBody::parse(b"{ }").unwrap();
        assert_eq!(empty.write_with(&[("model", &model)]), br#"{"model":"m" }"#);
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
    fn the_hand_read_body_agrees_with_serde() {
        let nested = |depth: usize| {
            format!(
                r#"{{"model":"g","deep":{}1{}}}"#,
                "[{\"a\":".repeat(depth),
                "}]".repeat(depth)
            )
        };
        let (deep, too_deep) = (nested(60), nested(65));
        let typical = [
            r#"{"model":"g","messages":[{"role":"user","content":"hi"}],"max_tokens":256,"temperature":0.2}"#,
            r#" { "model" : "g" , "stream" : true , "n" : null , "t" : false , "x" : [ ] , "o" : { } } "#,
            r#"{"messages":[{"content":"line\n\"quoted\" caf\u00e9 \/ \\ \b\f\r\t \ud800 é"}]}"#,
            r#"{"n":[0,-0,1.5,-2.25e-3,1E+9,12345678901234567890123],"o":{"we\"ird":{"a\u0062":[{}]}}}"#,
            r#"{"model":"a","model":"b","":1}"#,
            &deep,
        ];
        let edge = [
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12g4"}"#,
            r#"{"a":"\u12"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":tru}"#,
            r#"{"a":01}"#,
            r#"{"a":-}"#,
            r#"{"a":1.}"#,
            r#"{"a":1e}"#,
            r#"{"a":1}x"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":{1:2}}"#,
            r#"{"k\u0065y":1}"#,
            "[1]",
            &too_deep,
        ];
        let both = |bytes: &[u8]| {
            let text = std::str::from_utf8(bytes).ok()?;
            let fast = RawBody::read(text)?.fields;
            let slow = serde_json::from_str::<Fields>(text)
                .map(|Fields(fields)| fields)
                .map_err(|_| ());
            Some((format!("Ok({fast:?})"), format!("{slow:?}")))
        };
        crate::protocol::json::check_agreement(&typical, &edge, both);
        // Deeper than the reader goes, serde reads it.
        assert!(RawBody::read(&too_deep).is_none());
        assert!(RawBody::parse(too_deep.as_bytes()).is_ok());
    }

    #[test]
    fn rejects_non_objects() {
        assert!(RawBody::parse(b"[1,2]").is_err());
        assert!(RawBody::parse(b"{\"a\":").is_err());
        assert!(RawBody::parse(b"").is_err());
    }
}
