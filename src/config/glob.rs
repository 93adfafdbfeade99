//! Shell-style globs (`*`, `?`, `[...]`), as the `glob` crate reads them, with a fast path for the usual
//! kind, made of literal text and `*` only (`claude-*haiku*`, `*-mini`, `claude-cli/*`): those are matched
//! by finding their literal pieces in order, without the crate's character-by-character matcher. Rules
//! match a request's model and headers with these, on every request.

/// A validated glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pattern: glob::Pattern,
    /// The text between the `*`s, when the pattern has no other special character.
    pieces: Option<Vec<String>>,
}

impl Glob {
    pub fn new(text: &str) -> Result<Self, glob::PatternError> {
        let pattern = glob::Pattern::new(text)?;
        let pieces = (!text.contains(['?', '[', ']'])).then(|| text.split('*').map(str::to_owned).collect());
        Ok(Self { pattern, pieces })
    }

    pub fn as_str(&self) -> &str {
        self.pattern.as_str()
    }

    pub fn matches(&self, text: &str) -> bool {
        let Some(pieces) = &self.pieces else {
            return self.pattern.matches(text);
        };
        let (first, rest) = pieces.split_first().expect("split yields at least one piece");
        let Some(mut text) = text.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            // No `*`: the whole text is the literal.
            return text.is_empty();
        };
        let Some(inner) = text.strip_suffix(last.as_str()) else {
            return false;
        };
        text = inner;
        for piece in middle {
            match text.find(piece.as_str()) {
                Some(at) => text = &text[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_agrees_with_the_glob_crate() {
        let patterns = [
            "*",
            "claude-*",
            "*haiku*",
            "claude-*haiku*",
            "*-mini",
            "gpt-4o",
            "a*b*c",
            "ab*ba",
            "*a*",
            "x**",
            "gpt-[45]?",
            "o?-mini",
            "",
        ];
        let names = [
            "",
            "claude-3-5-haiku",
            "claude-haiku-4-5",
            "claude-sonnet-4",
            "gpt-4o-mini",
            "gpt-4o",
            "gpt-5o",
            "o3-mini",
            "abc",
            "aXbYc",
            "aba",
            "abba",
            "ababa",
            "cba",
            "x",
            "xx",
            "a",
        ];
        for pattern in patterns {
            let Ok(glob) = Glob::new(pattern) else {
                assert!(glob::Pattern::new(pattern).is_err(), "{pattern}");
                continue;
            };
            let reference = glob::Pattern::new(pattern).unwrap();
            for name in names {
                assert_eq!(glob.matches(name), reference.matches(name), "{pattern:?} on {name:?}");
            }
        }
        assert!(Glob::new("ab*ba").unwrap().pieces.is_some());
        assert!(Glob::new("gpt-[45]?").unwrap().pieces.is_none());
    }
}
