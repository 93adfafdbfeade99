//! Tool ids, tool names and the hashes behind them (ground rule 4, §1.2.4, §1.2.9, §1.3.5), shared by the
//! request converters and the response and stream converters.
//!
//! Every rewrite is a pure function of the original (plus, for collisions, of the order in which ids first
//! appear in a message), applied to every occurrence, so pairs stay matched and no state is kept between
//! requests.

use std::borrow::Cow;

/// Longest tool-call id OpenAI accepts (`string too long. Expected … maximum length 40`).
const OPENAI_TOOL_ID_MAX_LEN: usize = 40;
/// OpenAI function names: `^[a-zA-Z0-9_-]{1,64}$`.
const OPENAI_TOOL_NAME_MAX_LEN: usize = 64;
/// Room left for `_` + 8 hex digits when a name has to be shortened.
const OPENAI_TOOL_NAME_KEPT_CHARS: usize = 55;

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Lowercase hex SHA-256, used wherever the spec replaces an over-long or invalid identifier by its hash.
pub(crate) fn sha256_hex(data: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data.as_bytes()).as_ref())
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Makes a tool id acceptable to Anthropic (`^[a-zA-Z0-9_-]+$`): every other character becomes `_`. Kimi's
/// `functions.Bash:0` becomes `functions_Bash_0`. An empty id becomes [`synthetic_tool_id`] of `""`; callers
/// that can meet several empty ids in one message should seed [`synthetic_tool_id`] with a position instead.
pub fn sanitize_tool_id(id: &str) -> Cow<'_, str> {
    if id.is_empty() {
        return Cow::Owned(synthetic_tool_id(""));
    }
    if id.chars().all(is_id_char) {
        return Cow::Borrowed(id);
    }
    Cow::Owned(id.chars().map(|c| if is_id_char(c) { c } else { '_' }).collect())
}

/// `toolu_` + 24 hex digits of SHA-256(seed): an Anthropic-shaped id for a tool call that has none.
pub fn synthetic_tool_id(seed: &str) -> String {
    let mut id = String::from("toolu_");
    id.push_str(&sha256_hex(seed)[..24]);
    id
}

/// An opaque end-user id (`metadata.user_id`, `user`) as the upstream accepts it: ids longer than
/// `max_chars` characters become their SHA-256 in hex (§1.1.1, §1.2.1).
pub(crate) fn user_id_within(id: &str, max_chars: usize) -> String {
    if id.chars().count() > max_chars {
        sha256_hex(id)
    } else {
        id.to_owned()
    }
}

/// Makes `id` distinct from an equal id assigned earlier to a different original (`a.b` and `a_b` both
/// sanitise to `a_b`): appends `_` + 6 hex digits of the original's SHA-256, so the later one differs.
pub(crate) fn push_collision_suffix(id: &mut String, original: &str) {
    id.push('_');
    id.push_str(&sha256_hex(original)[..6]);
}

/// Route B tool-call id: OpenAI caps ids at 40 characters, so a longer id is replaced everywhere by
/// `call_` + 24 hex digits of its SHA-256 (§1.2.9). Shorter ids are forwarded as they are.
pub(crate) fn openai_tool_id(id: &str) -> Cow<'_, str> {
    if id.len() <= OPENAI_TOOL_ID_MAX_LEN {
        return Cow::Borrowed(id);
    }
    Cow::Owned(format!("call_{}", &sha256_hex(id)[..24]))
}

/// A tool name OpenAI accepts (`^[a-zA-Z0-9_-]{1,64}$`, §1.2.4). Valid names pass unchanged; others (MCP
/// names from Claude Code often exceed 64 characters) keep their first 55 characters with invalid ones
/// replaced by `_`, then `_` + 8 hex digits of SHA-256 of the original, so different names stay different.
pub fn openai_tool_name(name: &str) -> Cow<'_, str> {
    let valid = !name.is_empty() && name.len() <= OPENAI_TOOL_NAME_MAX_LEN && name.chars().all(is_id_char);
    if valid {
        return Cow::Borrowed(name);
    }
    let mut out: String = name
        .chars()
        .take(OPENAI_TOOL_NAME_KEPT_CHARS)
        .map(|c| if is_id_char(c) { c } else { '_' })
        .collect();
    out.push('_');
    out.push_str(&sha256_hex(name)[..8]);
    Cow::Owned(out)
}

/// Upstream tool name → the name the client declared, for the tools whose names [`openai_tool_name`] had to
/// change. Built from the request's own `tools`, so responses can be mapped back without stored state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolNameMap {
    /// `(upstream name, original name)`; only renamed tools, so the common case is empty.
    renamed: Vec<(String, String)>,
}

impl ToolNameMap {
    /// The map for a request declaring these tool names.
    pub fn from_tool_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut map = Self::default();
        for name in names {
            map.record(name);
        }
        map
    }

    /// Notes `original`'s upstream name and returns it.
    pub(crate) fn record<'a>(&mut self, original: &'a str) -> Cow<'a, str> {
        let upstream = openai_tool_name(original);
        if let Cow::Owned(renamed) = &upstream
            && !self.renamed.iter().any(|(u, _)| u == renamed)
        {
            self.renamed.push((renamed.clone(), original.to_owned()));
        }
        upstream
    }

    /// Gives the answer's tool calls the names the client declared.
    pub fn restore(&self, response: &mut crate::protocol::hub::Response) {
        for part in &mut response.output {
            if let crate::protocol::hub::Part::ToolCall(call) = part {
                self.restore_name(&mut call.name);
            }
        }
    }

    pub fn restore_name(&self, name: &mut String) {
        if let Some((_, original)) = self.renamed.iter().find(|(upstream, _)| upstream == name) {
            name.clone_from(original);
        }
    }

    /// The client's name for a tool the upstream called `upstream_name`; names that were not rewritten map
    /// to themselves.
    pub fn original<'a>(&'a self, upstream_name: &'a str) -> &'a str {
        self.renamed
            .iter()
            .find(|(upstream, _)| upstream == upstream_name)
            .map_or(upstream_name, |(_, original)| original.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.renamed.is_empty()
    }

    /// A map with these `(upstream name, original name)` pairs, whatever [`openai_tool_name`] would make of
    /// the originals: lets response and stream tests feed upstream names directly.
    #[cfg(test)]
    pub(crate) fn from_renamed<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            renamed: pairs
                .into_iter()
                .map(|(upstream, original)| (upstream.to_owned(), original.to_owned()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_anthropic_id(id: &str) -> bool {
        !id.is_empty() && id.chars().all(is_id_char)
    }

    #[test]
    fn sanitize_keeps_valid_ids_and_replaces_other_characters() {
        assert!(matches!(sanitize_tool_id("toolu_01-Ab"), Cow::Borrowed("toolu_01-Ab")));
        assert_eq!(sanitize_tool_id("functions.Bash:0"), "functions_Bash_0");
        assert_eq!(sanitize_tool_id("call é"), "call__");
        let empty = sanitize_tool_id("");
        assert!(empty.starts_with("toolu_") && empty.len() == 30, "{empty}");
        assert!(is_anthropic_id(&empty));
    }

    #[test]
    fn openai_tool_ids_are_capped_at_40_characters() {
        let short = "toolu_01A09q90qw90lq917835lq9";
        assert_eq!(openai_tool_id(short), short);
        let long = "x".repeat(41);
        let id = openai_tool_id(&long);
        assert_eq!(id.len(), 29);
        assert!(id.starts_with("call_"));
        assert_eq!(id, openai_tool_id(&long), "deterministic");
    }

    #[test]
    fn openai_tool_names_are_valid_short_and_distinct() {
        assert_eq!(openai_tool_name("Bash"), "Bash");
        let exactly_64 = "a".repeat(64);
        assert_eq!(openai_tool_name(&exactly_64), exactly_64.as_str());

        let long = format!("mcp__server__{}", "very_long_tool_name_".repeat(5));
        let short = openai_tool_name(&long);
        assert_eq!(short.len(), 64);
        assert!(short.starts_with(&long[..55]));
        assert!(short.chars().all(is_id_char));
        let longer = format!("{long}x");
        let other = openai_tool_name(&longer);
        assert_ne!(short, other, "same 55-char prefix, different hash");

        let dotted = openai_tool_name("mcp.server/tool");
        assert!(dotted.starts_with("mcp_server_tool_"), "{dotted}");
        assert_eq!(dotted.len(), "mcp_server_tool_".len() + 8);
    }

    #[test]
    fn name_map_reverses_only_renamed_tools() {
        let long = "mcp__github__create_or_update_file_contents_in_repository_branch_x";
        let map = ToolNameMap::from_tool_names(["Bash", long]);
        let upstream = openai_tool_name(long);
        assert_eq!(map.original(&upstream), long);
        assert_eq!(map.original("Bash"), "Bash");
        assert_eq!(map.original("unknown"), "unknown");
        assert!(ToolNameMap::default().is_empty());
        assert!(!map.is_empty());
    }
}
