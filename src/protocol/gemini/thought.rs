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

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::protocol::convert::ids::sha256_hex;
use crate::protocol::hub::{Opaque, Reasoning};

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

/// The first bytes of a router envelope (reference §3.4): `LLMR`, then the format's version.
const ENVELOPE_MAGIC: &[u8] = b"LLMR\x01";

/// What every envelope's base64 begins with, in either alphabet: the magic and the JSON's opening brace
/// (`LLMR\x01{`), six bytes that encode to these eight characters with no `+`, `/`, `-` or `_` in them.
pub const ENVELOPE_BASE64_PREFIX: &str = "TExNUgF7";

/// The reasoning of a turn from a non-Gemini upstream, as the JSON inside an envelope: the turn's
/// Anthropic thinking blocks exactly as Anthropic sent them (`ant`), or the reasoning text an
/// OpenAI-compatible host wants replayed as `reasoning_content` (`rc`).
#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    k: Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Vec::is_empty")]
    b: Vec<Cow<'a, RawValue>>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    t: Option<Cow<'a, str>>,
}

/// Reasoning from a non-Gemini upstream sealed into a `thoughtSignature` (reference §3.4), the one
/// per-part field the Gemini CLI sends back byte for byte: it rides on the turn's first function call
/// (or its last text part) and [`open_reasoning`] rebuilds the reasoning when the turn is replayed, so an
/// Anthropic upstream gets its signed thinking back in a tool loop and a DeepSeek-style host its
/// `reasoning_content`. `None` when the turn has no reasoning worth carrying. Gemini's own signatures are
/// not sealed: a Gemini client's request to a Gemini upstream carries them as they are.
pub fn seal_reasoning<'r>(reasoning: impl IntoIterator<Item = &'r Reasoning>) -> Option<String> {
    let mut blocks = Vec::new();
    let mut text = String::new();
    for r in reasoning {
        match &r.opaque {
            Some(Opaque::Anthropic { block }) => blocks.push(Cow::Borrowed(&**block)),
            Some(Opaque::Gemini { .. }) => {}
            None => text.push_str(&r.text),
        }
    }
    let envelope = match (blocks.is_empty(), text.is_empty()) {
        (false, _) => Envelope {
            k: "ant".into(),
            b: blocks,
            t: None,
        },
        (true, false) => Envelope {
            k: "rc".into(),
            b: Vec::new(),
            t: Some(text.into()),
        },
        (true, true) => return None,
    };
    let mut bytes = ENVELOPE_MAGIC.to_vec();
    serde_json::to_writer(&mut bytes, &envelope).expect("an envelope serialises");
    Some(STANDARD.encode(bytes))
}

/// The reasoning sealed in a router envelope, or `None` for any other signature (Gemini's own, the
/// sentinel, or bytes that do not parse: a client cannot make the router replay garbage).
pub fn open_reasoning(signature: &str) -> Option<Vec<Reasoning>> {
    if !signature.starts_with(ENVELOPE_BASE64_PREFIX) {
        return None;
    }
    let bytes = decode_base64(signature)?;
    let json = bytes.strip_prefix(ENVELOPE_MAGIC)?;
    let envelope: Envelope = serde_json::from_slice(json).ok()?;
    let reasoning = match (&*envelope.k, envelope.t) {
        ("ant", _) => envelope
            .b
            .into_iter()
            .map(|block| {
                let text = serde_json::from_str::<ThinkingText>(block.get()).ok()?.thinking;
                Some(Reasoning {
                    text: text.map(Cow::into_owned).unwrap_or_default(),
                    opaque: Some(Opaque::Anthropic {
                        block: block.into_owned(),
                    }),
                })
            })
            .collect::<Option<Vec<_>>>()?,
        ("rc", Some(text)) => vec![Reasoning {
            text: text.into_owned(),
            opaque: None,
        }],
        _ => return None,
    };
    (!reasoning.is_empty()).then_some(reasoning)
}

/// The shown text of an Anthropic thinking block (a `redacted_thinking` block has none).
#[derive(Deserialize)]
struct ThinkingText<'a> {
    #[serde(borrow, default)]
    thinking: Option<Cow<'a, str>>,
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
    fn reasoning_sealed_by_the_router_opens_again_and_nothing_else_does() {
        let thinking = r#"{"type":"thinking","thinking":"Plan é","signature":"EqQB+/=="}"#;
        let redacted = r#"{"type":"redacted_thinking","data":"opaque"}"#;
        let anthropic = |block: &str| Reasoning {
            text: serde_json::from_str::<serde_json::Value>(block).unwrap()["thinking"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            opaque: Some(Opaque::Anthropic {
                block: RawValue::from_string(block.to_owned()).unwrap(),
            }),
        };
        let turn = [anthropic(thinking), anthropic(redacted)];
        let sealed = seal_reasoning(&turn).unwrap();
        assert!(sealed.starts_with(ENVELOPE_BASE64_PREFIX));
        assert_eq!(open_reasoning(&sealed).unwrap(), turn);
        // The Python SDK sends bytes back in the URL-safe alphabet.
        let url_safe = URL_SAFE_NO_PAD.encode(decode_base64(&sealed).unwrap());
        assert_eq!(open_reasoning(&url_safe).unwrap(), turn);

        // Reasoning text with nothing to sign it (an OpenAI-compatible host's `reasoning_content`).
        let plain = [Reasoning {
            text: "step one".into(),
            opaque: None,
        }];
        assert_eq!(open_reasoning(&seal_reasoning(&plain).unwrap()).unwrap(), plain);
        // Gemini's own signatures are not sealed, and a turn without reasoning has no envelope.
        let gemini = Reasoning {
            text: String::new(),
            opaque: Some(Opaque::Gemini {
                signature: "c2ln".into(),
            }),
        };
        assert_eq!(seal_reasoning(&[gemini]), None);
        assert_eq!(seal_reasoning(&[]), None);
        // Foreign signatures, the sentinel, and broken envelopes open to nothing.
        for other in [
            "c2lnbmF0dXJl",
            SENTINEL,
            ENVELOPE_BASE64_PREFIX,
            &STANDARD.encode(b"LLMR\x01{\"k\":\"ant\",\"b\":[]}"),
            &STANDARD.encode(b"LLMR\x01{\"k\":\"xx\",\"t\":\"a\"}"),
            &sealed[..sealed.len() - 8],
        ] {
            assert_eq!(open_reasoning(other), None, "{other}");
        }
    }

    #[test]
    fn url_safe_data_becomes_standard() {
        assert!(matches!(standard_base64("iVBORw0KGgo="), Cow::Borrowed(_)));
        assert_eq!(standard_base64("a-b_cw"), "a+b/cw==");
    }
}
