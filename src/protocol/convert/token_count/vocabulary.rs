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
        let bytes = text.as_bytes();
        let mut count = 0;
        let mut at = 0;
        while at < bytes.len() {
            let piece = match ascii_piece_end(bytes, at) {
                Some(end) => at..end,
                None => match self.pieces.find_from_pos(text, at) {
                    Ok(Some(piece)) => piece.range(),
                    Ok(None) => break,
                    // The pattern's lookahead ran out of backtracking: the rest errs high, ~3 bytes a token.
                    Err(_) => return count + (bytes.len() - at).div_ceil(3) as u64,
                },
            };
            count += self.piece_tokens(&bytes[piece.clone()]);
            at = piece.end;
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

/// What the pre-tokenizer's character classes make of an ASCII byte. In ASCII, `\p{L}` is `[A-Za-z]`
/// (none of it titlecase, modifier, other or a mark), `\p{N}` is `[0-9]` and `\s` is `[\t\n\x0B\x0C\r ]`.
#[derive(Clone, Copy, PartialEq)]
enum Class {
    Upper,
    Lower,
    Digit,
    /// `\r` and `\n`, which the pattern treats apart from other white space.
    Newline,
    /// The rest of `\s`: space, tab, vertical tab, form feed.
    Space,
    /// Neither a letter, a digit nor white space: punctuation, symbols, controls.
    Other,
    /// A byte of a non-ASCII character, which could be of any class.
    Unknown,
    End,
}

fn class(text: &[u8], at: usize) -> Class {
    match text.get(at) {
        None => Class::End,
        Some(&byte) => CLASSES[usize::from(byte)],
    }
}

/// [`Class`] by byte, so that the matcher's loops cost a load a byte.
static CLASSES: [Class; 256] = {
    let mut classes = [Class::Other; 256];
    let mut byte = 0;
    while byte < 256 {
        classes[byte] = match byte as u8 {
            b'A'..=b'Z' => Class::Upper,
            b'a'..=b'z' => Class::Lower,
            b'0'..=b'9' => Class::Digit,
            b'\r' | b'\n' => Class::Newline,
            b' ' | b'\t' | 0x0B | 0x0C => Class::Space,
            0x80.. => Class::Unknown,
            _ => Class::Other,
        };
        byte += 1;
    }
    classes
};

/// Where the run of bytes whose class is `in_run` from `at` ends, or `None` when it ends at a non-ASCII
/// character, which might have continued it.
fn run_end(text: &[u8], mut at: usize, in_run: impl Fn(Class) -> bool) -> Option<usize> {
    loop {
        match class(text, at) {
            Class::Unknown => return None,
            found if in_run(found) => at += 1,
            _ => return Some(at),
        }
    }
}

/// Where the o200k pre-tokenizer's piece at `at` ends, decided by hand when every byte the decision looks
/// at is ASCII; `None` sends the piece to the regex. The regex (a backtracking one, for its lookahead) costs
/// a few hundred instructions a byte; this a few tens, and agents' prompts are mostly ASCII: code, English,
/// JSON. The pattern's alternatives, the first that matches wins, with `P` = `[^\r\n\p{L}\p{N}]`, `U` =
/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`, `L` = `[\p{Ll}\p{Lm}\p{Lo}\p{M}]` and `C` = a contraction (`'s`,
/// `'t`, `'re`, `'ve`, `'m`, `'ll`, `'d`, any case):
/// 1. `P?U*L+C?` and 2. `P?U+L*C?`: a word, with one character before it;
/// 3. `\p{N}{1,3}`;
/// 4. ` ?[^\s\p{L}\p{N}]+[\r\n/]*`: punctuation, with a space before it and line ends after it;
/// 5. `\s*[\r\n]+`: white space up to its last line end;
/// 6. `\s+(?!\S)` and 7. `\s+`: white space, less its last character when a word follows.
fn ascii_piece_end(text: &[u8], at: usize) -> Option<usize> {
    use Class::*;
    let first = class(text, at);
    // 1 and 2. In ASCII upper and lower case do not overlap, so `U*L+` is all the capitals and then at
    // least one small letter, and `U+L*` is what is left: capitals only.
    let word = if matches!(first, Space | Other) { at + 1 } else { at };
    let capitals = run_end(text, word, |class| class == Upper)?;
    let small = run_end(text, capitals, |class| class == Lower)?;
    if small > word {
        return contraction_end(text, small);
    }
    match first {
        // 3.
        Digit => {
            let end = (at + 1..at + 3).find(|&i| class(text, i) != Digit).unwrap_or(at + 3);
            match class(text, end) {
                Unknown if end < at + 3 => None,
                _ => Some(end),
            }
        }
        // 4: punctuation, with the space before it if there is one (a space before anything else is white
        // space, below).
        Other => punctuation_end(text, at),
        Space if text[at] == b' ' && class(text, at + 1) == Other => punctuation_end(text, at + 1),
        // 5, 6 and 7.
        Space | Newline => {
            let end = run_end(text, at, |class| matches!(class, Space | Newline))?;
            if let Some(last_newline) = (at..end).rev().find(|&i| class(text, i) == Newline) {
                Some(last_newline + 1)
            } else if end - at >= 2 && class(text, end) != End {
                Some(end - 1)
            } else {
                Some(end)
            }
        }
        // Letters were taken above, and a non-ASCII byte stopped the letter runs there.
        Upper | Lower | Unknown | End => None,
    }
}

/// The end of alternative 4 whose punctuation starts at `at`.
fn punctuation_end(text: &[u8], at: usize) -> Option<usize> {
    let end = run_end(text, at, |class| class == Class::Other)?;
    let line_ends = text[end..].iter().take_while(|b| matches!(b, b'\r' | b'\n' | b'/'));
    Some(end + line_ends.count())
}

/// A word ending at `at` takes a contraction that follows it.
fn contraction_end(text: &[u8], at: usize) -> Option<usize> {
    if text.get(at) != Some(&b'\'') {
        return Some(at);
    }
    let lower = |i: usize| match text.get(i) {
        // `(?i)s` also matches 'ſ' (U+017F): a non-ASCII letter is the regex's to judge.
        Some(0x80..) => None,
        byte => Some(byte.map(u8::to_ascii_lowercase)),
    };
    let length = match lower(at + 1)? {
        Some(b's' | b't' | b'm' | b'd') => 2,
        Some(first @ (b'r' | b'v' | b'l')) => {
            let second = if first == b'l' { b'l' } else { b'e' };
            if lower(at + 2)? == Some(second) { 3 } else { 0 }
        }
        _ => 0,
    };
    Some(at + length)
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use proptest::prelude::*;

    use super::{Vocabulary, ascii_piece_end};

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
            // What the proptests found when a rule of the hand-written splitter was broken on purpose: white
            // space before a digit, a space before punctuation and a letter, contractions back to back.
            "\t\u{b}0",
            "  \"dA",
            "'d'd'Lla",
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
        fn counts_what_tiktoken_counts_for_ascii_and_its_neighbours(
            text in "([\\x00-\\x7f]|'[sStTmMdD]|'(re|RE|ve|Ll)|[ſ\u{a0}\u{85}\u{2028}\u{3000}²٣—«é\u{301}ǅʰ中]){0,80}"
        ) {
            prop_assert_eq!(VOCABULARY.count(&text), tiktoken(&text));
        }

        /// Each piece the hand-written matcher decides is the regex's piece there.
        #[test]
        fn ascii_pieces_are_the_patterns(
            text in "([\\x00-\\x7f]|'[sStTmMdD]|'(re|RE|ve|Ll)|[ſ\u{a0}\u{85}\u{2028}²٣—é\u{301}ǅʰ中]){0,60}"
        ) {
            let bytes = text.as_bytes();
            for at in (0..bytes.len()).filter(|&at| text.is_char_boundary(at)) {
                if let Some(end) = ascii_piece_end(bytes, at) {
                    let piece = VOCABULARY.pieces.find_from_pos(&text, at).unwrap().unwrap();
                    prop_assert_eq!(piece.range(), at..end, "{:?} at {}", text, at);
                }
            }
        }

        #[test]
        fn long_pieces_merge_as_tiktoken_merges_them(text in "[a-z]{100,400}") {
            prop_assert_eq!(VOCABULARY.count(&text), tiktoken(&text));
        }
    }
}
