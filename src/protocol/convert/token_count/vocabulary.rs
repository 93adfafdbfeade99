//! o200k_base token counts from the vocabulary `build.rs` packs: the token bytes back to back in the
//! binary, and one open-addressing index over them built on first use (2 MB, against the 45 MB of
//! tiktoken-rs's maps). Only counts are needed, so nothing maps a token back to its bytes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;

use fancy_regex::Regex;
use rustc_hash::FxBuildHasher;

/// Every token's bytes, in rank order.
static TOKENS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.tokens"));
/// Where each token ends in [`TOKENS`], as little-endian `u32`s.
static ENDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/o200k_base.ends"));
/// The pre-tokenizer: text is split by it and each piece is encoded on its own.
const PATTERN: &str = include_str!(concat!(env!("OUT_DIR"), "/o200k_base.pattern"));

/// A free slot of the index; a taken one holds its token's rank + 1.
const FREE: u32 = 0;

pub(super) struct Vocabulary {
    pieces: Regex,
    ends: Vec<u32>,
    /// Open addressing with linear probing, at most half full.
    slots: Vec<u32>,
}

impl Vocabulary {
    /// `None` only if the pattern does not compile, which the tests rule out.
    pub(super) fn o200k_base() -> Option<Self> {
        let pieces = Regex::new(PATTERN).ok()?;
        let ends: Vec<u32> = ENDS
            .chunks_exact(4)
            .map(|end| u32::from_le_bytes([end[0], end[1], end[2], end[3]]))
            .collect();
        let mut vocabulary = Self {
            pieces,
            slots: vec![FREE; (ends.len() * 2).next_power_of_two()],
            ends,
        };
        for rank in 0..vocabulary.ends.len() as u32 {
            let mut slot = vocabulary.home(vocabulary.token(rank));
            while vocabulary.slots[slot] != FREE {
                slot = vocabulary.next_slot(slot);
            }
            vocabulary.slots[slot] = rank + 1;
        }
        Some(vocabulary)
    }

    /// Tokens of `text`, as tiktoken's `encode_ordinary(text).len()`.
    pub(super) fn count(&self, text: &str) -> u64 {
        let mut count = 0;
        let mut counted = 0;
        for piece in self.pieces.find_iter(text) {
            let Ok(piece) = piece else {
                // The pattern's lookahead ran out of backtracking: the rest errs high, ~3 bytes a token.
                return count + (text.len() - counted).div_ceil(3) as u64;
            };
            count += self.piece_tokens(piece.as_str().as_bytes());
            counted = piece.end();
        }
        count
    }

    /// Byte-pair encoding of one piece, counted: start from single bytes (each is a token) and keep
    /// merging the adjacent pair whose joined bytes are the lowest-ranked token, the leftmost of equals,
    /// until no joined pair is a token. A heap of candidate pairs keeps long pieces O(n log n); a
    /// candidate is stale once either of its parts has grown.
    fn piece_tokens(&self, piece: &[u8]) -> u64 {
        if piece.len() < 2 || self.rank(piece).is_some() {
            return piece.len().min(1) as u64;
        }
        let len = piece.len();
        // Parts are named by the offset they start at; `next[start]` is where the part ends.
        let mut next: Vec<usize> = (1..=len).collect();
        let mut previous: Vec<usize> = (0..len).map(|start| start.wrapping_sub(1)).collect();
        let mut alive = vec![true; len];
        let mut candidates = BinaryHeap::with_capacity(len);
        let push = |candidates: &mut BinaryHeap<_>, start: usize, end: usize| {
            if let Some(rank) = self.rank(&piece[start..end]) {
                candidates.push(Reverse((rank, start, end)));
            }
        };
        for start in 0..len - 1 {
            push(&mut candidates, start, start + 2);
        }
        let mut parts = len as u64;
        while let Some(Reverse((_, start, end))) = candidates.pop() {
            let second = next[start];
            if !alive[start] || second == len || next[second] != end {
                continue;
            }
            alive[second] = false;
            next[start] = end;
            if end < len {
                previous[end] = start;
                push(&mut candidates, start, next[end]);
            }
            if start > 0 {
                push(&mut candidates, previous[start], end);
            }
            parts -= 1;
        }
        parts
    }

    fn rank(&self, bytes: &[u8]) -> Option<u32> {
        let mut slot = self.home(bytes);
        loop {
            match self.slots[slot] {
                FREE => return None,
                taken if self.token(taken - 1) == bytes => return Some(taken - 1),
                _ => slot = self.next_slot(slot),
            }
        }
    }

    fn token(&self, rank: u32) -> &'static [u8] {
        let rank = rank as usize;
        let start = rank.checked_sub(1).map_or(0, |before| self.ends[before] as usize);
        &TOKENS[start..self.ends[rank] as usize]
    }

    /// FxHash's low bits are its best mixed (its finish rotates the product's high bits down).
    fn home(&self, bytes: &[u8]) -> usize {
        FxBuildHasher.hash_one(bytes) as usize & (self.slots.len() - 1)
    }

    fn next_slot(&self, slot: usize) -> usize {
        (slot + 1) & (self.slots.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::Vocabulary;

    static VOCABULARY: LazyLock<Vocabulary> = LazyLock::new(|| Vocabulary::o200k_base().expect("the pattern compiles"));

    fn tiktoken(text: &str) -> u64 {
        tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as u64
    }

    #[test]
    fn counts_what_tiktoken_counts() {
        let long_word = "Pneumonoultramicroscopicsilicovolcanoconiosis".repeat(30);
        let base64 =
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg".repeat(12);
        let texts = [
            "",
            "a",
            "Hello world",
            "  leading and trailing spaces   ",
            "tabs\tand\nnew\r\nlines\n\n\n",
            "fn main() {\n    println!(\"{}\", 1 + 2);\n}\n",
            "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}}}",
            "数字 12345678901234567890 and 3.14159",
            "日本語のテキストと中文文本，还有한국어。",
            "emoji 👩‍👩‍👧‍👦 🇫🇷 ✨ and combining é é",
            "CamelCaseIdentifiersLikeHTTPServerErrorX",
            "don't can't we'll THEY'RE I'm",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            &long_word,
            &base64,
            &" ".repeat(300),
        ];
        for text in texts {
            assert_eq!(VOCABULARY.count(text), tiktoken(text), "{text:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn counts_what_tiktoken_counts_for_any_text(
            text in "([a-zA-Z]{1,12}|[0-9]{1,5}|[ \t\n]{1,3}|[.,;:!?'\"(){}<>/\\\\_-]|[àéîõüßøñ]|[\u{4e00}-\u{4e40}]|[\u{1f600}-\u{1f64f}]|\u{301}){0,60}"
        ) {
            prop_assert_eq!(VOCABULARY.count(&text), tiktoken(&text));
        }

        #[test]
        fn long_pieces_merge_as_tiktoken_merges_them(text in "[a-z]{100,400}") {
            prop_assert_eq!(VOCABULARY.count(&text), tiktoken(&text));
        }
    }
}
