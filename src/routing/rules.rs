//! `routing_rules`: which group serves a request, decided before the group lookup. Rules are tried in file
//! order and the first that matches names the group; the group's strategy, retries and fallbacks then apply
//! as usual.
//!
//! What a rule tests is read from the request only when a rule gets to ask: the features and the prompt
//! estimate (see [`crate::protocol::features`]) come from one pass over the body, made at most once per
//! request, so a router without rules, or whose rules stop at the model name or a header, never looks at
//! the body.

use std::cell::OnceCell;
use std::sync::Arc;

use http::HeaderMap;
use prometheus_client::metrics::counter::Counter;

use super::ModelGroup;
use crate::config::{Condition, RuleSpec};
use crate::protocol::Protocol;
use crate::protocol::features;

/// A rule, with its group resolved.
#[derive(Debug)]
pub struct Rule {
    /// The rule's name, shared with the records of the requests it routed.
    pub name: Arc<str>,
    pub spec: RuleSpec,
    pub route: Arc<ModelGroup>,
    /// `llmrouter_rule_matches_total` of this rule.
    pub matches: Counter,
}

/// The request as rules see it.
pub struct Facts<'a> {
    pub ingress: Protocol,
    /// The model the client sent.
    pub model: &'a str,
    /// The group `model` resolves to without rules, if any (by name or alias), when its name is another.
    pub group: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// Gemini asks for a stream in its path.
    pub route_stream: bool,
    /// The body's features and prompt estimate, read on first use.
    read: OnceCell<features::Read>,
}

impl<'a> Facts<'a> {
    pub fn new(
        ingress: Protocol,
        model: &'a str,
        group: Option<&'a str>,
        headers: &'a HeaderMap,
        body: &'a [u8],
        route_stream: bool,
    ) -> Self {
        Self {
            ingress,
            model,
            // Compared once here rather than by every `model` condition.
            group: group.filter(|g| *g != model),
            headers,
            body,
            route_stream,
            read: OnceCell::new(),
        }
    }

    fn read(&self) -> features::Read {
        *self
            .read
            .get_or_init(|| features::read(self.ingress, self.body, self.route_stream))
    }
}

/// The first rule that matches.
pub fn first_match<'r>(rules: &'r [Rule], facts: &Facts<'_>) -> Option<&'r Rule> {
    rules.iter().find(|rule| matches(&rule.spec.when, facts))
}

pub fn matches(condition: &Condition, facts: &Facts<'_>) -> bool {
    match condition {
        Condition::All(all) => all.iter().all(|c| matches(c, facts)),
        Condition::Any(any) => any.iter().any(|c| matches(c, facts)),
        Condition::Not(inner) => !matches(inner, facts),
        Condition::Model(glob) => glob.matches(facts.model) || facts.group.is_some_and(|g| glob.matches(g)),
        Condition::Ingress(protocols) => protocols.contains(&facts.ingress),
        Condition::PromptTokens(threshold) => threshold.holds(facts.read().prompt_tokens),
        Condition::Has(wanted) => facts.read().features.contains(*wanted),
        Condition::Header(name, glob) => facts
            .headers
            .get(name)
            .is_some_and(|value| value.to_str().is_ok_and(|v| glob.matches(v))),
    }
}

/// A condition as the status page shows it: `model ~ claude-*haiku* and has image`.
pub fn describe(condition: &Condition) -> String {
    match condition {
        Condition::All(all) if all.is_empty() => "always".to_owned(),
        Condition::All(all) => join(all, " and "),
        Condition::Any(any) => format!("({})", join(any, " or ")),
        Condition::Not(inner) => format!("not ({})", describe(inner)),
        Condition::Model(glob) => format!("model ~ {}", glob.as_str()),
        Condition::Ingress(protocols) => {
            let names: Vec<&str> = protocols.iter().map(|p| p.ingress()).collect();
            format!("ingress {}", names.join("|"))
        }
        Condition::PromptTokens(threshold) => {
            let op = match threshold.comparison {
                crate::config::Comparison::Above => ">",
                crate::config::Comparison::AtLeast => ">=",
                crate::config::Comparison::Below => "<",
                crate::config::Comparison::AtMost => "<=",
            };
            format!("prompt_tokens {op} {}", threshold.tokens)
        }
        Condition::Has(features) => format!("has {}", features.names().collect::<Vec<_>>().join("+")),
        Condition::Header(name, glob) => format!("header {name} ~ {}", glob.as_str()),
    }
}

fn join(conditions: &[Condition], separator: &str) -> String {
    conditions.iter().map(describe).collect::<Vec<_>>().join(separator)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;

    /// Groups `main` (serving `claude-*` too) and `other`, and `rules` (YAML list items).
    fn text(rules: &str) -> String {
        format!(
            r#"
model_list:
  - model_name: a
    llm_params: {{api_type: openai, model: up-a, api_base: "http://127.0.0.1:1/v1"}}
router_settings:
  model_groups:
    - {{name: main, models: [{{name: a}}], aliases: ["claude-*"]}}
    - {{name: other, models: [{{name: a}}]}}
  routing_rules:
{rules}
"#
        )
    }

    fn config(rules: &str) -> crate::config::Config {
        parse(&text(rules), Path::new("c.yaml")).unwrap()
    }

    fn matching(rules: &str, ingress: Protocol, model: &str, headers: &[(&'static str, &str)], body: &str) -> bool {
        let config = config(rules);
        let condition = &config.rules[0].when;
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(*k, v.parse().unwrap());
        }
        let group = (model.starts_with("claude-")).then_some("main");
        let facts = Facts::new(ingress, model, group, &map, body.as_bytes(), false);
        matches(condition, &facts)
    }

    const CHAT: Protocol = Protocol::OpenAi;

    #[test]
    fn model_globs_match_the_name_or_its_group() {
        let rule = r#"    - {name: r, when: {model: "main"}, route: other}"#;
        assert!(
            matching(rule, CHAT, "claude-haiku-4-5", &[], "{}"),
            "by the alias's group"
        );
        assert!(!matching(rule, CHAT, "gpt-4o", &[], "{}"));
        let rule = r#"    - {name: r, when: {model: "claude-*haiku*"}, route: other}"#;
        assert!(matching(rule, CHAT, "claude-3-5-haiku-20241022", &[], "{}"));
        assert!(!matching(rule, CHAT, "claude-sonnet-4-5", &[], "{}"));
        let rule = r#"    - {name: r, when: {model: "gpt-[45]?"}, route: other}"#;
        assert!(matching(rule, CHAT, "gpt-4o", &[], "{}") && !matching(rule, CHAT, "gpt-3o", &[], "{}"));
    }

    #[test]
    fn fields_combine_with_and_any_and_not() {
        let rule = r#"    - name: r
      when:
        ingress: [messages, responses]
        has: [tools, stream]
        header: {user-agent: "claude-cli/*"}
      route: other"#;
        let ua = [("user-agent", "claude-cli/2.0.1 (external, cli)")];
        let body = r#"{"stream":true,"tools":[{"name":"f"}],"messages":[]}"#;
        assert!(matching(rule, Protocol::Anthropic, "m", &ua, body));
        assert!(!matching(rule, CHAT, "m", &ua, body), "ingress");
        assert!(
            !matching(rule, Protocol::Anthropic, "m", &[("user-agent", "curl/8")], body),
            "header"
        );
        assert!(
            !matching(rule, Protocol::Anthropic, "m", &[], body),
            "a missing header never matches"
        );
        assert!(
            !matching(rule, Protocol::Anthropic, "m", &ua, r#"{"tools":[{"name":"f"}]}"#),
            "has: all of them"
        );
        let rule = r#"    - name: r
      when:
        any:
          - {model: "gpt-4o*"}
          - not: {ingress: chat}
      route: other"#;
        assert!(matching(rule, CHAT, "gpt-4o-mini", &[], "{}"));
        assert!(matching(rule, Protocol::Gemini, "x", &[], "{}"));
        assert!(!matching(rule, CHAT, "x", &[], "{}"));
    }

    #[test]
    fn prompt_tokens_use_the_estimate() {
        let rule = r#"    - {name: r, when: {prompt_tokens: ">1k"}, route: other}"#;
        let long = format!(r#"{{"messages":[{{"role":"user","content":"{}"}}]}}"#, "x".repeat(4100));
        assert!(matching(rule, CHAT, "m", &[], &long));
        assert!(!matching(rule, CHAT, "m", &[], r#"{"messages":[]}"#));
    }

    #[test]
    fn conditions_as_the_status_page_shows_them() {
        let config =
            config(r#"    - {name: r, when: {any: [{has: image}, {not: {has: [stream, tools]}}]}, route: other}"#);
        assert_eq!(describe(&config.rules[0].when), "(has image or not (has tools+stream))");
    }

    fn error(rules: &str) -> String {
        parse(&text(rules), Path::new("c.yaml")).unwrap_err().to_string()
    }

    #[test]
    fn validation_names_the_place() {
        let cases = [
            (
                r#"    - {name: r, when: {model: "x"}, route: nope}"#,
                "routing_rules[0].route: unknown group 'nope'",
            ),
            (
                r#"    - {name: r, when: {model: "[x"}, route: main}"#,
                "routing_rules[0].when.model: '[x' is not a valid pattern",
            ),
            (
                r#"    - {name: r, when: {prompt_tokens: "60000"}, route: main}"#,
                "routing_rules[0].when.prompt_tokens: \"60000\" is not a threshold",
            ),
            (
                r#"    - {name: r, when: {prompt_tokens: 60000}, route: main}"#,
                "is not a threshold",
            ),
            (
                r#"    - {name: r, when: {has: [image, video]}, route: main}"#,
                "routing_rules[0].when.has: unknown feature 'video'",
            ),
            (
                r#"    - {name: r, when: {ingress: openai}, route: main}"#,
                "unknown ingress 'openai'",
            ),
            (
                r#"    - {name: r, when: {header: {"bad header": "x"}}, route: main}"#,
                "not a valid header name",
            ),
            (
                r#"    - {name: r, when: {any: []}, route: main}"#,
                "routing_rules[0].when.any: must list at least one",
            ),
            (
                r#"    - {name: r, when: {any: [{model: "a"}, {not: {model: "[b"}}]}, route: main}"#,
                "routing_rules[0].when.any[1].not.model",
            ),
            (
                "    - {name: r, when: {model: \"a\"}, route: main}\n    - {name: r, when: {model: \"b\"}, route: main}",
                "routing_rules[1].name: duplicate rule name 'r'",
            ),
            (
                "    - {name: all, route: main}\n    - {name: r, when: {model: \"b\"}, route: main}",
                "rule 'r' can never match: rule 'all' before it matches every request",
            ),
            (
                "    - {name: star, when: {model: \"*\"}, route: main}\n    - {name: r, when: {has: image}, route: main}",
                "rule 'star' before it matches every request",
            ),
            (
                "    - {name: one, when: {has: image}, route: main}\n    - {name: two, when: {has: image}, route: main}",
                "rule 'two' can never match: rule 'one' before it has the same `when`",
            ),
            (
                r#"    - {name: r, when: {modle: "a"}, route: main}"#,
                "unknown field `modle`",
            ),
        ];
        for (rules, expected) in cases {
            let message = error(rules);
            assert!(
                message.contains(expected),
                "{rules}\n  gave: {message}\n  wanted: {expected}"
            );
        }
    }
}
