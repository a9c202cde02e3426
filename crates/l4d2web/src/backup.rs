//! Backups of a data root, taken while the panel runs, and restoring one
//! into an empty data root.
//!
//! A backup is a directory: the database (`left4me.db`, a consistent copy
//! made by SQLite's `VACUUM INTO` while other connections keep writing),
//! every instance's files (`instances/`), every overlay (`overlays/`), and
//! `manifest.json` listing each entry with its mode, size and SHA-256. The
//! manifest is written last, by rename: a backup without one did not finish.
//! Left out on purpose: the game installation, the workshop cache and
//! steamcmd's files (downloaded again by an install and a workshop refresh)
//! and `runtime/` (rebuilt at every start).
//!
//! Restore checks the whole backup against its manifest before it writes
//! anything, and only into a data root that holds no file yet (missing, or
//! only the empty directories the deploy script creates).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::FileType;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

use crate::overlays::{walk_tree, TreeError};

/// The manifest's file name inside a backup.
pub const MANIFEST: &str = "manifest.json";
/// The database's file name inside a backup.
const DATABASE: &str = "left4me.db";
/// The data root's trees a backup holds.
const TREES: [&str; 2] = ["instances", "overlays"];
const FORMAT: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    created_at: String,
    entries: Vec<Entry>,
    /// Files left out because they are not regular files, directories or
    /// symlinks (a FIFO or socket an overlay build left behind).
    #[serde(default)]
    skipped: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Entry {
    Dir {
        path: String,
        mode: u32,
    },
    File {
        path: String,
        mode: u32,
        size: u64,
        sha256: String,
    },
    Symlink {
        path: String,
        target: String,
    },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. } | Entry::File { path, .. } | Entry::Symlink { path, .. } => {
                path
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the backup directory {0} already exists and is not empty; name a new one")]
    TargetNotEmpty(PathBuf),
    #[error("--keep must be at least 1 (the backup just made is always kept)")]
    KeepZero,
    #[error("cannot remove the old backup {path}: {source}")]
    Prune { path: PathBuf, source: io::Error },
    #[error("cannot write the backup at {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot read {path} for the backup: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{0} is not a UTF-8 path; choose a backup directory with a plain name")]
    NotUtf8(PathBuf),
    #[error("cannot copy the database into the backup: {0}")]
    Database(#[source] sqlx::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(
        "{0} is not a complete backup: it has no {MANIFEST} (a backup that did not finish has none)"
    )]
    NoManifest(PathBuf),
    #[error("the backup's {MANIFEST} is unreadable: {0}")]
    BadManifest(String),
    #[error("the backup is damaged: {path} {problem}; nothing was restored")]
    Damaged { path: String, problem: String },
    #[error(
        "the data root {root} is not empty ({found} is there); restore only into a new, \
         empty data root (LEFT4ME_ROOT), so nothing there is overwritten"
    )]
    TargetNotEmpty { root: PathBuf, found: PathBuf },
    #[error("the database {0} already exists; restore only into a new data root")]
    DatabaseExists(PathBuf),
    #[error("cannot read {path} from the backup: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// What a backup holds, for the command's summary.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub bytes: u64,
    pub skipped: Vec<String>,
}

/// Prefix of the backups [`backup_rotated`] names and prunes.
const ROTATED_PREFIX: &str = "left4me-";

/// A backup into a new `<parent>/left4me-<UTC time>`, then the oldest
/// complete backups of that name removed until `keep` are left (a backup
/// that did not finish is left alone for the operator to look at).
/// Returns the new backup's path, its summary and what was removed.
pub async fn backup_rotated(
    pool: &SqlitePool,
    root: &Path,
    parent: &Path,
    keep: usize,
) -> Result<(PathBuf, Summary, Vec<PathBuf>), BackupError> {
    if keep == 0 {
        return Err(BackupError::KeepZero);
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(parent)
        .map_err(|source| BackupError::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    let now = time::OffsetDateTime::now_utc();
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    // Two backups in one second (the timer and an operator) get -2, -3, …,
    // which also sort after the first.
    let mut target = parent.join(format!("{ROTATED_PREFIX}{stamp}"));
    for n in 2..100 {
        if !target.exists() {
            break;
        }
        target = parent.join(format!("{ROTATED_PREFIX}{stamp}-{n}"));
    }
    let summary = backup(pool, root, &target).await?;
    let read_err = |source| BackupError::Read {
        path: parent.to_path_buf(),
        source,
    };
    let mut complete = Vec::new();
    for entry in fs::read_dir(parent).map_err(read_err)? {
        let entry = entry.map_err(read_err)?;
        let name = entry.file_name();
        let is_ours = name.to_str().is_some_and(|n| n.starts_with(ROTATED_PREFIX));
        // Never follow a link out of the backup directory when deleting.
        if is_ours
            && entry.file_type().map_err(read_err)?.is_dir()
            && entry.path().join(MANIFEST).is_file()
        {
            complete.push(entry.path());
        }
    }
    // The UTC stamps sort by time.
    complete.sort();
    let excess = complete.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for old in complete.into_iter().take(excess) {
        fs::remove_dir_all(&old).map_err(|source| BackupError::Prune {
            path: old.clone(),
            source,
        })?;
        removed.push(old);
    }
    Ok((target, summary, removed))
}

/// Writes a backup of `root` (with the database behind `pool`) into
/// `target`, which must not exist yet or be empty.
pub async fn backup(pool: &SqlitePool, root: &Path, target: &Path) -> Result<Summary, BackupError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Write { path, source }
    };
    match fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::TargetNotEmpty(target.to_path_buf()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // The backup holds every secret of the panel: only its owner reads it.
            fs::DirBuilder::new()
                .mode(0o700)
                .create(target)
                .map_err(write_err(target))?;
        }
        Err(e) => return Err(write_err(target)(e)),
    }
    fs::set_permissions(target, fs::Permissions::from_mode(0o700)).map_err(write_err(target))?;

    let db_copy = target.join(DATABASE);
    let db_text = db_copy
        .to_str()
        .ok_or_else(|| BackupError::NotUtf8(db_copy.clone()))?;
    sqlx::query("VACUUM INTO ?")
        .bind(db_text)
        .execute(pool)
        .await
        .map_err(BackupError::Database)?;
    fs::set_permissions(&db_copy, fs::Permissions::from_mode(0o600))
        .map_err(write_err(&db_copy))?;
    let (size, sha256) = hash_file(&db_copy).map_err(|source| BackupError::Read {
        path: db_copy.clone(),
        source,
    })?;
    let mut manifest = Manifest {
        format: FORMAT,
        created_at: crate::db::now_text(),
        entries: vec![Entry::File {
            path: DATABASE.into(),
            mode: 0o600,
            size,
            sha256,
        }],
        skipped: Vec::new(),
    };
    for tree in TREES {
        let from = root.join(tree);
        if fs::symlink_metadata(&from).is_ok_and(|m| m.is_dir()) {
            copy_tree(&from, target, tree, &mut manifest)?;
        }
    }

    let summary = Summary {
        files: manifest
            .entries
            .iter()
            .filter(|e| matches!(e, Entry::File { .. }))
            .count(),
        bytes: manifest
            .entries
            .iter()
            .map(|e| match e {
                Entry::File { size, .. } => *size,
                _ => 0,
            })
            .sum(),
        skipped: manifest.skipped.clone(),
    };
    let text = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Write {
        path: target.join(MANIFEST),
        source: io::Error::other(e),
    })?;
    let partial = target.join(format!(".{MANIFEST}.partial"));
    write_new(&partial, &text, 0o600).map_err(write_err(&partial))?;
    fs::rename(&partial, target.join(MANIFEST)).map_err(write_err(&target.join(MANIFEST)))?;
    Ok(summary)
}

/// Copies the tree at `from` to `<target>/<rel>`. Overlays are written by
/// tenants' builds, possibly while this runs, so the walk never follows a
/// link: [`walk_tree`] opens every entry relative to its parent's
/// descriptor without following, a regular file is read through its own
/// descriptor (`/proc/self/fd`: exactly the inode inspected, never a FIFO
/// or a link swapped in since), and a link is copied as a link.
fn copy_tree(
    from: &Path,
    target: &Path,
    rel: &str,
    manifest: &mut Manifest,
) -> Result<(), BackupError> {
    let walked = walk_tree(from, |fd, st, path| {
        let Some(entry_rel) = path
            .strip_prefix(from)
            .ok()
            .and_then(|r| r.to_str())
            .map(|r| {
                if r.is_empty() {
                    rel.to_string()
                } else {
                    format!("{rel}/{r}")
                }
            })
        else {
            manifest
                .skipped
                .push(format!("{} (not a UTF-8 name)", path.display()));
            return Ok(());
        };
        copy_entry(fd, st, path, target, entry_rel, manifest).map_err(|e| TreeError::Io {
            what: "back up",
            path: path.to_path_buf(),
            source: e,
        })
    });
    match walked {
        Ok(_) => Ok(()),
        Err(TreeError::Io { path, source, .. }) => Err(BackupError::Read { path, source }),
        Err(e @ TreeError::TooDeep { .. }) => Err(BackupError::Read {
            path: from.to_path_buf(),
            source: io::Error::other(e.to_string()),
        }),
    }
}

/// One entry of [`copy_tree`]: `fd` is its `O_PATH` descriptor.
fn copy_entry(
    fd: BorrowedFd<'_>,
    st: &rustix::fs::Stat,
    path: &Path,
    target: &Path,
    rel: String,
    manifest: &mut Manifest,
) -> io::Result<()> {
    let to = target.join(&rel);
    let mode = st.st_mode & 0o777;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            fs::DirBuilder::new().mode(0o700).create(&to)?;
            manifest.entries.push(Entry::Dir { path: rel, mode });
        }
        FileType::Symlink => {
            let link = rustix::fs::readlinkat(fd, c"", Vec::new())?;
            let Ok(link_text) = link.into_string() else {
                manifest
                    .skipped
                    .push(format!("{rel} (a link to a non-UTF-8 path)"));
                return Ok(());
            };
            std::os::unix::fs::symlink(&link_text, &to)?;
            manifest.entries.push(Entry::Symlink {
                path: rel,
                target: link_text,
            });
        }
        FileType::RegularFile => {
            let by_fd = format!("/proc/self/fd/{}", fd.as_raw_fd());
            let mut input = File::open(&by_fd)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let mut output = create_new(&to, 0o600)?;
            let (size, sha256) = copy_hashing(&mut input, &mut output)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(mode))?;
            manifest.entries.push(Entry::File {
                path: rel,
                mode,
                size,
                sha256,
            });
        }
        _ => manifest
            .skipped
            .push(format!("{rel} (not a regular file, directory or link)")),
    }
    Ok(())
}

/// Restores the backup at `backup` into the data root `root` (empty or
/// missing), the database to `database` (which must not exist).
pub fn restore(backup: &Path, root: &Path, database: &Path) -> Result<Summary, RestoreError> {
    let manifest = verify(backup)?;
    match fs::symlink_metadata(root) {
        Ok(_) => {
            if let Some(found) = first_non_directory(root).map_err(|source| RestoreError::Read {
                path: root.to_path_buf(),
                source,
            })? {
                return Err(RestoreError::TargetNotEmpty {
                    root: root.to_path_buf(),
                    found,
                });
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .mode(0o750)
                .recursive(true)
                .create(root)
                .map_err(|source| RestoreError::Write {
                    path: root.to_path_buf(),
                    source,
                })?;
        }
        Err(source) => {
            return Err(RestoreError::Read {
                path: root.to_path_buf(),
                source,
            })
        }
    }
    if fs::symlink_metadata(database).is_ok() {
        return Err(RestoreError::DatabaseExists(database.to_path_buf()));
    }
    let mut summary = Summary {
        skipped: manifest.skipped.clone(),
        ..Summary::default()
    };
    let mut dir_modes = Vec::new();
    for entry in &manifest.entries {
        let from = backup.join(entry.path());
        let to = if entry.path() == DATABASE {
            database.to_path_buf()
        } else {
            root.join(entry.path())
        };
        let write_err = |source| RestoreError::Write {
            path: to.clone(),
            source,
        };
        match entry {
            Entry::Dir { mode, .. } => {
                // Writable until everything is in it: a directory's own mode
                // (0555, say) is set at the end.
                match fs::DirBuilder::new().mode(0o700).create(&to) {
                    Ok(()) => {}
                    // One of the empty directories checked above.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && to.is_dir() => {}
                    Err(e) => return Err(write_err(e)),
                }
                dir_modes.push((to.clone(), *mode & 0o777));
            }
            Entry::Symlink { target, .. } => {
                std::os::unix::fs::symlink(target, &to).map_err(write_err)?;
            }
            Entry::File { mode, size, .. } => {
                // The database is never readable by others, whatever the backup says.
                let mode = if entry.path() == DATABASE {
                    crate::db::DB_MODE & mode
                } else {
                    mode & 0o777
                };
                let mut input = File::open(&from).map_err(|source| RestoreError::Read {
                    path: from.clone(),
                    source,
                })?;
                let mut output = create_new(&to, 0o600).map_err(write_err)?;
                io::copy(&mut input, &mut output).map_err(write_err)?;
                fs::set_permissions(&to, fs::Permissions::from_mode(mode)).map_err(write_err)?;
                summary.files += 1;
                summary.bytes += size;
            }
        }
    }
    // Deepest first, so no directory is closed before its children.
    for (dir, mode) in dir_modes.iter().rev() {
        fs::set_permissions(dir, fs::Permissions::from_mode(*mode)).map_err(|source| {
            RestoreError::Write {
                path: dir.clone(),
                source,
            }
        })?;
    }
    Ok(summary)
}

/// Reads the manifest and checks every entry against the backup's files
/// (kind, size, checksum, link target) and that nothing unlisted is there.
fn verify(backup: &Path) -> Result<Manifest, RestoreError> {
    let manifest_path = backup.join(MANIFEST);
    let text = match fs::read(&manifest_path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(RestoreError::NoManifest(backup.to_path_buf()))
        }
        Err(source) => {
            return Err(RestoreError::Read {
                path: manifest_path,
                source,
            })
        }
    };
    let manifest: Manifest =
        serde_json::from_slice(&text).map_err(|e| RestoreError::BadManifest(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(RestoreError::BadManifest(format!(
            "format {} is not one this version reads ({FORMAT})",
            manifest.format
        )));
    }
    let damaged = |path: &str, problem: &str| RestoreError::Damaged {
        path: path.into(),
        problem: problem.into(),
    };
    let mut listed = BTreeSet::new();
    let mut has_database = false;
    for entry in &manifest.entries {
        let path = entry.path();
        if !allowed_path(path) {
            return Err(damaged(path, "is not a path a backup may hold"));
        }
        if !listed.insert(path.to_string()) {
            return Err(damaged(path, "is listed twice in the manifest"));
        }
        // Parents come before their contents.
        if let Some((parent, _)) = path.rsplit_once('/') {
            if !listed.contains(parent) {
                return Err(damaged(path, "is listed before its directory"));
            }
        }
        let on_disk = backup.join(path);
        let meta = fs::symlink_metadata(&on_disk).map_err(|_| damaged(path, "is missing"))?;
        match entry {
            Entry::Dir { .. } if !meta.is_dir() => return Err(damaged(path, "is not a directory")),
            Entry::Dir { .. } => {}
            Entry::Symlink { target, .. } => {
                let link = fs::read_link(&on_disk).map_err(|_| damaged(path, "is not a link"))?;
                if link != Path::new(target) {
                    return Err(damaged(path, "points somewhere else than recorded"));
                }
            }
            Entry::File { size, sha256, .. } => {
                if !meta.file_type().is_file() {
                    return Err(damaged(path, "is not a regular file"));
                }
                let (actual_size, actual_sum) =
                    hash_file(&on_disk).map_err(|source| RestoreError::Read {
                        path: on_disk.clone(),
                        source,
                    })?;
                if actual_size != *size {
                    return Err(damaged(
                        path,
                        &format!("has {actual_size} bytes, the manifest says {size}"),
                    ));
                }
                if actual_sum != *sha256 {
                    return Err(damaged(path, "does not match its checksum"));
                }
                if path == DATABASE {
                    has_database = true;
                }
            }
        }
    }
    if !has_database {
        return Err(damaged(DATABASE, "is not in the manifest"));
    }
    let mut present = BTreeSet::new();
    list_files(backup, "", &mut present).map_err(|source| RestoreError::Read {
        path: backup.to_path_buf(),
        source,
    })?;
    present.remove(MANIFEST);
    if let Some(extra) = present.difference(&listed).next() {
        return Err(damaged(extra, "is not in the manifest"));
    }
    Ok(manifest)
}

/// The database, or a path inside one of [`TREES`], of plain components.
fn allowed_path(path: &str) -> bool {
    if path == DATABASE {
        return true;
    }
    let plain = path
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != "..");
    let top = path.split('/').next().unwrap_or_default();
    plain && TREES.contains(&top)
}

/// The first thing below `dir` (or `dir` itself) that is not a directory:
/// a data root holding only empty directories counts as empty.
fn first_non_directory(dir: &Path) -> io::Result<Option<PathBuf>> {
    if !fs::symlink_metadata(dir)?.is_dir() {
        return Ok(Some(dir.to_path_buf()));
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            return Ok(Some(entry.path()));
        }
        if let Some(found) = first_non_directory(&entry.path())? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn list_files(dir: &Path, rel: &str, out: &mut BTreeSet<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let is_dir = entry.file_type()?.is_dir();
        out.insert(rel.clone());
        if is_dir {
            list_files(&entry.path(), &rel, out)?;
        }
    }
    Ok(())
}

fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = create_new(path, mode)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    copy_hashing(&mut File::open(path)?, &mut io::sink())
}

/// Copies `input` to `output`; returns the size and the SHA-256 (hex).
fn copy_hashing(input: &mut impl Read, output: &mut impl Write) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        output.write_all(&buf[..n])?;
        size += n as u64;
    }
    output.flush()?;
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_database_and_plain_paths_in_the_trees_are_allowed() {
        assert!(allowed_path("left4me.db"));
        assert!(allowed_path("instances/alpha/server.cfg"));
        assert!(allowed_path("overlays/3"));
        for bad in [
            "../etc/passwd",
            "/etc/passwd",
            "instances/../../x",
            "installation/srcds_run",
            "runtime/alpha",
            "instances/./x",
            "",
            "manifest.json",
        ] {
            assert!(!allowed_path(bad), "{bad}");
        }
    }
}
