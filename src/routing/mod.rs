//! Which deployment serves a request: model groups, their balancers, and the immutable [`Snapshot`] of the
//! configuration that a request holds from start to finish.

pub mod affinity;
pub mod health;
pub mod rules;
pub mod strategy;

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use serde_json::value::RawValue;

use prometheus_client::metrics::counter::Counter;

use crate::config::{Affinity, Config, DeploymentSpec, GroupSpec, Strategy};
use crate::limits::ClientKeys;
use crate::metrics::{GroupMetrics, Metrics};
use crate::protocol::Protocol;
use crate::upstream::{ClientPool, Endpoint, Origin, Redactor};
pub use health::Health;
use rules::Rule;
pub use strategy::Balancer;

/// One upstream model at one provider, ready to be called.
#[derive(Debug)]
pub struct Deployment {
    pub name: String,
    pub protocol: Protocol,
    pub upstream_model: String,
    /// Where requests go, parsed once (the spec's URLs without credentials).
    pub endpoints: Endpoints,
    /// What every upstream request carries: the credential (`Authorization: Bearer …` or `x-api-key`, or the
    /// `Authorization: Basic …` of credentials in `api_base`), marked sensitive so that `http`'s `Debug` never
    /// prints it, and the content type (see [`crate::upstream::header_template`]). One per key of the
    /// deployment's pool, in its order (one when it has no key).
    pub headers: Vec<HeaderMap>,
    /// What scrubs each key of the pool from a stream's output, in its order (`None` for a key too short).
    pub redactors: Vec<Option<Arc<Redactor>>>,
    /// `model` and `rewrite_body`, as the top-level overrides applied to a same-protocol body (a Gemini
    /// body has no `model`: it is in the URL).
    pub overrides: Vec<(String, Box<RawValue>)>,
    /// `rewrite_body` as values, for converted bodies that are built as a JSON tree anyway.
    pub rewrite_values: Vec<(String, serde_json::Value)>,
    /// The keep-alive connections to the endpoint's host, with this deployment's connect timeout (and the
    /// router's proxy); shared with the other deployments on that host.
    pub origin: Arc<Origin>,
    /// Failure count and cooldown; shared with the previous snapshot's twin when the deployment is unchanged.
    pub health: Arc<Health>,
    /// `llmrouter_cooldowns_total` of this deployment.
    pub cooldowns: Counter,
    /// A group serving through it balances by its live figures (`leastconn`, `latency`): its requests in
    /// flight and its time-to-first-token average are kept. Requests of one snapshot count with that
    /// snapshot's flag from start to end, so a reload that turns it on counts only what starts after.
    pub tracks_load: bool,
    pub spec: DeploymentSpec,
}

/// A deployment's endpoints.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub generate: Endpoint,
    /// Where streams go when the protocol asks for them in the URL (Gemini's `:streamGenerateContent`).
    pub stream: Option<Endpoint>,
    /// The token-counting endpoint next to `generate` (Anthropic's, Gemini's).
    pub count_tokens: Endpoint,
}

impl Endpoints {
    /// The endpoints of `spec` for `model` (a Gemini model is part of the URL), and the `Authorization` of
    /// credentials written in `api_base`. `None` when the URL cannot be a request target.
    fn of(spec: &DeploymentSpec, model: Option<&str>) -> Option<(Self, Option<HeaderValue>)> {
        let (generate, stream, count_tokens) = spec.endpoint_urls(model);
        let target = |url: &url::Url| crate::upstream::endpoint_target(url).ok();
        let (generate, url_authorization) = target(&generate)?;
        let endpoints = Self {
            generate: Endpoint::new(generate),
            stream: match stream {
                Some(url) => Some(Endpoint::new(target(&url)?.0)),
                None => None,
            },
            count_tokens: Endpoint::new(target(&count_tokens)?.0),
        };
        Some((endpoints, url_authorization))
    }
}

impl Deployment {
    /// The endpoints for client model `client_model`: the deployment's own, or for a Gemini deployment that
    /// passes the client's model through (its model is in the URL) ones built for that model; `None` when
    /// that model cannot be written into a URL.
    pub fn endpoints(&self, client_model: &str) -> Option<std::borrow::Cow<'_, Endpoints>> {
        match (self.protocol, &self.spec.model_pattern) {
            (Protocol::Gemini, Some(_)) => Some(std::borrow::Cow::Owned(
                Endpoints::of(&self.spec, Some(client_model))?.0,
            )),
            _ => Some(std::borrow::Cow::Borrowed(&self.endpoints)),
        }
    }

    /// Whether this deployment serves client model `model`: always, unless its `model` is a glob that
    /// the name does not match.
    pub fn serves(&self, model: &str) -> bool {
        self.spec.model_pattern.as_ref().is_none_or(|glob| glob.matches(model))
    }

    /// The protocol a request from a `client` goes upstream in: the deployment's, or for a mock (which
    /// answers in any) the client's own.
    pub fn protocol_for(&self, client: Protocol) -> Protocol {
        match self.spec.mock {
            Some(_) => client,
            None => self.protocol,
        }
    }

    /// The model name sent upstream: the deployment's own, or the client's when `model` is a glob.
    pub fn upstream_model<'a>(&'a self, client_model: &'a str) -> &'a str {
        match self.spec.model_pattern {
            Some(_) => client_model,
            None => &self.upstream_model,
        }
    }
}

impl Deployment {
    fn new(spec: DeploymentSpec, pool: &ClientPool, health: Arc<Health>, metrics: &Metrics, tracks_load: bool) -> Self {
        let (endpoints, url_authorization) = Endpoints::of(&spec, None).expect("validated endpoints are valid URIs");
        let origin = pool.origin(spec.timeouts.connect, &spec.proxy, &endpoints.generate.absolute);
        let credential = |key: &crate::config::Secret| {
            let text = match spec.protocol {
                Protocol::OpenAi | Protocol::Responses => format!("Bearer {}", key.expose()),
                Protocol::Anthropic | Protocol::Gemini => key.expose().to_owned(),
            };
            // Validation guarantees printable ASCII, which is always a valid header value.
            let mut value = HeaderValue::from_str(&text).expect("validated api_key is a valid header value");
            value.set_sensitive(true);
            value
        };
        let template = |credential: Option<&HeaderValue>| {
            crate::upstream::header_template(
                spec.protocol,
                credential,
                url_authorization.as_ref(),
                &spec.rewrite_header,
            )
        };
        let headers = match spec.api_keys.is_empty() {
            true => vec![template(None)],
            false => spec
                .api_keys
                .iter()
                .map(|key| template(Some(&credential(key))))
                .collect(),
        };
        let model = serde_json::value::to_raw_value(&spec.upstream_model).expect("a string serialises");
        // A Gemini body names no model (it is in the URL); a glob `model` passes the client's through.
        let mut overrides = match (spec.protocol, &spec.model_pattern) {
            (Protocol::Gemini, _) | (_, Some(_)) => Vec::new(),
            _ => vec![("model".to_owned(), model)],
        };
        overrides.extend(spec.rewrite_body.iter().map(|(k, v)| (k.clone(), v.0.clone())));
        let rewrite_values = spec
            .rewrite_body
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::from_str(v.0.get()).expect("validated JSON")))
            .collect();
        Self {
            name: spec.name.clone(),
            protocol: spec.protocol,
            upstream_model: spec.upstream_model.clone(),
            endpoints,
            headers,
            redactors: spec
                .api_keys
                .iter()
                .map(|key| Redactor::new(key).map(Arc::new))
                .collect(),
            overrides,
            rewrite_values,
            origin,
            health,
            cooldowns: metrics.cooldowns(&spec.name),
            tracks_load,
            spec,
        }
    }

    /// What scrubs key `key` of the pool from what the upstream streams back (some hosts echo it in errors).
    pub fn redactor(&self, key: usize) -> Option<Arc<Redactor>> {
        self.redactors.get(key).cloned().flatten()
    }

    /// `body` with every key of the deployment scrubbed out.
    pub fn redact(&self, body: Vec<u8>) -> Vec<u8> {
        self.spec
            .api_keys
            .iter()
            .fold(body, |body, key| crate::upstream::redact(body, Some(key.expose())))
    }

    /// Whether its keys are a pool (two or more), whose keys are set aside one by one.
    pub fn has_key_pool(&self) -> bool {
        self.spec.api_keys.len() > 1
    }

    /// The overrides as borrowed pairs, for [`crate::protocol::raw_body::RawBody::write_with`].
    pub fn override_refs(&self) -> Vec<(&str, &RawValue)> {
        self.overrides.iter().map(|(k, v)| (k.as_str(), &**v)).collect()
    }
}

/// A name clients can put in `model`: a configured group, or a single `model_list` entry used directly.
#[derive(Debug)]
pub struct ModelGroup {
    pub name: String,
    pub members: Vec<Arc<Deployment>>,
    pub weights: Vec<u32>,
    pub strategy: Strategy,
    pub affinity: Affinity,
    /// Groups that take the request over, in order, when every attempt here failed.
    pub fallbacks: Vec<String>,
    /// The group that takes a request whose prompt an upstream found too long.
    pub context_window_fallback: Option<String>,
    pub balancer: Arc<Balancer>,
    /// This group's metric handles, its members' in the order of `members`; carried over a reload when the
    /// group keeps its members.
    pub metrics: Arc<GroupMetrics>,
}

impl ModelGroup {
    /// Picks a deployment among those `eligible` (by member index).
    pub fn pick(&self, eligible: impl Fn(usize) -> bool) -> Option<(usize, &Arc<Deployment>)> {
        let index = self.balancer.pick(eligible, |i| &*self.members[i].health)?;
        Some((index, &self.members[index]))
    }

    /// The member a session goes to among those `eligible`, and whether it is the session's first choice.
    pub fn pick_for_session(
        &self,
        key: &str,
        eligible: impl Fn(usize) -> bool,
    ) -> Option<(usize, &Arc<Deployment>, bool)> {
        let (index, first_choice) = affinity::choose(
            key,
            self.members
                .iter()
                .map(|m| m.name.as_str())
                .zip(self.weights.iter().copied()),
            eligible,
        )?;
        Some((index, &self.members[index], first_choice))
    }

    /// Same members, weights and strategy: the balancer state can carry over a reload.
    fn same_shape(&self, names: &[&str], weights: &[u32], strategy: Strategy) -> bool {
        self.strategy == strategy
            && self.weights == weights
            && self.members.len() == names.len()
            && self.members.iter().zip(names).all(|(m, n)| m.name == *n)
    }
}

/// Everything a request needs from the configuration, immutable once built. Reloads build a new one and swap
/// it in; requests in flight keep the one they started with.
#[derive(Debug)]
pub struct Snapshot {
    /// Configured groups first, in file order, then `model_list` names that are not also group names.
    groups: HashMap<String, Arc<ModelGroup>>,
    /// Each configured group's aliases, in file order: the first match serves a name no group has.
    aliases: Vec<(glob::Pattern, Arc<ModelGroup>)>,
    /// Configured group names in file order, for `/v1/models`.
    pub listed: Vec<String>,
    /// `routing_rules`, in file order, with their groups resolved.
    pub rules: Vec<Rule>,
    /// Every `model_list` entry in file order, including one that no group serves (for `--check`).
    deployments: Vec<Arc<Deployment>>,
    /// `client_keys`, with their limiters (carried over from `previous` for keys whose limits did not change).
    pub keys: ClientKeys,
    pub config: Config,
}

impl Snapshot {
    /// Builds a snapshot. From `previous` it takes over the balancer state of groups whose shape did not
    /// change and the health (failure count, cooldown) of deployments that did not change. Metric handles
    /// are resolved here, once, so that requests record without lookups.
    pub fn build(config: Config, previous: Option<&Snapshot>, pool: &ClientPool, metrics: &Metrics) -> Self {
        let by_load = |strategy: Strategy| matches!(strategy, Strategy::LeastConn | Strategy::Latency);
        let deployments: Vec<Arc<Deployment>> = config
            .deployments
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                let health = previous
                    .and_then(|p| p.deployment(&spec.name))
                    .filter(|old| old.spec == *spec)
                    .map_or_else(Arc::default, |old| old.health.clone());
                // Served by the groups it is in, and under its own name unless a group has that name.
                let mut strategies = config
                    .groups
                    .iter()
                    .filter(|g| g.members.iter().any(|m| m.deployment == index))
                    .map(|g| g.strategy);
                let tracks_load = strategies.any(by_load)
                    || (by_load(config.strategy) && !config.groups.iter().any(|g| g.name == spec.name));
                Arc::new(Deployment::new(spec.clone(), pool, health, metrics, tracks_load))
            })
            .collect();
        let mut groups = HashMap::new();
        let mut listed = Vec::with_capacity(config.groups.len());
        let mut add = |name: &str, members: Vec<Arc<Deployment>>, weights: Vec<u32>, spec: Option<&GroupSpec>| {
            let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
            let strategy = spec.map_or(config.strategy, |g| g.strategy);
            let balancer = previous
                .and_then(|p| p.groups.get(name))
                .filter(|old| old.same_shape(&names, &weights, strategy))
                .map(|old| old.balancer.clone())
                .unwrap_or_else(|| Arc::new(Balancer::new(strategy, weights.clone())));
            // Handles built afresh would reach the same series (they are keyed by these names); carrying them
            // over also keeps the series already resolved on first use.
            let group_metrics = previous
                .and_then(|p| p.groups.get(name))
                .filter(|old| old.members.iter().map(|m| m.name.as_str()).eq(names.iter().copied()))
                .map(|old| old.metrics.clone())
                .unwrap_or_else(|| Arc::new(GroupMetrics::new(&metrics.families, name, &names)));
            let group = ModelGroup {
                name: name.to_owned(),
                metrics: group_metrics,
                members,
                weights,
                strategy,
                affinity: spec.map_or(config.affinity, |g| g.affinity),
                fallbacks: spec.map(|g| g.fallbacks.clone()).unwrap_or_default(),
                context_window_fallback: spec.and_then(|g| g.context_window_fallback.clone()),
                balancer,
            };
            groups.insert(name.to_owned(), Arc::new(group));
        };
        for group in &config.groups {
            let members = group
                .members
                .iter()
                .map(|m| deployments[m.deployment].clone())
                .collect();
            let weights = group.members.iter().map(|m| m.weight).collect();
            add(&group.name, members, weights, Some(group));
            listed.push(group.name.clone());
        }
        for deployment in &deployments {
            if !config.groups.iter().any(|g| g.name == deployment.name) {
                add(&deployment.name.clone(), vec![deployment.clone()], vec![1], None);
            }
        }
        let aliases = config
            .groups
            .iter()
            .flat_map(|group| {
                group
                    .aliases
                    .iter()
                    .map(|alias| (alias.clone(), groups[&group.name].clone()))
            })
            .collect();
        let rules: Vec<Rule> = config
            .rules
            .iter()
            .map(|spec| Rule {
                name: spec.name.as_str().into(),
                spec: spec.clone(),
                route: groups[&spec.route].clone(),
                matches: metrics.rule_matches(&spec.name),
            })
            .collect();
        let keys = ClientKeys::build(&config.client_keys, previous.map(|p| &p.keys), metrics);
        Self {
            groups,
            aliases,
            listed,
            rules,
            deployments,
            keys,
            config,
        }
    }

    /// The group that serves a request, and the rule that chose it: the first matching rule's group, else the
    /// group `model` names (see [`Snapshot::group`]). Without rules nothing but the name is looked at.
    pub fn route(
        &self,
        ingress: Protocol,
        model: &str,
        headers: &HeaderMap,
        body: &[u8],
        route_stream: bool,
    ) -> Option<(&Arc<ModelGroup>, Option<&Rule>)> {
        let named = self.group(model);
        if self.rules.is_empty() {
            return named.map(|group| (group, None));
        }
        let group = named.map(|g| g.name.as_str());
        let facts = rules::Facts::new(ingress, model, group, headers, body, route_stream);
        match rules::first_match(&self.rules, &facts) {
            Some(rule) => Some((&rule.route, Some(rule))),
            None => named.map(|group| (group, None)),
        }
    }

    /// The group that serves client model `name`: the group of that name (or the `model_list` entry), else
    /// the first group with an alias matching it. Aliases are only tried for names no group has, so they
    /// cost nothing on the usual path.
    pub fn group(&self, name: &str) -> Option<&Arc<ModelGroup>> {
        self.groups.get(name).or_else(|| {
            let (_, group) = self.aliases.iter().find(|(alias, _)| alias.matches(name))?;
            Some(group)
        })
    }

    /// Every group, configured ones and `model_list` names served directly.
    pub fn groups(&self) -> impl Iterator<Item = &Arc<ModelGroup>> {
        self.groups.values()
    }

    /// Every deployment, in `model_list` order.
    pub fn deployments(&self) -> &[Arc<Deployment>] {
        &self.deployments
    }

    /// A deployment by its `model_list` name.
    pub fn deployment(&self, name: &str) -> Option<&Arc<Deployment>> {
        self.groups
            .values()
            .flat_map(|g| g.members.iter())
            .find(|d| d.name == name)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::upstream::ClientPool;

    const CONFIG: &str = r#"
model_list:
  - model_name: a
    llm_params: {api_type: openai, model: up-a, api_base: "http://127.0.0.1:1/v1", api_key: sk-a}
  - model_name: b
    llm_params: {api_type: anthropic, model: up-b, api_base: "http://127.0.0.1:2", api_key: sk-b}
router_settings:
  model_groups:
    - name: g
      models: [{name: a, weight: 2}, {name: b, weight: 1}]
"#;

    fn snapshot(text: &str, previous: Option<&Snapshot>) -> Snapshot {
        let pool = ClientPool::new(None).unwrap();
        Snapshot::build(
            crate::config::parse(text, Path::new("c.yaml")).unwrap(),
            previous,
            &pool,
            &Metrics::new(),
        )
    }

    #[test]
    fn groups_and_direct_model_names_resolve() {
        let s = snapshot(CONFIG, None);
        assert_eq!(s.listed, ["g"]);
        assert_eq!(s.group("g").unwrap().members.len(), 2);
        assert_eq!(s.group("b").unwrap().members[0].upstream_model, "up-b");
        assert!(s.group("nope").is_none());
    }

    #[test]
    fn aliases_serve_names_no_group_has_first_match_in_file_order() {
        let s = snapshot(
            r#"
model_list:
  - model_name: a
    llm_params: {api_type: openai, model: up-a, api_base: "http://127.0.0.1:1/v1"}
  - model_name: b
    llm_params: {api_type: anthropic, model: up-b, api_base: "http://127.0.0.1:2"}
router_settings:
  model_groups:
    - name: fast
      models: [{name: a}]
      aliases: ["claude-haiku-*", "gemini-?.?-flash-lite"]
    - name: big
      models: [{name: b}]
      aliases: ["claude-*", "gemini-*"]
"#,
            None,
        );
        let served = |name: &str| s.group(name).map(|g| g.name.as_str());
        assert_eq!(served("claude-haiku-4-5-20251001"), Some("fast"));
        assert_eq!(
            served("claude-sonnet-4-5"),
            Some("big"),
            "the first matching group in file order"
        );
        assert_eq!(served("gemini-2.5-flash-lite"), Some("fast"));
        assert_eq!(served("gemini-2.5-pro"), Some("big"));
        assert_eq!(served("fast"), Some("fast"));
        assert_eq!(served("a"), Some("a"), "a model_list name is served before any alias");
        assert_eq!(served("gpt-4o"), None);
    }

    #[test]
    fn credentials_follow_the_protocol_and_are_sensitive() {
        let s = snapshot(CONFIG, None);
        let a = &s.group("a").unwrap().members[0];
        let authorization = a.headers[0].get("authorization").unwrap();
        assert_eq!(authorization.to_str().unwrap(), "Bearer sk-a");
        assert!(authorization.is_sensitive());
        let b = &s.group("b").unwrap().members[0];
        assert_eq!(b.headers[0].get("x-api-key").unwrap().to_str().unwrap(), "sk-b");
        assert!(b.headers[0].get("authorization").is_none());
        assert!(!format!("{s:?}").contains("sk-a"));
    }

    #[test]
    fn health_survives_a_reload_only_for_unchanged_deployments() {
        let first = snapshot(CONFIG, None);
        let a = first.group("a").unwrap().members[0].health.clone();
        let b = first.group("b").unwrap().members[0].health.clone();
        let second = snapshot(&CONFIG.replace("sk-b", "sk-b2"), Some(&first));
        assert!(Arc::ptr_eq(&a, &second.group("a").unwrap().members[0].health));
        assert!(!Arc::ptr_eq(&b, &second.group("b").unwrap().members[0].health));
    }

    #[test]
    fn metric_handles_survive_a_reload_of_groups_that_keep_their_members() {
        let first = snapshot(CONFIG, None);
        let second = snapshot(&CONFIG.replace("sk-b", "sk-b2"), Some(&first));
        assert!(Arc::ptr_eq(
            &first.group("g").unwrap().metrics,
            &second.group("g").unwrap().metrics
        ));
        let third = snapshot(&CONFIG.replace("{name: a, weight: 2}, ", ""), Some(&second));
        assert!(!Arc::ptr_eq(
            &second.group("g").unwrap().metrics,
            &third.group("g").unwrap().metrics
        ));
    }

    #[test]
    fn balancer_state_survives_an_unrelated_reload() {
        let first = snapshot(CONFIG, None);
        let g = first.group("g").unwrap();
        assert_eq!(g.pick(|_| true).unwrap().0, 0);
        // Same group shape, another deployment's key changed: the sequence continues (a b a ...).
        let second = snapshot(&CONFIG.replace("sk-b", "sk-b2"), Some(&first));
        assert!(Arc::ptr_eq(
            &first.group("g").unwrap().balancer,
            &second.group("g").unwrap().balancer
        ));
        assert_eq!(second.group("g").unwrap().pick(|_| true).unwrap().0, 1);
        // A changed weight starts afresh.
        let third = snapshot(&CONFIG.replace("weight: 1}", "weight: 3}"), Some(&second));
        assert!(!Arc::ptr_eq(
            &second.group("g").unwrap().balancer,
            &third.group("g").unwrap().balancer
        ));
    }
}
