//! Turns the file as written into a [`Config`] the router can trust. Every message starts with the place in
//! the file it concerns, e.g. `router_settings.model_groups[1].models[0].name: unknown model 'modelX'`.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use serde_json::value::RawValue;
use url::Url;

use super::client_keys::{self, ClientKeySpec};
use super::file::{ApiKeys, ConfigFile, GroupEntry, LlmParams, ModelEntry, RewriteBody, RouterSettings};
use super::glob::Glob;
use super::routing::{self, Affinity, RuleSpec};
use crate::protocol::Protocol;
use crate::protocol::convert::ModelOptions;

pub const DEFAULT_WEIGHT: u32 = 100;
const MAX_WEIGHT: i64 = 1_000_000;
/// `api_key: os.environ/NAME` reads the key from the environment (the LiteLLM convention).
pub(super) const ENV_PREFIX: &str = "os.environ/";
/// Where a mock deployment's requests would go: nowhere (`.invalid` never resolves), for the code that
/// wants every deployment to have an endpoint.
const MOCK_ENDPOINT: &str = "http://mock.invalid/v1/chat/completions";

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub deployments: Vec<DeploymentSpec>,
    pub groups: Vec<GroupSpec>,
    /// The strategy of groups that set none, and of `model_list` names served directly.
    pub strategy: Strategy,
    /// The affinity of groups that set none, and of `model_list` names served directly.
    pub affinity: Affinity,
    /// `routing_rules`, in file order.
    pub rules: Vec<RuleSpec>,
    pub reliability: Reliability,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// A client has this long to send a request's headers (slow-header clients cannot hold connections).
    pub header_read_timeout: Duration,
    /// A client has this long to send a request's body once its headers have arrived.
    pub body_read_timeout: Duration,
    /// Client connections open at once; beyond it, accepting waits.
    pub max_connections: usize,
    /// Largest upstream stream event, in bytes.
    pub max_event_size: usize,
    /// The usage log, when `usage_db` is set.
    pub usage_db: Option<UsageDbSpec>,
    /// `client_keys`: when not empty, every API request needs one of them (or `--token`).
    pub client_keys: Vec<ClientKeySpec>,
    /// `redis_url`: limits and cooldowns shared with the other replicas.
    pub redis_url: Option<Secret>,
}

/// `router_settings.usage_db` and `usage_retention_days`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDbSpec {
    /// As written; [`super::parse`] makes a relative one relative to the config file's folder.
    pub path: std::path::PathBuf,
    pub retention_days: u32,
}

/// Failover and cooldown settings (`router_settings`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reliability {
    /// Extra attempts after the first, each on another deployment of the group where one exists.
    pub num_retries: u32,
    /// Consecutive failures after which a deployment cools down.
    pub allowed_fails: u32,
    pub cooldown: Duration,
    /// On shutdown, how long requests in flight may take to finish.
    pub drain_timeout: Duration,
}

impl Default for Reliability {
    fn default() -> Self {
        Self {
            num_retries: 2,
            allowed_fails: 3,
            cooldown: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Upstream timeouts of one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connection set-up.
    pub connect: Duration,
    /// Until the response headers and, for streams, the first event.
    pub first_byte: Duration,
    /// Between two stream events.
    pub stream_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(300),
            stream_idle: Duration::from_secs(120),
        }
    }
}

/// One `model_list` entry: a model at a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSpec {
    pub name: String,
    pub protocol: Protocol,
    pub upstream_model: String,
    /// `model: "*"` or another glob: the client's model goes upstream unchanged, for the names that match.
    pub model_pattern: Option<Glob>,
    /// Where requests are POSTed: `{api_base}/chat/completions` or `{api_base}/v1/messages`.
    pub endpoint: Url,
    /// The upstream keys, used in turn (empty: no credential is sent).
    pub api_keys: Vec<Secret>,
    /// Top-level fields that replace the client's, already serialised.
    pub rewrite_body: Vec<(String, RawJson)>,
    /// `rewrite_header`: headers set on (a value, marked sensitive) or removed from (`None`) upstream requests.
    pub rewrite_header: Vec<(http::HeaderName, Option<http::HeaderValue>)>,
    /// What the converters need to know about this provider.
    pub options: ModelOptions,
    pub timeouts: Timeouts,
    pub proxy: UpstreamProxy,
    /// `api_type: mock`: the router answers itself, in the client's protocol; `protocol` is then only
    /// what token counting treats it as (an upstream with no counting endpoint: estimated locally).
    pub mock: Option<MockSpec>,
}

/// The built-in upstream of `api_type: mock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockSpec {
    /// The answer's text (`mock_response`).
    pub response: String,
    /// How long the answer takes to start (`mock_delay_ms`).
    pub delay: Duration,
    /// Characters of text per stream event (`mock_stream_chunk_chars`).
    pub stream_chunk_chars: usize,
}

impl MockSpec {
    pub const DEFAULT_RESPONSE: &str = "Hello from llm-router! This answer comes from its built-in mock upstream.";
    const DEFAULT_CHUNK_CHARS: usize = 8;
}

/// How a deployment's connections are made: `llm_params.proxy`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UpstreamProxy {
    /// Through `--proxy`, when the router has one.
    #[default]
    Router,
    /// `proxy: none`: directly, whatever `--proxy` says.
    Direct,
    /// Through this proxy (its URL may carry credentials).
    Url(Secret),
}

impl DeploymentSpec {
    /// `api_type` as written: a protocol's name, or `mock`.
    pub fn api_type(&self) -> &'static str {
        match self.mock {
            Some(_) => "mock",
            None => self.protocol.as_str(),
        }
    }

    /// `endpoint`, the stream endpoint (Gemini's `:streamGenerateContent?alt=sse`: a stream is asked for in
    /// the URL) and the token-counting endpoint next to `endpoint` (Anthropic's `…/messages/count_tokens`,
    /// Gemini's `…/models/{model}:countTokens`); for a Gemini deployment, of `model` when one is given (the
    /// client's, on a deployment that passes it through).
    pub fn endpoint_urls(&self, model: Option<&str>) -> (Url, Option<Url>, Url) {
        let endpoint = match (self.protocol, model) {
            (Protocol::Gemini, Some(model)) => {
                let mut url = self.endpoint.clone();
                let path = self.endpoint.path();
                let base = &path[..path.rfind("/models/").expect("a gemini endpoint names its model")];
                let model = percent_encoding::utf8_percent_encode(model, PATH_SEGMENT);
                url.set_path(&format!("{base}/models/{model}:generateContent"));
                url
            }
            _ => self.endpoint.clone(),
        };
        let stream = (self.protocol == Protocol::Gemini)
            .then(|| sibling(&endpoint, ":streamGenerateContent", "", Some("alt=sse")));
        let count = sibling(&endpoint, ":countTokens", "/count_tokens", None);
        (endpoint, stream, count)
    }
}

/// What a model name may not hold unescaped in a URL path segment.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `endpoint` with Gemini's method replaced by `method`, or with `suffix` appended for other protocols.
fn sibling(endpoint: &Url, method: &str, suffix: &str, query: Option<&str>) -> Url {
    let mut url = endpoint.clone();
    let path = endpoint.path();
    let path = match path.strip_suffix(":generateContent") {
        Some(model) => format!("{model}{method}"),
        None => format!("{path}{suffix}"),
    };
    url.set_path(&path);
    url.set_query(query);
    url
}

/// A JSON value kept as its serialised text; equal when the text is.
#[derive(Debug, Clone)]
pub struct RawJson(pub Box<RawValue>);

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupSpec {
    pub name: String,
    pub members: Vec<GroupMemberSpec>,
    /// Client model names that name no group but match one of these are served by this group.
    pub aliases: Vec<glob::Pattern>,
    pub strategy: Strategy,
    pub affinity: Affinity,
    /// Groups (or `model_list` names) that take a request over, in order, when every attempt here failed.
    pub fallbacks: Vec<String>,
    /// The group that takes a request whose prompt an upstream found too long.
    pub context_window_fallback: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMemberSpec {
    /// Index into [`Config::deployments`].
    pub deployment: usize,
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// nginx's smooth weighted round-robin.
    #[default]
    RoundRobin,
    /// Weighted random.
    Random,
    /// Fewest requests in flight; weights split the ties.
    LeastConn,
    /// Lowest recent time to first token, with a small share of picks kept on the others.
    Latency,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RoundRobin => "roundrobin",
            Strategy::Random => "random",
            Strategy::LeastConn => "leastconn",
            Strategy::Latency => "latency",
        }
    }

    fn parse(text: Option<&str>, default: Strategy, place: &str) -> Result<Strategy, String> {
        let Some(text) = text else { return Ok(default) };
        [
            Strategy::RoundRobin,
            Strategy::Random,
            Strategy::LeastConn,
            Strategy::Latency,
        ]
        .into_iter()
        .find(|s| s.name() == text)
        .ok_or_else(|| {
            format!("{place}.strategy: unknown strategy '{text}' (expected roundrobin, random, leastconn or latency)")
        })
    }
}

/// A string that never shows up in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(std::sync::Arc<str>);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything wrong with a file. Validation goes on past a problem, so that one run reports them all, each
/// with its place.
#[derive(Debug, Default)]
pub(super) struct Problems(Vec<String>);

impl Problems {
    /// The value, or `None` with its problem noted.
    pub(super) fn take<T>(&mut self, result: Result<T, String>) -> Option<T> {
        result.map_err(|problem| self.0.push(problem)).ok()
    }

    pub(super) fn push(&mut self, problem: String) {
        self.0.push(problem);
    }

    fn count(&self) -> usize {
        self.0.len()
    }
}

/// The config, or every problem found in it, in file order within each section.
pub(super) fn validate(file: ConfigFile, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Vec<String>> {
    let mut problems = Problems::default();
    if file.model_list.is_empty() {
        problems.push("model_list: at least one model is required".into());
    }
    let settings = &file.router_settings;
    let place = "router_settings";
    let defaults = Timeouts::default();
    let mut seconds_or = |value, default, key| problems.take(seconds(value, default, place, key)).unwrap_or(default);
    let timeouts = Timeouts {
        connect: seconds_or(settings.connect_timeout, defaults.connect, "connect_timeout"),
        first_byte: seconds_or(settings.timeout, defaults.first_byte, "timeout"),
        stream_idle: seconds_or(
            settings.stream_idle_timeout,
            defaults.stream_idle,
            "stream_idle_timeout",
        ),
    };
    let header_read_timeout = seconds_or(
        settings.header_read_timeout,
        Duration::from_secs(15),
        "header_read_timeout",
    );
    let body_read_timeout = seconds_or(settings.body_read_timeout, Duration::from_secs(30), "body_read_timeout");
    let reliability = problems.take(reliability(settings)).unwrap_or_default();
    let body_limit = problems.take(mebibytes(settings.max_request_size_mb, 32, "max_request_size_mb"));
    let max_event_size = problems.take(mebibytes(settings.max_event_size_mb, 16, "max_event_size_mb"));
    let max_connections = match settings.max_connections {
        None => 4096,
        Some(n @ 1..=1_000_000) => n as usize,
        Some(n) => {
            problems.push(format!(
                "router_settings.max_connections: {n} is out of range (1 to 1000000)"
            ));
            4096
        }
    };
    let usage_db = problems.take(usage_db(settings));
    let strategy = problems.take(Strategy::parse(
        settings.strategy.as_deref(),
        Strategy::default(),
        place,
    ));
    let affinity = problems.take(routing::affinity(settings.affinity.as_deref(), Affinity::None, place));
    let (strategy, affinity) = (strategy.unwrap_or_default(), affinity.unwrap_or(Affinity::None));
    let redis_url = problems.take(client_keys::redis_url(settings.redis_url.as_deref(), env));

    let mut names = HashSet::new();
    let mut deployments = Vec::with_capacity(file.model_list.len());
    // Entries with a problem of their own: groups that name them are not told the name is unknown.
    let mut broken = HashSet::new();
    for (i, entry) in file.model_list.into_iter().enumerate() {
        let place = format!("model_list[{i}]");
        if !names.insert(entry.model_name.clone()) {
            problems.push(format!(
                "{place}.model_name: duplicate model_name '{}'",
                entry.model_name
            ));
            continue;
        }
        let name = entry.model_name.clone();
        match deployment(entry, &place, timeouts, env, &mut problems) {
            Some(spec) => deployments.push(spec),
            None => {
                broken.insert(name);
            }
        }
    }

    let mut group_names = HashSet::new();
    let mut groups = Vec::new();
    for (i, entry) in file.router_settings.model_groups.into_iter().enumerate() {
        let place = format!("router_settings.model_groups[{i}]");
        if !group_names.insert(entry.name.clone()) {
            problems.push(format!("{place}.name: duplicate group name '{}'", entry.name));
            continue;
        }
        let name = entry.name.clone();
        match problems.take(group(entry, &place, &deployments, &broken, strategy, affinity)) {
            // With its place in the file: a group before it may have been left out.
            Some(group) => groups.push((i, group)),
            None => {
                broken.insert(name);
            }
        }
    }
    check_aliases(&groups, &deployments, &mut problems);
    let served = |name: &str| {
        broken.contains(name)
            || groups.iter().any(|(_, g)| g.name == name)
            || deployments.iter().any(|d| d.name == name)
    };
    check_fallbacks(&groups, &served, &mut problems);
    let rules = routing::rules(file.router_settings.routing_rules, &served, &mut problems);
    let client_keys = client_keys::client_keys(file.router_settings.client_keys, env, &mut problems);
    match (problems.0.is_empty(), body_limit, max_event_size, usage_db, redis_url) {
        (true, Some(body_limit), Some(max_event_size), Some(usage_db), Some(redis_url)) => Ok(Config {
            deployments,
            groups: groups.into_iter().map(|(_, group)| group).collect(),
            strategy,
            affinity,
            rules,
            reliability,
            body_limit,
            header_read_timeout,
            body_read_timeout,
            max_connections,
            max_event_size,
            usage_db,
            client_keys,
            redis_url,
        }),
        _ => Err(problems.0),
    }
}

/// `router_settings.usage_db` and `usage_retention_days`.
fn usage_db(settings: &RouterSettings) -> Result<Option<UsageDbSpec>, String> {
    match (
        settings.usage_db.as_deref().map(str::trim),
        settings.usage_retention_days,
    ) {
        (None | Some(""), None) => Ok(None),
        (None | Some(""), Some(_)) => Err("router_settings.usage_retention_days: set only with usage_db".into()),
        (Some(path), days) => Ok(Some(UsageDbSpec {
            path: path.into(),
            retention_days: match days {
                None => 30,
                Some(n @ 1..=3650) => n,
                Some(n) => {
                    return Err(format!(
                        "router_settings.usage_retention_days: {n} is out of range (1 to 3650)"
                    ));
                }
            },
        })),
    }
}

/// A size in MiB (fractions allowed) from `router_settings`, as bytes.
fn mebibytes(value: Option<f64>, default_mb: usize, key: &str) -> Result<usize, String> {
    match value {
        None => Ok(default_mb * 1024 * 1024),
        Some(mb) if mb.is_finite() && (0.001..=4096.0).contains(&mb) => Ok((mb * 1024.0 * 1024.0) as usize),
        Some(mb) => Err(format!("router_settings.{key}: {mb} is out of range (0.001 to 4096)")),
    }
}

fn reliability(settings: &RouterSettings) -> Result<Reliability, String> {
    let defaults = Reliability::default();
    let place = "router_settings";
    if let Some(n) = settings.num_retries
        && n > 10
    {
        return Err(format!("{place}.num_retries: {n} is out of range (0 to 10)"));
    }
    Ok(Reliability {
        num_retries: settings.num_retries.unwrap_or(defaults.num_retries),
        allowed_fails: settings.allowed_fails.unwrap_or(defaults.allowed_fails),
        cooldown: seconds(settings.cooldown_time, defaults.cooldown, place, "cooldown_time")?,
        drain_timeout: seconds(settings.drain_timeout, defaults.drain_timeout, place, "drain_timeout")?,
    })
}

/// A duration in seconds (fractions allowed), from 1 ms to one day.
fn seconds(value: Option<f64>, default: Duration, place: &str, key: &str) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(s) if s.is_finite() && (0.001..=86_400.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(format!("{place}.{key}: {s} is out of range (0.001 to 86400 seconds)")),
    }
}

/// One `model_list` entry, or `None` when it has problems (each noted).
fn deployment(
    entry: ModelEntry,
    place: &str,
    defaults: Timeouts,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Problems,
) -> Option<DeploymentSpec> {
    let found = problems.count();
    let ModelEntry { model_name, llm_params } = entry;
    if model_name.trim().is_empty() {
        problems.push(format!("{place}.model_name: must not be empty"));
    }
    let place = format!("{place}.llm_params");
    let options = problems.take(model_options(&llm_params, &place));
    let mut seconds_or = |value, default, key| problems.take(seconds(value, default, &place, key)).unwrap_or(default);
    let timeouts = Timeouts {
        connect: seconds_or(llm_params.connect_timeout, defaults.connect, "connect_timeout"),
        first_byte: seconds_or(llm_params.timeout, defaults.first_byte, "timeout"),
        stream_idle: seconds_or(
            llm_params.stream_idle_timeout,
            defaults.stream_idle,
            "stream_idle_timeout",
        ),
    };
    let target = problems.take(target(&model_name, &llm_params, &place));
    let LlmParams {
        api_key,
        rewrite_body,
        rewrite_header,
        proxy,
        ..
    } = llm_params;
    let api_keys = problems.take(api_keys(api_key, &place, env));
    let rewrite_body = match rewrite_body {
        None => Some(Vec::new()),
        Some(body) => problems.take(rewrite_fields(body).map_err(|why| format!("{place}.rewrite_body: {why}"))),
    };
    let rewrite_header = match rewrite_header {
        None => Some(Vec::new()),
        Some(headers) => {
            problems.take(header_rewrites(headers, env).map_err(|why| format!("{place}.rewrite_header{why}")))
        }
    };
    let proxy = problems.take(upstream_proxy(proxy.as_deref(), &place));
    if problems.count() > found {
        return None;
    }
    let Target {
        protocol,
        mock,
        model,
        model_pattern,
        endpoint,
    } = target?;
    Some(DeploymentSpec {
        name: model_name,
        protocol,
        upstream_model: model,
        model_pattern,
        endpoint,
        api_keys: api_keys?,
        rewrite_body: rewrite_body?,
        rewrite_header: rewrite_header?,
        options: options?,
        timeouts,
        proxy: proxy?,
        mock,
    })
}

/// Where a deployment's requests go and in what protocol: `api_type`, `model`, `api_base` (or the mock's
/// settings), which depend on each other.
struct Target {
    protocol: Protocol,
    mock: Option<MockSpec>,
    model: String,
    model_pattern: Option<Glob>,
    endpoint: Url,
}

fn target(model_name: &str, params: &LlmParams, place: &str) -> Result<Target, String> {
    let protocol = match params.api_type.as_str() {
        // Counted like any upstream without a counting endpoint; it answers in the client's protocol.
        "openai" | "mock" => Protocol::OpenAi,
        "anthropic" => Protocol::Anthropic,
        "responses" => Protocol::Responses,
        "gemini" => Protocol::Gemini,
        other => {
            return Err(format!(
                "{place}.api_type: unknown api_type '{other}' (expected openai, anthropic, responses, gemini or mock)"
            ));
        }
    };
    let mock = mock(params, place)?;
    // A mock's model is only what its answers name.
    let model = match (&mock, params.model.trim().is_empty()) {
        (Some(_), true) => model_name.to_owned(),
        (None, true) => return Err(format!("{place}.model: required, and must not be empty")),
        (_, false) => params.model.clone(),
    };
    let model_pattern = match model.contains(['*', '?', '[']) {
        false => None,
        true => {
            Some(Glob::new(&model).map_err(|e| format!("{place}.model: '{model}' is not a valid pattern: {}", e.msg))?)
        }
    };
    // A Gemini model goes into the URL path, as one segment (`models/` prefixed or not); a glob's stands in
    // for the client's model, written into the URL per request.
    let model = match protocol {
        Protocol::Gemini if model_pattern.is_some() => model,
        Protocol::Gemini => {
            let name = model.strip_prefix("models/").unwrap_or(&model).to_owned();
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
            {
                return Err(format!(
                    "{place}.model: a gemini model name is one path segment of letters, digits, '.', '-' and '_'"
                ));
            }
            name
        }
        _ => model,
    };
    let in_path = match model_pattern {
        Some(_) => "model",
        None => &model,
    };
    let api_base = &params.api_base;
    let endpoint = match (&mock, api_base.trim().is_empty()) {
        (Some(_), _) => Url::parse(MOCK_ENDPOINT).expect("a valid URL"),
        (None, true) => return Err(format!("{place}.api_base: required, and must not be empty")),
        (None, false) => endpoint(api_base, protocol, in_path).map_err(|why| format!("{place}.api_base: {why}"))?,
    };
    Ok(Target {
        protocol,
        mock,
        model,
        model_pattern,
        endpoint,
    })
}

/// `api_type: mock`'s settings; the `mock_*` keys anywhere else are a mistake, and so are connection
/// settings on a mock.
fn mock(params: &LlmParams, place: &str) -> Result<Option<MockSpec>, String> {
    if params.api_type != "mock" {
        let mock_keys = [
            ("mock_response", params.mock_response.is_some()),
            ("mock_delay_ms", params.mock_delay_ms.is_some()),
            ("mock_stream_chunk_chars", params.mock_stream_chunk_chars.is_some()),
        ];
        return match mock_keys.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(format!("{place}.{key}: only for api_type mock")),
            None => Ok(None),
        };
    }
    let unused = [
        ("api_base", !params.api_base.is_empty()),
        ("api_key", params.api_key.is_some()),
        ("proxy", params.proxy.is_some()),
        ("rewrite_header", params.rewrite_header.is_some()),
    ];
    if let Some((key, _)) = unused.iter().find(|(_, set)| *set) {
        return Err(format!("{place}.{key}: api_type mock connects nowhere; remove it"));
    }
    if params.mock_stream_chunk_chars == Some(0) {
        return Err(format!("{place}.mock_stream_chunk_chars: must be at least 1"));
    }
    if params.mock_delay_ms.is_some_and(|ms| ms > 86_400_000) {
        return Err(format!("{place}.mock_delay_ms: at most 86400000 (a day)"));
    }
    Ok(Some(MockSpec {
        response: params
            .mock_response
            .clone()
            .unwrap_or_else(|| MockSpec::DEFAULT_RESPONSE.to_owned()),
        delay: Duration::from_millis(params.mock_delay_ms.unwrap_or(0)),
        stream_chunk_chars: params.mock_stream_chunk_chars.unwrap_or(MockSpec::DEFAULT_CHUNK_CHARS),
    }))
}

/// `api_key`: none, one, or a pool.
fn api_keys(
    api_key: Option<ApiKeys>,
    place: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Secret>, String> {
    match api_key {
        None => Ok(Vec::new()),
        Some(ApiKeys::One(key)) => Ok(vec![api_key_of(key, &format!("{place}.api_key"), env)?]),
        Some(ApiKeys::Pool(keys)) if keys.is_empty() => Err(format!(
            "{place}.api_key: an empty list; give at least one key, or none"
        )),
        Some(ApiKeys::Pool(keys)) => {
            let mut pool: Vec<Secret> = Vec::with_capacity(keys.len());
            for (k, key) in keys.into_iter().enumerate() {
                let key = api_key_of(key, &format!("{place}.api_key[{k}]"), env)?;
                if let Some(first) = pool.iter().position(|other| *other == key) {
                    return Err(format!("{place}.api_key[{k}]: the same key as api_key[{first}]"));
                }
                pool.push(key);
            }
            Ok(pool)
        }
    }
}

/// `proxy`: absent (the router's), `none`, or a proxy URL.
fn upstream_proxy(proxy: Option<&str>, place: &str) -> Result<UpstreamProxy, String> {
    match proxy.map(str::trim) {
        None => Ok(UpstreamProxy::Router),
        Some("none") => Ok(UpstreamProxy::Direct),
        Some(url) => {
            crate::upstream::check_proxy(url).map_err(|crate::upstream::ClientError::BadProxy(shown)| {
                format!(
                    "{place}.proxy: '{shown}' is not a proxy: expected socks5://, socks5h://, http:// or https:// \
                     followed by host:port, or none for a direct connection"
                )
            })?;
            Ok(UpstreamProxy::Url(Secret::new(url.to_owned())))
        }
    }
}

/// One `api_key` entry: the key, or the environment variable `os.environ/NAME` names. Printable ASCII
/// without spaces, as a header value must be.
fn api_key_of(key: String, place: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, String> {
    let key = match key.strip_prefix(ENV_PREFIX) {
        Some(var) => env(var).ok_or_else(|| format!("{place}: environment variable '{var}' is not set"))?,
        None => key,
    };
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("{place}: must be printable ASCII without spaces"));
    }
    Ok(Secret::new(key))
}

/// The per-deployment converter options; unset keys keep [`ModelOptions::default`].
fn model_options(params: &LlmParams, place: &str) -> Result<ModelOptions, String> {
    let defaults = ModelOptions::default();
    for (key, value) in [
        ("max_output_tokens", params.max_output_tokens),
        ("default_max_tokens", params.default_max_tokens),
    ] {
        if value == Some(0) {
            return Err(format!("{place}.{key}: must be at least 1"));
        }
    }
    if let Some(factor) = params.token_count_factor
        && !(factor.is_finite() && (0.1..=10.0).contains(&factor))
    {
        return Err(format!(
            "{place}.token_count_factor: {factor} is out of range (0.1 to 10)"
        ));
    }
    // Anthropic's own API accepts everything; third-party Messages hosts reject some of it (cache ttl).
    let anthropic_native = params
        .anthropic_native
        .unwrap_or_else(|| Url::parse(params.api_base.trim()).is_ok_and(|u| u.host_str() == Some("api.anthropic.com")));
    Ok(ModelOptions {
        max_output_tokens: params.max_output_tokens,
        default_max_tokens: params.default_max_tokens,
        thinking_mode: params.thinking_mode.unwrap_or(defaults.thinking_mode),
        reasoning_dialect: params.reasoning_dialect.unwrap_or(defaults.reasoning_dialect),
        supports_stream_options: params
            .supports_stream_options
            .unwrap_or(defaults.supports_stream_options),
        supports_top_k: params.supports_top_k.unwrap_or(defaults.supports_top_k),
        sampling_exclusive: params.sampling_exclusive.unwrap_or(defaults.sampling_exclusive),
        supports_output_format: params.supports_output_format.unwrap_or(defaults.supports_output_format),
        forward_cache_control: params.forward_cache_control.unwrap_or(defaults.forward_cache_control),
        anthropic_native,
        token_count_factor: params.token_count_factor.unwrap_or(defaults.token_count_factor),
        merge_system_messages: params.merge_system_messages.unwrap_or(defaults.merge_system_messages),
        // OpenAI's own API takes it; elsewhere it is sent only when the deployment says so.
        supports_prompt_cache_key: params.supports_prompt_cache_key.unwrap_or_else(|| {
            Url::parse(params.api_base.trim()).is_ok_and(|u| u.host_str() == Some("api.openai.com"))
        }),
    })
}

/// `{api_base}/chat/completions` for OpenAI, `{api_base}/responses` for the Responses API;
/// `{api_base}/v1/messages` for Anthropic, tolerating a base that already ends in `/v1` and trailing slashes;
/// `{api_base}/models/{model}:generateContent` for Gemini (its base names the API version, e.g.
/// `https://generativelanguage.googleapis.com/v1beta`).
fn endpoint(api_base: &str, protocol: Protocol, model: &str) -> Result<Url, String> {
    let url = Url::parse(api_base.trim()).map_err(|e| format!("'{api_base}' is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("'{api_base}' must be an http:// or https:// URL with a host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("'{api_base}' must not have a query or fragment"));
    }
    let base = url.path().trim_end_matches('/');
    let path = match protocol {
        Protocol::OpenAi => format!("{base}/chat/completions"),
        Protocol::Responses => format!("{base}/responses"),
        Protocol::Anthropic if base.ends_with("/v1") => format!("{base}/messages"),
        Protocol::Anthropic => format!("{base}/v1/messages"),
        Protocol::Gemini => format!("{base}/models/{model}:generateContent"),
    };
    let mut url = url;
    url.set_path(&path);
    // Requests are sent to it as an `http::Uri`, which is stricter than a URL in a few characters.
    crate::upstream::endpoint_target(&url).map_err(|e| format!("'{api_base}' is not a valid request URI ({e})"))?;
    Ok(url)
}

/// `rewrite_body` or `rewrite_header` as a map, whichever of the two forms it was written in.
fn json_object(body: RewriteBody) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match body {
        RewriteBody::Mapping(map) => Ok(map),
        RewriteBody::Json(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            Ok(_) => Err("must be a JSON object".into()),
            Err(e) => Err(format!("not valid JSON ({e})")),
        },
    }
}

/// Headers the HTTP layer writes itself: setting them would break the request's framing or routing.
const FRAMING_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// `rewrite_header`: each name checked, each value a header value (`os.environ/NAME` read from the
/// environment) or `null` to remove the header. Messages start with the place after `rewrite_header` and
/// never quote a value, which may be a credential.
fn header_rewrites(
    headers: RewriteBody,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(http::HeaderName, Option<http::HeaderValue>)>, String> {
    let map = json_object(headers).map_err(|why| format!(": {why}"))?;
    map.into_iter()
        .map(|(name, value)| {
            let header = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!(": '{name}' is not a valid header name"))?;
            if FRAMING_HEADERS.contains(&header.as_str()) {
                return Err(format!(
                    ".{name}: is written by the router's HTTP layer and cannot be rewritten"
                ));
            }
            let text = match value {
                serde_json::Value::Null => return Ok((header, None)),
                serde_json::Value::String(text) => match text.strip_prefix(ENV_PREFIX) {
                    Some(var) => env(var).ok_or_else(|| format!(".{name}: environment variable '{var}' is not set"))?,
                    None => text,
                },
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return Err(format!(".{name}: must be a string, a number, a boolean or null")),
            };
            let mut value = http::HeaderValue::from_str(&text)
                .map_err(|_| format!(".{name}: is not a valid header value (visible ASCII, spaces and tabs)"))?;
            // It may hold a credential: never printed by `Debug`.
            value.set_sensitive(true);
            Ok((header, Some(value)))
        })
        .collect()
}

fn rewrite_fields(body: RewriteBody) -> Result<Vec<(String, RawJson)>, String> {
    json_object(body)?
        .into_iter()
        .map(|(key, value)| {
            let raw = serde_json::value::to_raw_value(&value).map_err(|e| e.to_string())?;
            Ok((key, RawJson(raw)))
        })
        .collect()
}

/// One group. Members that are `broken` (entries with problems of their own) are left out without a word.
fn group(
    entry: GroupEntry,
    place: &str,
    deployments: &[DeploymentSpec],
    broken: &HashSet<String>,
    strategy: Strategy,
    affinity: Affinity,
) -> Result<GroupSpec, String> {
    if entry.name.trim().is_empty() {
        return Err(format!("{place}.name: must not be empty"));
    }
    if entry.models.is_empty() {
        return Err(format!("{place}.models: group '{}' has no models", entry.name));
    }
    let mut members = Vec::with_capacity(entry.models.len());
    for (j, member) in entry.models.iter().enumerate() {
        let place = format!("{place}.models[{j}]");
        if broken.contains(&member.name) {
            continue;
        }
        let deployment = deployments
            .iter()
            .position(|d| d.name == member.name)
            .ok_or_else(|| format!("{place}.name: unknown model '{}'", member.name))?;
        if members.iter().any(|m: &GroupMemberSpec| m.deployment == deployment) {
            return Err(format!("{place}.name: model '{}' is listed twice", member.name));
        }
        let weight = match member.weight {
            None => DEFAULT_WEIGHT,
            Some(w) if (0..=MAX_WEIGHT).contains(&w) => w as u32,
            Some(w) => {
                return Err(format!("{place}.weight: {w} is out of range (0 to {MAX_WEIGHT})"));
            }
        };
        members.push(GroupMemberSpec { deployment, weight });
    }
    if members.len() == entry.models.len() && members.iter().all(|m| m.weight == 0) {
        return Err(format!("{place}.models: every weight in group '{}' is 0", entry.name));
    }
    let mut aliases = Vec::with_capacity(entry.aliases.len());
    for (k, alias) in entry.aliases.iter().enumerate() {
        let place = format!("{place}.aliases[{k}]");
        if alias.trim().is_empty() {
            return Err(format!("{place}: must not be empty"));
        }
        let pattern =
            glob::Pattern::new(alias).map_err(|e| format!("{place}: '{alias}' is not a valid pattern: {}", e.msg))?;
        aliases.push(pattern);
    }
    if let Some(k) = entry.fallbacks.iter().position(|f| *f == entry.name) {
        return Err(format!("{place}.fallbacks[{k}]: a group cannot fall back to itself"));
    }
    if entry.context_window_fallback.as_ref() == Some(&entry.name) {
        return Err(format!(
            "{place}.context_window_fallback: a group cannot fall back to itself"
        ));
    }
    Ok(GroupSpec {
        strategy: Strategy::parse(entry.strategy.as_deref(), strategy, place)?,
        affinity: routing::affinity(entry.affinity.as_deref(), affinity, place)?,
        name: entry.name,
        members,
        aliases,
        fallbacks: entry.fallbacks,
        context_window_fallback: entry.context_window_fallback,
    })
}

/// Fallbacks name groups that exist, and never lead back to a group they left.
fn check_fallbacks(groups: &[(usize, GroupSpec)], served: &dyn Fn(&str) -> bool, problems: &mut Problems) {
    for (i, group) in groups {
        let place = format!("router_settings.model_groups[{i}]");
        for (k, name) in group.fallbacks.iter().enumerate() {
            if !served(name) {
                problems.push(format!("{place}.fallbacks[{k}]: unknown group '{name}'"));
            } else if group.fallbacks[..k].contains(name) {
                problems.push(format!("{place}.fallbacks[{k}]: '{name}' is listed twice"));
            }
        }
        if let Some(name) = &group.context_window_fallback
            && !served(name)
        {
            problems.push(format!("{place}.context_window_fallback: unknown group '{name}'"));
        }
    }
    let names: Vec<&str> = groups.iter().map(|(_, g)| g.name.as_str()).collect();
    let edges = groups
        .iter()
        .map(|(_, g)| {
            let next = g.fallbacks.iter().chain(&g.context_window_fallback).map(String::as_str);
            (g.name.as_str(), next.collect())
        })
        .collect();
    problems.take(routing::check_fallback_cycles(&names, &edges));
}

/// An alias spelling out a name that is served directly (a group's or a `model_list` entry's) would never
/// be used: the name goes to its own group first. Such an alias is a mistake in the file.
fn check_aliases(groups: &[(usize, GroupSpec)], deployments: &[DeploymentSpec], problems: &mut Problems) {
    let served = |name: &str| groups.iter().any(|(_, g)| g.name == name) || deployments.iter().any(|d| d.name == name);
    for (i, group) in groups {
        for (k, alias) in group.aliases.iter().enumerate() {
            if served(alias.as_str()) {
                problems.push(format!(
                    "router_settings.model_groups[{i}].aliases[{k}]: '{}' is itself a model name and is \
                     always served as one, never by group '{}'",
                    alias.as_str(),
                    group.name
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{ConfigError, parse};

    const SEED: &str = r#"
model_list:
  - model_name: model1
    llm_params:
      api_type: openai
      model: qwen3-8b
      api_base: https://dashscope.aliyuncs.com/compatible-mode/v1
      api_key: sk-1234
      rewrite_body: '{"enable_thinking": false, "max_tokens": 8192}'
  - model_name: model3
    llm_params:
      api_type: anthropic
      model: glm-4.5-flash
      api_base: https://open.bigmodel.cn/api/anthropic/
      api_key: sk-1234
router_settings:
  strategy: roundrobin
  model_groups:
    - name: gpt_models
      models:
        - name: model1
        - name: model3
          weight: 100
"#;

    fn error_of(text: &str) -> String {
        match parse(text, Path::new("c.yaml")) {
            Err(ConfigError::Invalid { problems, .. }) => problems.join("\n"),
            Err(other) => panic!("expected a validation error, got {other}"),
            Ok(_) => panic!("expected a validation error, got a config"),
        }
    }

    #[test]
    fn seed_config_is_valid() {
        let config = parse(SEED, Path::new("c.yaml")).unwrap();
        assert_eq!(config.deployments.len(), 2);
        assert_eq!(config.strategy, Strategy::RoundRobin);
        let d = &config.deployments[0];
        assert_eq!(d.protocol, Protocol::OpenAi);
        assert_eq!(
            d.endpoint.as_str(),
            "https://dashscope.aliyuncs.com/compatible-mode/v1/chat/completions"
        );
        let rewrite: Vec<(&str, &str)> = d.rewrite_body.iter().map(|(k, v)| (k.as_str(), v.0.get())).collect();
        assert_eq!(rewrite, [("enable_thinking", "false"), ("max_tokens", "8192")]);
        assert_eq!(
            config.deployments[1].endpoint.as_str(),
            "https://open.bigmodel.cn/api/anthropic/v1/messages"
        );
        assert_eq!(
            config.deployments[1].endpoint_urls(None).2.as_str(),
            "https://open.bigmodel.cn/api/anthropic/v1/messages/count_tokens"
        );
        assert_eq!(
            config.groups,
            vec![GroupSpec {
                name: "gpt_models".into(),
                members: vec![
                    GroupMemberSpec {
                        deployment: 0,
                        weight: 100
                    },
                    GroupMemberSpec {
                        deployment: 1,
                        weight: 100
                    }
                ],
                aliases: vec![],
                strategy: Strategy::RoundRobin,
                affinity: Affinity::None,
                fallbacks: vec![],
                context_window_fallback: None,
            }]
        );
    }

    #[test]
    fn the_usage_log_is_off_by_default_and_its_path_follows_the_config_file() {
        assert_eq!(parse(SEED, Path::new("c.yaml")).unwrap().usage_db, None);
        let with = |extra: &str| format!("{SEED}  {extra}\n");
        let config = parse(&with("usage_db: logs/usage.sqlite"), Path::new("/etc/router/c.yaml")).unwrap();
        assert_eq!(
            config.usage_db,
            Some(UsageDbSpec {
                path: "/etc/router/logs/usage.sqlite".into(),
                retention_days: 30
            })
        );
        let absolute = parse(
            &format!("{SEED}  usage_db: /var/lib/u.db\n  usage_retention_days: 7\n"),
            Path::new("/etc/c.yaml"),
        )
        .unwrap();
        assert_eq!(absolute.usage_db.unwrap().path, Path::new("/var/lib/u.db"));
        assert_eq!(
            error_of(&with("usage_retention_days: 7")),
            "router_settings.usage_retention_days: set only with usage_db"
        );
        assert!(error_of(&format!("{SEED}  usage_db: u.db\n  usage_retention_days: 0\n")).contains("out of range"));
    }

    #[test]
    fn anthropic_base_ending_in_v1_is_not_doubled() {
        assert_eq!(
            endpoint("https://api.anthropic.com/v1/", Protocol::Anthropic, "m")
                .unwrap()
                .as_str(),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:11434/v1", Protocol::OpenAi, "m")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:11434/v1/chat/completions"
        );
    }

    #[test]
    fn gemini_endpoints_carry_the_model_and_the_method() {
        let config = parse(
            "model_list:\n  - model_name: g\n    llm_params:\n      api_type: gemini\n      model: models/gemini-2.5-flash\n      api_base: https://generativelanguage.googleapis.com/v1beta/\n      api_key: k\n",
            Path::new("c.yaml"),
        )
        .unwrap();
        let d = &config.deployments[0];
        assert_eq!(
            d.upstream_model, "gemini-2.5-flash",
            "the `models/` prefix is the path's, not the name's"
        );
        let base = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash";
        assert_eq!(d.endpoint.as_str(), format!("{base}:generateContent"));
        assert_eq!(
            d.endpoint_urls(None).1.unwrap().as_str(),
            format!("{base}:streamGenerateContent?alt=sse")
        );
        assert_eq!(d.endpoint_urls(None).2.as_str(), format!("{base}:countTokens"));
        let bad = "model_list:\n  - model_name: g\n    llm_params:\n      api_type: gemini\n      model: a/b\n      api_base: http://127.0.0.1:1/v1beta\n";
        assert_eq!(
            error_of(bad),
            "model_list[0].llm_params.model: a gemini model name is one path segment of letters, digits, '.', '-' and '_'"
        );
    }

    #[test]
    fn rewrite_header_values_names_and_places() {
        let with = |rewrite: &str| {
            SEED.replace(
                r#"rewrite_body: '{"enable_thinking": false, "max_tokens": 8192}'"#,
                rewrite,
            )
        };
        let env = |name: &str| (name == "REFERER").then(|| "https://example.com".to_owned());
        let file: super::ConfigFile = serde_saphyr::from_str(&with(
            "rewrite_header:\n        HTTP-Referer: os.environ/REFERER\n        X-Title: router\n        X-Retries: 3\n        user-agent: null",
        ))
        .unwrap();
        let config = validate(file, &env).unwrap();
        let headers: Vec<(&str, Option<&[u8]>)> = config.deployments[0]
            .rewrite_header
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_ref().map(|v| v.as_bytes())))
            .collect();
        assert_eq!(
            headers,
            [
                ("http-referer", Some(b"https://example.com".as_slice())),
                ("x-title", Some(b"router".as_slice())),
                ("x-retries", Some(b"3".as_slice())),
                ("user-agent", None),
            ]
        );
        let cases = [
            (
                "rewrite_header: '{\"bad name\": \"x\"}'",
                "model_list[0].llm_params.rewrite_header: 'bad name' is not a valid header name",
            ),
            (
                "rewrite_header: {Host: example.com}",
                "rewrite_header.Host: is written by the router's HTTP layer",
            ),
            (
                "rewrite_header: {x-a: \"secret\\u0001value\"}",
                "rewrite_header.x-a: is not a valid header value",
            ),
            ("rewrite_header: {x-a: [1]}", "rewrite_header.x-a: must be a string"),
            (
                "rewrite_header: {x-a: os.environ/NOPE_NOT_SET}",
                "rewrite_header.x-a: environment variable 'NOPE_NOT_SET' is not set",
            ),
            ("rewrite_header: '[1]'", "rewrite_header: must be a JSON object"),
        ];
        for (rewrite, expected) in cases {
            let message = error_of(&with(rewrite));
            assert!(message.contains(expected), "{rewrite}: {message}");
            assert!(!message.contains("secret"), "values are never quoted: {message}");
        }
    }

    #[test]
    fn rewrite_body_as_yaml_mapping_with_null() {
        let text = SEED.replace(
            r#"rewrite_body: '{"enable_thinking": false, "max_tokens": 8192}'"#,
            "rewrite_body:\n        metadata: null\n        top_k: 5",
        );
        let config = parse(&text, Path::new("c.yaml")).unwrap();
        let rewrite: Vec<(&str, &str)> = config.deployments[0]
            .rewrite_body
            .iter()
            .map(|(k, v)| (k.as_str(), v.0.get()))
            .collect();
        assert_eq!(rewrite, [("metadata", "null"), ("top_k", "5")]);
    }

    #[test]
    fn messages_name_the_place() {
        let cases = [
            (
                SEED.replace("api_type: anthropic", "api_type: cohere"),
                "model_list[1].llm_params.api_type: unknown api_type 'cohere' (expected openai, anthropic, responses, \
                 gemini or mock)",
            ),
            (
                SEED.replace("strategy: roundrobin", "strategy: fastest"),
                "router_settings.strategy: unknown strategy 'fastest' (expected roundrobin, random, leastconn or latency)",
            ),
            (
                SEED.replace("model_name: model3", "model_name: model1"),
                "model_list[1].model_name: duplicate model_name 'model1'",
            ),
            (
                SEED.replace("- name: model3", "- name: modelX"),
                "router_settings.model_groups[0].models[1].name: unknown model 'modelX'",
            ),
            (
                SEED.replace("weight: 100", "weight: -1"),
                "router_settings.model_groups[0].models[1].weight: -1 is out of range (0 to 1000000)",
            ),
            (
                SEED.replace("api_base: https://open.bigmodel.cn/api/anthropic/", "api_base: ftp://x"),
                "model_list[1].llm_params.api_base: 'ftp://x' must be an http:// or https:// URL with a host",
            ),
            (
                SEED.replace(r#"'{"enable_thinking": false, "max_tokens": 8192}'"#, "'[1,2]'"),
                "model_list[0].llm_params.rewrite_body: must be a JSON object",
            ),
        ];
        for (text, expected) in cases {
            // A renamed entry also leaves its group naming a model that no longer exists: a second problem.
            let first = error_of(&text).lines().next().unwrap().to_owned();
            assert_eq!(first, expected);
        }
        assert!(
            error_of(&SEED.replace(r#"'{"enable_thinking": false, "max_tokens": 8192}'"#, "'{oops'"))
                .starts_with("model_list[0].llm_params.rewrite_body: not valid JSON")
        );
        assert!(
            error_of(&SEED.replace(
                "api_base: https://open.bigmodel.cn/api/anthropic/",
                "api_base: not a url"
            ))
            .starts_with("model_list[1].llm_params.api_base: 'not a url' is not a valid URL")
        );
    }

    #[test]
    fn group_rules() {
        let two_groups = format!("{SEED}    - name: gpt_models\n      models:\n        - name: model1\n");
        assert_eq!(
            error_of(&two_groups),
            "router_settings.model_groups[1].name: duplicate group name 'gpt_models'"
        );
        let empty = format!("{SEED}    - name: empty\n      models: []\n");
        assert_eq!(
            error_of(&empty),
            "router_settings.model_groups[1].models: group 'empty' has no models"
        );
        let twice = format!("{SEED}    - name: g2\n      models:\n        - name: model1\n        - name: model1\n");
        assert_eq!(
            error_of(&twice),
            "router_settings.model_groups[1].models[1].name: model 'model1' is listed twice"
        );
        let zero = format!("{SEED}    - name: g3\n      models:\n        - name: model1\n          weight: 0\n");
        assert_eq!(
            error_of(&zero),
            "router_settings.model_groups[1].models: every weight in group 'g3' is 0"
        );
    }

    #[test]
    fn alias_rules() {
        let group = |aliases: &str| {
            format!("{SEED}    - name: g2\n      models: [{{name: model1}}]\n      aliases: {aliases}\n")
        };
        let config = parse(&group(r#"["claude-haiku-*", "gemini-2.?-flash"]"#), Path::new("c.yaml")).unwrap();
        let aliases: Vec<&str> = config.groups[1].aliases.iter().map(|a| a.as_str()).collect();
        assert_eq!(aliases, ["claude-haiku-*", "gemini-2.?-flash"]);
        assert_eq!(
            error_of(&group(r#"[" "]"#)),
            "router_settings.model_groups[1].aliases[0]: must not be empty"
        );
        assert_eq!(
            error_of(&group(r#"["ok-*", "bad-[a"]"#)),
            "router_settings.model_groups[1].aliases[1]: 'bad-[a' is not a valid pattern: invalid range pattern"
        );
        assert_eq!(
            error_of(&group(r#"["gpt_models"]"#)),
            "router_settings.model_groups[1].aliases[0]: 'gpt_models' is itself a model name and is always served \
             as one, never by group 'g2'"
        );
        assert_eq!(
            error_of(&group(r#"["model1"]"#)),
            "router_settings.model_groups[1].aliases[0]: 'model1' is itself a model name and is always served as \
             one, never by group 'g2'"
        );
    }

    #[test]
    fn converter_options() {
        let text = SEED.replace(
            "api_key: sk-1234\n      rewrite",
            "api_key: sk-1234\n      max_output_tokens: 8192\n      reasoning_dialect: deepseek\n      supports_stream_options: false\n      token_count_factor: 1.3\n      merge_system_messages: true\n      rewrite",
        );
        let config = parse(&text, Path::new("c.yaml")).unwrap();
        let o = &config.deployments[0].options;
        assert_eq!(o.max_output_tokens, Some(8192));
        assert_eq!(
            o.reasoning_dialect,
            crate::protocol::convert::ReasoningDialect::Deepseek
        );
        assert!(!o.supports_stream_options);
        assert_eq!(o.token_count_factor, 1.3);
        assert!(o.merge_system_messages);
        assert!(!o.anthropic_native);
        assert_eq!(config.deployments[1].options, ModelOptions::default());
        assert!(
            error_of(&text.replace("token_count_factor: 1.3", "token_count_factor: 0"))
                .starts_with("model_list[0].llm_params.token_count_factor")
        );
        assert_eq!(
            error_of(&text.replace("max_output_tokens: 8192", "max_output_tokens: 0")),
            "model_list[0].llm_params.max_output_tokens: must be at least 1"
        );
        let bad = text.replace("reasoning_dialect: deepseek", "reasoning_dialect: klingon");
        assert!(matches!(
            parse(&bad, Path::new("c.yaml")),
            Err(ConfigError::Parse { .. })
        ));
        let native = SEED.replace("https://open.bigmodel.cn/api/anthropic/", "https://api.anthropic.com");
        assert!(
            parse(&native, Path::new("c.yaml")).unwrap().deployments[1]
                .options
                .anthropic_native
        );
    }

    #[test]
    fn reliability_and_timeouts() {
        let config = parse(SEED, Path::new("c.yaml")).unwrap();
        assert_eq!(config.reliability, Reliability::default());
        assert_eq!(config.body_limit, 32 * 1024 * 1024);
        assert_eq!(config.deployments[0].timeouts, Timeouts::default());
        let text = SEED
            .replace(
                "strategy: roundrobin",
                "strategy: roundrobin\n  num_retries: 1\n  allowed_fails: 5\n  cooldown_time: 2.5\n  timeout: 60\n  stream_idle_timeout: 7\n  max_request_size_mb: 1",
            )
            .replace("api_key: sk-1234\n      rewrite", "api_key: sk-1234\n      timeout: 0.5\n      connect_timeout: 2\n      rewrite");
        let config = parse(&text, Path::new("c.yaml")).unwrap();
        assert_eq!(config.reliability.num_retries, 1);
        assert_eq!(config.reliability.allowed_fails, 5);
        assert_eq!(config.reliability.cooldown, Duration::from_millis(2500));
        assert_eq!(config.body_limit, 1024 * 1024);
        let d0 = config.deployments[0].timeouts;
        assert_eq!(
            (d0.connect, d0.first_byte, d0.stream_idle),
            (
                Duration::from_secs(2),
                Duration::from_millis(500),
                Duration::from_secs(7)
            )
        );
        let d1 = config.deployments[1].timeouts;
        assert_eq!(
            (d1.connect, d1.first_byte),
            (Duration::from_secs(10), Duration::from_secs(60))
        );
        assert_eq!(
            error_of(&text.replace("timeout: 60", "timeout: -1")),
            "router_settings.timeout: -1 is out of range (0.001 to 86400 seconds)"
        );
        assert_eq!(
            error_of(&text.replace("connect_timeout: 2", "connect_timeout: 0")),
            "model_list[0].llm_params.connect_timeout: 0 is out of range (0.001 to 86400 seconds)"
        );
    }

    #[test]
    fn empty_model_list_is_refused() {
        assert_eq!(
            error_of("model_list: []\n"),
            "model_list: at least one model is required"
        );
    }

    #[test]
    fn api_key_from_environment() {
        let text = SEED.replace(
            "api_key: sk-1234\n      rewrite",
            "api_key: os.environ/MY_KEY\n      rewrite",
        );
        let raw: ConfigFile = serde_saphyr::from_str(&text).unwrap();
        let config = validate(raw, &|name| (name == "MY_KEY").then(|| "sk-env".to_string())).unwrap();
        assert_eq!(config.deployments[0].api_keys[0].expose(), "sk-env");
        let raw: ConfigFile = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(
            validate(raw, &|_| None).unwrap_err(),
            ["model_list[0].llm_params.api_key: environment variable 'MY_KEY' is not set"]
        );
    }

    #[test]
    fn every_problem_is_reported_once_with_its_place() {
        let text = r#"
model_list:
  - model_name: a
    llm_params: {api_type: openai, model: m, api_base: "ftp://x", api_key: os.environ/NOPE, timeout: 0}
  - model_name: b
    llm_params: {api_type: cohere, model: m, api_base: "http://h"}
  - model_name: c
    llm_params: {api_type: openai, model: m, api_base: "http://h", api_key: sk-secret-value}
router_settings:
  num_retries: 50
  max_connections: 0
  model_groups:
    - name: g
      models: [{name: a}, {name: b}, {name: c, weight: -1}]
    - name: h
      models: [{name: c}]
      fallbacks: [nowhere]
  routing_rules:
    - {name: r, when: {ingress: smtp}, route: h}
    - {name: s, when: {model: x}, route: missing}
"#;
        let problems = error_of(text);
        let problems: Vec<&str> = problems.lines().collect();
        assert_eq!(
            problems,
            [
                "router_settings.num_retries: 50 is out of range (0 to 10)",
                "router_settings.max_connections: 0 is out of range (1 to 1000000)",
                "model_list[0].llm_params.timeout: 0 is out of range (0.001 to 86400 seconds)",
                "model_list[0].llm_params.api_base: 'ftp://x' must be an http:// or https:// URL with a host",
                "model_list[0].llm_params.api_key: environment variable 'NOPE' is not set",
                "model_list[1].llm_params.api_type: unknown api_type 'cohere' (expected openai, anthropic, responses, \
                 gemini or mock)",
                "router_settings.model_groups[0].models[2].weight: -1 is out of range (0 to 1000000)",
                "router_settings.model_groups[1].fallbacks[0]: unknown group 'nowhere'",
                "router_settings.routing_rules[0].when.ingress: unknown ingress 'smtp' (expected chat, messages, \
                 responses or gemini)",
                "router_settings.routing_rules[1].route: unknown group 'missing' (a model group or a model_name)",
            ],
            "the entries with problems of their own are not reported again as unknown models"
        );
        let Err(error) = parse(text, Path::new("c.yaml")) else {
            panic!()
        };
        let shown = error.to_string();
        assert!(
            shown.starts_with("config file c.yaml: 10 problems:\n  router_settings.num_retries"),
            "{shown}"
        );
        assert!(!shown.contains("sk-secret-value"));
    }

    #[test]
    fn key_pools() {
        let text = SEED.replace(
            "api_key: sk-1234\n      rewrite",
            "api_key: [sk-one, os.environ/MY_KEY, sk-three]\n      rewrite",
        );
        let raw: ConfigFile = serde_saphyr::from_str(&text).unwrap();
        let config = validate(raw, &|name| (name == "MY_KEY").then(|| "sk-env".to_string())).unwrap();
        let keys: Vec<_> = config.deployments[0].api_keys.iter().map(Secret::expose).collect();
        assert_eq!(keys, ["sk-one", "sk-env", "sk-three"]);
        let cases = [
            (
                "[sk-a, os.environ/NOPE]",
                "model_list[0].llm_params.api_key[1]: environment variable 'NOPE' is not set",
            ),
            (
                "[sk-a, 'sk b']",
                "model_list[0].llm_params.api_key[1]: must be printable ASCII without spaces",
            ),
            (
                "[sk-a, sk-b, sk-a]",
                "model_list[0].llm_params.api_key[2]: the same key as api_key[0]",
            ),
            (
                "[]",
                "model_list[0].llm_params.api_key: an empty list; give at least one key, or none",
            ),
            (
                "''",
                "model_list[0].llm_params.api_key: must be printable ASCII without spaces",
            ),
        ];
        for (keys, expected) in cases {
            let text = SEED.replace(
                "api_key: sk-1234\n      rewrite",
                &format!("api_key: {keys}\n      rewrite"),
            );
            assert_eq!(error_of(&text), expected, "{keys}");
        }
    }

    #[test]
    fn mock_deployments() {
        let text = "model_list:\n  - model_name: demo\n    llm_params:\n      api_type: mock\n";
        let config = parse(text, Path::new("c.yaml")).unwrap();
        let d = &config.deployments[0];
        assert_eq!((d.api_type(), d.upstream_model.as_str()), ("mock", "demo"));
        let mock = d.mock.as_ref().unwrap();
        assert_eq!(mock.response, MockSpec::DEFAULT_RESPONSE);
        assert!(mock.response.contains("llm-router"));
        assert_eq!((mock.delay, mock.stream_chunk_chars), (Duration::ZERO, 8));
        let text = "model_list:\n  - model_name: demo\n    llm_params: {api_type: mock, model: m-1, mock_response: Hi, \
                    mock_delay_ms: 250, mock_stream_chunk_chars: 2}\n";
        let config = parse(text, Path::new("c.yaml")).unwrap();
        let d = &config.deployments[0];
        let mock = d.mock.as_ref().unwrap();
        assert_eq!(d.upstream_model, "m-1");
        assert_eq!(
            (mock.response.as_str(), mock.delay, mock.stream_chunk_chars),
            ("Hi", Duration::from_millis(250), 2)
        );
        let cases = [
            (
                "api_type: mock, api_base: 'http://h'",
                "model_list[0].llm_params.api_base: api_type mock connects nowhere; remove it",
            ),
            (
                "api_type: mock, api_key: sk-1",
                "model_list[0].llm_params.api_key: api_type mock connects nowhere; remove it",
            ),
            (
                "api_type: mock, proxy: none",
                "model_list[0].llm_params.proxy: api_type mock connects nowhere; remove it",
            ),
            (
                "api_type: mock, mock_stream_chunk_chars: 0",
                "model_list[0].llm_params.mock_stream_chunk_chars: must be at least 1",
            ),
            (
                "api_type: openai, model: m, api_base: 'http://h', mock_response: x",
                "model_list[0].llm_params.mock_response: only for api_type mock",
            ),
            (
                "api_type: openai, api_base: 'http://h'",
                "model_list[0].llm_params.model: required, and must not be empty",
            ),
            (
                "api_type: openai, model: m",
                "model_list[0].llm_params.api_base: required, and must not be empty",
            ),
        ];
        for (params, expected) in cases {
            let text = format!("model_list:\n  - model_name: demo\n    llm_params: {{{params}}}\n");
            assert_eq!(error_of(&text), expected, "{params}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_yaml_are_parse_errors() {
        let text = SEED.replace("api_key: sk-1234\n      rewrite", "api_kee: sk-1234\n      rewrite");
        assert!(matches!(
            parse(&text, Path::new("c.yaml")),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            parse("model_list: [", Path::new("c.yaml")),
            Err(ConfigError::Parse { .. })
        ));
        // The parser quotes neighbouring lines; none of that may reach the message.
        let message = parse(&text, Path::new("c.yaml")).unwrap_err().to_string();
        assert!(
            message.contains("line 8 column 7: unknown field `api_kee`"),
            "{message}"
        );
        assert!(!message.contains("sk-1234"), "{message}");
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let config = parse(SEED, Path::new("c.yaml")).unwrap();
        assert!(!format!("{config:?}").contains("sk-1234"));
    }
}
