//! The `llm-router` binary: command line, logging, then [`llm_router::start`] until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use llm_router::cli::{Cli, LogFormat};
use llm_router::{Settings, start};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(shell) = cli.completions {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "llm-router", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if let Err(message) = init_logging(&cli.log_level, cli.log_format) {
        eprintln!("llm-router: {message}");
        return ExitCode::from(2);
    }
    let format = cli.log_format;
    let running = match start(Settings::from_cli(&cli)).await {
        Ok(running) => running,
        Err(error) => {
            announce(format, "ERROR", &format!("llm-router: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let listening = format!(
        "llm-router {} listening on http://{} (config {})",
        env!("CARGO_PKG_VERSION"),
        running.local_addr,
        cli.config.display()
    );
    announce(format, "INFO", &listening);
    shutdown_signal().await;
    tracing::info!("shutting down: no new connections, waiting for requests in flight");
    match running.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            announce(format, "ERROR", &format!("llm-router: {error}"));
            ExitCode::FAILURE
        }
    }
}

/// A line printed whatever the log level (the listening line, why the router stopped), in the log's
/// format: with `--log-format json` too, every line on stderr is one JSON object.
fn announce(format: LogFormat, level: &str, message: &str) {
    match format {
        LogFormat::Text => eprintln!("{message}"),
        LogFormat::Json => eprintln!("{}", serde_json::json!({"level": level, "message": message})),
    }
}

/// `--log-level` sets the router's own level; other crates log warnings and errors only. `RUST_LOG`, when
/// set, overrides both. `--log-format json` writes each event as one JSON object with its fields at the top
/// level, so a request line's keys are the request record's.
fn init_logging(level: &str, format: LogFormat) -> Result<(), String> {
    let level = level.to_ascii_lowercase();
    if !matches!(level.as_str(), "trace" | "debug" | "info" | "warn" | "error") {
        return Err(format!(
            "invalid --log-level '{level}': expected trace, debug, info, warn or error"
        ));
    }
    let others = if level == "error" { "error" } else { "warn" };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{others},llm_router={level}")));
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(ansi).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
