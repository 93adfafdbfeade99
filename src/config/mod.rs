//! The YAML configuration: its schema as written by users (`file`), the validation that turns it into a
//! [`Config`] the router can trust (`validate`), and hot reloading (`reload`).

mod client_keys;
mod file;
mod glob;
pub mod reload;
mod routing;
mod validate;

use std::path::Path;

pub use self::client_keys::{ClientKeySpec, KeyLimits, TOKEN_KEY_NAME, sha256};
pub use self::glob::Glob;
pub use routing::{Affinity, Comparison, Condition, RuleSpec, Threshold};
pub use validate::{
    Config, DeploymentSpec, GroupMemberSpec, GroupSpec, MockSpec, RawJson, Reliability, Secret, Strategy, Timeouts,
    UpstreamProxy,
};

/// Why a config file could not be used. The message names the offending place in the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid YAML for llm-router: {message}")]
    Parse { path: String, message: String },
    /// Every problem found, each naming its place in the file.
    #[error("config file {path}: {}", summary(problems))]
    Invalid { path: String, problems: Vec<String> },
}

/// One problem as it is; several on lines of their own, so that each is read.
fn summary(problems: &[String]) -> String {
    match problems {
        [one] => one.clone(),
        many => format!("{} problems:\n  {}", many.len(), many.join("\n  ")),
    }
}

/// Reads, parses and validates the config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, path)
}

/// The parser's message without the source snippet it appends: the snippet quotes neighbouring lines of the
/// file, which may hold an `api_key`.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or(message);
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

/// Parses and validates config text; `path` is only used in messages.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let raw: file::ConfigFile = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.display().to_string(),
        message: first_line(&e.to_string()),
    })?;
    let mut config =
        validate::validate(raw, &|name| std::env::var(name).ok()).map_err(|problems| ConfigError::Invalid {
            path: path.display().to_string(),
            problems,
        })?;
    if let Some(usage) = &mut config.usage_db
        && usage.path.is_relative()
        && let Some(dir) = path.parent()
    {
        usage.path = dir.join(&usage.path);
    }
    Ok(config)
}
