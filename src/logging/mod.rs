//! Where log lines go: always stderr, and with `--log-file` also a file ([`file::LogFile`]), in the same
//! `--log-format`.

pub mod file;

use std::path::Path;
use std::sync::Arc;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::LogFormat;
use file::LogFile;

/// The installed logging: its format, and the log file if there is one.
pub struct Logging {
    format: LogFormat,
    file: Option<Arc<LogFile>>,
}

/// What `--log-file` asks for.
pub struct FileSettings<'a> {
    pub path: &'a Path,
    pub max_bytes: u64,
}

impl Logging {
    /// Installs the global subscriber. `--log-level` sets the router's own level; other crates log warnings
    /// and errors only. `RUST_LOG`, when set, overrides both. `--log-format json` writes each event as one
    /// JSON object with its fields at the top level, so a request line's keys are the request record's.
    /// Errors are the user's: a bad level, a log file that cannot be opened.
    pub fn init(level: &str, format: LogFormat, file: Option<FileSettings<'_>>) -> Result<Self, String> {
        let level = level.to_ascii_lowercase();
        if !matches!(level.as_str(), "trace" | "debug" | "info" | "warn" | "error") {
            return Err(format!(
                "invalid --log-level '{level}': expected trace, debug, info, warn or error"
            ));
        }
        let file = file.map(open_file).transpose()?.map(Arc::new);
        let others = if level == "error" { "error" } else { "warn" };
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new(format!("{others},llm_router={level}")));
        // Colours only on a terminal: journald gets plain text, and the file never has any. So text on a
        // terminal is formatted twice, once per destination; otherwise each event is formatted once and the
        // same bytes go to both, which keeps the file's lines identical to stderr's.
        let ansi = format == LogFormat::Text && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let layers = match (&file, ansi) {
            (None, _) => vec![layer(format, std::io::stderr, ansi)],
            (Some(file), true) => vec![layer(format, std::io::stderr, true), layer(format, file.clone(), false)],
            (Some(file), false) => vec![layer(format, Tee(file.clone()), false)],
        };
        tracing_subscriber::registry().with(filter).with(layers).init();
        Ok(Self { format, file })
    }

    /// A line printed whatever the log level (the listening line, why the router stopped), in the log's
    /// format, on stderr and in the log file: with `--log-format json` too, every line is one JSON object.
    pub fn announce(&self, level: &str, message: &str) {
        let line = match self.format {
            LogFormat::Text => message.to_owned(),
            LogFormat::Json => serde_json::json!({"level": level, "message": message}).to_string(),
        };
        eprintln!("{line}");
        if let Some(file) = &self.file {
            // Every other text line in the file starts with its time; this one too.
            let line = match self.format {
                LogFormat::Text => format!("{} {level:>5} {line}\n", now()),
                LogFormat::Json => format!("{line}\n"),
            };
            file.write_record(line.as_bytes());
        }
    }

    /// Reopens the log file on every SIGHUP (the signal that also reloads the config), so that logrotate
    /// can move it away and signal. Needs the Tokio runtime.
    pub fn reopen_on_sighup(&self) {
        #[cfg(unix)]
        if let Some(file) = self.file.clone() {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::hangup()) {
                Ok(mut hangups) => {
                    tokio::spawn(async move {
                        while hangups.recv().await.is_some() {
                            match file.reopen() {
                                Ok(()) => tracing::info!("SIGHUP: log file reopened"),
                                Err(error) => eprintln!("llm-router: cannot reopen the log file: {error}"),
                            }
                        }
                    });
                }
                Err(error) => tracing::warn!(%error, "cannot listen for SIGHUP; the log file is not reopened"),
            }
        }
    }
}

fn open_file(settings: FileSettings<'_>) -> Result<LogFile, String> {
    let path = settings.path;
    LogFile::open(path, settings.max_bytes).map_err(|error| {
        let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
        match parent {
            Some(dir) if error.kind() == std::io::ErrorKind::NotFound && !dir.is_dir() => format!(
                "invalid --log-file '{}': directory '{}' does not exist",
                path.display(),
                dir.display()
            ),
            _ => format!("invalid --log-file '{}': {error}", path.display()),
        }
    })
}

/// Writes each record to stderr and to the log file.
struct Tee(Arc<LogFile>);

impl<'a> MakeWriter<'a> for Tee {
    type Writer = TeeWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        TeeWriter(&self.0)
    }
}

struct TeeWriter<'a>(&'a LogFile);

impl std::io::Write for TeeWriter<'_> {
    /// Never fails: a broken stderr or file must not lose the line for the other one.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        self.0.write_record(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One fmt layer writing to `writer` in `format`.
fn layer<S, W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_ansi(ansi);
    match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
    }
}

/// The time as the text format writes it.
fn now() -> String {
    use tracing_subscriber::fmt::time::FormatTime;
    let mut text = String::new();
    let _ = tracing_subscriber::fmt::time::SystemTime
        .format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut text));
    text
}
