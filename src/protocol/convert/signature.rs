//! Thinking signatures minted by the router (§1.3.6), shared by the request side (which recognises and strips
//! them) and the response and stream converters (which mint them).
//!
//! Anthropic clients drop or reject thinking blocks without a signature, but an OpenAI upstream never gives
//! one, so on Route B the router signs the thinking text itself. The prefix lets every later request
//! recognise these blocks and keep them away from a real Anthropic upstream, whose signature check would
//! fail on them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

/// Marks a signature as minted by this router rather than by Anthropic.
pub const ROUTER_SIGNATURE_PREFIX: &str = "llmr1.";

/// `"llmr1." + base64url(HMAC-SHA256(key, thinking))`, unpadded.
pub fn mint_thinking_signature(key: &[u8], thinking: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, thinking.as_bytes());
    let mut out = String::with_capacity(ROUTER_SIGNATURE_PREFIX.len() + 43);
    out.push_str(ROUTER_SIGNATURE_PREFIX);
    URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut out);
    out
}

/// Whether a thinking block's signature was minted by a router (ours or another instance's): such blocks
/// must never reach an Anthropic upstream.
pub fn is_router_minted_signature(signature: &str) -> bool {
    signature.starts_with(ROUTER_SIGNATURE_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_signature_is_prefixed_deterministic_and_keyed() {
        let a = mint_thinking_signature(b"key", "Use Bash.");
        assert!(a.starts_with("llmr1."));
        assert_eq!(a.len(), "llmr1.".len() + 43, "32-byte tag, base64url without padding");
        assert!(
            a["llmr1.".len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(a, mint_thinking_signature(b"key", "Use Bash."));
        assert_ne!(a, mint_thinking_signature(b"other key", "Use Bash."));
        assert_ne!(a, mint_thinking_signature(b"key", "Use Bash!"));
        assert!(is_router_minted_signature(&a));
        assert!(!is_router_minted_signature("EqQBCgIYAhIM1gbcDa9GJwZA"));
    }

    #[test]
    fn matches_the_rfc_4231_hmac_sha256_test_vector() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let raw = URL_SAFE_NO_PAD
            .decode(&mint_thinking_signature(b"Jefe", "what do ya want for nothing?")["llmr1.".len()..])
            .unwrap();
        assert_eq!(crate::protocol::convert::ids::hex(&raw), expected);
    }

    #[test]
    fn minted_signatures_are_keyed_hmacs() {
        let sig = mint_thinking_signature(b"key", "text");
        assert!(sig.starts_with("llmr1."));
        assert_eq!(sig.len(), "llmr1.".len() + 43, "unpadded base64url of 32 bytes");
        assert!(!sig.contains(['+', '/', '=']));
        assert_eq!(sig, mint_thinking_signature(b"key", "text"));
        assert_ne!(sig, mint_thinking_signature(b"other key", "text"));
        assert_ne!(sig, mint_thinking_signature(b"key", "text!"));
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?").
        let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([
            0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00,
            0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43,
        ]);
        assert_eq!(
            mint_thinking_signature(b"Jefe", "what do ya want for nothing?"),
            format!("llmr1.{expected}")
        );
    }
}
