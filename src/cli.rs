//! Command-line flags. Every flag can also come from an `LLM_ROUTER_*` environment variable, so the token
//! need not show up in `ps`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "llm-router",
    version,
    about = "A small, fast gateway for OpenAI- and Anthropic-compatible LLM APIs"
)]
pub struct Cli {
    #[arg(short, long, env = "LLM_ROUTER_IP", default_value = "0.0.0.0")]
    pub ip: IpAddr,

    #[arg(short, long, env = "LLM_ROUTER_PORT", default_value_t = 8000)]
    pub port: u16,

    /// Path to config file
    #[arg(short, long, env = "LLM_ROUTER_CONFIG", default_value = "config.yaml")]
    pub config: PathBuf,

    /// Clients must send it (Authorization: Bearer or x-api-key); without it the router is open
    #[arg(short, long, env = "LLM_ROUTER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// trace, debug, info, warn, error
    #[arg(short, long, env = "LLM_ROUTER_LOG_LEVEL", default_value = "warn")]
    pub log_level: String,

    /// text (one human-readable line per event) or json (one JSON object per line)
    #[arg(long, env = "LLM_ROUTER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Also write the logs to this file (in --log-format, never coloured); rotated by size, reopened on SIGHUP
    #[arg(long, env = "LLM_ROUTER_LOG_FILE", value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Size in MiB (fractions allowed) at which the log file is rotated; 3 old files are kept
    #[arg(long, env = "LLM_ROUTER_LOG_FILE_MAX_MB", value_name = "MB", default_value = "10", value_parser = parse_mebibytes)]
    pub log_file_max_mb: f64,

    /// socks5://, socks5h://, http:// or https:// proxy for all upstream traffic, example: socks5://192.168.0.2:10080
    #[arg(long, env = "LLM_ROUTER_PROXY", hide_env_values = true)]
    pub proxy: Option<String>,

    /// Validate the config (and --proxy) and exit: 0 and a summary when valid, 1 and every problem when not
    #[arg(long, conflicts_with = "check")]
    pub check_config: bool,

    /// Load the config, send one tiny request to every deployment, print a table and exit (0: all answered)
    #[arg(long)]
    pub check: bool,

    /// Print a completion script for this shell and exit, e.g. `llm-router --completions bash > /etc/bash_completion.d/llm-router`
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<clap_complete::Shell>,
}

impl Cli {
    /// `--log-file-max-mb` in bytes.
    pub fn log_file_max_bytes(&self) -> u64 {
        (self.log_file_max_mb * 1024.0 * 1024.0) as u64
    }
}

/// A size in MiB, with the range `router_settings` sizes have: from about 1 KiB to 4 GiB.
fn parse_mebibytes(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(mb) if mb.is_finite() && (0.001..=4096.0).contains(&mb) => Ok(mb),
        Ok(_) => Err("out of range (0.001 to 4096)".into()),
        Err(_) => Err("expected a number of MiB, e.g. 10 or 0.5".into()),
    }
}

/// How log lines are written (on stderr and in the log file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    // One JSON object per line, the event's fields at its top level (for log shippers).
    Json,
}
