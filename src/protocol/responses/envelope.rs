//! The reasoning envelope (reference §3.9): what the router needs to rebuild a reasoning artefact, sealed
//! into the one field a Responses client replays untouched, `encrypted_content`. The format is
//! `llmr1.rs.` + base64url(JSON) + `.` + base64url(the first 16 bytes of HMAC-SHA256(router key, JSON)).
//! Only envelopes whose HMAC verifies are opened; anything else is foreign (OpenAI's own blobs) or tampered.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::protocol::hub::Opaque;

const PREFIX: &str = "llmr1.rs.";
const TAG_BYTES: usize = 16;

#[derive(Serialize, Deserialize)]
struct Sealed {
    v: u8,
    /// The kind of upstream that made the artefact; it only ever goes back there.
    k: String,
    /// Anthropic: the exact thinking or redacted_thinking block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b: Option<Box<RawValue>>,
    /// Gemini: the thought signature (standard base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
}

fn tag(key: &[u8], json: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, json).as_ref()[..TAG_BYTES].to_vec()
}

/// The envelope of an artefact.
pub fn seal(key: &[u8], opaque: &Opaque) -> String {
    let sealed = match opaque {
        Opaque::Anthropic { block } => Sealed {
            v: 1,
            k: "ant".into(),
            b: Some(block.clone()),
            s: None,
        },
        Opaque::Gemini { signature } => Sealed {
            v: 1,
            k: "gem".into(),
            b: None,
            s: Some(signature.clone()),
        },
    };
    let json = serde_json::to_vec(&sealed).expect("an envelope serialises");
    let mut out = String::from(PREFIX);
    URL_SAFE_NO_PAD.encode_string(&json, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(tag(key, &json), &mut out);
    out
}

/// The artefact in a router envelope whose HMAC verifies under `key`.
pub fn open(key: &[u8], envelope: &str) -> Option<Opaque> {
    let (body, mac) = envelope.strip_prefix(PREFIX)?.split_once('.')?;
    let json = URL_SAFE_NO_PAD.decode(body).ok()?;
    let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
    let expected = tag(key, &json);
    // Constant time: the tag is a secret-derived value.
    if mac.len() != TAG_BYTES || !bool::from(subtle::ConstantTimeEq::ct_eq(&mac[..], &expected[..])) {
        return None;
    }
    let sealed: Sealed = serde_json::from_slice(&json).ok()?;
    match (sealed.v, sealed.k.as_str(), sealed.b, sealed.s) {
        (1, "ant", Some(block), _) => Some(Opaque::Anthropic { block }),
        (1, "gem", _, Some(signature)) => Some(Opaque::Gemini { signature }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_blocks_open_only_with_the_key_and_untampered() {
        let block = RawValue::from_string(r#"{"type":"thinking","thinking":"Hm","signature":"c2ln"}"#.into()).unwrap();
        let opaque = Opaque::Anthropic { block };
        let envelope = seal(b"key", &opaque);
        assert!(envelope.starts_with("llmr1.rs."));
        assert_eq!(open(b"key", &envelope), Some(opaque));
        assert_eq!(open(b"other key", &envelope), None);
        let tampered = envelope.replacen("llmr1.rs.e", "llmr1.rs.f", 1);
        assert_eq!(open(b"key", &tampered), None);
        assert_eq!(open(b"key", "gAAAAABopenai-encrypted-blob"), None);
        let gemini = Opaque::Gemini {
            signature: "CiQB+/sig==".into(),
        };
        assert_eq!(open(b"key", &seal(b"key", &gemini)), Some(gemini));
    }
}
