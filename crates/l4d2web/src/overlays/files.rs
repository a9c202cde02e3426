//! The overlay file browser. Paths are resolved by the kernel, not by
//! string checks alone: every open is `openat2` relative to the overlay
//! directory with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`, so `..`,
//! absolute symlinks and links leading out of the overlay fail with EXDEV
//! even if the tree changes between check and use (a build may be running).
//!
//! - Listing follows symlinks only while they stay inside the overlay.
//! - Downloads refuse every symlink (`RESOLVE_NO_SYMLINKS`), with one
//!   exception: a workshop overlay's `left4dead2/addons/<id>.vpk` whose
//!   link text is exactly the cache file of item `<id>` and whose item
//!   belongs to the overlay. That file is then opened beneath
//!   `workshop_cache/`, again without following any symlink.
//! - Downloads serve regular files only. The path is opened with `O_PATH`
//!   (which never blocks and has no side effects, unlike opening a FIFO,
//!   socket or device for reading), checked with `fstat`, and only then
//!   reopened for reading through `/proc/self/fd`, so the file read is the
//!   inode that was checked.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use beneath::Links;
use rustix::fs::{statat, AtFlags, FileType, Mode, OFlags};

/// Most entries shown for one directory.
pub const MAX_ENTRIES: usize = 5000;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("invalid path {0:?}: {1}")]
    BadPath(String, &'static str),
    #[error("no such file or directory: {0:?}")]
    NotFound(String),
    #[error("{0:?} leads outside the overlay or through a symlink; refused")]
    Escapes(String),
    #[error("{0:?} is not a directory")]
    NotADirectory(String),
    #[error("{0:?} is not a regular file")]
    NotAFile(String),
    #[error("{0:?} is {1}; only regular files can be downloaded")]
    NotRegular(String, &'static str),
    #[error("cannot read {0:?}: {1}")]
    Io(String, std::io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { size: u64 },
    Symlink { target: String },
    Other,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    /// Path relative to the overlay root (for links).
    pub path: String,
    pub kind: EntryKind,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }
    pub fn size(&self) -> Option<u64> {
        match self.kind {
            EntryKind::File { size } => Some(size),
            _ => None,
        }
    }
    pub fn link_target(&self) -> Option<&str> {
        match &self.kind {
            EntryKind::Symlink { target } => Some(target),
            _ => None,
        }
    }
}

/// Checks a user-supplied relative path: no NUL, not absolute, no `.` or
/// `..` components, at most 4096 bytes. Empty means the overlay root.
/// Returns the path without empty components.
pub fn clean_path(raw: &str) -> Result<String, FileError> {
    let bad = |why| Err(FileError::BadPath(raw.chars().take(200).collect(), why));
    if raw.contains('\0') {
        return bad("it contains a NUL byte");
    }
    if raw.len() > 4096 {
        return bad("it is too long");
    }
    if raw.starts_with('/') {
        return bad("it must be relative to the overlay");
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" => {}
            "." | ".." => return bad("'.' and '..' are not allowed"),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn map_err(path: &str, e: rustix::io::Errno) -> FileError {
    match e {
        rustix::io::Errno::NOENT => FileError::NotFound(path.into()),
        // EXDEV: escaped beneath; ELOOP: a symlink where none is allowed.
        rustix::io::Errno::XDEV | rustix::io::Errno::LOOP => FileError::Escapes(path.into()),
        rustix::io::Errno::NOTDIR => FileError::NotADirectory(path.into()),
        e => FileError::Io(path.into(), e.into()),
    }
}

fn open_root(dir: &Path) -> Result<OwnedFd, FileError> {
    rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| map_err("", e))
}

/// Lists directory `rel` of the overlay at `dir`, directories first.
pub fn list(dir: &Path, rel: &str) -> Result<Vec<Entry>, FileError> {
    let rel = clean_path(rel)?;
    let root = open_root(dir)?;
    let target = if rel.is_empty() { "." } else { rel.as_str() };
    let fd = beneath::open(
        root.as_fd(),
        Path::new(target),
        OFlags::RDONLY | OFlags::DIRECTORY,
        Links::Within,
    )
    .map_err(|e| map_err(&rel, e))?;
    let mut d = rustix::fs::Dir::read_from(&fd).map_err(|e| map_err(&rel, e))?;
    let mut out = Vec::new();
    while let Some(entry) = d.read() {
        let entry = entry.map_err(|e| map_err(&rel, e))?;
        let name_bytes = entry.file_name().to_bytes();
        if name_bytes == b"." || name_bytes == b".." {
            continue;
        }
        if out.len() >= MAX_ENTRIES {
            break;
        }
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        let name_os = OsStr::from_bytes(name_bytes);
        let st = statat(&fd, name_os, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| map_err(&rel, e))?;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => EntryKind::Dir,
            FileType::RegularFile => EntryKind::File {
                size: st.st_size as u64,
            },
            FileType::Symlink => EntryKind::Symlink {
                target: rustix::fs::readlinkat(&fd, name_os, Vec::new())
                    .map(|t| String::from_utf8_lossy(t.as_bytes()).into_owned())
                    .unwrap_or_else(|_| "?".into()),
            },
            _ => EntryKind::Other,
        };
        let path = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        out.push(Entry { name, path, kind });
    }
    out.sort_by(|a, b| b.is_dir().cmp(&a.is_dir()).then(a.name.cmp(&b.name)));
    Ok(out)
}

/// A file opened for download.
pub struct Download {
    pub file: std::fs::File,
    pub size: u64,
    pub name: String,
}

/// Opens regular file `rel` of the overlay at `dir` for download.
/// `allowed_link(rel, link_text)` returns the cache file a symlink may
/// stand for (the workshop exception), else None.
pub fn open_download(
    dir: &Path,
    rel: &str,
    allowed_link: impl Fn(&str, &Path) -> Option<(PathBuf, PathBuf)>,
) -> Result<Download, FileError> {
    let rel = clean_path(rel)?;
    if rel.is_empty() {
        return Err(FileError::NotAFile(rel));
    }
    let root = open_root(dir)?;
    // O_PATH: resolving the path opens nothing for I/O, so a FIFO cannot
    // block this thread and a device cannot react to being opened. Without
    // O_NOFOLLOW, a trailing symlink fails with ELOOP under NO_SYMLINKS.
    let flags = OFlags::PATH;
    let fd = match beneath::open(root.as_fd(), Path::new(&rel), flags, Links::Refuse) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::LOOP) => {
            // The last component may be the one allowed workshop link; its
            // parent is opened strictly (no symlink on the way).
            let (parent, last) = rel.rsplit_once('/').unwrap_or((".", rel.as_str()));
            let parent_fd = beneath::open(
                root.as_fd(),
                Path::new(parent),
                OFlags::RDONLY | OFlags::DIRECTORY,
                Links::Refuse,
            )
            .map_err(|e| map_err(&rel, e))?;
            let text = rustix::fs::readlinkat(&parent_fd, last, Vec::new())
                .map_err(|_| FileError::Escapes(rel.clone()))?;
            let text = PathBuf::from(OsStr::from_bytes(text.as_bytes()));
            let Some((cache_dir, file_name)) = allowed_link(&rel, &text) else {
                return Err(FileError::Escapes(rel));
            };
            let cache = open_root(&cache_dir).map_err(|_| FileError::NotFound(rel.clone()))?;
            beneath::open(cache.as_fd(), &file_name, flags, Links::Refuse)
                .map_err(|e| map_err(&rel, e))?
        }
        Err(e) => return Err(map_err(&rel, e)),
    };
    let checked = rustix::fs::fstat(&fd).map_err(|e| map_err(&rel, e))?;
    require_regular(&rel, checked.st_mode)?;
    let file = reopen_for_reading(&fd).map_err(|e| map_err(&rel, e))?;
    // The magic link names the checked inode; this guards against a kernel
    // or /proc that behaves otherwise.
    let st = rustix::fs::fstat(&file).map_err(|e| map_err(&rel, e))?;
    require_regular(&rel, st.st_mode)?;
    if (st.st_dev, st.st_ino) != (checked.st_dev, checked.st_ino) {
        return Err(FileError::Escapes(rel));
    }
    let name = rel.rsplit('/').next().unwrap_or("download").to_string();
    Ok(Download {
        file: std::fs::File::from(file),
        size: st.st_size as u64,
        name,
    })
}

/// Refuses everything but a regular file, saying what it is instead.
fn require_regular(rel: &str, mode: u32) -> Result<(), FileError> {
    let what = match FileType::from_raw_mode(mode) {
        FileType::RegularFile => return Ok(()),
        FileType::Directory => return Err(FileError::NotAFile(rel.into())),
        FileType::Fifo => "a named pipe",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        FileType::Symlink => return Err(FileError::Escapes(rel.into())),
        FileType::Unknown => "not a regular file",
    };
    Err(FileError::NotRegular(rel.into(), what))
}

/// Opens the inode behind an `O_PATH` descriptor for reading. O_NONBLOCK
/// and O_NOCTTY are belt and braces: the inode was checked to be a regular
/// file, for which neither changes anything.
fn reopen_for_reading(path_fd: &OwnedFd) -> Result<OwnedFd, rustix::io::Errno> {
    use std::os::fd::AsRawFd;
    rustix::fs::open(
        format!("/proc/self/fd/{}", path_fd.as_raw_fd()),
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
        Mode::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let ov = d.path().join("ov");
        std::fs::create_dir_all(ov.join("left4dead2/cfg")).unwrap();
        std::fs::write(ov.join("left4dead2/cfg/a.cfg"), "hello").unwrap();
        std::fs::write(d.path().join("secret"), "top secret").unwrap();
        symlink(d.path().join("secret"), ov.join("abs-out")).unwrap();
        symlink("../secret", ov.join("rel-out")).unwrap();
        symlink("left4dead2/cfg/a.cfg", ov.join("inside")).unwrap();
        symlink("/", ov.join("rootlink")).unwrap();
        (d, ov)
    }

    #[test]
    fn paths_are_cleaned() {
        assert_eq!(clean_path("").unwrap(), "");
        assert_eq!(clean_path("a//b/").unwrap(), "a/b");
        for bad in ["/etc", "..", "a/../b", "./a", "a\0b"] {
            assert!(clean_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn listing_shows_kinds_and_stays_beneath() {
        let (_d, ov) = tree();
        let root = list(&ov, "").unwrap();
        let names: Vec<&str> = root.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names[0], "left4dead2");
        let out = root.iter().find(|e| e.name == "rel-out").unwrap();
        assert_eq!(out.link_target(), Some("../secret"));
        let cfg = list(&ov, "left4dead2/cfg").unwrap();
        assert_eq!(cfg[0].size(), Some(5));
        assert!(matches!(list(&ov, "rootlink"), Err(FileError::Escapes(_))));
        assert!(matches!(
            list(&ov, "rootlink/etc"),
            Err(FileError::Escapes(_))
        ));
        assert!(matches!(list(&ov, "nope"), Err(FileError::NotFound(_))));
        assert!(matches!(
            list(&ov, "left4dead2/cfg/a.cfg"),
            Err(FileError::NotADirectory(_))
        ));
    }

    #[test]
    fn downloads_refuse_symlinks_and_escapes() {
        let (_d, ov) = tree();
        let none = |_: &str, _: &Path| None;
        let mut dl = open_download(&ov, "left4dead2/cfg/a.cfg", none).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut dl.file, &mut s).unwrap();
        assert_eq!(
            (s.as_str(), dl.size, dl.name.as_str()),
            ("hello", 5, "a.cfg")
        );
        for bad in ["abs-out", "rel-out", "inside", "rootlink/etc/passwd"] {
            assert!(
                matches!(open_download(&ov, bad, none), Err(FileError::Escapes(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            open_download(&ov, "left4dead2", none),
            Err(FileError::NotAFile(_))
        ));
        assert!(open_download(&ov, "../secret", none).is_err());
    }

    #[test]
    fn downloads_refuse_fifos_and_sockets_without_blocking() {
        let (_d, ov) = tree();
        let none = |_: &str, _: &Path| None;
        let fifo = ov.join("left4dead2/pipe");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(ov.join("left4dead2/sock")).unwrap();
        // Opening the FIFO for reading would wait for a writer forever.
        let err = open_download(&ov, "left4dead2/pipe", none).err().unwrap();
        assert!(
            matches!(err, FileError::NotRegular(_, "a named pipe")),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains("only regular files can be downloaded"));
        let err = open_download(&ov, "left4dead2/sock", none).err().unwrap();
        assert!(matches!(err, FileError::NotRegular(_, "a socket")), "{err}");
        let err = open_download(&ov, "/dev/null", none).err().unwrap();
        assert!(matches!(err, FileError::BadPath(..)), "{err}");
    }
}
