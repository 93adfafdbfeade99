//! JSON fast paths for the codecs: parsing from a `str` checked once, a reader for hand-written decoders
//! ([`Reader`], in `read`), and writing compact JSON (the bytes
//! `serde_json::to_vec` writes) at a fraction of the cost.
//!
//! Every converted request, answer and stream event is parsed and written here or through here. Most of
//! what `serde_json` spends on writing goes to escaping: each struct field name and each string goes
//! through a byte by byte loop. Here field names are copied as they are (they are Rust identifiers or
//! `rename`s, fixed at compile time, and checked in debug builds), and strings are copied in runs found
//! eight bytes at a time. Numbers are formatted by `serde_json`'s own formatter, and raw JSON (`RawValue`)
//! is copied verbatim, so the output is `serde_json`'s compact form byte for byte. Whole answers are also
//! written by hand with [`push_str`] and [`push_u64`].

mod read;

use std::fmt;

use serde::Deserialize;
use serde::ser::{self, Serialize};
use serde_json::ser::{CompactFormatter, Formatter};

#[cfg(test)]
pub(crate) use read::check_agreement;
pub(crate) use read::{Reader, Seen};

/// Parses `bytes` from a `str` checked once: parsing from a slice checks the UTF-8 of every string and raw
/// value again. Invalid UTF-8 is parsed as a slice, for serde_json's own error.
pub(crate) fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// The value of the last `"key":` in `json` (`quoted_key` with its quotes), decoded without reading the
/// rest of the document: how usage is read from same-protocol answers and stream events that are
/// otherwise relayed untouched. `fast` reads it first (with [`count_of`]); when it declines, serde reads it
/// (the reference). The last occurrence, as every provider writes usage after the content it counts; found
/// by a forward search, several times cheaper than a backward one. A quoted key cannot match inside a JSON
/// string (a quote there is escaped), so the only false hits are nested keys of the same name, which
/// decode as something else and give `None`.
pub(crate) fn value_of_last_key<'a, T: Deserialize<'a>>(
    json: &'a [u8],
    quoted_key: &memchr::memmem::Finder<'_>,
    fast: impl FnOnce(&'a [u8]) -> Option<T>,
) -> Option<T> {
    if ends_with_null_member(json, quoted_key.needle()) {
        return None; // nothing can follow the last member: the search would end at the same `null`
    }
    let at = quoted_key.find_iter(json).last()? + quoted_key.needle().len();
    let rest = json[at..].trim_ascii_start().strip_prefix(b":")?.trim_ascii_start();
    if rest.starts_with(b"null") {
        return None; // streams' chunks before the last (`"usage":null`): no error value to build and drop
    }
    if let Some(value) = fast(rest) {
        return Some(value);
    }
    // A value followed by more document: deserialize one value and ignore what follows.
    T::deserialize(&mut serde_json::Deserializer::from_slice(rest)).ok()
}

/// Whether `json` ends with `quoted_key` as its last member with a `null` value, as most chunks of an
/// OpenAI stream do (`…,"usage":null}`): a look at the end instead of a search through the whole event.
fn ends_with_null_member(json: &[u8], quoted_key: &[u8]) -> bool {
    json.trim_ascii_end()
        .strip_suffix(b"}")
        .and_then(|json| json.trim_ascii_end().strip_suffix(b"null"))
        .and_then(|json| json.trim_ascii_end().strip_suffix(b":"))
        .is_some_and(|json| json.trim_ascii_end().ends_with(quoted_key))
}

/// The count under `quoted_key` (a [`key_finder`] of the key with its quotes) in `json`, which starts with
/// a usage object: `Some(None)` when the key is absent, `None` when its value is anything but a
/// non-negative integer (`null` included), which the caller hands to serde. One search per wanted key costs
/// less than reading every member: a usage object has a dozen members, of which the router wants five.
/// Names alone tell the counts apart in every provider's shape (nested counts have names of their own,
/// such as `cached_tokens`), and usage is the last thing in every answer and event that carries it, so the
/// first match after the usage key is the usage object's own.
pub(crate) fn count_of(json: &[u8], quoted_key: &memchr::memmem::Finder<'_>) -> Option<Option<u64>> {
    let Some(found) = quoted_key.find(json) else {
        return Some(None);
    };
    let rest = json[found + quoted_key.needle().len()..]
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, after) = rest.split_at(digits);
    let plain = !number.is_empty() && (number.len() == 1 || number[0] != b'0');
    if !plain || matches!(after.first(), Some(b'.' | b'e' | b'E') | None) {
        return None;
    }
    let n = number
        .iter()
        .try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))?;
    Some(Some(n))
}

/// A searcher for a JSON key (or any needle searched for in JSON), built once: making one costs more than
/// running it. memchr's prefilter looks
/// for the needle's two rarest bytes; by its default (text) ranking a quote is rare, but in JSON it is
/// everywhere, and a prefilter that matches at every key costs several times a plain scan. This ranking
/// makes JSON's punctuation and digits the most common bytes, then letters by English frequency.
pub(crate) fn key_finder(quoted_key: &'static [u8]) -> memchr::memmem::Finder<'static> {
    struct JsonRank;
    impl memchr::arch::all::packedpair::HeuristicFrequencyRank for JsonRank {
        fn rank(&self, byte: u8) -> u8 {
            const LETTERS: &[u8] = b"etaoinsrhldcumfpgwybvkxjqz";
            match byte {
                b'"' | b':' | b',' | b'{' | b'}' | b'[' | b']' | b' ' | b'_' | b'0'..=b'9' => 255,
                b'a'..=b'z' => {
                    let at = LETTERS.iter().position(|l| *l == byte).unwrap_or(LETTERS.len());
                    250 - 4 * at as u8
                }
                b'A'..=b'Z' => 120,
                _ => 60,
            }
        }
    }
    memchr::memmem::FinderBuilder::new().build_forward_with_ranker(JsonRank, quoted_key)
}

/// Whether `json` has the key `quoted_key` (with its quotes) with a value other than `null`, `""`, `[]`
/// or `{}`: a cheap test for "this event carries content".
pub(crate) fn has_non_empty(json: &[u8], quoted_key: &memchr::memmem::Finder<'_>) -> bool {
    let mut from = 0;
    while let Some(found) = quoted_key.find(&json[from..]) {
        from += found + quoted_key.needle().len();
        let Some(rest) = json[from..].trim_ascii_start().strip_prefix(b":") else {
            continue;
        };
        let rest = rest.trim_ascii_start();
        let empty = [&b"null"[..], b"\"\"", b"[]", b"{}"]
            .iter()
            .any(|empty| rest.starts_with(empty));
        if !empty {
            return true;
        }
    }
    false
}

/// Appends `value` as one SSE event, `event: <name>` first when it has one: written in place, so a stream's
/// events cost no buffer of their own.
pub(crate) fn write_event<T: Serialize + ?Sized>(out: &mut Vec<u8>, name: Option<&str>, value: &T) {
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    to_writer(out, value).expect("a stream event serialises");
    out.extend_from_slice(b"\n\n");
}

/// Appends `text` as a JSON string, escaped byte for byte as serde_json escapes it (so answers written by
/// hand and by serde read the same), but scanning eight bytes at a time for what needs escaping.
pub(crate) fn push_str(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    push_escaped(out, text);
    out.push(b'"');
}

/// Appends what goes between a JSON string's quotes for `text`.
pub(crate) fn push_escaped(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    while let Some(i) = find_escape(bytes, start) {
        out.extend_from_slice(&bytes[start..i]);
        push_escape(out, bytes[i]);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends `value` as a JSON string, or `null`.
pub(crate) fn push_opt_str(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(text) => push_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

pub(crate) fn push_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `text` quoted, for text the router itself chose (statuses, roles, ids of hex digits): nothing to
/// escape, so nothing to scan for.
pub(crate) fn push_plain(out: &mut Vec<u8>, text: &str) {
    debug_assert!(find_escape(text.as_bytes(), 0).is_none(), "{text:?} needs escaping");
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// The first byte at or after `from` that JSON must escape. Per eight-byte word, a byte below 0x20, a quote
/// or a backslash sets its high bit in `found`; the lowest set bit is exact (the tricks may flag bytes only
/// above a true hit).
pub(crate) fn find_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    let mut i = from;
    while let Some(word) = bytes.get(i..i + 8) {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        let quote = word ^ (ONES * u64::from(b'"'));
        let quote = quote.wrapping_sub(ONES) & !quote;
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let backslash = backslash.wrapping_sub(ONES) & !backslash;
        let found = (control | quote | backslash) & (ONES << 7);
        if found != 0 {
            return Some(i + found.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    bytes[i..].iter().position(|&b| needs_escape(b)).map(|at| i + at)
}

/// The text between the quotes of the string *value* that holds byte `at` of `json` (`at` may be its
/// closing quote), found by reading strings from the start: outside a string, every quote opens one. `None`
/// when `at` is not in a string, when that string is an object's key (a colon follows it), or when a
/// string before it does not end.
pub(crate) fn string_value_around(json: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    let mut from = 0;
    loop {
        let open = from + memchr::memchr(b'"', json.get(from..)?)?;
        if open >= at {
            return None;
        }
        let mut end = open + 1;
        loop {
            end = find_escape(json, end)?;
            match json[end] {
                b'"' => break,
                b'\\' => end = escape_end(json, end)?,
                _ => return None, // a raw control character
            }
        }
        if at <= end {
            let next = json[end + 1..].iter().find(|b| !b.is_ascii_whitespace());
            return (next != Some(&b':')).then_some(open + 1..end);
        }
        from = end + 1;
    }
}

/// Whether `text` can stand between a string's quotes as it is, with no quote in it: no raw control
/// character, no quote (escaped or not), and only whole escapes.
pub(crate) fn is_plain_string_text(text: &[u8]) -> bool {
    plain_text_len(text) == Some(text.len())
}

/// How much of `bytes` is plain string text (see [`is_plain_string_text`]): up to its first quote, or all of
/// it. `None` at a raw control character, a `\"` escape or one that JSON does not have.
pub(crate) fn plain_text_len(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(found) = find_escape(bytes, at) {
        match bytes[found] {
            b'"' => return Some(found),
            b'\\' if bytes.get(found + 1) != Some(&b'"') => at = escape_end(bytes, found)?,
            _ => return None,
        }
    }
    Some(bytes.len())
}

/// Where the escape starting with the backslash at `bytes[at]` ends, if it is one JSON has: a `\u` escape
/// has four hex digits (whatever code point they name, as serde_json checks a raw value).
pub(crate) fn escape_end(bytes: &[u8], at: usize) -> Option<usize> {
    match *bytes.get(at + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(at + 2),
        b'u' if bytes.get(at + 2..at + 6)?.iter().all(u8::is_ascii_hexdigit) => Some(at + 6),
        _ => None,
    }
}

/// Where the number starting at `bytes[at]` ends, if JSON's grammar takes it: `-`, an integer part without
/// leading zeros, then a fraction and an exponent, each with digits. What follows is the caller's to check.
pub(crate) fn number_end(bytes: &[u8], at: usize) -> Option<usize> {
    let digits = |at: usize| {
        bytes
            .get(at..)
            .map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count())
    };
    let mut at = at + usize::from(bytes.get(at) == Some(&b'-'));
    match digits(at) {
        0 => return None,
        n if n > 1 && bytes[at] == b'0' => return None,
        n => at += n,
    }
    if bytes.get(at) == Some(&b'.') {
        match digits(at + 1) {
            0 => return None,
            n => at += 1 + n,
        }
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1 + usize::from(matches!(bytes.get(at + 1), Some(b'+' | b'-')));
        match digits(at) {
            0 => return None,
            n => at += n,
        }
    }
    Some(at)
}

fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(br#"\""#),
        b'\\' => out.extend_from_slice(br"\\"),
        b'\n' => out.extend_from_slice(br"\n"),
        b'\r' => out.extend_from_slice(br"\r"),
        b'\t' => out.extend_from_slice(br"\t"),
        0x08 => out.extend_from_slice(br"\b"),
        0x0c => out.extend_from_slice(br"\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]),
    }
}

/// The struct name `serde_json::value::RawValue` serializes under: its one field is raw JSON to copy.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

/// `value` as compact JSON.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    to_writer(&mut out, value)?;
    Ok(out)
}

/// Appends `value` as compact JSON.
pub(crate) fn to_writer<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(&mut Writer { out })
}

/// Appends `"name":` for a struct field or variant name.
fn write_name(out: &mut Vec<u8>, name: &'static str) {
    debug_assert!(!name.bytes().any(needs_escape), "field name {name:?} needs escaping");
    out.reserve(name.len() + 3);
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Why a value could not be written: only a type JSON has no form for (a map key that is not a string or a
/// number), or an error its own `Serialize` raised.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Error(message.to_string())
    }
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn number(&mut self, write: impl FnOnce(&mut CompactFormatter, &mut Vec<u8>) -> std::io::Result<()>) {
        write(&mut CompactFormatter, self.out).expect("writing to a Vec cannot fail");
    }
}

/// An object, array or raw value being written.
pub struct Compound<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
    /// A `RawValue`: its one field is copied as it is.
    raw: bool,
    /// What closes it: `}`, `]`, or `]}` / `}}` for a variant.
    close: &'static [u8],
}

impl<'w, 'a> Compound<'w, 'a> {
    fn open(writer: &'w mut Writer<'a>, open: &[u8], close: &'static [u8]) -> Self {
        writer.out.extend_from_slice(open);
        Compound {
            writer,
            first: true,
            raw: false,
            close,
        }
    }

    fn comma(&mut self) {
        if !self.first {
            self.writer.out.push(b',');
        }
        self.first = false;
    }

    fn end(self) {
        self.writer.out.extend_from_slice(self.close);
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.comma();
        value.serialize(&mut *self.writer)
    }

    fn field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), Error> {
        if self.raw {
            return value.serialize(RawText { out: self.writer.out });
        }
        self.comma();
        write_name(self.writer.out, name);
        value.serialize(&mut *self.writer)
    }
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    fn serialize_bool(self, value: bool) -> Result<(), Error> {
        self.out.extend_from_slice(if value { b"true" } else { b"false" });
        Ok(())
    }

    fn serialize_i8(self, value: i8) -> Result<(), Error> {
        self.serialize_i64(i64::from(value))
    }

    fn serialize_i16(self, value: i16) -> Result<(), Error> {
        self.serialize_i64(i64::from(value))
    }

    fn serialize_i32(self, value: i32) -> Result<(), Error> {
        self.serialize_i64(i64::from(value))
    }

    fn serialize_i64(self, value: i64) -> Result<(), Error> {
        self.number(|f, out| f.write_i64(out, value));
        Ok(())
    }

    fn serialize_i128(self, value: i128) -> Result<(), Error> {
        self.number(|f, out| f.write_i128(out, value));
        Ok(())
    }

    fn serialize_u8(self, value: u8) -> Result<(), Error> {
        self.serialize_u64(u64::from(value))
    }

    fn serialize_u16(self, value: u16) -> Result<(), Error> {
        self.serialize_u64(u64::from(value))
    }

    fn serialize_u32(self, value: u32) -> Result<(), Error> {
        self.serialize_u64(u64::from(value))
    }

    fn serialize_u64(self, value: u64) -> Result<(), Error> {
        self.number(|f, out| f.write_u64(out, value));
        Ok(())
    }

    fn serialize_u128(self, value: u128) -> Result<(), Error> {
        self.number(|f, out| f.write_u128(out, value));
        Ok(())
    }

    fn serialize_f32(self, value: f32) -> Result<(), Error> {
        match value.is_finite() {
            true => self.number(|f, out| f.write_f32(out, value)),
            false => self.out.extend_from_slice(b"null"),
        }
        Ok(())
    }

    fn serialize_f64(self, value: f64) -> Result<(), Error> {
        match value.is_finite() {
            true => self.number(|f, out| f.write_f64(out, value)),
            false => self.out.extend_from_slice(b"null"),
        }
        Ok(())
    }

    fn serialize_char(self, value: char) -> Result<(), Error> {
        push_str(self.out, value.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, value: &str) -> Result<(), Error> {
        push_str(self.out, value);
        Ok(())
    }

    fn serialize_bytes(self, value: &[u8]) -> Result<(), Error> {
        let mut seq = Compound::open(self, b"[", b"]");
        for byte in value {
            seq.element(byte)?;
        }
        seq.end();
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<(), Error> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push(b'{');
        write_name(self.out, variant);
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'w, 'a>, Error> {
        Ok(Compound::open(self, b"[", b"]"))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'w, 'a>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'w, 'a>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'a>, Error> {
        self.out.push(b'{');
        write_name(self.out, variant);
        Ok(Compound::open(self, b"[", b"]}"))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'w, 'a>, Error> {
        Ok(Compound::open(self, b"{", b"}"))
    }

    fn serialize_struct(self, name: &'static str, _len: usize) -> Result<Compound<'w, 'a>, Error> {
        if name == RAW_VALUE_TOKEN {
            let mut raw = Compound::open(self, b"", b"");
            raw.raw = true;
            return Ok(raw);
        }
        Ok(Compound::open(self, b"{", b"}"))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'w, 'a>, Error> {
        self.out.push(b'{');
        write_name(self.out, variant);
        Ok(Compound::open(self, b"{", b"}}"))
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }

    fn end(self) -> Result<(), Error> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    /// JSON keys are strings: a string key is written as one, an integer or boolean key in quotes (as
    /// `serde_json` does), anything else is an error.
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.comma();
        let start = self.writer.out.len();
        key.serialize(&mut *self.writer)?;
        let written = &self.writer.out[start..];
        match written.first() {
            Some(b'"') => {}
            Some(b'-' | b'0'..=b'9' | b't' | b'f') if !written.contains(&b'.') => {
                self.writer.out.insert(start, b'"');
                self.writer.out.push(b'"');
            }
            _ => return Err(Error("a JSON object key must be a string".into())),
        }
        self.writer.out.push(b':');
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.writer)
    }

    fn end(self) -> Result<(), Error> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), Error> {
        self.field(name, value)
    }

    fn end(self) -> Result<(), Error> {
        Compound::end(self);
        Ok(())
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, name: &'static str, value: &T) -> Result<(), Error> {
        self.field(name, value)
    }

    fn end(self) -> Result<(), Error> {
        Compound::end(self);
        Ok(())
    }
}

/// Takes the text of a `RawValue` and copies it verbatim; it serializes nothing else.
struct RawText<'a> {
    out: &'a mut Vec<u8>,
}

impl ser::Serializer for RawText<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = ser::Impossible<(), Error>;
    type SerializeTuple = ser::Impossible<(), Error>;
    type SerializeTupleStruct = ser::Impossible<(), Error>;
    type SerializeTupleVariant = ser::Impossible<(), Error>;
    type SerializeMap = ser::Impossible<(), Error>;
    type SerializeStruct = ser::Impossible<(), Error>;
    type SerializeStructVariant = ser::Impossible<(), Error>;

    fn serialize_str(self, value: &str) -> Result<(), Error> {
        self.out.extend_from_slice(value.as_bytes());
        Ok(())
    }

    fn serialize_bool(self, _: bool) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_i64(self, _: i64) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_u64(self, _: u64) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_f64(self, _: f64) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_i8(self, _: i8) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_i16(self, _: i16) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_i32(self, _: i32) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_u8(self, _: u8) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_u16(self, _: u16) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_u32(self, _: u32) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_f32(self, _: f32) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_char(self, _: char) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_none(self) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_unit(self) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, _: &T) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        Err(not_raw())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(not_raw())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(not_raw())
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Error> {
        Err(not_raw())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(not_raw())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(not_raw())
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Error> {
        Err(not_raw())
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(not_raw())
    }
}

fn not_raw() -> Error {
    Error("a RawValue holds its JSON as a string".into())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use serde_json::json;
    use serde_json::value::RawValue;

    use super::*;

    #[test]
    fn a_last_null_member_is_seen_at_the_end_and_read_as_the_search_reads_it() {
        let usage = key_finder(br#""usage""#);
        let searched = |json: &[u8]| {
            let at = usage.find_iter(json).last()? + usage.needle().len();
            let rest = json[at..].trim_ascii_start().strip_prefix(b":")?.trim_ascii_start();
            serde_json::Deserializer::from_slice(rest)
                .into_iter::<Option<u64>>()
                .next()?
                .ok()?
        };
        for (json, at_the_end) in [
            (&br#"{"choices":[],"usage":null}"#[..], true),
            (br#"{"usage":{"total":1},"usage" : null }  "#, true),
            (br#"{"usage":null,"x":1}"#, false),
            (br#"{"o":{"usage":null}}"#, false),
            (br#"{"usage":7}"#, false),
            (br#"{"usage":"null"}"#, false),
            // Not JSON, but the search ends at the same `null`.
            (br#"{"x":"usage":null}"#, true),
        ] {
            let text = String::from_utf8_lossy(json);
            assert_eq!(ends_with_null_member(json, usage.needle()), at_the_end, "{text}");
            let read = value_of_last_key::<u64>(json, &usage, |_| None);
            assert_eq!(read, searched(json), "{text}");
        }
    }

    #[test]
    fn the_string_value_around_a_byte() {
        let json = br#"{"a\"b":"x\"y", "k" : 1, "v":"", "t": "tail"}"#;
        let at = |needle: &[u8]| memchr::memmem::find(json, needle).unwrap();
        // Inside a value, at its closing quote, and in an empty one.
        assert_eq!(string_value_around(json, at(b"y\"")), Some(at(b"x\\")..at(b"y\"") + 1));
        assert_eq!(
            string_value_around(json, at(b"\", \"k")),
            Some(at(b"x\\")..at(b"\", \"k"))
        );
        assert_eq!(
            string_value_around(json, at(b"\"\", \"t") + 1),
            Some(at(b"\"\", \"t") + 1..at(b"\"\", \"t") + 1)
        );
        assert_eq!(
            string_value_around(json, at(b"ail")),
            Some(at(b"tail")..at(b"tail") + 4)
        );
        // Keys (also one with an escaped quote, and one with space before its colon), and between strings.
        assert_eq!(string_value_around(json, 3), None);
        assert_eq!(string_value_around(json, at(b"k\"")), None);
        assert_eq!(string_value_around(json, at(b"1,")), None);
        // A string that does not end, or holds a raw control character.
        assert_eq!(string_value_around(b"{\"a\":\"xy", 7), None);
        assert_eq!(string_value_around(b"{\"a\":\"x\ny\"}", 7), None);
    }

    #[test]
    fn plain_string_text() {
        for plain in [
            &b""[..],
            b"hello",
            b"line\\nnext",
            b"back\\\\",
            b"\\u00e9",
            "é".as_bytes(),
        ] {
            assert!(is_plain_string_text(plain), "{plain:?}");
        }
        for not in [&b"a\"b"[..], b"a\\\"b", b"trailing\\", b"\\u00", b"\\x", b"tab\there"] {
            assert!(!is_plain_string_text(not), "{not:?}");
        }
        // Up to a closing quote, as in a string's text followed by the rest of the JSON.
        assert_eq!(plain_text_len(br#"line\nnext","x":1"#), Some(10));
        assert_eq!(plain_text_len(br#"say \"hi\""#), None);
        assert_eq!(plain_text_len(b"open"), Some(4));
    }

    #[test]
    fn counts_are_found_and_anything_unusual_declines() {
        let json = br#"{"a":1,"b":{"c":20,"d":null},"f":[{"g":"]"}],"h":true,"z":1.5,"y":01,"w":-1} rest"#;
        let count = |key: &'static str| count_of(json, &key_finder(format!("\"{key}\"").leak().as_bytes()));
        assert_eq!(count("a"), Some(Some(1)));
        assert_eq!(count("c"), Some(Some(20)));
        assert_eq!(count("missing"), Some(None));
        for declined in ["d", "f", "h", "z", "y", "w"] {
            assert_eq!(count(declined), None, "{declined}");
        }
        let big = br#"{"a":18446744073709551616}"#;
        assert_eq!(count_of(big, &key_finder(br#""a""#)), None);
        assert_eq!(count_of(br#"{"a":1"#, &key_finder(br#""a""#)), None, "cut short");
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_byte: String = (0u8..0x80).map(char::from).collect();
        every_byte.push_str("é→🦀\u{7f}\u{2028}");
        let long = "a".repeat(17) + "\"" + &"b".repeat(9) + "\\";
        for text in [
            "",
            "plain",
            "\"",
            "\\",
            "a\nb",
            "0123456\"",
            "01234567\"",
            long.as_str(),
            &every_byte,
        ] {
            // Every offset, so that each byte is met both in a word and in the tail.
            for start in 0..text.len() {
                let Some(text) = text.get(start..) else { continue };
                let mut out = Vec::new();
                push_str(&mut out, text);
                assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
            }
        }
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0, 7, 10, 42, 1_700_000_000, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    fn same_as_serde_json<T: Serialize + ?Sized>(value: &T) {
        let expected = serde_json::to_vec(value).unwrap();
        let ours = to_vec(value).unwrap();
        assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&expected));
    }

    #[test]
    fn strings_escape_as_serde_json_escapes_them_at_every_position() {
        for byte in 0u8..0x80 {
            let c = char::from(byte);
            for len in 0..20 {
                let mut text = "a".repeat(len);
                text.push(c);
                text.push_str("é€😀 tail");
                same_as_serde_json(&text);
                same_as_serde_json(&format!("{c}{c}{text}"));
            }
        }
        same_as_serde_json("");
        same_as_serde_json("\u{7f}\u{80}\u{2028}");
    }

    #[test]
    fn trees_numbers_and_keys_match() {
        same_as_serde_json(&json!({
            "s": "x\"y\\z\n", "n": [0, -1, 1.5, 0.1, 1e300, -2.5e-8, 1.0, u64::MAX, i64::MIN],
            "nested": {"empty": {}, "list": [], "null": null, "t": true, "f": false},
        }));
        same_as_serde_json(&f64::NAN);
        same_as_serde_json(&BTreeMap::from([(1, "a"), (-2, "b")]));
        same_as_serde_json(&BTreeMap::from([(true, 1)]));
        same_as_serde_json(&'"');
        same_as_serde_json(&(1, "two", [3u8]));
        assert!(to_vec(&BTreeMap::from([(vec![1], 1)])).is_err());
    }

    #[test]
    fn derived_shapes_and_raw_values_match() {
        #[derive(Serialize)]
        #[serde(rename_all = "snake_case")]
        enum Kind {
            Plain,
            Wrapped(u8),
            Pair(u8, u8),
            Named { inner: &'static str },
        }

        #[derive(Serialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Tagged<'a> {
            Text { text: &'a str },
            Raw { value: &'a RawValue },
        }

        #[derive(Serialize)]
        #[serde(untagged)]
        enum Either<'a> {
            Text(&'a str),
            Many(Vec<Tagged<'a>>),
        }

        #[derive(Serialize)]
        struct Body<'a> {
            kinds: Vec<Kind>,
            #[serde(skip_serializing_if = "Option::is_none")]
            absent: Option<u8>,
            present: Option<u8>,
            raw: &'a RawValue,
            boxed: Box<RawValue>,
            either: Vec<Either<'a>>,
            #[serde(flatten)]
            extra: BTreeMap<&'a str, serde_json::Value>,
            unit: (),
        }

        let raw = RawValue::from_string(r#"{ "keep" : [1, 2.50] }"#.into()).unwrap();
        let body = Body {
            kinds: vec![
                Kind::Plain,
                Kind::Wrapped(1),
                Kind::Pair(2, 3),
                Kind::Named { inner: "i" },
            ],
            absent: None,
            present: None,
            raw: &raw,
            boxed: raw.clone(),
            either: vec![
                Either::Text("t"),
                Either::Many(vec![Tagged::Text { text: "a\tb" }, Tagged::Raw { value: &raw }]),
            ],
            extra: BTreeMap::from([("x", json!(1)), ("y", json!("z"))]),
            unit: (),
        };
        same_as_serde_json(&body);
        assert!(
            String::from_utf8(to_vec(&body).unwrap())
                .unwrap()
                .contains(r#""raw":{ "keep" : [1, 2.50] }"#)
        );
    }
}
