//! The `llm-router` binary: command line, logging, then [`llm_router::start`] until SIGINT or SIGTERM.

use std::process::ExitCode;

use clap::Parser;
use llm_router::cli::Cli;
use llm_router::logging::{FileSettings, Logging};
use llm_router::{Settings, start};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(shell) = cli.completions {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "llm-router", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    let file = cli.log_file.as_deref().map(|path| FileSettings {
        path,
        max_bytes: cli.log_file_max_bytes(),
    });
    let logging = match Logging::init(&cli.log_level, cli.log_format, file) {
        Ok(logging) => logging,
        Err(message) => {
            eprintln!("llm-router: {message}");
            return ExitCode::from(2);
        }
    };
    logging.reopen_on_sighup();
    let running = match start(Settings::from_cli(&cli)).await {
        Ok(running) => running,
        Err(error) => {
            logging.announce("ERROR", &format!("llm-router: {error}"));
            return ExitCode::FAILURE;
        }
    };
    let listening = format!(
        "llm-router {} listening on http://{} (config {})",
        env!("CARGO_PKG_VERSION"),
        running.local_addr,
        cli.config.display()
    );
    logging.announce("INFO", &listening);
    shutdown_signal().await;
    tracing::info!("shutting down: no new connections, waiting for requests in flight");
    match running.shutdown().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            logging.announce("ERROR", &format!("llm-router: {error}"));
            ExitCode::FAILURE
        }
    }
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
