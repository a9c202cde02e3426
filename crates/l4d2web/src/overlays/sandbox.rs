//! The sandbox of a local build: the bubblewrap command line, and what a
//! root web app does so that bubblewrap never maps the build to root.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, CWD};
use rustix::process::{Gid, Uid};

use super::tree::{io_err, TreeError};

/// Where bubblewrap may be installed; fixed, never looked up in `$PATH`.
pub const BWRAP_CANDIDATES: [&str; 2] = ["/usr/bin/bwrap", "/usr/local/bin/bwrap"];
/// The uid/gid a local build runs as inside its user namespace (never 0:
/// tools like tar then do not try to restore foreign owners).
pub const SANDBOX_UID: u32 = 1000;
/// `nobody`/`nogroup`: who a root web app's builds run as when the data
/// root belongs to root.
pub const NOBODY: u32 = 65534;
/// Where the overlay and the build files appear in a root build's private
/// mount namespace (a fresh tmpfs on `/tmp` there; the host sees nothing).
pub(super) const STAGE_OVERLAY: &str = "/tmp/left4me-overlay";
pub(super) const STAGE_WORK: &str = "/tmp/left4me-build";

pub const BWRAP_ISOLATION: &str = "sandbox: bubblewrap (user+mount+pid+net+ipc+uts+cgroup namespaces, all capabilities dropped, no nested user namespaces, no network, read-only /usr, private /tmp, only /overlay writable)";
pub const SYSTEMD_ISOLATION: &str = "sandbox: systemd transient unit via left4me-script-sandbox (l4d2-build.slice, ProtectSystem=strict, PrivateTmp, PrivateDevices, NoNewPrivileges, no capabilities, seccomp, /etc and /var/lib masked, public internet only: loopback/LAN/link-local denied, MemoryMax=4G, TasksMax=512, CPUQuota=200%, RuntimeMaxSec=3600)";
pub const NO_SANDBOX: &str = "no sandbox available: install bubblewrap (apt install bubblewrap; looked for /usr/bin/bwrap and /usr/local/bin/bwrap) or use the systemd backend; left4me never runs build scripts unsandboxed";

pub fn find_bwrap() -> Option<PathBuf> {
    first_existing(&BWRAP_CANDIDATES)
}

pub(super) fn first_existing(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Files a local build sees besides `/overlay`.
pub struct LocalBuildFiles {
    pub script: PathBuf,
    pub passwd: PathBuf,
    pub group: PathBuf,
}

/// The bubblewrap argv (without the program) for a local build.
pub fn bwrap_args(overlay: &Path, files: &LocalBuildFiles) -> Vec<String> {
    let mut a: Vec<String> = [
        "--unshare-all",
        // Explicit: fail rather than silently run without a user namespace.
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--cap-drop",
        "ALL",
        "--uid",
        &SANDBOX_UID.to_string(),
        "--gid",
        &SANDBOX_UID.to_string(),
        "--hostname",
        "left4me-build",
        "--ro-bind",
        "/usr",
        "/usr",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Merged-/usr hosts have /bin etc. as symlinks; others as directories.
    for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
        let p = Path::new(top);
        match std::fs::read_link(p) {
            Ok(target) => a.extend(["--symlink".into(), target.display().to_string(), top.into()]),
            Err(_) if p.is_dir() => a.extend(["--ro-bind".into(), top.into(), top.into()]),
            Err(_) => {}
        }
    }
    // /etc: only what programs need to start (dynamic linker cache,
    // alternatives such as awk, TLS roots for later use), never the host's
    // users, hosts or secrets.
    for etc in [
        "/etc/alternatives",
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/localtime",
        "/etc/ssl",
        "/etc/ca-certificates",
        "/etc/mime.types",
    ] {
        if Path::new(etc).exists() {
            a.extend(["--ro-bind".into(), etc.into(), etc.into()]);
        }
    }
    a.extend([
        "--ro-bind".into(),
        files.passwd.display().to_string(),
        "/etc/passwd".into(),
        "--ro-bind".into(),
        files.group.display().to_string(),
        "/etc/group".into(),
        "--proc".into(),
        "/proc".into(),
        "--dev".into(),
        "/dev".into(),
        "--tmpfs".into(),
        "/tmp".into(),
        "--bind".into(),
        overlay.display().to_string(),
        "/overlay".into(),
        "--ro-bind".into(),
        files.script.display().to_string(),
        "/build/script.sh".into(),
        "--chdir".into(),
        "/overlay".into(),
    ]);
    for (k, v) in [
        ("HOME", "/tmp"),
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
        ("LANG", "C.UTF-8"),
        ("USER", "build"),
        ("LOGNAME", "build"),
        ("TMPDIR", "/tmp"),
        ("OVERLAY", "/overlay"),
    ] {
        a.extend(["--setenv".into(), k.into(), v.into()]);
    }
    a.extend([
        "--".into(),
        "/usr/bin/bash".into(),
        "/build/script.sh".into(),
    ]);
    a
}

/// Who runs bubblewrap when the web app is root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildOwner {
    pub uid: u32,
    pub gid: u32,
    /// Give the tree back to root:root after the build (the build ran as
    /// the shared `nobody`).
    pub return_to_root: bool,
}

impl BuildOwner {
    /// The data root's owner if that is not root (its group unless that is
    /// root's, then `nogroup`), else `nobody:nogroup`.
    pub fn for_data_root(uid: u32, gid: u32) -> BuildOwner {
        if uid == 0 {
            BuildOwner {
                uid: NOBODY,
                gid: NOBODY,
                return_to_root: true,
            }
        } else {
            BuildOwner {
                uid,
                gid: if gid == 0 { NOBODY } else { gid },
                return_to_root: false,
            }
        }
    }
}

/// `None` when the web app is not root: bubblewrap then runs as the app's
/// own user, which is all its user namespace can map.
pub fn build_owner(root: &Path) -> Result<Option<BuildOwner>, TreeError> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let meta = std::fs::metadata(root).map_err(|source| TreeError::Io {
        what: "inspect the data root",
        path: root.to_path_buf(),
        source,
    })?;
    Ok(Some(BuildOwner::for_data_root(meta.uid(), meta.gid())))
}

/// What the child of a root build needs to drop root before bubblewrap:
/// detached copies (`open_tree(OPEN_TREE_CLONE)`, like `mount --bind`) of
/// the overlay and work directories, made from descriptors here, so the
/// child attaches them without looking up a path (and the build user needs
/// no search permission on the data root's parents), and the ids. Prepared
/// before the fork, because between fork and exec only system calls are
/// allowed.
pub(super) struct RootDrop {
    // Held open until the child has attached them; close-on-exec, so they
    // never reach bubblewrap or the script.
    overlay_tree: OwnedFd,
    work_tree: OwnedFd,
    stage_overlay: CString,
    stage_work: CString,
    uid: Uid,
    gid: Gid,
}

impl RootDrop {
    pub(super) fn new(
        overlay: &Path,
        work: &Path,
        owner: BuildOwner,
    ) -> Result<RootDrop, TreeError> {
        let tree = |p: &Path| {
            let fd = rustix::fs::open(
                p,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io_err("open", p))?;
            use rustix::mount::OpenTreeFlags as F;
            rustix::mount::open_tree(
                &fd,
                c"",
                F::OPEN_TREE_CLONE | F::OPEN_TREE_CLOEXEC | F::AT_EMPTY_PATH,
            )
            .map_err(io_err("make a bind mount of", p))
        };
        let c = |s: &str| {
            CString::new(s).map_err(|e| TreeError::Io {
                what: "name",
                path: PathBuf::from(s),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            })
        };
        Ok(RootDrop {
            overlay_tree: tree(overlay)?,
            work_tree: tree(work)?,
            stage_overlay: c(STAGE_OVERLAY)?,
            stage_work: c(STAGE_WORK)?,
            uid: Uid::from_raw(owner.uid),
            gid: Gid::from_raw(owner.gid),
        })
    }

    /// Makes `cmd`'s child enter a private mount namespace with the overlay
    /// and work directories attached under a fresh `/tmp`, then become
    /// `uid:gid` with no supplementary groups, before it execs.
    pub(super) fn install(&self, cmd: &mut tokio::process::Command) {
        let (overlay_tree, work_tree) = (self.overlay_tree.as_raw_fd(), self.work_tree.as_raw_fd());
        let (stage_overlay, stage_work) = (self.stage_overlay.clone(), self.stage_work.clone());
        let (uid, gid) = (self.uid, self.gid);
        // SAFETY: the closure runs in the forked child before exec and only
        // makes system calls (rustix, no allocation, no locks) on data
        // prepared before the fork; the two descriptors stay open in `self`
        // until the command has been spawned. unshare(CLONE_NEWNS) is not
        // the CLONE_FILES case that makes unshare_unsafe unsafe.
        unsafe {
            cmd.pre_exec(move || {
                use rustix::mount::{MountFlags, MountPropagationFlags, MoveMountFlags};
                rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS)?;
                // Nothing mounted here may propagate back to the host.
                rustix::mount::mount_change(
                    c"/",
                    MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
                )?;
                rustix::mount::mount(
                    c"tmpfs",
                    c"/tmp",
                    c"tmpfs",
                    MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                    c"mode=0755,size=64k",
                )?;
                let dir_mode = Mode::from_raw_mode(0o755);
                for (tree, stage) in [(overlay_tree, &stage_overlay), (work_tree, &stage_work)] {
                    rustix::fs::mkdirat(CWD, stage.as_c_str(), dir_mode)?;
                    rustix::mount::move_mount(
                        BorrowedFd::borrow_raw(tree),
                        c"",
                        CWD,
                        stage.as_c_str(),
                        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
                    )?;
                }
                // Groups first: after the uid change it is no longer allowed.
                rustix::thread::set_thread_groups(&[])?;
                rustix::thread::set_thread_res_gid(gid, gid, gid)?;
                rustix::thread::set_thread_res_uid(uid, uid, uid)?;
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bwrap_argv_isolates() {
        let files = LocalBuildFiles {
            script: "/r/tmp/x/script.sh".into(),
            passwd: "/r/tmp/x/passwd".into(),
            group: "/r/tmp/x/group".into(),
        };
        let a = bwrap_args(Path::new("/r/overlays/7"), &files);
        let joined = a.join(" ");
        for needed in [
            "--unshare-all",
            "--unshare-user",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
            "--cap-drop ALL",
            "--ro-bind /usr /usr",
            "--proc /proc",
            "--dev /dev",
            "--tmpfs /tmp",
            "--bind /r/overlays/7 /overlay",
            "--ro-bind /r/tmp/x/script.sh /build/script.sh",
            "--chdir /overlay",
            "--setenv HOME /tmp",
        ] {
            assert!(joined.contains(needed), "missing {needed}: {joined}");
        }
        assert!(!joined.contains("--share-net"));
        // The only writable bind is the overlay.
        assert_eq!(a.iter().filter(|s| *s == "--bind").count(), 1);
        assert_eq!(a.last().map(String::as_str), Some("/build/script.sh"));
    }

    #[test]
    fn root_builds_run_as_the_data_roots_owner_or_nobody() {
        assert_eq!(
            BuildOwner::for_data_root(0, 0),
            BuildOwner {
                uid: NOBODY,
                gid: NOBODY,
                return_to_root: true
            }
        );
        assert_eq!(
            BuildOwner::for_data_root(981, 982),
            BuildOwner {
                uid: 981,
                gid: 982,
                return_to_root: false
            }
        );
        assert_eq!(BuildOwner::for_data_root(981, 0).gid, NOBODY);
        // Unprivileged, bubblewrap simply runs as this user.
        if !rustix::process::geteuid().is_root() {
            assert_eq!(build_owner(Path::new("/")).unwrap(), None);
        }
    }
}
