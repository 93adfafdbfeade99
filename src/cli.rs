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

    /// socks5://, socks5h://, http:// or https:// proxy for all upstream traffic, example: socks5://192.168.0.2:10080
    #[arg(long, env = "LLM_ROUTER_PROXY", hide_env_values = true)]
    pub proxy: Option<String>,

    /// Print a completion script for this shell and exit, e.g. `llm-router --completions bash > /etc/bash_completion.d/llm-router`
    #[arg(long, value_name = "SHELL")]
    pub completions: Option<clap_complete::Shell>,
}

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    // One JSON object per line, the event's fields at its top level (for log shippers).
    Json,
}
