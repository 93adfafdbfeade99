//! Tool ids of one request for an Anthropic upstream (§1.3.5). The rewriting rules themselves live in
//! [`convert::ids`](crate::protocol::convert::ids), shared with the response side.

use std::collections::{HashMap, HashSet};

use crate::protocol::convert::ids::{push_collision_suffix, sanitize_tool_id, synthetic_tool_id};

/// Tool ids of one request, sanitised consistently across `tool_use` and `tool_result` (§1.3.5).
///
/// Two different originals that sanitise to the same id (`a.b` and `a_b`) would pair the wrong results with
/// the wrong calls, so the later one gets `_` + 6 hex digits of its own hash.
#[derive(Default)]
pub(crate) struct AnthropicToolIds {
    assigned: HashMap<String, String>,
    taken: HashSet<String>,
}

impl AnthropicToolIds {
    /// The Anthropic id for `original`; `position` (`<message index>:<block index>`) seeds the id when the
    /// original is empty.
    pub(crate) fn get(&mut self, original: &str, position: impl FnOnce() -> String) -> String {
        if let Some(id) = self.assigned.get(original) {
            return id.clone();
        }
        let mut id = if original.is_empty() {
            synthetic_tool_id(&position())
        } else {
            sanitize_tool_id(original).into_owned()
        };
        if self.taken.contains(&id) {
            push_collision_suffix(&mut id, original);
        }
        self.taken.insert(id.clone());
        self.assigned.insert(original.to_owned(), id.clone());
        id
    }
}

/// Client-facing tool ids within one answer for an Anthropic client: sanitised (§1.3.5), de-duplicated when
/// two different upstream ids sanitise to the same string, and minted deterministically when the upstream
/// sent none.
#[derive(Debug, Clone)]
pub(crate) struct AnswerToolIds {
    response_id: String,
    /// (client-facing id, upstream original)
    assigned: Vec<(String, String)>,
}

impl AnswerToolIds {
    pub(crate) fn new(response_id: &str) -> Self {
        Self {
            response_id: response_id.to_owned(),
            assigned: Vec::new(),
        }
    }

    /// `seq` distinguishes id-less tool calls within the answer (the block index is used).
    pub(crate) fn assign(&mut self, upstream: Option<&str>, seq: usize) -> String {
        let original = upstream.unwrap_or("");
        let mut id = if original.is_empty() {
            synthetic_tool_id(&format!("{}:{seq}", self.response_id))
        } else {
            sanitize_tool_id(original).into_owned()
        };
        if self
            .assigned
            .iter()
            .any(|(taken, from)| *taken == id && from != original)
        {
            push_collision_suffix(&mut id, original);
        }
        self.assigned.push((id.clone(), original.to_owned()));
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::convert::ids::sha256_hex;

    #[test]
    fn request_ids_stay_paired_and_collisions_get_a_hash_suffix() {
        let mut ids = AnthropicToolIds::default();
        let first = ids.get("functions.Bash:0", || unreachable!());
        assert_eq!(first, "functions_Bash_0");
        let colliding = ids.get("functions_Bash_0", || unreachable!());
        assert_eq!(
            colliding,
            format!("functions_Bash_0_{}", &sha256_hex("functions_Bash_0")[..6])
        );
        // Every later occurrence maps the same way, so tool_use and tool_result stay matched.
        assert_eq!(ids.get("functions.Bash:0", || unreachable!()), first);
        assert_eq!(ids.get("functions_Bash_0", || unreachable!()), colliding);
        let empty_a = ids.get("", || "3:1".to_owned());
        assert_eq!(empty_a, synthetic_tool_id("3:1"));
    }
}
