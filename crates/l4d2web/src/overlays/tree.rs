//! Walks over an overlay's directory tree that never follow a symlink:
//! handing the tree to the build user, and clearing setuid/setgid bits.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};
use rustix::process::{Gid, Uid};

/// Deepest directory nesting the overlay walks follow: they keep one open
/// directory per level (real overlays are a handful of levels deep).
pub const MAX_TREE_DEPTH: usize = 256;

/// A file operation on an overlay's tree that failed.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a directory in {top} is nested more than {MAX_TREE_DEPTH} levels deep; a clean build starts over")]
    TooDeep { top: PathBuf },
}

pub(super) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(rustix::io::Errno) -> TreeError + 'a {
    move |e| TreeError::Io {
        what,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// What the setuid/setgid walk did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TreeReport {
    /// Entries visited (the directory itself included).
    pub entries: u64,
    /// Regular files and directories whose setuid/setgid bits were cleared.
    pub cleared: u64,
}

/// Visits `dir` and everything below it, depth first, never following a
/// symlink: `dir` itself is opened `O_NOFOLLOW`, every entry `O_PATH |
/// O_NOFOLLOW` relative to its parent's descriptor, and a directory is
/// entered through its own descriptor (`openat(fd, ".")`), so an entry
/// swapped for a symlink meanwhile cannot lead the walk anywhere else.
/// `visit` gets each entry's descriptor (a symlink's is the link itself).
pub fn walk_tree(
    dir: &Path,
    mut visit: impl FnMut(BorrowedFd<'_>, &rustix::fs::Stat, &Path) -> Result<(), TreeError>,
) -> Result<u64, TreeError> {
    let top = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err("open the overlay directory", dir))?;
    let st = rustix::fs::fstat(&top).map_err(io_err("inspect", dir))?;
    visit(top.as_fd(), &st, dir)?;
    let mut visited = 1u64;
    let listing = rustix::fs::Dir::new(top).map_err(io_err("read", dir))?;
    let mut stack = vec![(listing, dir.to_path_buf())];
    while let Some((listing, path)) = stack.last_mut() {
        let entry = match listing.read() {
            None => {
                stack.pop();
                continue;
            }
            Some(entry) => entry.map_err(io_err("read", path))?,
        };
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let child = path.join(OsStr::from_bytes(name.to_bytes()));
        let parent = listing.fd().map_err(io_err("read", path))?;
        let fd = rustix::fs::openat(
            parent,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err("open", &child))?;
        let st = rustix::fs::fstat(&fd).map_err(io_err("inspect", &child))?;
        visit(fd.as_fd(), &st, &child)?;
        visited += 1;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            if stack.len() > MAX_TREE_DEPTH {
                return Err(TreeError::TooDeep {
                    top: dir.to_path_buf(),
                });
            }
            let sub = rustix::fs::openat(
                &fd,
                c".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err("open", &child))?;
            let listing = rustix::fs::Dir::new(sub).map_err(io_err("read", &child))?;
            stack.push((listing, child));
        }
    }
    Ok(visited)
}

/// `fchownat(fd, "", AT_EMPTY_PATH)`: works on `O_PATH` descriptors and
/// changes a symlink itself, never its target.
pub(super) fn chown_fd(
    fd: BorrowedFd<'_>,
    uid: u32,
    gid: u32,
    path: &Path,
) -> Result<(), TreeError> {
    rustix::fs::chownat(
        fd,
        c"",
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::EMPTY_PATH,
    )
    .map_err(io_err("change the owner of", path))
}

/// Hands `dir` and everything below it to `uid:gid` (symlinks themselves,
/// never their targets). Returns the number of entries.
pub fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<u64, TreeError> {
    walk_tree(dir, |fd, _, path| chown_fd(fd, uid, gid, path))
}

/// Clears setuid/setgid on every regular file and directory in `dir`
/// (symlinks are not followed; other file types have no such bits that
/// matter), then, with `chown_to`, gives every entry to that owner.
pub fn clear_setid_tree(dir: &Path, chown_to: Option<(u32, u32)>) -> Result<TreeReport, TreeError> {
    let mut cleared = 0u64;
    let entries = walk_tree(dir, |fd, st, path| {
        let kind = FileType::from_raw_mode(st.st_mode);
        let mode = Mode::from_raw_mode(st.st_mode);
        let setid = Mode::SUID | Mode::SGID;
        if matches!(kind, FileType::RegularFile | FileType::Directory) && mode.intersects(setid) {
            // fchmod does not take O_PATH descriptors; the descriptor's
            // /proc link names exactly this inode, whatever its path is now.
            let by_fd = format!("/proc/self/fd/{}", fd.as_raw_fd());
            rustix::fs::chmodat(CWD, by_fd.as_str(), mode - setid, AtFlags::empty())
                .map_err(io_err("clear setuid/setgid on", path))?;
            cleared += 1;
        }
        match chown_to {
            Some((uid, gid)) => chown_fd(fd, uid, gid, path),
            None => Ok(()),
        }
    })?;
    Ok(TreeReport { entries, cleared })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode_of(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn setid_walk_clears_files_and_dirs_and_never_follows_links() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::write(&outside, "x").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o6755)).unwrap();
        let ov = d.path().join("ov");
        std::fs::create_dir_all(ov.join("a/b")).unwrap();
        for (path, mode) in [
            (ov.join("a/suid"), 0o4755),
            (ov.join("a/b/sgid"), 0o2711),
            (ov.join("plain"), 0o644),
        ] {
            std::fs::write(&path, "x").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::set_permissions(ov.join("a/b"), std::fs::Permissions::from_mode(0o2775)).unwrap();
        std::os::unix::fs::symlink(&outside, ov.join("a/link")).unwrap();
        std::os::unix::fs::symlink(d.path(), ov.join("dirlink")).unwrap();

        let r = clear_setid_tree(&ov, None).unwrap();
        // ov, a, a/b, a/suid, a/b/sgid, plain, a/link, dirlink
        assert_eq!(
            r,
            TreeReport {
                entries: 8,
                cleared: 3
            }
        );
        assert_eq!(mode_of(&ov.join("a/suid")), 0o755);
        assert_eq!(mode_of(&ov.join("a/b/sgid")), 0o711);
        assert_eq!(mode_of(&ov.join("a/b")), 0o775);
        assert_eq!(mode_of(&ov.join("plain")), 0o644);
        assert_eq!(
            mode_of(&outside),
            0o6755,
            "a symlink's target is not touched"
        );
        assert_eq!(clear_setid_tree(&ov, None).unwrap().cleared, 0);
        // The top itself must be a directory, never a link to one.
        assert!(clear_setid_tree(&ov.join("dirlink"), None).is_err());
    }

    #[test]
    fn walks_refuse_trees_deeper_than_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let mut deep = d.path().join("ov");
        for _ in 0..MAX_TREE_DEPTH {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        assert!(clear_setid_tree(&d.path().join("ov"), None).is_ok());
        std::fs::create_dir(deep.join("d")).unwrap();
        let e = clear_setid_tree(&d.path().join("ov"), None).unwrap_err();
        assert!(matches!(e, TreeError::TooDeep { .. }), "{e}");
        assert!(e.to_string().contains("clean build"), "{e}");
    }

    #[test]
    fn chown_walk_changes_links_not_their_targets() {
        if !rustix::process::geteuid().is_root() {
            // Only root may give files away; the overlays tests cover the rest.
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::write(&outside, "x").unwrap();
        let ov = d.path().join("ov");
        std::fs::create_dir_all(ov.join("sub")).unwrap();
        std::fs::write(ov.join("sub/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, ov.join("link")).unwrap();
        assert_eq!(chown_tree(&ov, 4242, 4343).unwrap(), 4);
        for p in [
            ov.clone(),
            ov.join("sub"),
            ov.join("sub/f"),
            ov.join("link"),
        ] {
            let m = std::fs::symlink_metadata(&p).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4343), "{}", p.display());
        }
        let m = std::fs::metadata(&outside).unwrap();
        assert_eq!(
            (m.uid(), m.gid()),
            (0, 0),
            "the link's target keeps its owner"
        );
        let r = clear_setid_tree(&ov, Some((0, 0))).unwrap();
        assert_eq!(r.entries, 4);
        assert_eq!(
            std::fs::symlink_metadata(ov.join("sub/f")).unwrap().uid(),
            0
        );
    }
}
