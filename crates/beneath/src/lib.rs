//! Opening paths below a trusted directory without following links that
//! someone else (a game server, a build script) can plant.
//!
//! [`open`] uses `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, with
//! `RESOLVE_NO_SYMLINKS` unless links inside the tree are allowed. Where
//! `openat2` is unavailable, it walks the path one component at a time with
//! `openat(O_NOFOLLOW)` and refuses every link (stricter, never looser):
//! systemd answers `openat2` with ENOSYS in units with `RestrictSUIDSGID=`,
//! because its seccomp filter cannot inspect `openat2`'s mode argument, so
//! the web app's own unit has no `openat2`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Whether links below the directory may be followed (never out of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// No symlink anywhere on the path (`RESOLVE_NO_SYMLINKS`).
    Refuse,
    /// Symlinks that stay below the directory are followed where the
    /// kernel can enforce that (`openat2`); refused otherwise.
    Within,
}

/// Opens `rel` below `dir`. `rel` must be relative, without `..`; `.`
/// components are ignored and an empty path means `dir` itself. A refused
/// link gives `ELOOP` (or `ENOTDIR` for a link where a directory must be),
/// leaving the tree gives `EXDEV`.
pub fn open(
    dir: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
    links: Links,
) -> rustix::io::Result<OwnedFd> {
    if !rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(Errno::XDEV);
    }
    let resolve = match links {
        Links::Refuse => ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        Links::Within => ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    };
    let target: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    for _ in 0..8 {
        match rustix::fs::openat2(dir, target, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            // A concurrent rename raced the lookup: try again.
            Err(Errno::AGAIN) => continue,
            Err(Errno::NOSYS) => return walk(dir, rel, flags),
            other => return other,
        }
    }
    Err(Errno::AGAIN)
}

/// The fallback: one `openat(O_NOFOLLOW)` per component. Intermediate
/// components are opened `O_PATH | O_DIRECTORY | O_NOFOLLOW`, so a link
/// there fails with ENOTDIR; the last gets `flags | O_NOFOLLOW`, so a link
/// there fails with ELOOP (or opens the link itself with `O_PATH`, which
/// the caller's fstat then sees as a symlink).
fn walk(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    let Some((last, parents)) = parts.split_last() else {
        return rustix::fs::openat(dir, ".", flags | OFlags::CLOEXEC, Mode::empty());
    };
    let mut current: Option<OwnedFd> = None;
    for part in parents {
        let at = current.as_ref().map_or(dir, |fd| fd.as_fd());
        let next = rustix::fs::openat(
            at,
            *part,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        current = Some(next);
    }
    let at = current.as_ref().map_or(dir, |fd| fd.as_fd());
    rustix::fs::openat(
        at,
        *last,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, OwnedFd) {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("b", d.path().join("a/inside")).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("a/out")).unwrap();
        let fd =
            rustix::fs::open(d.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        (d, fd)
    }

    #[test]
    fn both_paths_refuse_links_and_escapes() {
        let (_d, fd) = root();
        let rd = OFlags::RDONLY;
        for attempt in [
            open(fd.as_fd(), Path::new("a/out/passwd"), rd, Links::Refuse),
            open(fd.as_fd(), Path::new("a/out/passwd"), rd, Links::Within),
            walk(fd.as_fd(), Path::new("a/out/passwd"), rd),
            open(fd.as_fd(), Path::new("a/inside/f"), rd, Links::Refuse),
            walk(fd.as_fd(), Path::new("a/inside/f"), rd),
            walk(fd.as_fd(), Path::new("a/out"), rd),
            open(fd.as_fd(), Path::new("../x"), rd, Links::Within),
        ] {
            assert!(attempt.is_err());
        }
        // Inside links are fine for Within where openat2 exists.
        assert!(open(fd.as_fd(), Path::new("a/inside/f"), rd, Links::Within).is_ok());
        for ok in [
            open(fd.as_fd(), Path::new("a/b/f"), rd, Links::Refuse),
            walk(fd.as_fd(), Path::new("a/b/f"), rd),
            walk(
                fd.as_fd(),
                Path::new(""),
                OFlags::RDONLY | OFlags::DIRECTORY,
            ),
        ] {
            assert!(ok.is_ok());
        }
        let e = walk(
            fd.as_fd(),
            Path::new("a/out"),
            OFlags::RDONLY | OFlags::DIRECTORY,
        )
        .unwrap_err();
        assert!(matches!(e, Errno::LOOP | Errno::NOTDIR), "{e}");
    }
}
