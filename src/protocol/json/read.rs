//! A JSON reader for hand-written decoders of the shapes every request has, where serde's visitor layers
//! cost several hundred instructions a key.
//!
//! It is a fast path, never the only path: each method returns `None` for anything it does not take (an
//! escaped key, a number out of range, a value of the wrong type, malformed JSON), and its caller then reads
//! the body again with serde, whose result and error messages stay the reference. So the reader only has to
//! be right about what it accepts: what it returns is what serde_json would have read (but for nesting: a raw
//! value may nest 128 deep from where it starts, as serde_json counts, not from the top). Escaped strings,
//! floats and raw values are handed to serde_json itself, one value at a time; the reader's own work is
//! whitespace, punctuation, plain strings and integers.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{escape_end, find_escape, number_end};

/// Powers of ten an `f64` holds exactly, for [`Reader::f64`].
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// How deep objects and arrays may nest, as serde_json's own limit.
const MAX_DEPTH: u32 = 128;

pub(crate) struct Reader<'a> {
    text: &'a str,
    at: usize,
    depth: u32,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, at: 0, depth: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// The next byte after whitespace, not consumed.
    #[inline(always)]
    pub(crate) fn peek(&mut self) -> Option<u8> {
        match self.bytes().get(self.at) {
            // JSON's whitespace is all at or below a space.
            Some(&byte) if byte > b' ' => Some(byte),
            _ => self.peek_after_space(),
        }
    }

    /// [`peek`](Self::peek) past whitespace: kept apart so that the common case, a token right there, stays
    /// short.
    #[inline(never)]
    fn peek_after_space(&mut self) -> Option<u8> {
        while let Some(&byte) = self.bytes().get(self.at) {
            match byte {
                b' ' | b'\n' | b'\r' | b'\t' => self.at += 1,
                _ => return Some(byte),
            }
        }
        None
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        self.at += usize::from(found);
        found
    }

    /// Consumes `null` if it comes next.
    pub(crate) fn null(&mut self) -> bool {
        if self.peek() != Some(b'n') || !self.text[self.at..].starts_with("null") {
            return false;
        }
        self.at += 4;
        // `nullx` is consumed and refused by whatever reads next.
        self.boundary()
    }

    /// `Some(None)` for `null`, else what `read` reads: an `Option` field as serde reads it.
    pub(crate) fn nullable<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.null() {
            true => Some(None),
            false => read(self).map(Some),
        }
    }

    /// What is left to read, for a caller that matches the rest of a fixed shape itself.
    pub(crate) fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    /// That only whitespace is left.
    pub(crate) fn end(&mut self) -> Option<()> {
        self.peek().is_none().then_some(())
    }

    /// A string's text between its quotes, and whether it holds escapes.
    #[inline(always)]
    fn string_span(&mut self) -> Option<(&'a str, bool)> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        let at = find_escape(self.bytes(), start)?;
        if self.bytes()[at] != b'"' {
            return self.escaped_span(start, at);
        }
        self.at = at + 1;
        Some((&self.text[start..at], false))
    }

    /// The rest of [`string_span`](Self::string_span) from the first byte that is not plain text: kept
    /// apart so that the common case, text up to the closing quote, stays short.
    #[cold]
    fn escaped_span(&mut self, start: usize, mut at: usize) -> Option<(&'a str, bool)> {
        loop {
            match self.bytes()[at] {
                b'"' => {
                    self.at = at + 1;
                    return Some((&self.text[start..at], true));
                }
                // The escaped byte can't end the string; serde_json checks the escape itself.
                b'\\' if at + 2 <= self.text.len() => at = find_escape(self.bytes(), at + 2)?,
                _ => return None, // a raw control character, or a backslash at the end
            }
        }
    }

    /// A string without escapes, borrowed: what serde reads into a `&str` field (it refuses an escaped one).
    #[inline(always)]
    pub(crate) fn plain_str(&mut self) -> Option<&'a str> {
        match self.string_span()? {
            (text, false) => Some(text),
            (_, true) => None,
        }
    }

    /// A string, borrowed unless it holds escapes.
    pub(crate) fn str(&mut self) -> Option<Cow<'a, str>> {
        let start = self.peek().map(|_| self.at)?;
        match self.string_span()? {
            (text, false) => Some(Cow::Borrowed(text)),
            (_, true) => serde_json::from_str(&self.text[start..self.at]).ok().map(Cow::Owned),
        }
    }

    pub(crate) fn string(&mut self) -> Option<String> {
        self.str().map(Cow::into_owned)
    }

    pub(crate) fn bool(&mut self) -> Option<bool> {
        self.peek()?;
        let rest = &self.text[self.at..];
        let (value, len) = match () {
            _ if rest.starts_with("true") => (true, 4),
            _ if rest.starts_with("false") => (false, 5),
            _ => return None,
        };
        self.at += len;
        self.boundary().then_some(value)
    }

    /// Whether the token just read ends here, as a literal or a number must (`truex`, `12a` are not JSON).
    fn boundary(&self) -> bool {
        match self.bytes().get(self.at) {
            None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') => true,
            Some(b) => !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+')),
        }
    }

    /// A non-negative integer that fits: what serde reads into a `u64` (a fraction or exponent it refuses).
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.peek()?;
        let digits = self.bytes()[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.text[self.at..self.at + digits];
        if digits == 0 || (digits > 1 && text.starts_with('0')) {
            return None;
        }
        self.at += digits;
        if !self.boundary() {
            return None;
        }
        // Nineteen digits always fit; longer numbers are checked for overflow.
        match digits {
            ..=19 => Some(text.bytes().fold(0, |n, b| n * 10 + u64::from(b - b'0'))),
            _ => text.parse().ok(),
        }
    }

    /// An integer that fits: what serde reads into an `i64` (a fraction or exponent it refuses).
    pub(crate) fn i64(&mut self) -> Option<i64> {
        let number = self.number_span()?;
        // serde_json reads `-0` as a float, which an `i64` refuses.
        if number == "-0" || number.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
            return None;
        }
        number.parse().ok()
    }

    /// A number as serde_json reads it into an `f64`. A short decimal such as `0.2` is one exact integer
    /// divided by an exact power of ten, one correctly rounded division, as serde_json computes it; any
    /// other number goes to serde_json itself.
    pub(crate) fn f64(&mut self) -> Option<f64> {
        let number = self.number_span()?;
        let (int, frac) = match number.bytes().position(|b| b == b'.') {
            Some(dot) => (&number[..dot], &number[dot + 1..]),
            None => (number, ""),
        };
        let plain = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if int.len() + frac.len() <= 15 && plain(int) && plain(frac) {
            let mantissa = int
                .bytes()
                .chain(frac.bytes())
                .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
            return Some(mantissa as f64 / POW10[frac.len()]);
        }
        serde_json::from_str(number).ok()
    }

    /// A number as JSON writes it (`-`, an integer part without leading zeros, then a fraction and an
    /// exponent, each with digits), up to a boundary.
    fn number_span(&mut self) -> Option<&'a str> {
        self.peek()?;
        let start = self.at;
        self.skip_number()?;
        Some(&self.text[start..self.at])
    }

    /// [`number_span`](Self::number_span) without its text: how a number is skipped.
    fn skip_number(&mut self) -> Option<()> {
        self.peek()?;
        self.at = number_end(self.bytes(), self.at)?;
        self.boundary().then_some(())
    }

    /// Passes over any value, checked as serde_json checks a raw value: escapes whole (a `\u` escape has
    /// four hex digits, whatever code point they name), numbers and literals in JSON's grammar. Only what
    /// nests deeper than the reader goes is handed to serde_json, as [`raw`](Self::raw).
    pub(crate) fn skip(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_str(),
            b'-' | b'0'..=b'9' => self.skip_number(),
            b't' | b'f' => self.bool().map(drop),
            b'n' => self.null().then_some(()),
            b'{' | b'[' if self.depth == MAX_DEPTH => self.raw().map(drop),
            b'{' => self.nest(b'{', b'}', |r| {
                if r.peek() != Some(b'"') {
                    return None;
                }
                r.skip_str()?;
                r.eat(b':').then_some(())?;
                r.skip()
            }),
            b'[' => self.nest(b'[', b']', Self::skip),
            _ => None,
        }
    }

    /// A string passed over: its escapes checked, nothing decoded.
    fn skip_str(&mut self) -> Option<()> {
        match self.string_span()? {
            (_, false) => Some(()),
            (text, true) => escapes_are_whole(text).then_some(()),
        }
    }

    /// Any value, checked by serde_json and kept as its raw text.
    pub(crate) fn raw(&mut self) -> Option<&'a RawValue> {
        self.peek()?;
        let rest = &self.text[self.at..];
        let mut de = serde_json::Deserializer::from_str(rest);
        let raw = <&RawValue>::deserialize(&mut de).ok()?;
        // The raw value is a slice of `rest`: the reader goes on after it.
        self.at += raw.get().as_ptr() as usize - rest.as_ptr() as usize + raw.get().len();
        Some(raw)
    }

    /// An object, `member` reading each value after its key. Keys with escapes are not taken.
    pub(crate) fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.nest(b'{', b'}', |reader| reader.member(&mut member))
    }

    /// One member of an object: its key, the colon, and its value as `member` reads it.
    fn member(&mut self, member: &mut impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        let key = self.plain_str()?;
        if !self.eat(b':') {
            return None;
        }
        member(self, key)
    }

    /// An object of optional counts (`null` or a non-negative integer) under the keys `fields` names, each
    /// at most once; other keys are skipped. The details objects of usage are all of this shape.
    pub(crate) fn counts(&mut self, fields: &mut [(&str, &mut Option<u64>)]) -> Option<()> {
        let mut seen = Seen::default();
        self.object(|r, key| match fields.iter_mut().position(|(name, _)| *name == key) {
            Some(index) => {
                seen.first(index as u32)?;
                *fields[index].1 = r.nullable(Reader::u64)?;
                Some(())
            }
            None => r.skip(),
        })
    }

    /// A reader of `text` from byte `at` inside its top-level object, where [`object`](Self::object) is
    /// once it has read `text[..at]` up to a member's value: for a caller that knows how a prefix reads.
    pub(crate) fn inside_object(text: &'a str, at: usize) -> Self {
        Self { text, at, depth: 1 }
    }

    /// The rest of an object after one of its values, as [`object`](Self::object) reads it: the members
    /// that follow, then the closing brace.
    pub(crate) fn rest_of_object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        loop {
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    self.depth -= 1;
                    return Some(());
                }
                _ => return None,
            }
            self.member(&mut member)?;
        }
    }

    /// How far the reader has read.
    pub(crate) fn position(&self) -> usize {
        self.at
    }

    /// An array, `element` reading each element.
    pub(crate) fn array(&mut self, element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.nest(b'[', b']', element)
    }

    fn nest(&mut self, open: u8, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.depth == MAX_DEPTH || !self.eat(open) {
            return None;
        }
        self.depth += 1;
        if !self.eat(close) {
            loop {
                item(self)?;
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(byte) if byte == close => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.depth -= 1;
        Some(())
    }
}

/// That each backslash in a string's text (as [`Reader::string_span`] finds it) starts an escape JSON has.
fn escapes_are_whole(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(at) = memchr::memchr(b'\\', &bytes[from..]).map(|at| from + at) {
        match escape_end(bytes, at) {
            Some(end) => from = end,
            None => return false,
        }
    }
    true
}

/// Marks a struct's fields as read, for hand-written decoders: serde refuses a field given twice.
#[derive(Default, Clone, Copy)]
pub(crate) struct Seen(u64);

impl Seen {
    /// Whether no field was read but those of `indices`.
    pub(crate) fn only(&self, indices: &[u32]) -> bool {
        self.0 & !indices.iter().fold(0, |mask, i| mask | 1 << i) == 0
    }

    /// `None` if field `index` (below 64) was read before.
    pub(crate) fn first(&mut self, index: u32) -> Option<()> {
        let bit = 1 << index;
        let first = self.0 & bit == 0;
        self.0 |= bit;
        first.then_some(())
    }
}

/// For the tests of a hand-written decoder: `both` reads a body by the hand-written path and by serde and
/// gives their results, or `None` when the hand-written path leaves the body to serde. `typical` bodies must
/// be taken and read alike (and be valid); `edge` bodies, and every prefix and twelve one-byte changes at
/// every position of either, must be read alike whenever they are taken.
#[cfg(test)]
pub(crate) fn check_agreement(typical: &[&str], edge: &[&str], both: impl Fn(&[u8]) -> Option<(String, String)>) {
    for body in typical {
        let (fast, slow) = both(body.as_bytes()).unwrap_or_else(|| panic!("the fast path takes {body}"));
        assert!(slow.starts_with("Ok("), "{body}: {slow}");
        assert_eq!(fast, slow, "{body}");
    }
    let mut checked = 0;
    for body in typical.iter().chain(edge) {
        let bytes = body.as_bytes();
        let mut agree = |body: &[u8]| {
            if let Some((fast, slow)) = both(body) {
                assert_eq!(fast, slow, "{}", String::from_utf8_lossy(body));
                checked += 1;
            }
        };
        agree(bytes);
        for end in 0..bytes.len() {
            agree(&bytes[..end]);
        }
        for at in 0..bytes.len() {
            for byte in [b'"', b',', b'}', b']', b'\\', b'1', b' ', b'n', b'-', b'.', b'e', 0x01] {
                let mut changed = bytes.to_vec();
                changed[at] = byte;
                agree(&changed);
            }
        }
    }
    assert!(checked > 1000, "the bodies the fast path took: {checked}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<'t, T>(text: &'t str, f: impl FnOnce(&mut Reader<'t>) -> Option<T>) -> Option<T> {
        let mut reader = Reader::new(text);
        let value = f(&mut reader)?;
        reader.end().map(|()| value)
    }

    #[test]
    fn strings_match_serde_json_or_are_not_taken() {
        for text in [
            r#""plain""#,
            r#" "with \"quotes\" and \\ and \n and \u00e9 and \ud83d\ude00" "#,
            r#""""#,
            "\"caf\u{e9} \u{1f600}\"",
            "\"raw\ncontrol\"",
            r#""unterminated"#,
            r#""bad \x escape""#,
            r#""lone \ud800 surrogate""#,
            r#""trailing \"#,
            "\"ends in a backslash\\",
            "\"long text with an escape at the end of several words\\t\"",
        ] {
            let expected: Option<String> = serde_json::from_str(text).ok();
            assert_eq!(read(text, Reader::string), expected, "{text}");
        }
        assert_eq!(
            read(r#""a\nb""#, Reader::plain_str),
            None,
            "escaped strings are not borrowed"
        );
        assert!(matches!(read(r#""ab""#, Reader::str), Some(Cow::Borrowed("ab"))));
    }

    #[test]
    fn numbers_match_serde_json_or_are_not_taken() {
        for text in [
            "0",
            "7",
            "256",
            "18446744073709551615",
            "18446744073709551616",
            "01",
            "-1",
            "1.0",
            "1e3",
            "12a",
            "",
        ] {
            let expected: Option<u64> = serde_json::from_str(text).ok();
            assert_eq!(read(text, Reader::u64), expected, "u64 {text:?}");
        }
        for text in [
            "0",
            "-1",
            "-0",
            "42",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "1.0",
            "1e2",
            "01",
        ] {
            let expected: Option<i64> = serde_json::from_str(text).ok();
            assert_eq!(read(text, Reader::i64), expected, "i64 {text:?}");
        }
        for text in [
            "0.2",
            "1",
            "-0.5",
            "-0",
            "0.1",
            "3.14159",
            "0.000000000000001",
            "999999999999999.0",
            "1.0000000000000002",
            "1e-3",
            "2.5E+2",
            "0.30000000000000004",
            "1.",
            ".5",
            "01.5",
            "1e",
            "--1",
            "1.5x",
            "123456789012345678901234567890",
        ] {
            let expected: Option<f64> = serde_json::from_str(text).ok();
            assert_eq!(read(text, Reader::f64), expected, "f64 {text:?}");
        }
    }

    #[test]
    fn skipped_values_are_json() {
        for text in [
            r#""s""#,
            "0",
            "-12.5e+3",
            "true",
            "null",
            r#"{"a":[1,"x"]}"#,
            "[]",
            "01",
            "1.",
            "-",
            "1e",
            "+1",
            "tru",
            "nullx",
            r#""a"#,
            "[1,]",
            "{",
            "0x1",
        ] {
            let expected = serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok();
            assert_eq!(read(text, Reader::skip).is_some(), expected, "{text:?}");
        }
    }

    #[test]
    fn literals_need_a_boundary() {
        assert_eq!(read("true", Reader::bool), Some(true));
        assert_eq!(read(" false ", Reader::bool), Some(false));
        assert_eq!(read("truex", Reader::bool), None);
        assert_eq!(read("nul", |r| r.null().then_some(())), None);
        assert_eq!(read("null", |r| r.nullable(Reader::u64)), Some(None));
        assert_eq!(read("5", |r| r.nullable(Reader::u64)), Some(Some(5)));
    }

    #[test]
    fn objects_and_arrays_take_only_well_formed_json() {
        let keys = |text: &str| {
            read(text, |r| {
                let mut keys = Vec::new();
                r.object(|r, key| {
                    keys.push(key.to_owned());
                    r.raw().map(drop)
                })?;
                Some(keys)
            })
        };
        assert_eq!(
            keys(r#" { "a" : [1, {"x": null}], "b":"t" } "#),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(keys("{}"), Some(vec![]));
        for bad in [
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
            r#"{"\u0061":1}"#,
            r#"{"a":[1,]}"#,
        ] {
            assert_eq!(keys(bad), None, "{bad}");
        }
        let items = |text: &str| {
            read(text, |r| {
                let mut n = 0;
                r.array(|r| r.u64().map(|v| n += v))?;
                Some(n)
            })
        };
        assert_eq!(items("[1, 2 ,3]"), Some(6));
        assert_eq!(items("[]"), Some(0));
        assert_eq!(items("[1 2]"), None);
        assert_eq!(items("[1,]"), None);
    }

    #[test]
    fn a_skipped_value_is_what_serde_json_takes() {
        let typical = [
            r#"{"a":[1,-0.5e3,{"k\u0065y":"caf\u00e9 \"q\" \\ \/ \b\f\n\r\t"}],"b":{},"c":[],"d":true,"e":null}"#,
            r#"[ "\ud800 lone" , { } , [ [ ] ] , false , 12345678901234567890123 ]"#,
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"hi","refusal":null},"logprobs":null}],"usage":{"n":[1,2.5,-3e-2]}}"#,
            r#""text""#,
            "0",
        ];
        let edge = [
            r#"{"a":"\x"}"#,
            r#"["\u12g4"]"#,
            r#"{"a":01}"#,
            r#"[tru]"#,
            r#"{1:2}"#,
            "[1,]",
        ];
        let both = |bytes: &[u8]| {
            let text = std::str::from_utf8(bytes).ok()?;
            let mut reader = Reader::new(text);
            reader.skip()?;
            reader.end()?;
            let slow = serde_json::from_str::<serde::de::IgnoredAny>(text)
                .map(drop)
                .map_err(drop);
            Some(("Ok(())".to_owned(), format!("{slow:?}")))
        };
        check_agreement(&typical, &edge, both);
    }

    #[test]
    fn nesting_stops_at_serde_json_s_limit() {
        let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        fn walk(r: &mut Reader<'_>) -> Option<()> {
            r.array(walk)
        }
        assert_eq!(read(&nested(128), walk), Some(()));
        assert_eq!(read(&nested(129), walk), None);
    }

    #[test]
    fn a_field_is_first_once() {
        let mut seen = Seen::default();
        assert_eq!(seen.first(3), Some(()));
        assert_eq!(seen.first(4), Some(()));
        assert_eq!(seen.first(3), None);
    }
}
