//! Startup checks on the data root: it must be writable (else every job and
//! form would fail later while /health says "ok"), and only one `serve` may
//! use it at a time (a second one would fail the first one's running jobs
//! as "interrupted" and run the same servers twice).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use sqlx::SqlitePool;

/// Name of the lock file in the data root; holds the serving process's pid.
pub const LOCK_FILE: &str = "left4me.lock";

#[derive(Debug, thiserror::Error)]
pub enum DataRootError {
    #[error("the data root {0} does not exist or is not a directory (LEFT4ME_ROOT)")]
    Missing(PathBuf),
    #[error("the data root {path} is not writable by this user: {source}")]
    NotWritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "another left4me is already serving the data root {root} (lock file {lock}{holder}); \
         stop it first: two instances would fail each other's jobs"
    )]
    Locked {
        root: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    #[error("cannot lock {lock}: {source}")]
    Lock {
        lock: PathBuf,
        source: std::io::Error,
    },
    #[error("the database {url} is not writable by this user: {source}")]
    DatabaseNotWritable { url: String, source: sqlx::Error },
}

/// Held for as long as this process serves the data root. The kernel drops
/// the `flock` when the file is closed, also when the process dies, so a
/// crash never leaves a stale lock.
#[derive(Debug)]
pub struct DataRootLock {
    _file: File,
}

/// Takes the data root's exclusive lock (`<root>/left4me.lock`) without
/// waiting and records our pid in it for the next one who tries.
pub fn lock(root: &Path) -> Result<DataRootLock, DataRootError> {
    let lock = root.join(LOCK_FILE);
    let lock_err = |source| DataRootError::Lock {
        lock: lock.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(&lock)
        .map_err(lock_err)?;
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!(", held by pid {pid}"),
                Err(_) => String::new(),
            };
            return Err(DataRootError::Locked {
                root: root.to_path_buf(),
                lock,
                holder,
            });
        }
        Err(e) => return Err(lock_err(e.into())),
    }
    // Only informational: the lock itself is the flock.
    let pid = format!("{}\n", std::process::id());
    if let Err(e) = file
        .set_len(0)
        .and_then(|()| file.write_all(pid.as_bytes()))
    {
        tracing::warn!(lock = %lock.display(), error = %e, "cannot record the pid in the lock file");
    }
    Ok(DataRootLock { _file: file })
}

/// Proves the data root is a directory we can create and remove files in.
pub fn check_writable(root: &Path) -> Result<(), DataRootError> {
    if !root.is_dir() {
        return Err(DataRootError::Missing(root.to_path_buf()));
    }
    let probe = root.join(format!(".left4me-write-check-{}", std::process::id()));
    let not_writable = |source| DataRootError::NotWritable {
        path: root.to_path_buf(),
        source,
    };
    // Creating, writing and removing: a leftover probe file that is
    // writable itself still fails the removal in a read-only directory.
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&probe)
        .map_err(not_writable)?;
    let written = file.write_all(b"left4me write check\n");
    drop(file);
    let removed = std::fs::remove_file(&probe);
    written.map_err(not_writable)?;
    removed.map_err(not_writable)
}

/// Proves the database accepts writes: SQLite opens a file it may not
/// write read-only without complaint, and every write would fail later.
pub async fn check_database_writable(pool: &SqlitePool, url: &str) -> Result<(), DataRootError> {
    let not_writable = |source| DataRootError::DatabaseNotWritable {
        url: url.to_string(),
        source,
    };
    // BEGIN IMMEDIATE alone succeeds on a read-only file; a write
    // statement is refused with SQLITE_READONLY even when it matches no
    // row. It runs in a transaction that is rolled back either way.
    let mut tx = pool.begin().await.map_err(not_writable)?;
    sqlx::query("DELETE FROM sessions WHERE 0")
        .execute(&mut *tx)
        .await
        .map_err(not_writable)?;
    tx.rollback().await.map_err(not_writable)
}
