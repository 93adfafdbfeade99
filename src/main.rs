//! The `llm-router` binary: command line, logging, then [`llm_router::start`] until SIGINT or SIGTERM (or,
//! with `--check-config`, the config's validation; with `--check`, one probe of every deployment).

use std::process::ExitCode;

use clap::Parser;
use llm_router::cli::Cli;
use llm_router::logging::{FileSettings, Logging};
use llm_router::{Settings, check, start};

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
    if cli.check_config {
        return match check::check_config(&cli.config, cli.proxy.as_deref()) {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(problems) => {
                for problem in problems {
                    eprintln!("{problem}");
                }
                ExitCode::FAILURE
            }
        };
    }
    if cli.check {
        return run_check(&cli, &logging).await;
    }
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

/// `--check`: the table on stdout; exit 0 when every probed deployment answered, 1 when one did not, 2 when
/// the config (or `--proxy`) is invalid.
async fn run_check(cli: &Cli, logging: &Logging) -> ExitCode {
    let snapshot = match check::load(&cli.config, cli.proxy.clone()) {
        Ok(snapshot) => snapshot,
        Err(error) => {
            logging.announce("ERROR", &format!("llm-router: {error}"));
            return ExitCode::from(2);
        }
    };
    let probes = check::probe_all(&snapshot).await;
    print!("{}", check::table(&probes));
    match probes.iter().any(|probe| probe.status.is_failure()) {
        true => ExitCode::FAILURE,
        false => ExitCode::SUCCESS,
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
