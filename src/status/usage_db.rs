//! The optional usage log (`router_settings.usage_db`): one SQLite row per finished request, no bodies.
//! Rows go through a bounded channel to one writer thread, which commits them in batches at least once a
//! second, so the request path only pays for a `try_send`; a full channel drops the row (and says so in
//! the log) rather than slow a request down. Old rows are deleted at start and every hour.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, params};

/// Rows waiting for the writer; more than a few seconds of heavy traffic.
const QUEUE: usize = 16 * 1024;
/// The writer commits at least this often, so rows are visible within a few seconds.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS requests (
    ts_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    ingress TEXT NOT NULL,
    model_group TEXT,
    deployment TEXT,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    stream INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    ttft_ms INTEGER,
    duration_ms INTEGER NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cache_read_tokens INTEGER,
    cache_write_tokens INTEGER,
    reasoning_tokens INTEGER,
    client_key TEXT
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts_ms);
";

/// One request, as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageRow {
    /// When the request finished, in milliseconds since the Unix epoch.
    pub ts_ms: i64,
    pub request_id: String,
    pub ingress: &'static str,
    pub group: Option<String>,
    pub deployment: Option<String>,
    pub status: u16,
    pub outcome: &'static str,
    pub stream: bool,
    pub attempts: u32,
    pub ttft_ms: Option<u64>,
    pub duration_ms: u64,
    /// Token counts, when the upstream reported usage.
    pub tokens: Option<Tokens>,
    /// The name of the client key the request came with.
    pub client_key: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

/// Tokens of one group on one day (UTC), for the status page's chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayTokens {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub group: String,
    pub input: u64,
    pub output: u64,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The open usage log: where rows are sent, and the file, for the page's reads.
#[derive(Debug)]
pub struct UsageDb {
    path: PathBuf,
    retention_days: u32,
    rows: SyncSender<UsageRow>,
    dropped: AtomicU64,
}

impl UsageDb {
    /// Opens (or creates) the file, deletes rows older than `retention_days` and starts the writer.
    pub fn open(path: &Path, retention_days: u32) -> Result<Self, String> {
        let connection = open_writer(path).map_err(|e| format!("usage_db {}: {e}", path.display()))?;
        delete_old(&connection, retention_days).map_err(|e| format!("usage_db {}: {e}", path.display()))?;
        let (rows, queue) = sync_channel(QUEUE);
        let thread_path = path.to_owned();
        std::thread::Builder::new()
            .name("usage-db".into())
            .spawn(move || write_rows(connection, queue, retention_days, &thread_path))
            .map_err(|e| format!("usage_db: cannot start its writer: {e}"))?;
        Ok(Self {
            path: path.to_owned(),
            retention_days,
            rows,
            dropped: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn retention_days(&self) -> u32 {
        self.retention_days
    }

    /// Queues a row; never waits.
    pub fn record(&self, row: UsageRow) {
        match self.rows.try_send(row) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                // One warning per thousand rows lost keeps a long overload from flooding the log.
                if self.dropped.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
                    tracing::warn!(path = %self.path.display(), "usage_db: writer behind, rows dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Tokens per group per day for the last `days` days (today included), oldest first. Blocking: call
    /// it off the async runtime.
    pub fn tokens_per_day(&self, days: u32) -> Result<Vec<DayTokens>, String> {
        let read = || -> rusqlite::Result<Vec<DayTokens>> {
            let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
            let connection = Connection::open_with_flags(&self.path, flags)?;
            connection.busy_timeout(Duration::from_secs(2))?;
            let day_ms = 86_400_000;
            let since = (now_ms() / day_ms - i64::from(days.max(1)) + 1) * day_ms;
            let mut query = connection.prepare_cached(
                "SELECT date(ts_ms / 1000, 'unixepoch') AS day, model_group,
                        SUM(COALESCE(input_tokens, 0)), SUM(COALESCE(output_tokens, 0))
                 FROM requests WHERE ts_ms >= ?1 AND model_group IS NOT NULL
                 GROUP BY day, model_group ORDER BY day, model_group",
            )?;
            let rows = query.query_map(params![since], |row| {
                Ok(DayTokens {
                    day: row.get(0)?,
                    group: row.get(1)?,
                    input: row.get::<_, i64>(2)?.max(0) as u64,
                    output: row.get::<_, i64>(3)?.max(0) as u64,
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| format!("usage_db: {e}"))
    }
}

fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    // WAL lets the page read while the writer writes; NORMAL sync is safe with WAL and much cheaper.
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.busy_timeout(Duration::from_secs(5))?;
    connection.execute_batch(SCHEMA)?;
    // A file made before client keys existed gets their column (SQLite has no ADD COLUMN IF NOT EXISTS).
    let has_key: bool = connection.query_row(
        "SELECT COUNT(*) FROM pragma_table_info('requests') WHERE name = 'client_key'",
        [],
        |row| row.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has_key {
        connection.execute_batch("ALTER TABLE requests ADD COLUMN client_key TEXT")?;
    }
    Ok(connection)
}

fn delete_old(connection: &Connection, retention_days: u32) -> rusqlite::Result<usize> {
    let cutoff = now_ms() - i64::from(retention_days) * 86_400_000;
    connection.execute("DELETE FROM requests WHERE ts_ms < ?1", params![cutoff])
}

/// The writer thread: batches rows into transactions until every sender is gone.
fn write_rows(mut connection: Connection, queue: Receiver<UsageRow>, retention_days: u32, path: &Path) {
    let mut batch = Vec::with_capacity(256);
    let mut last_retention = Instant::now();
    loop {
        let open = match queue.recv_timeout(FLUSH_EVERY) {
            Ok(row) => {
                batch.push(row);
                batch.extend(queue.try_iter().take(4095));
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        };
        if !batch.is_empty()
            && let Err(error) = insert(&mut connection, &batch)
        {
            tracing::warn!(path = %path.display(), %error, rows = batch.len(), "usage_db: rows not written");
        }
        batch.clear();
        if last_retention.elapsed() >= RETENTION_EVERY {
            last_retention = Instant::now();
            if let Err(error) = delete_old(&connection, retention_days) {
                tracing::warn!(path = %path.display(), %error, "usage_db: old rows not deleted");
            }
        }
        if !open {
            return;
        }
    }
}

fn insert(connection: &mut Connection, rows: &[UsageRow]) -> rusqlite::Result<()> {
    let transaction = connection.transaction()?;
    {
        let mut statement = transaction.prepare_cached(
            "INSERT INTO requests (ts_ms, request_id, ingress, model_group, deployment, status, outcome, stream,
                attempts, ttft_ms, duration_ms, input_tokens, output_tokens, cache_read_tokens,
                cache_write_tokens, reasoning_tokens, client_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?;
        for row in rows {
            let tokens = row.tokens;
            let count = |f: fn(&Tokens) -> u64| tokens.as_ref().map(|t| f(t) as i64);
            statement.execute(params![
                row.ts_ms,
                row.request_id,
                row.ingress,
                row.group,
                row.deployment,
                row.status,
                row.outcome,
                row.stream,
                row.attempts,
                row.ttft_ms.map(|t| t as i64),
                row.duration_ms as i64,
                count(|t| t.input),
                count(|t| t.output),
                count(|t| t.cache_read),
                count(|t| t.cache_write),
                count(|t| t.reasoning),
                row.client_key,
            ])?;
        }
    }
    transaction.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ts_ms: i64, group: &str, input: u64) -> UsageRow {
        UsageRow {
            ts_ms,
            request_id: "00000000000000ab".into(),
            ingress: "chat",
            group: Some(group.into()),
            deployment: Some("d".into()),
            status: 200,
            outcome: "complete",
            stream: false,
            attempts: 1,
            ttft_ms: None,
            duration_ms: 12,
            tokens: Some(Tokens {
                input,
                output: 1,
                ..Tokens::default()
            }),
            client_key: Some("alice".into()),
        }
    }

    fn wait_for(db: &UsageDb, want: usize) -> Vec<DayTokens> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let days = db.tokens_per_day(7).unwrap();
            let rows: u64 = days.iter().map(|d| d.output).sum();
            if rows as usize >= want || Instant::now() > deadline {
                return days;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn rows_are_written_survive_a_reopen_and_age_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("usage.sqlite");
        let now = now_ms();
        {
            let db = UsageDb::open(&path, 30).unwrap();
            // Forty days old: kept until the next retention pass, outside the chart's seven days. Sent
            // first: rows are committed in order, so once the later ones show, it is written too.
            db.record(row(now - 40 * 86_400_000, "a", 1000));
            db.record(row(now, "a", 5));
            db.record(row(now, "a", 7));
            db.record(row(now, "b", 1));
            let days = wait_for(&db, 3);
            let today = days.iter().filter(|d| d.group == "a").map(|d| d.input).sum::<u64>();
            assert_eq!((days.len(), today), (2, 12), "{days:?}");
        }
        // The writer of the first handle is gone; a new one opens the same file and its retention pass
        // deletes the old row.
        let db = UsageDb::open(&path, 30).unwrap();
        let connection = Connection::open(&path).unwrap();
        let count: i64 = connection
            .query_row("SELECT COUNT(*) FROM requests", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 3, "the rows survived; the 40-day-old one was deleted");
        assert_eq!(db.tokens_per_day(7).unwrap().len(), 2);
    }
}
