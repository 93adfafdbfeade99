//! `--log-file`: a log file rotated by size, keeping [`KEPT`] old files (`path.1` the newest), and reopened
//! on SIGHUP so that an external tool (logrotate) can move it away.
//!
//! Hand-written rather than taken from a crate: `tracing-appender` rotates by time only, and the size-rotating
//! crates keep the file open with no way to reopen it on a signal; what is needed here is small.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How many rotated files are kept: `path.1` (newest) to `path.3` (oldest).
pub const KEPT: usize = 3;

/// A log file shared by every thread that logs. Each write is one whole line (the fmt layer formats an event
/// into a buffer and writes it at once), so lines never interleave or straddle two files.
#[derive(Debug)]
pub struct LogFile {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    path: PathBuf,
    max_bytes: u64,
    /// `None` after a failed (re)open: the next write tries again.
    file: Option<File>,
    /// Bytes in the current file, counted from its size when opened.
    written: u64,
    /// Only the first I/O failure is reported (on stderr, the log itself may be what fails); a reopen on
    /// SIGHUP reports again.
    reported: bool,
}

impl LogFile {
    /// Opens (or creates, mode 0640 on unix) `path` for appending, to be rotated when a line would take it
    /// past `max_bytes`. Fails when the file cannot be opened, e.g. its directory does not exist.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Self> {
        let (file, written) = open_append(path)?;
        Ok(Self {
            state: Mutex::new(State {
                path: path.to_path_buf(),
                max_bytes: max_bytes.max(1),
                file: Some(file),
                written,
                reported: false,
            }),
        })
    }

    /// Closes the file and opens `path` again: after logrotate moved it, a new file is started there.
    pub fn reopen(&self) -> io::Result<()> {
        let mut state = self.lock();
        state.file = None;
        state.reported = false;
        let (file, written) = open_append(&state.path)?;
        state.file = Some(file);
        state.written = written;
        Ok(())
    }

    /// Appends one line (or any whole record), rotating first if it would not fit. I/O errors are reported
    /// once and otherwise ignored: logging must never stop the router.
    pub fn write_record(&self, record: &[u8]) {
        let mut state = self.lock();
        if let Err(error) = state.write(record)
            && !state.reported
        {
            state.reported = true;
            eprintln!(
                "llm-router: cannot write the log file {}: {error} (logging to stderr only until it can)",
                state.path.display()
            );
        }
    }

    /// A poisoned lock only means a thread panicked mid-write; the state is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn write(&mut self, record: &[u8]) -> io::Result<()> {
        // A record longer than the limit still goes into a file of its own rather than being cut.
        if self.written > 0 && self.written + record.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let (file, written) = open_append(&self.path)?;
                self.written = written;
                self.file.insert(file)
            }
        };
        file.write_all(record)?;
        self.written += record.len() as u64;
        Ok(())
    }

    /// `path.2` → `path.3` (dropping the old `path.3`), …, `path` → `path.1`, then a new `path`. A file
    /// missing on the way (the first rotations, or moved away by hand) is skipped.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        ignore_missing(std::fs::remove_file(rotated(&self.path, KEPT)))?;
        for n in (1..KEPT).rev() {
            ignore_missing(std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1)))?;
        }
        ignore_missing(std::fs::rename(&self.path, rotated(&self.path, 1)))?;
        let (file, written) = open_append(&self.path)?;
        self.file = Some(file);
        self.written = written;
        Ok(())
    }
}

/// `path.n`, the `n`th newest rotated file.
pub fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn open_append(path: &Path) -> io::Result<(File, u64)> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    // Logs may hold client addresses and model names: not for every user of the machine.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    let file = options.open(path)?;
    let size = file.metadata()?.len();
    Ok((file, size))
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// What the fmt layer writes through (as `Arc<LogFile>`). It always reports the whole buffer written, so
/// that a failing file never turns into a write error inside `tracing`.
impl Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_record(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn rotates_by_size_keeping_three_old_files_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.log");
        // Two 10-byte lines fit in 25 bytes, a third does not.
        let log = LogFile::open(&path, 25).unwrap();
        for n in 0..11 {
            log.write_record(format!("line {n:03}\n").as_bytes());
        }
        assert_eq!(read(&path), "line 010\n");
        assert_eq!(read(&rotated(&path, 1)), "line 008\nline 009\n");
        assert_eq!(read(&rotated(&path, 2)), "line 006\nline 007\n");
        assert_eq!(read(&rotated(&path, 3)), "line 004\nline 005\n");
        assert!(!rotated(&path, 4).exists(), "the oldest is dropped");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1 + KEPT);
    }

    #[test]
    fn a_line_longer_than_the_limit_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.log");
        let log = LogFile::open(&path, 8).unwrap();
        log.write_record(b"short\n");
        log.write_record(b"a much longer line\n");
        log.write_record(b"short\n");
        assert_eq!(read(&path), "short\n");
        assert_eq!(read(&rotated(&path, 1)), "a much longer line\n");
        assert_eq!(read(&rotated(&path, 2)), "short\n");
    }

    #[test]
    fn an_existing_file_is_appended_to_and_counts_toward_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.log");
        std::fs::write(&path, "old 1234\n").unwrap();
        let log = LogFile::open(&path, 20).unwrap();
        log.write_record(b"new 1234\n");
        assert_eq!(read(&path), "old 1234\nnew 1234\n");
        log.write_record(b"new 5678\n");
        assert_eq!(read(&path), "new 5678\n");
        assert_eq!(read(&rotated(&path, 1)), "old 1234\nnew 1234\n");
    }

    #[test]
    fn reopen_starts_a_new_file_after_an_external_move() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.log");
        let moved = dir.path().join("router.log.moved");
        let log = LogFile::open(&path, 1024).unwrap();
        log.write_record(b"before\n");
        std::fs::rename(&path, &moved).unwrap();
        log.write_record(b"still the open file\n");
        log.reopen().unwrap();
        log.write_record(b"after\n");
        assert_eq!(read(&moved), "before\nstill the open file\n");
        assert_eq!(read(&path), "after\n");
    }

    #[test]
    fn a_missing_directory_fails_to_open_and_a_lost_one_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let error = LogFile::open(&dir.path().join("nope/router.log"), 1024).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);

        let sub = dir.path().join("logs");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("router.log");
        let log = LogFile::open(&path, 10).unwrap();
        log.write_record(b"first line\n");
        std::fs::remove_dir_all(&sub).unwrap();
        // Rotation and reopening fail now; writes are dropped, not fatal.
        log.write_record(b"second line\n");
        log.write_record(b"third line\n");
        assert!(log.reopen().is_err());
        std::fs::create_dir(&sub).unwrap();
        log.write_record(b"back\n");
        assert_eq!(read(&path), "back\n");
    }

    #[cfg(unix)]
    #[test]
    fn a_new_file_is_not_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.log");
        LogFile::open(&path, 1024).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o007, 0, "{mode:o}");
    }
}
