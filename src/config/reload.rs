//! Hot reload. The config file's directory is watched (so edits in place, editors' rename-over saves and
//! Kubernetes' symlink swaps are all seen), and SIGHUP forces a look. A new file is fully validated before it
//! replaces the live snapshot; an invalid one is logged and the last good config keeps serving.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{Config, ConfigError, parse};
use crate::metrics::Metrics;
use crate::routing::Snapshot;
use crate::status::Status;
use crate::upstream::ClientPool;

/// Editors write a file in several steps; wait this long after the first event before reading it.
const SETTLE: Duration = Duration::from_millis(100);

/// Re-reads the config file and swaps in a new snapshot when it changed.
pub struct Reloader {
    path: PathBuf,
    live: Arc<ArcSwap<Snapshot>>,
    pool: Arc<ClientPool>,
    /// Counts reloads; new snapshots resolve their metric handles in it.
    metrics: Arc<Metrics>,
    /// The text of the last file looked at, so events that change nothing cost one read and no rebuild.
    last_text: Mutex<String>,
    /// Told of every reload, accepted or refused, for the status page; it also keeps the usage log.
    status: Arc<Status>,
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    Unchanged,
    Applied(Vec<String>),
}

impl Reloader {
    pub fn new(
        path: PathBuf,
        live: Arc<ArcSwap<Snapshot>>,
        pool: Arc<ClientPool>,
        metrics: Arc<Metrics>,
        loaded_text: String,
        status: Arc<Status>,
    ) -> Self {
        Self {
            path,
            live,
            pool,
            metrics,
            last_text: Mutex::new(loaded_text),
            status,
        }
    }

    /// Reads the file; if its text changed and it is valid, swaps in the new snapshot. Counted in the
    /// metrics as applied or refused (an unchanged file is neither).
    pub fn reload(&self) -> Result<ReloadOutcome, ConfigError> {
        let outcome = self.try_reload();
        match &outcome {
            Ok(ReloadOutcome::Applied(_)) => self.metrics.reloaded(true),
            Ok(ReloadOutcome::Unchanged) => {}
            Err(_) => self.metrics.reloaded(false),
        }
        outcome
    }

    fn try_reload(&self) -> Result<ReloadOutcome, ConfigError> {
        let text = std::fs::read_to_string(&self.path).map_err(|source| ConfigError::Read {
            path: self.path.display().to_string(),
            source,
        })?;
        let mut last = self.last_text.lock().unwrap_or_else(|e| e.into_inner());
        if *last == text {
            return Ok(ReloadOutcome::Unchanged);
        }
        let result = parse(&text, &self.path);
        *last = text;
        let config = result?;
        let old = self.live.load();
        let changes = describe_changes(&old.config, &config);
        if let Err(error) = self.status.apply_config(&config) {
            tracing::error!(%error, "usage log not opened; requests are not logged to it");
        }
        let snapshot = Snapshot::build(config, Some(&old), &self.pool, &self.metrics);
        self.live.store(Arc::new(snapshot));
        Ok(ReloadOutcome::Applied(changes))
    }

    fn reload_and_log(&self) {
        match self.reload() {
            Ok(ReloadOutcome::Unchanged) => {
                tracing::debug!(path = %self.path.display(), "config file unchanged")
            }
            Ok(ReloadOutcome::Applied(changes)) => {
                let changes = changes.join("; ");
                tracing::info!(path = %self.path.display(), %changes, "config reloaded");
                self.status.reloaded(true, changes);
            }
            Err(error) => {
                tracing::error!(%error, "config reload rejected; still serving the last good config");
                self.status.reloaded(false, error.to_string());
            }
        }
    }
}

/// Starts watching; the returned task lives until the runtime stops.
pub fn spawn(reloader: Arc<Reloader>) -> Result<tokio::task::JoinHandle<()>, notify::Error> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let events = tx.clone();
    let paths = ConfigPaths::of(&reloader.path);
    let dirs = paths.dirs();
    // Only events about the config file (or a link on the way to it) count: a log file written beside the
    // config must not cost a read and compare on every line.
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
            && event.paths.iter().any(|path| paths.concerns(path))
        {
            let _ = events.send(());
        }
    })?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    spawn_sighup(tx);
    Ok(tokio::spawn(async move {
        let _watcher = watcher; // dropping it would stop the events
        while rx.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            let reloader = reloader.clone();
            // File reads and YAML parsing are blocking work.
            let _ = tokio::task::spawn_blocking(move || reloader.reload_and_log()).await;
        }
    }))
}

/// The config file and, when it is a symlink, every path on the way to the file it names. Watching the
/// file's directory (not the file) sees editors' rename-over saves; following the links sees a target
/// edited in another directory and Kubernetes' swap of its `..data` link.
#[derive(Debug)]
struct ConfigPaths {
    /// Absolute paths: the file as named, then each link target in turn.
    chain: Vec<PathBuf>,
}

impl ConfigPaths {
    /// Links are followed a few hops, as far as they resolve when the router starts.
    fn of(path: &Path) -> Self {
        let mut chain = vec![std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())];
        while chain.len() < 8 {
            let last = chain.last().expect("never empty");
            let Some(next) = resolve_link(last) else { break };
            if chain.contains(&next) {
                break;
            }
            chain.push(next);
        }
        Self { chain }
    }

    /// The directories to watch: that of each path in the chain not already inside one of them.
    fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for path in &self.chain {
            let dir = path.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
            if !dirs.iter().any(|d| dir.starts_with(d)) {
                dirs.push(dir);
            }
        }
        dirs
    }

    /// Whether a change at `path` may change what the config reads as: a path of the chain or a directory
    /// on the way to one (a swapped directory link).
    fn concerns(&self, path: &Path) -> bool {
        self.chain.iter().any(|p| p.starts_with(path))
    }
}

/// `path` with its last link resolved: the file itself when it is a link, else the nearest directory on
/// its way that is one.
fn resolve_link(path: &Path) -> Option<PathBuf> {
    for ancestor in path.ancestors() {
        let Ok(target) = std::fs::read_link(ancestor) else {
            continue;
        };
        let base = ancestor.parent().unwrap_or(Path::new("/"));
        let rest = path.strip_prefix(ancestor).ok()?;
        return Some(normalize(&base.join(target).join(rest)));
    }
    None
}

/// Removes `.` and `..` components lexically (after a link is resolved, `..` refers to its own directory).
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(unix)]
fn spawn_sighup(tx: mpsc::UnboundedSender<()>) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(mut hangups) => {
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading config");
                    if tx.send(()).is_err() {
                        break;
                    }
                }
            });
        }
        Err(error) => tracing::warn!(%error, "cannot listen for SIGHUP"),
    }
}

#[cfg(not(unix))]
fn spawn_sighup(_tx: mpsc::UnboundedSender<()>) {}

/// One line per added, removed or changed model and group, for the reload log.
pub fn describe_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut changes = Vec::new();
    for d in &new.deployments {
        match old.deployments.iter().find(|o| o.name == d.name) {
            None => changes.push(format!("model '{}' added", d.name)),
            Some(o) if o != d => changes.push(format!("model '{}' changed", d.name)),
            Some(_) => {}
        }
    }
    for o in &old.deployments {
        if !new.deployments.iter().any(|d| d.name == o.name) {
            changes.push(format!("model '{}' removed", o.name));
        }
    }
    let members = |c: &Config, g: &super::GroupSpec| -> Vec<(String, u32)> {
        g.members
            .iter()
            .map(|m| (c.deployments[m.deployment].name.clone(), m.weight))
            .collect()
    };
    for g in &new.groups {
        match old.groups.iter().find(|o| o.name == g.name) {
            None => changes.push(format!("group '{}' added", g.name)),
            Some(o) if members(old, o) != members(new, g) => changes.push(format!("group '{}' changed", g.name)),
            Some(_) => {}
        }
    }
    for o in &old.groups {
        if !new.groups.iter().any(|g| g.name == o.name) {
            changes.push(format!("group '{}' removed", o.name));
        }
    }
    if old.strategy != new.strategy {
        changes.push(format!("strategy changed to {:?}", new.strategy));
    }
    if old.reliability != new.reliability {
        changes.push(format!("reliability settings changed to {:?}", new.reliability));
    }
    let limits = |c: &Config| {
        (
            c.body_limit,
            c.header_read_timeout,
            c.body_read_timeout,
            c.max_connections,
            c.max_event_size,
        )
    };
    if limits(old) != limits(new) {
        changes.push("request limits changed".into());
    }
    if old.usage_db != new.usage_db {
        changes.push("usage_db changed".into());
    }
    if changes.is_empty() {
        changes.push("no effective change".into());
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "model_list:\n  - model_name: a\n    llm_params: {api_type: openai, model: x, api_base: 'http://127.0.0.1:1'}\nrouter_settings:\n  model_groups:\n    - name: g\n      models: [{name: a}]\n";

    fn setup(text: &str) -> (tempdir::Dir, Reloader) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("config.yaml");
        std::fs::write(&path, text).unwrap();
        let config = parse(text, &path).unwrap();
        let pool = Arc::new(ClientPool::new(None).unwrap());
        let metrics = Arc::new(Metrics::new());
        let live = Arc::new(ArcSwap::from_pointee(Snapshot::build(config, None, &pool, &metrics)));
        let status = Arc::new(crate::status::Status::new(path.clone()));
        (dir, Reloader::new(path, live, pool, metrics, text.to_owned(), status))
    }

    mod tempdir {
        /// A directory removed on drop (tests only; std has no tempdir).
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let path = std::env::temp_dir().join(format!("llm-router-reload-{}-{n}", std::process::id()));
                std::fs::create_dir_all(&path).unwrap();
                Dir(path)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn only_the_config_and_its_links_concern_the_watcher() {
        let dir = tempdir::Dir::new();
        let elsewhere = tempdir::Dir::new();
        std::fs::write(elsewhere.0.join("real.yaml"), A).unwrap();
        // Kubernetes' layout: config.yaml -> ..data/config.yaml, ..data -> ..2026_12_01 (a directory), and
        // here the file in it a link to another directory.
        std::fs::create_dir(dir.0.join("..2026_12_01")).unwrap();
        std::os::unix::fs::symlink(elsewhere.0.join("real.yaml"), dir.0.join("..2026_12_01/config.yaml")).unwrap();
        std::os::unix::fs::symlink("..2026_12_01", dir.0.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/config.yaml", dir.0.join("config.yaml")).unwrap();
        let paths = ConfigPaths::of(&dir.0.join("config.yaml"));
        for relevant in ["config.yaml", "..data"] {
            assert!(paths.concerns(&dir.0.join(relevant)), "{relevant}: {paths:?}");
        }
        assert!(paths.concerns(&elsewhere.0.join("real.yaml")));
        for unrelated in ["router.log", "config.yaml.bak", "..data_tmp"] {
            assert!(!paths.concerns(&dir.0.join(unrelated)), "{unrelated}");
        }
        assert!(!paths.concerns(&elsewhere.0.join("other.yaml")));
        assert_eq!(paths.dirs(), vec![dir.0.clone(), elsewhere.0.clone()]);
    }

    #[test]
    fn valid_edit_is_applied_and_described() {
        let (dir, reloader) = setup(A);
        let edited = A.replace("model: x", "model: y").replace("- name: g\n", "- name: g2\n");
        std::fs::write(dir.0.join("config.yaml"), &edited).unwrap();
        let outcome = reloader.reload().unwrap();
        assert_eq!(
            outcome,
            ReloadOutcome::Applied(vec![
                "model 'a' changed".into(),
                "group 'g2' added".into(),
                "group 'g' removed".into()
            ])
        );
        assert!(reloader.live.load().group("g2").is_some());
        assert_eq!(reloader.reload().unwrap(), ReloadOutcome::Unchanged);
    }

    #[test]
    fn invalid_edit_keeps_the_last_good_config() {
        let (dir, reloader) = setup(A);
        std::fs::write(
            dir.0.join("config.yaml"),
            A.replace("api_type: openai", "api_type: nope"),
        )
        .unwrap();
        let error = reloader.reload().unwrap_err().to_string();
        assert!(
            error.contains("model_list[0].llm_params.api_type: unknown api_type 'nope'"),
            "{error}"
        );
        assert!(reloader.live.load().group("g").is_some());
        // Fixing the file applies it again.
        std::fs::write(dir.0.join("config.yaml"), A.replace("model: x", "model: z")).unwrap();
        assert!(matches!(reloader.reload().unwrap(), ReloadOutcome::Applied(_)));
        assert_eq!(reloader.live.load().group("g").unwrap().members[0].upstream_model, "z");
    }
}
