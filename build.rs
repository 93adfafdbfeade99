//! Packs the o200k_base vocabulary for the local input-token estimate
//! (`src/protocol/convert/token_count/vocabulary.rs`).
//!
//! tiktoken-rs keeps the vocabulary as base64 text and builds three 200k-entry maps from it when it is
//! first used: about 45 MB that the router would then hold for good. Packed here, the token bytes stay in
//! the binary's read-only data and the router builds one 2 MB index over them.

use std::{env, fs, path::Path};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let bpe = tiktoken_rs::o200k_base().expect("tiktoken-rs builds o200k_base");

    // Ranks are dense from 0: the first one that does not decode ends the ordinary vocabulary (the
    // special tokens come after a gap and are never produced from text).
    let mut tokens = Vec::new();
    let mut ends = Vec::new();
    for rank in 0.. {
        let Ok(bytes) = bpe.decode_bytes(&[rank]) else {
            break;
        };
        tokens.extend_from_slice(&bytes);
        let end = u32::try_from(tokens.len()).expect("the vocabulary is under 4 GB");
        ends.extend_from_slice(&end.to_le_bytes());
    }
    assert!(ends.len() / 4 > 190_000, "o200k_base has about 200k tokens");

    let out = env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    let out = Path::new(&out);
    fs::write(out.join("o200k_base.tokens"), tokens).expect("write the packed tokens");
    fs::write(out.join("o200k_base.ends"), ends).expect("write the token ends");
    fs::write(out.join("o200k_base.pattern"), tiktoken_rs::O200K_BASE_PAT_STR)
        .expect("write the pre-tokenizer pattern");
}
