//! File operations on trees someone else can change.
//!
//! A game server writes its upper layer (`runtime/<name>/upper`) and a build
//! script writes its overlay. Code that runs with more rights than they have
//! (l4d2ctl as the panel user, the root helpers) must never follow a path
//! they can change: a planted symlink would redirect a write, a chmod or a
//! delete to a file of the attacker's choice. Everything here works from an
//! already opened directory with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` and `O_NOFOLLOW`, and refuses instead of following.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Opens `rel` beneath `dir` without following any symlink (also where
/// seccomp hides `openat2`, see [`beneath`]). `rel` must be relative and
/// free of `..`.
pub fn open_beneath(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> std::io::Result<OwnedFd> {
    check_relative(rel)?;
    Ok(beneath::open(dir, rel, flags, beneath::Links::Refuse)?)
}

/// Opens an absolute path that only trusted users can change (the data
/// root from root-owned configuration) as an `O_PATH` directory.
pub fn open_trusted_dir(path: &Path) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `rel` beneath `dir`, creating missing components
/// (mode 0755) one by one. A component that exists but is not a directory
/// (a file, a symlink someone planted) is an error, never followed.
pub fn ensure_dir_beneath(dir: BorrowedFd<'_>, rel: &Path) -> std::io::Result<OwnedFd> {
    check_relative(rel)?;
    let mut current = rustix::io::dup(dir)?;
    for component in rel.components() {
        let Component::Normal(part) = component else {
            continue;
        };
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY;
        let next = match open_beneath(current.as_fd(), Path::new(part), flags) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                match rustix::fs::mkdirat(&current, part, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open_beneath(current.as_fd(), Path::new(part), flags)?
            }
            other => other?,
        };
        current = next;
    }
    Ok(current)
}

/// Writes `contents` to `name` in `dir` atomically: a new temporary file
/// (`O_CREAT | O_EXCL | O_NOFOLLOW`, never something planted there), synced,
/// then renamed over `name` (a rename replaces a symlink, it does not
/// follow it).
pub fn write_atomic(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    contents: &[u8],
    mode: u32,
) -> std::io::Result<()> {
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".l4d2ctl-{}-{}",
        std::process::id(),
        random_suffix()
    ));
    let fd = rustix::fs::openat(
        dir,
        tmp_name.as_os_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    let mut file = std::fs::File::from(fd);
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(dir, tmp_name.as_os_str(), AtFlags::empty());
        return Err(e);
    }
    if let Err(e) = rustix::fs::renameat(dir, tmp_name.as_os_str(), dir, name) {
        let _ = rustix::fs::unlinkat(dir, tmp_name.as_os_str(), AtFlags::empty());
        return Err(e.into());
    }
    Ok(())
}

/// Reads a regular file `rel` beneath `dir`, at most `max` bytes, without
/// following symlinks. FIFOs, devices and oversized files are refused
/// before anything is read.
pub fn read_regular_beneath(
    dir: BorrowedFd<'_>,
    rel: &Path,
    max: u64,
) -> Result<Vec<u8>, ReadError> {
    let fd = open_beneath(
        dir,
        rel,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY,
    )
    .map_err(ReadError::Io)?;
    let st = rustix::fs::fstat(&fd).map_err(|e| ReadError::Io(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(ReadError::NotRegular);
    }
    if st.st_size as u64 > max {
        return Err(ReadError::TooLarge { max });
    }
    let mut buf = Vec::with_capacity(st.st_size as usize);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::from(fd), max + 1),
        &mut buf,
    )
    .map_err(ReadError::Io)?;
    if buf.len() as u64 > max {
        return Err(ReadError::TooLarge { max });
    }
    Ok(buf)
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("not a regular file")]
    NotRegular,
    #[error("larger than {max} bytes")]
    TooLarge { max: u64 },
}

/// Removes `path` and everything below it without following symlinks,
/// also when the kernel or a game left directories without permissions
/// (overlayfs creates `work/work` mode 0000). A missing path is fine.
/// `path`'s parent must be trusted; everything below it may be hostile.
pub fn remove_tree(path: &Path) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "refusing to remove a path without a parent",
        ));
    };
    let parent = match rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    remove_entry(parent.as_fd(), name)
}

/// Removes the entry `name` of `dir` (recursively if it is a directory).
pub fn remove_entry(dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<()> {
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return ignore_missing(rustix::fs::unlinkat(dir, name, AtFlags::empty()));
    }
    let child = open_dir_for_removal(dir, name)?;
    empty_dir(child.as_fd())?;
    ignore_missing(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR))
}

/// Removes everything inside the directory `dir`.
pub fn empty_dir(dir: BorrowedFd<'_>) -> std::io::Result<()> {
    // Bounded: something recreating entries as fast as we remove them must
    // not keep us here forever.
    for _ in 0..64 {
        // Re-read after every pass: removing while iterating is allowed, but
        // a fresh listing keeps the logic obviously complete.
        let names = list_names(dir)?;
        if names.is_empty() {
            return Ok(());
        }
        for name in names {
            remove_entry(dir, &name)?;
        }
    }
    Err(std::io::Error::other(
        "entries keep reappearing while the directory is emptied",
    ))
}

fn list_names(dir: BorrowedFd<'_>) -> std::io::Result<Vec<std::ffi::OsString>> {
    let fd = rustix::fs::openat(
        dir,
        c".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_owned());
        }
    }
    Ok(names)
}

/// Opens the directory `name` for listing; one we own but cannot read
/// (mode 0000) is made readable first, through its own descriptor so a
/// swapped-in symlink cannot redirect the chmod.
fn open_dir_for_removal(dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => Ok(fd),
        Err(Errno::ACCESS) => {
            let path_fd = rustix::fs::openat(
                dir,
                name,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            // chmod(2) through /proc/self/fd/N acts on exactly that inode.
            let proc_path = format!("/proc/self/fd/{}", path_fd.as_raw_fd());
            rustix::fs::chmod(proc_path.as_str(), Mode::from_raw_mode(0o700))?;
            Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
        }
        Err(e) => Err(e.into()),
    }
}

fn ignore_missing(r: rustix::io::Result<()>) -> std::io::Result<()> {
    match r {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn check_relative(rel: &Path) -> std::io::Result<()> {
    let ok = !rel.as_os_str().is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not a plain relative path", rel.display()),
        ))
    }
}

fn random_suffix() -> u64 {
    let mut b = [0u8; 8];
    // A weak suffix only costs a retry (O_EXCL refuses an existing name).
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(path: &Path) -> OwnedFd {
        rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    #[test]
    fn ensure_and_write_refuse_planted_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let upper = d.path().join("upper");
        std::fs::create_dir_all(upper.join("left4dead2")).unwrap();
        // The game replaced cfg/ with a symlink to somewhere else.
        std::os::unix::fs::symlink(&outside, upper.join("left4dead2/cfg")).unwrap();
        let e = ensure_dir_beneath(dir(&upper).as_fd(), Path::new("left4dead2/cfg")).unwrap_err();
        // O_DIRECTORY | O_NOFOLLOW on a symlink: ENOTDIR (or ELOOP).
        assert!(
            matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)),
            "{e}"
        );
        std::fs::remove_file(upper.join("left4dead2/cfg")).unwrap();

        let cfg = ensure_dir_beneath(dir(&upper).as_fd(), Path::new("left4dead2/cfg")).unwrap();
        // A symlink where the file goes is replaced, not followed.
        let target = outside.join("victim.txt");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, upper.join("left4dead2/cfg/server.cfg")).unwrap();
        write_atomic(cfg.as_fd(), OsStr::new("server.cfg"), b"new", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        let staged = upper.join("left4dead2/cfg/server.cfg");
        assert!(!staged.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&staged).unwrap(), "new");
        assert_eq!(
            std::fs::read_dir(upper.join("left4dead2/cfg"))
                .unwrap()
                .count(),
            1
        );
        assert!(open_beneath(dir(&upper).as_fd(), Path::new("../outside"), OFlags::PATH).is_err());
    }

    #[test]
    fn remove_tree_never_follows_and_copes_with_mode_0() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let tree = d.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        std::fs::create_dir(tree.join("work")).unwrap();
        std::fs::write(tree.join("work/inner"), "x").unwrap();
        std::fs::set_permissions(tree.join("work"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        remove_tree(&tree).unwrap();
        assert!(!tree.exists());
        assert!(outside.join("keep").exists());
        remove_tree(&tree).unwrap();
    }

    #[test]
    fn reads_refuse_fifos_links_and_large_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ok"), "KEY=1\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("link")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.path().join("fifo").as_path(),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let fd = dir(d.path());
        assert_eq!(
            read_regular_beneath(fd.as_fd(), Path::new("ok"), 100).unwrap(),
            b"KEY=1\n"
        );
        assert!(matches!(
            read_regular_beneath(fd.as_fd(), Path::new("ok"), 3),
            Err(ReadError::TooLarge { .. })
        ));
        assert!(read_regular_beneath(fd.as_fd(), Path::new("link"), 100).is_err());
        assert!(matches!(
            read_regular_beneath(fd.as_fd(), Path::new("fifo"), 100),
            Err(ReadError::NotRegular)
        ));
    }
}
