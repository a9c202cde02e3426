//! Script overlay builds. A build never runs unsandboxed:
//!
//! - **systemd backend**: the root helper `left4me-script-sandbox` runs the
//!   script as a hardened transient unit (see docs/deployment.md; public internet only,
//!   no host or LAN, resource limits, `RuntimeMaxSec=3600`).
//! - **local backend**: bubblewrap (no root needed): own user, mount, pid,
//!   net, ipc, uts and cgroup namespaces, all capabilities dropped, no
//!   nested user namespaces, read-only `/usr`, empty `/tmp`, only the
//!   overlay directory writable (at `/overlay`). Its network namespace is
//!   empty, so local builds have **no network at all** (the host's
//!   127.0.0.1 and LAN included); the log says so.
//!
//! Both run the script as `bash <script>` (no implied `-e`), so a script
//! behaves the same on both backends; recipes start with `set -euo pipefail`.
//! Builds run **in place** by default (the directory keeps the previous
//! build's files, so a map-sync recipe only fetches what changed, as in the
//! original system); "clean build" empties the directory first.
//!
//! A build never produces privilege:
//!
//! - **root web app, local backend** (demo, CI, `serve` without systemd):
//!   bubblewrap would map the sandbox user to real root, so the child drops
//!   to an unprivileged uid/gid before it starts bubblewrap ([`BuildOwner`]:
//!   the data root's owner if that is not root, else 65534:65534). The
//!   overlay tree is handed to that uid first (fd-based, never following a
//!   symlink); a private mount namespace binds the overlay and the build
//!   files under a fresh `/tmp`, so the build user needs no access to the
//!   data root's parent directories. **Ownership afterwards:** when the
//!   build ran as 65534 (a uid many daemons share) the tree is given back
//!   to root:root, so nothing running as nobody can alter it between
//!   builds; when it ran as the data root's owner, the files stay that
//!   user's.
//! - **every build, both backends**: afterwards the overlay directory is
//!   walked without following symlinks and setuid/setgid bits are cleared on
//!   every regular file and directory (one job line says how many); a walk
//!   that fails fails the job.

use std::ffi::{CString, OsStr};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};
use rustix::process::{Gid, Uid};

use super::model::{job_overlay, mark_built, overlay_dir, remove_tree};
use crate::config::{Config, HostBackend, HELPER_DIR};
use crate::jobs::{JobCtx, JobFailure};
use crate::l4d2ctl::HostClient;

/// Where bubblewrap may be installed; fixed, never looked up in `$PATH`.
pub const BWRAP_CANDIDATES: [&str; 2] = ["/usr/bin/bwrap", "/usr/local/bin/bwrap"];
const TIMEOUT_CANDIDATES: [&str; 2] = ["/usr/bin/timeout", "/bin/timeout"];
const SUDO: &str = "/usr/bin/sudo";
/// Where the build time limit is configured (named in job logs).
const BUILD_TIMEOUT_VAR: &str = "LEFT4ME_BUILD_TIMEOUT_SECS";
/// The uid/gid a local build runs as inside its user namespace (never 0:
/// tools like tar then do not try to restore foreign owners).
pub const SANDBOX_UID: u32 = 1000;
/// `nobody`/`nogroup`: who a root web app's builds run as when the data
/// root belongs to root.
pub const NOBODY: u32 = 65534;
/// Deepest directory nesting the overlay walks follow: they keep one open
/// directory per level (real overlays are a handful of levels deep).
pub const MAX_TREE_DEPTH: usize = 256;
/// Where the overlay and the build files appear in a root build's private
/// mount namespace (a fresh tmpfs on `/tmp` there; the host sees nothing).
const STAGE_OVERLAY: &str = "/tmp/left4me-overlay";
const STAGE_WORK: &str = "/tmp/left4me-build";

pub const BWRAP_ISOLATION: &str = "sandbox: bubblewrap (user+mount+pid+net+ipc+uts+cgroup namespaces, all capabilities dropped, no nested user namespaces, no network, read-only /usr, private /tmp, only /overlay writable)";
pub const SYSTEMD_ISOLATION: &str = "sandbox: systemd transient unit via left4me-script-sandbox (l4d2-build.slice, ProtectSystem=strict, PrivateTmp, PrivateDevices, NoNewPrivileges, no capabilities, seccomp, /etc and /var/lib masked, public internet only: loopback/LAN/link-local denied, MemoryMax=4G, TasksMax=512, CPUQuota=200%, RuntimeMaxSec=3600)";
pub const NO_SANDBOX: &str = "no sandbox available: install bubblewrap (apt install bubblewrap; looked for /usr/bin/bwrap and /usr/local/bin/bwrap) or use the systemd backend; left4me never runs build scripts unsandboxed";

pub fn find_bwrap() -> Option<PathBuf> {
    first_existing(&BWRAP_CANDIDATES)
}

fn first_existing(candidates: &[&str]) -> Option<PathBuf> {
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

/// A file operation of a build that failed (preparing the directory and
/// the build files, or a walk over the overlay).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0} is not a directory; refusing to build into it")]
    NotADirectory(PathBuf),
    #[error("the overlay walk did not finish: {0}")]
    Walk(String),
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

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(rustix::io::Errno) -> BuildError + 'a {
    move |e| BuildError::Io {
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
fn walk_tree(
    dir: &Path,
    mut visit: impl FnMut(BorrowedFd<'_>, &rustix::fs::Stat, &Path) -> Result<(), BuildError>,
) -> Result<u64, BuildError> {
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
                return Err(BuildError::TooDeep {
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
fn chown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32, path: &Path) -> Result<(), BuildError> {
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
pub fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<u64, BuildError> {
    walk_tree(dir, |fd, _, path| chown_fd(fd, uid, gid, path))
}

/// Clears setuid/setgid on every regular file and directory in `dir`
/// (symlinks are not followed; other file types have no such bits that
/// matter), then, with `chown_to`, gives every entry to that owner.
pub fn clear_setid_tree(
    dir: &Path,
    chown_to: Option<(u32, u32)>,
) -> Result<TreeReport, BuildError> {
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
pub fn build_owner(root: &Path) -> Result<Option<BuildOwner>, BuildError> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let meta = std::fs::metadata(root).map_err(|source| BuildError::Io {
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
struct RootDrop {
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
    fn new(overlay: &Path, work: &Path, owner: BuildOwner) -> Result<RootDrop, BuildError> {
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
            CString::new(s).map_err(|e| BuildError::Io {
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
    fn install(&self, cmd: &mut tokio::process::Command) {
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

/// Runs a blocking filesystem walk off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BuildError> + Send + 'static,
) -> Result<T, BuildError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(BuildError::Walk(e.to_string())),
    }
}

/// The `what` failure of `path`, for std's errors.
fn std_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| BuildError::Io { what, path, source }
}

/// Runs the `overlay-build` job.
pub async fn run(
    ctx: &mut JobCtx,
    config: &Config,
    host: &HostClient,
    overlay_id: i64,
    clean: bool,
) -> Result<(), JobFailure> {
    let overlay = job_overlay(ctx, overlay_id).await?;
    if !overlay.is_script() {
        return Err(JobFailure::msg(format!(
            "overlay {:?} is a {} overlay; only script overlays are built",
            overlay.name, overlay.kind
        )));
    }
    let timeout = Duration::from_secs(config.build_timeout_secs);
    let root = config.root.clone();
    let backend = config.backend;
    let dir = overlay_dir(&root, overlay.id);

    // Decide the sandbox before touching anything, and say it first.
    let bwrap = match backend {
        HostBackend::Systemd => {
            ctx.say(SYSTEMD_ISOLATION).await?;
            None
        }
        HostBackend::Local => match find_bwrap() {
            Some(b) => {
                ctx.say(BWRAP_ISOLATION).await?;
                ctx.say("network: none. Local builds cannot download anything (the host's 127.0.0.1 and LAN are unreachable too); recipes that fetch files need the systemd backend").await?;
                Some(b)
            }
            None => return Err(JobFailure::msg(NO_SANDBOX)),
        },
    };
    ctx.say(format!(
        "building overlay {:?} (#{}) into overlays/{}/; time limit {} s ({BUILD_TIMEOUT_VAR})",
        overlay.name,
        overlay.id,
        overlay.id,
        timeout.as_secs()
    ))
    .await?;

    prepare_dir(&dir, clean).map_err(JobFailure::from_error)?;
    if clean {
        ctx.say("clean build: the overlay directory was emptied first")
            .await?;
    } else {
        ctx.say(
            "in-place build: files of the previous build are kept unless the script removes them",
        )
        .await?;
    }

    // A root web app never lets bubblewrap map the build to root.
    let owner = match bwrap {
        Some(_) => build_owner(&root).map_err(|e| JobFailure::msg(e.to_string()))?,
        None => None,
    };
    if let Some(o) = owner {
        ctx.say(format!(
            "the web app runs as root: the build runs as uid {}:{} ({}); {}",
            o.uid,
            o.gid,
            if o.return_to_root {
                "nobody, the data root belongs to root"
            } else {
                "the data root's owner"
            },
            if o.return_to_root {
                "the overlay's files are given back to root:root afterwards"
            } else {
                "the overlay's files stay that user's"
            }
        ))
        .await?;
        let d = dir.clone();
        blocking(move || chown_tree(&d, o.uid, o.gid))
            .await
            .map_err(|e| {
                JobFailure::msg(format!(
                    "cannot hand the overlay directory to the build user: {e}"
                ))
            })?;
    }

    let tmp = root.join("tmp");
    let stem = format!("overlay-{}-job-{}", overlay.id, ctx.job().id);
    let result = match bwrap {
        Some(bwrap) => {
            let work = tmp.join(&stem);
            let files =
                write_local_files(&work, &overlay.script, owner).map_err(JobFailure::from_error);
            let outcome = match files {
                Ok(files) => match owner {
                    None => {
                        let mut args = vec![bwrap.display().to_string()];
                        args.extend(bwrap_args(&dir, &files));
                        run_limited(ctx, host, &args, timeout, "build script", None).await
                    }
                    Some(o) => match RootDrop::new(&dir, &work, o) {
                        Ok(drop) => {
                            // The same files, seen where the child binds them.
                            let stage = Path::new(STAGE_WORK);
                            let staged = LocalBuildFiles {
                                script: stage.join("script.sh"),
                                passwd: stage.join("passwd"),
                                group: stage.join("group"),
                            };
                            let mut args = vec![bwrap.display().to_string()];
                            args.extend(bwrap_args(Path::new(STAGE_OVERLAY), &staged));
                            run_limited(ctx, host, &args, timeout, "build script", Some(&drop))
                                .await
                        }
                        Err(e) => Err(JobFailure::msg(format!(
                            "cannot prepare the build sandbox: {e}"
                        ))),
                    },
                },
                Err(e) => Err(e),
            };
            if let Err(e) = remove_tree(&work) {
                tracing::warn!(path = %work.display(), error = %e, "cannot remove build files");
            }
            outcome
        }
        None => {
            let script = tmp.join(format!("{stem}.sh"));
            let outcome = match write_exclusive(&tmp, &script, &overlay.script, None) {
                Ok(()) => {
                    let helper = Path::new(HELPER_DIR).join("left4me-script-sandbox");
                    let args = vec![
                        SUDO.to_string(),
                        "-n".into(),
                        helper.display().to_string(),
                        overlay.id.to_string(),
                        script.display().to_string(),
                    ];
                    run_limited(ctx, host, &args, timeout, "build script", None).await
                }
                Err(e) => Err(JobFailure::from_error(e)),
            };
            if let Err(e) = std::fs::remove_file(&script) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %script.display(), error = %e, "cannot remove the build script copy");
                }
            }
            outcome
        }
    };
    // After every build, whatever its outcome: a failed one may have left
    // files too.
    let d = dir.clone();
    let give_back = owner.filter(|o| o.return_to_root).map(|_| (0, 0));
    let walk = blocking(move || clear_setid_tree(&d, give_back)).await;
    match (result, walk) {
        (Ok(()), Ok(report)) => {
            ctx.say(setid_line(report)).await?;
        }
        (Err(build), Ok(report)) => {
            ctx.say(setid_line(report)).await?;
            return Err(build);
        }
        (Ok(()), Err(e)) => {
            return Err(JobFailure::msg(format!(
                "cannot check the overlay for setuid/setgid files: {e}"
            )))
        }
        (Err(build), Err(e)) => {
            return Err(JobFailure::msg(format!(
                "{build}; then the overlay could not be checked for setuid/setgid files: {e}"
            )))
        }
    }
    mark_built(ctx, overlay.id).await?;
    ctx.say(format!("overlay {:?} built", overlay.name)).await?;
    Ok(())
}

fn setid_line(r: TreeReport) -> String {
    format!(
        "setuid/setgid bits cleared on {} of {} entries in the overlay directory",
        r.cleared, r.entries
    )
}

/// Makes sure the overlay directory exists; `clean` empties it (entries are
/// removed without following symlinks).
fn prepare_dir(dir: &Path, clean: bool) -> Result<(), BuildError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(BuildError::NotADirectory(dir.to_path_buf())),
        Err(_) => std::fs::create_dir_all(dir).map_err(std_err("create", dir))?,
    }
    if clean {
        for entry in std::fs::read_dir(dir).map_err(std_err("read", dir))? {
            let path = entry.map_err(std_err("read", dir))?.path();
            remove_tree(&path).map_err(std_err("remove", &path))?;
        }
    }
    Ok(())
}

/// Writes `body` to a new file (0600, O_EXCL: never into something a
/// concurrent writer or an attacker placed there), owned by `owner` if set.
fn write_exclusive(
    dir: &Path,
    path: &Path,
    body: &str,
    owner: Option<BuildOwner>,
) -> Result<(), BuildError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(std_err("create", dir))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(std_err("create", path))?;
    if let Some(o) = owner {
        chown_fd(f.as_fd(), o.uid, o.gid, path)?;
    }
    f.write_all(body.as_bytes()).map_err(std_err("write", path))
}

fn write_local_files(
    work: &Path,
    script: &str,
    owner: Option<BuildOwner>,
) -> Result<LocalBuildFiles, BuildError> {
    if let Some(parent) = work.parent() {
        std::fs::create_dir_all(parent).map_err(std_err("create", parent))?;
    }
    // A leftover from a killed process with the same job id is stale.
    let _ = remove_tree(work);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(work)
        .map_err(std_err("create", work))?;
    if let Some(o) = owner {
        // Only the build user reads these (0700/0600), so it must own them.
        let fd = rustix::fs::open(
            work,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err("open", work))?;
        chown_fd(fd.as_fd(), o.uid, o.gid, work)?;
    }
    let files = LocalBuildFiles {
        script: work.join("script.sh"),
        passwd: work.join("passwd"),
        group: work.join("group"),
    };
    write_exclusive(work, &files.script, script, owner)?;
    write_exclusive(
        work,
        &files.passwd,
        &format!(
            "build:x:{SANDBOX_UID}:{SANDBOX_UID}:left4me build:/tmp:/usr/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ),
        owner,
    )?;
    write_exclusive(
        work,
        &files.group,
        &format!("build:x:{SANDBOX_UID}:\nnogroup:x:65534:\n"),
        owner,
    )?;
    Ok(files)
}

/// Runs `argv` under coreutils `timeout` (TERM to the whole group, KILL 10 s
/// later), with a tokio backstop that drops (kills) the child if even that
/// hangs. The exit status decides; a timeout says so.
async fn run_limited(
    ctx: &mut JobCtx,
    host: &HostClient,
    argv: &[String],
    limit: Duration,
    what: &str,
    root_drop: Option<&RootDrop>,
) -> Result<(), JobFailure> {
    let mut full: Vec<String> = Vec::new();
    if let Some(t) = first_existing(&TIMEOUT_CANDIDATES) {
        full.extend([
            t.display().to_string(),
            "--kill-after=10".into(),
            format!("{}", limit.as_secs()),
        ]);
    }
    full.extend(argv.iter().cloned());
    let mut cmd = host.command(Path::new(&full[0]));
    cmd.args(&full[1..]);
    if let Some(d) = root_drop {
        d.install(&mut cmd);
    }
    let started = Instant::now();
    let backstop = limit + Duration::from_secs(30);
    let run = match tokio::time::timeout(backstop, ctx.run_command(cmd, what)).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(JobFailure::msg(format!(
                "{what} timed out after {} s ({BUILD_TIMEOUT_VAR}); the sandbox was killed",
                limit.as_secs()
            )))
        }
    };
    let timed_out = matches!(run.status.code(), Some(124 | 137)) && started.elapsed() >= limit;
    if timed_out {
        return Err(JobFailure::msg(format!(
            "{what} timed out after {} s ({BUILD_TIMEOUT_VAR}); the sandbox was killed",
            limit.as_secs()
        )));
    }
    run.into_result(what)
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
        assert!(matches!(e, BuildError::TooDeep { .. }), "{e}");
        assert!(e.to_string().contains("clean build"), "{e}");
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

    #[test]
    fn clean_prepare_removes_entries_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        let ov = d.path().join("ov");
        std::fs::create_dir_all(ov.join("a/b")).unwrap();
        std::fs::write(ov.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, ov.join("link")).unwrap();
        prepare_dir(&ov, false).unwrap();
        assert!(ov.join("a/b/f").exists());
        prepare_dir(&ov, true).unwrap();
        assert_eq!(std::fs::read_dir(&ov).unwrap().count(), 0);
        assert!(outside.join("keep").exists());
    }
}
