//! The tools a Responses client declared, so that calls coming back from an upstream that knows only flat
//! function names are restored to the client's shape: a namespaced call gets its `namespace` and inner name
//! back (Codex dispatches only that form), and a custom tool's call becomes a `custom_tool_call` with its
//! input unwrapped (Codex will not apply an `apply_patch` that arrives as a function call).

use crate::protocol::convert::ids::openai_tool_name;
use crate::protocol::hub::{Tool, ToolKind};

/// The name a tool has upstream: `namespace__name` for a namespaced tool, in the characters and length
/// OpenAI-compatible hosts accept.
pub fn flat_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => openai_tool_name(&format!("{namespace}__{name}")).into_owned(),
        None => openai_tool_name(name).into_owned(),
    }
}

/// A declared tool as the client knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTool {
    pub name: String,
    pub namespace: Option<String>,
    pub kind: ToolKind,
}

/// Upstream (flat) name → the client's tool. Built from the request's own `tools`: no state is kept.
#[derive(Debug, Clone, Default)]
pub struct ToolDirectory {
    entries: Vec<(String, ClientTool)>,
}

impl ToolDirectory {
    pub fn new(tools: &[Tool]) -> Self {
        let entries = tools
            .iter()
            .map(|t| {
                let tool = ClientTool {
                    name: t.name.clone(),
                    namespace: t.namespace.clone(),
                    kind: t.kind,
                };
                (flat_name(&t.name, t.namespace.as_deref()), tool)
            })
            .collect();
        Self { entries }
    }

    /// The client's tool for an upstream tool name; an undeclared name is a plain function of that name.
    pub fn client_tool(&self, upstream_name: &str) -> ClientTool {
        self.entries
            .iter()
            .find(|(flat, _)| flat == upstream_name)
            .map(|(_, tool)| tool.clone())
            .unwrap_or_else(|| ClientTool {
                name: upstream_name.to_owned(),
                namespace: None,
                kind: ToolKind::Function,
            })
    }
}

/// A custom tool's input travels upstream as the arguments `{"input": "<text>"}`; this is the text again (or
/// the raw arguments when a model answered in another shape).
pub fn unwrap_custom_input(arguments: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Wrapped {
        input: String,
    }
    match serde_json::from_str::<Wrapped>(arguments) {
        Ok(wrapped) => wrapped.input,
        Err(_) => arguments.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_back_to_namespaces_and_custom_tools() {
        let tool = |name: &str, namespace: Option<&str>, kind| Tool {
            name: name.into(),
            namespace: namespace.map(Into::into),
            description: None,
            kind,
            parameters: None,
            strict: None,
        };
        let directory = ToolDirectory::new(&[
            tool("exec_command", None, ToolKind::Function),
            tool("spawn_agent", Some("multi_agent_v1"), ToolKind::Function),
            tool("apply_patch", None, ToolKind::Custom),
        ]);
        assert_eq!(
            flat_name("spawn_agent", Some("multi_agent_v1")),
            "multi_agent_v1__spawn_agent"
        );
        let spawned = directory.client_tool("multi_agent_v1__spawn_agent");
        assert_eq!(
            (spawned.name.as_str(), spawned.namespace.as_deref()),
            ("spawn_agent", Some("multi_agent_v1"))
        );
        assert_eq!(directory.client_tool("apply_patch").kind, ToolKind::Custom);
        assert_eq!(directory.client_tool("unknown").name, "unknown");
        assert_eq!(unwrap_custom_input(r#"{"input":"*** Begin Patch"}"#), "*** Begin Patch");
        assert_eq!(unwrap_custom_input("not json"), "not json");
    }
}
