//! Gemini's function-call ids and thought signatures as they cross the hub (reference §2.3, §3).
//!
//! Gemini 3 refuses a replayed `functionCall` without the `thoughtSignature` it was answered with, but a
//! Chat, Messages or Responses client replays only what its own protocol has: the tool-call id. So a call's
//! signature rides inside its id, `<base id>__thought__<base64url signature bytes, unpadded>` (LiteLLM's
//! convention, also read by other tools), which stays within `^[a-zA-Z0-9_-]+$` and so survives Anthropic's
//! id rules untouched. On the way back to a Gemini upstream the id is split again: `functionCall.id` and
//! `functionResponse.id` get the base, `thoughtSignature` the signature in standard base64.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::protocol::convert::ids::sha256_hex;

/// Between a call's base id and its signature.
pub const SEPARATOR: &str = "__thought__";

/// The value Google's own CLI puts in `thoughtSignature` for a replayed call whose signature is lost:
/// Gemini then skips the check (reference §3.1).
pub const SENTINEL: &str = "skip_thought_signature_validator";

/// Standard or URL-safe base64, padded or not: proto3 JSON parsers accept all four, and the Python SDK
/// writes URL-safe (reference §0 rule 3).
const ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The bytes of a base64 `bytes` field in any of its accepted spellings.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    ANY_PADDING.decode(standard_base64(text).as_bytes()).ok()
}

/// `text` in the standard, padded alphabet (what Anthropic and data URLs require), without checking it.
pub fn standard_base64(text: &str) -> Cow<'_, str> {
    let url_safe = text.contains(['-', '_']);
    let padding = (4 - text.len() % 4) % 4;
    if !url_safe && padding == 0 {
        return Cow::Borrowed(text);
    }
    let mut out: String = text
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    // A length of 1 mod 4 is not base64 at all; padding would not mend it.
    if padding < 3 {
        out.extend(std::iter::repeat_n('=', padding));
    }
    Cow::Owned(out)
}

/// `call_` + 24 hex digits of SHA-256(`seed`): an id for a call Gemini gave none. Deterministic, so the
/// same history always gets the same ids.
pub fn mint_call_id(seed: &str) -> String {
    let mut id = String::with_capacity(29);
    id.push_str("call_");
    id.push_str(&sha256_hex(seed)[..24]);
    id
}

/// The client-facing id of a call: `base`, with the call's signature carried after [`SEPARATOR`]. A
/// signature that is not base64 (never seen from Gemini) cannot be carried and is dropped.
pub fn carry_signature(base: &str, signature: Option<&str>) -> String {
    let bytes = signature.and_then(decode_base64).filter(|b| !b.is_empty());
    let Some(bytes) = bytes else {
        return base.to_owned();
    };
    let mut id = String::with_capacity(base.len() + SEPARATOR.len() + bytes.len() * 4 / 3 + 4);
    id.push_str(base);
    id.push_str(SEPARATOR);
    URL_SAFE_NO_PAD.encode_string(&bytes, &mut id);
    id
}

/// A client-facing id split into the base id and the carried signature (standard base64), if any.
pub fn split_call_id(id: &str) -> (&str, Option<String>) {
    let Some((base, carried)) = id.split_once(SEPARATOR) else {
        return (id, None);
    };
    let signature = decode_base64(carried)
        .filter(|b| !b.is_empty())
        .map(|b| STANDARD.encode(b));
    (base, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_anthropic_id(id: &str) -> bool {
        !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }

    #[test]
    fn signatures_ride_in_ids_and_come_back_as_standard_base64() {
        // Bytes whose base64 has `+` and `/`.
        let signature = STANDARD.encode([0xfb, 0xff, 0xbf, 0x01, 0x02]);
        assert_eq!(signature, "+/+/AQI=");
        let id = carry_signature("call_up_0001", Some(&signature));
        assert_eq!(id, "call_up_0001__thought__-_-_AQI");
        assert!(is_anthropic_id(&id));
        assert_eq!(split_call_id(&id), ("call_up_0001", Some(signature.clone())));
        // The URL-safe, unpadded and padded spellings all decode to the same bytes.
        for spelling in ["-_-_AQI=", "-_-_AQI", "+/+/AQI", "+/+/AQI="] {
            assert_eq!(decode_base64(spelling), decode_base64(&signature), "{spelling}");
            assert_eq!(carry_signature("a", Some(spelling)), "a__thought__-_-_AQI");
        }
        // LiteLLM writes the carried part in standard base64; it is read as well.
        assert_eq!(split_call_id("call_x__thought__+/+/AQI="), ("call_x", Some(signature)));
    }

    #[test]
    fn ids_without_a_signature_pass_unchanged() {
        assert_eq!(carry_signature("call_a", None), "call_a");
        assert_eq!(carry_signature("call_a", Some("not base64!")), "call_a");
        assert_eq!(split_call_id("toolu_01"), ("toolu_01", None));
        assert_eq!(split_call_id("call_a__thought__!!"), ("call_a", None));
        // The sentinel is itself valid base64: it is carried like any signature and comes back the same.
        let id = carry_signature("c", Some(SENTINEL));
        assert!(is_anthropic_id(&id));
        let (_, back) = split_call_id(&id);
        assert_eq!(decode_base64(&back.unwrap()), decode_base64(SENTINEL));
    }

    #[test]
    fn minted_ids_are_deterministic_and_openai_sized() {
        let id = mint_call_id("resp-1:0:read_file:{}");
        assert_eq!(id.len(), 29);
        assert!(id.starts_with("call_") && is_anthropic_id(&id));
        assert_eq!(id, mint_call_id("resp-1:0:read_file:{}"));
        assert_ne!(id, mint_call_id("resp-1:1:read_file:{}"));
    }

    #[test]
    fn url_safe_data_becomes_standard() {
        assert!(matches!(standard_base64("iVBORw0KGgo="), Cow::Borrowed(_)));
        assert_eq!(standard_base64("a-b_cw"), "a+b/cw==");
    }
}
