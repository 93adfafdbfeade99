//! JSON fast paths for whole answers, which every converted request pays for once: parsing from a checked
//! `str`, and writing strings and numbers straight into the output.

use serde::Deserialize;

/// Parses `bytes` from a `str` checked once: parsing from a slice checks the UTF-8 of every string and raw
/// value again. Invalid UTF-8 is parsed as a slice, for serde_json's own error.
pub(crate) fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}
