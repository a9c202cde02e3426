//! What a game server sees of the data root, built by root and placed into
//! the game's own mount namespace (systemd backend: `left4me-overlay
//! attach`; local backend as root: `l4d2-launch local`).
//!
//! The view replaces the data root with a small read-only tmpfs holding
//! exactly:
//!
//! - `runtime/<name>/merged`: the instance's overlay (its overlays over the
//!   installation, its own upper layer), mounted `nosuid,nodev`;
//! - `steam/linux32`, `steam/linux64` and `.steam/sdk32|sdk64`: the Steam
//!   client libraries srcds loads from `$HOME` (read-only);
//! - `workshop_cache`: workshop files, which overlays link to (read-only).
//!
//! Nothing else: no other instance, no `instances/`, `tmp/`, database or
//! panel config. Every layer is an idmapped mount that shows the on-disk
//! owner (the panel user) as the game's own uid, so each instance can run
//! as its own user while every file on disk stays owned by the panel user.
//! The overlay is created with the game's credentials (fsuid = its uid,
//! with the capabilities overlayfs needs), so the kernel's own files
//! (`work/work`, whiteouts, copy-ups) land on disk as the panel user too.
//!
//! The mounts exist only in the game's namespace: they vanish with its last
//! process, and no other namespace (the web app's, systemd's, PID 1's) ever
//! holds a copy that could pin them.
//!
//! Kernel interfaces used (all in Linux 6.12, Debian 13's kernel):
//! `open_tree`, `mount_setattr(MOUNT_ATTR_IDMAP)` (5.12), overlayfs over
//! idmapped layers (5.19), `fsconfig("lowerdir+")` (6.8), `setns` on a
//! pidfd (5.8). Layers are attached inside a private namespace before
//! overlayfs gets them because 6.12 refuses layers on detached mounts.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags, CWD};
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, open_tree, FsMountFlags,
    FsOpenFlags, MountAttrFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags,
    UnmountFlags,
};

use crate::fsx;
use crate::instance::InstanceEnv;
use crate::spec::MAX_LOWERDIRS;
use crate::{InstanceName, Layout};

/// The credentials of the game process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GameIds {
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Instance(#[from] crate::InstanceError),
    #[error(
        "instance {name}: L4D2_LOWERDIRS has {count} entries; at most {MAX_LOWERDIRS} are allowed"
    )]
    TooManyLowerdirs { name: InstanceName, count: usize },
    #[error("instance {name}: lowerdir {path}: {reason}")]
    BadLowerdir {
        name: InstanceName,
        path: PathBuf,
        reason: String,
    },
    #[error("instance {name}: cannot open {what}: {source}")]
    Open {
        name: InstanceName,
        what: String,
        source: std::io::Error,
    },
    #[error("instance {name}: the game would run as uid {uid}, which owns the data files; refusing (it must run as its own user)")]
    GameIsOwner { name: InstanceName, uid: u32 },
    #[error("instance {name}: building the game's view failed during {step}: {source}{}", kernel_log(.kernel))]
    Build {
        name: InstanceName,
        step: &'static str,
        source: std::io::Error,
        kernel: Vec<String>,
    },
}

fn kernel_log(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {})", lines.join("; "))
    }
}

/// Every directory the view needs, opened (`O_PATH`) and validated. Paths
/// below the data root are resolved with `RESOLVE_NO_SYMLINKS`: whatever
/// the panel user, a build or a game planted there is refused, not followed.
pub struct ViewPlan {
    name: InstanceName,
    /// The data root's real path (where the view is placed).
    root_path: PathBuf,
    /// The on-disk owner shown to the game as itself.
    owner: GameIds,
    /// Uppermost first; the installation last.
    lowers: Vec<OwnedFd>,
    runtime: OwnedFd,
    steam: Vec<(&'static str, OwnedFd)>,
    workshop_cache: Option<OwnedFd>,
}

impl ViewPlan {
    /// Reads `instances/<name>/instance.env` and opens every layer, checking
    /// the overlay rules: each lowerdir lies strictly inside `overlays/` or
    /// `workshop_cache/`, or is (inside) `installation/`; at most 500.
    pub fn prepare(layout: &Layout, name: &InstanceName) -> Result<ViewPlan, ViewError> {
        let open_err = |what: &str| {
            let what = what.to_string();
            let name = name.clone();
            move |source| ViewError::Open { name, what, source }
        };
        let root = fsx::open_trusted_dir(layout.root()).map_err(open_err("the data root"))?;
        let root_path = std::fs::read_link(format!("/proc/self/fd/{}", root.as_raw_fd()))
            .map_err(open_err("the data root"))?;
        let env = InstanceEnv::read_beneath(root.as_fd(), name)?;
        if env.lowerdirs.len() > MAX_LOWERDIRS {
            return Err(ViewError::TooManyLowerdirs {
                name: name.clone(),
                count: env.lowerdirs.len(),
            });
        }
        let dir_flags = OFlags::PATH | OFlags::DIRECTORY;
        let mut lowers = Vec::with_capacity(env.lowerdirs.len());
        for path in &env.lowerdirs {
            let rel = layer_path(&root_path, path).map_err(|reason| ViewError::BadLowerdir {
                name: name.clone(),
                path: path.clone(),
                reason,
            })?;
            let fd = fsx::open_beneath(root.as_fd(), &rel, dir_flags).map_err(|e| {
                ViewError::BadLowerdir {
                    name: name.clone(),
                    path: path.clone(),
                    reason: describe_open_error(&e),
                }
            })?;
            lowers.push(fd);
        }
        let runtime_rel = Path::new("runtime").join(name.as_str());
        let runtime = fsx::open_beneath(root.as_fd(), &runtime_rel, dir_flags).map_err(|e| {
            ViewError::Open {
                name: name.clone(),
                what: format!("{} ({})", runtime_rel.display(), describe_open_error(&e)),
                source: e,
            }
        })?;
        let mut owner = None;
        for sub in ["upper", "work", "merged"] {
            let fd =
                fsx::open_beneath(runtime.as_fd(), Path::new(sub), dir_flags).map_err(|e| {
                    ViewError::Open {
                        name: name.clone(),
                        what: format!(
                            "{}/{sub} ({})",
                            runtime_rel.display(),
                            describe_open_error(&e)
                        ),
                        source: e,
                    }
                })?;
            if sub == "upper" {
                let st = rustix::fs::fstat(&fd).map_err(|e| ViewError::Open {
                    name: name.clone(),
                    what: format!("{}/upper", runtime_rel.display()),
                    source: e.into(),
                })?;
                owner = Some(GameIds {
                    uid: st.st_uid,
                    gid: st.st_gid,
                });
            }
        }
        let owner = owner.unwrap_or(GameIds { uid: 0, gid: 0 });
        let optional = |rel: &str| -> Result<Option<OwnedFd>, ViewError> {
            match fsx::open_beneath(root.as_fd(), Path::new(rel), dir_flags) {
                Ok(fd) => Ok(Some(fd)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
                Err(e) => Err(ViewError::Open {
                    name: name.clone(),
                    what: format!("{rel} ({})", describe_open_error(&e)),
                    source: e,
                }),
            }
        };
        let mut steam = Vec::new();
        for dir in ["linux32", "linux64"] {
            if let Some(fd) = optional(&format!("steam/{dir}"))? {
                steam.push((dir, fd));
            }
        }
        let workshop_cache = optional("workshop_cache")?;
        Ok(ViewPlan {
            name: name.clone(),
            root_path,
            owner,
            lowers,
            runtime,
            steam,
            workshop_cache,
        })
    }

    /// The on-disk owner of the instance's files.
    pub fn owner(&self) -> GameIds {
        self.owner
    }

    /// The validated lower layers, uppermost first.
    pub(crate) fn lower_fds(&self) -> &[OwnedFd] {
        &self.lowers
    }

    /// `runtime/<name>`.
    pub(crate) fn runtime_fd(&self) -> BorrowedFd<'_> {
        self.runtime.as_fd()
    }

    /// Builds the view for a game running as `game` and places it over the
    /// data root of `target`. Must run as root in a single-threaded
    /// process: it moves the calling process into a new private mount
    /// namespace first (and, for [`Target::Process`], then into the
    /// game's).
    pub fn place(&self, game: GameIds, target: Target<'_>) -> Result<(), ViewError> {
        if game.uid == self.owner.uid || game.uid == 0 {
            return Err(ViewError::GameIsOwner {
                name: self.name.clone(),
                uid: game.uid,
            });
        }
        let tree = self.build(game)?;
        let step = |step: &'static str| {
            let name = self.name.clone();
            move |e: rustix::io::Errno| ViewError::Build {
                name,
                step,
                source: e.into(),
                kernel: Vec::new(),
            }
        };
        if let Target::Process(pidfd) = target {
            // setns(2) on a pidfd enters exactly that process's namespace
            // (no pid reuse race); CLONE_NEWNS needs a single-threaded caller.
            rustix::thread::move_into_thread_name_spaces(
                pidfd,
                rustix::thread::ThreadNameSpaceType::MOUNT,
            )
            .map_err(step("entering the game's mount namespace"))?;
        }
        move_mount(
            tree.as_fd(),
            c"",
            CWD,
            self.root_path.as_path(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(step("placing the view over the data root"))
    }

    fn build(&self, game: GameIds) -> Result<OwnedFd, ViewError> {
        let name = &self.name;
        let step = |step: &'static str| {
            let name = name.clone();
            move |e: rustix::io::Errno| ViewError::Build {
                name,
                step,
                source: e.into(),
                kernel: Vec::new(),
            }
        };
        let io_step = |step: &'static str| {
            let name = name.clone();
            move |source: std::io::Error| ViewError::Build {
                name,
                step,
                source,
                kernel: Vec::new(),
            }
        };
        let idmap = IdmapNamespace::new(self.owner, game).map_err(io_step("creating the idmap"))?;
        let lower_attrs = ATTR_IDMAP | ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV;
        let clone = |fd: &OwnedFd, attrs: u64| -> Result<OwnedFd, ViewError> {
            let tree = open_tree(
                fd.as_fd(),
                c"",
                OpenTreeFlags::OPEN_TREE_CLONE
                    | OpenTreeFlags::OPEN_TREE_CLOEXEC
                    | OpenTreeFlags::AT_EMPTY_PATH,
            )
            .map_err(step("cloning a layer"))?;
            set_mount_attrs(tree.as_fd(), attrs, Some(idmap.fd()), false)
                .map_err(io_step("idmapping a layer"))?;
            Ok(tree)
        };
        let lowers = self
            .lowers
            .iter()
            .map(|fd| clone(fd, lower_attrs))
            .collect::<Result<Vec<_>, _>>()?;
        let runtime = clone(&self.runtime, ATTR_IDMAP | ATTR_NOSUID | ATTR_NODEV)?;
        let steam = self
            .steam
            .iter()
            .map(|(dir, fd)| Ok((*dir, clone(fd, lower_attrs)?)))
            .collect::<Result<Vec<_>, ViewError>>()?;
        let workshop = self
            .workshop_cache
            .as_ref()
            .map(|fd| clone(fd, lower_attrs))
            .transpose()?;

        // A private namespace to assemble in: nothing here propagates anywhere.
        // SAFETY: only a new mount namespace; no file table is unshared.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
            .map_err(step("creating a private mount namespace"))?;
        rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
        )
        .map_err(step("making the namespace private"))?;

        // Stage: a tmpfs over the data root (only in this namespace) where
        // the idmapped layers get attached for overlayfs.
        let stage = new_tmpfs(
            "0700",
            MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
        )
        .map_err(step("creating the staging tmpfs"))?;
        move_mount(
            stage.as_fd(),
            c"",
            CWD,
            self.root_path.as_path(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(step("attaching the staging tmpfs"))?;
        let stage = rustix::fs::open(
            self.root_path.as_path(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(step("opening the staging tmpfs"))?;
        let attach = |tree: &OwnedFd, dir: &str| -> Result<OwnedFd, ViewError> {
            rustix::fs::mkdirat(&stage, dir, Mode::from_raw_mode(0o700))
                .map_err(step("creating a staging directory"))?;
            move_mount(
                tree.as_fd(),
                c"",
                stage.as_fd(),
                dir,
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(step("attaching a layer"))?;
            // Opened after the attach: the descriptor is the mount's root.
            rustix::fs::openat(
                &stage,
                dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(step("opening an attached layer"))
        };
        let mut lower_fds = Vec::with_capacity(lowers.len());
        for (i, tree) in lowers.iter().enumerate() {
            lower_fds.push(attach(tree, &format!("l{i}"))?);
        }
        let runtime_fd = attach(&runtime, "rt")?;
        let sub = |dir: &str| {
            rustix::fs::openat(
                &runtime_fd,
                dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(step("opening the upper or work directory"))
        };
        let upper = sub("upper")?;
        let work = sub("work")?;

        let overlay = {
            let _creds =
                CreatorCreds::assume(game).map_err(io_step("assuming the game's credentials"))?;
            self.create_overlay(&lower_fds, &upper, &work)?
        };

        // The view: a fresh tmpfs with just the mount points, read-only. Its
        // modes must not depend on the caller's umask (units set 0077).
        let old_umask = rustix::process::umask(Mode::empty());
        rustix::fs::mkdirat(&stage, "view", Mode::from_raw_mode(0o755))
            .map_err(step("creating the view directory"))?;
        let view = new_tmpfs(
            "0755",
            MountAttrFlags::MOUNT_ATTR_NOSUID
                | MountAttrFlags::MOUNT_ATTR_NODEV
                | MountAttrFlags::MOUNT_ATTR_NOEXEC,
        )
        .map_err(step("creating the view tmpfs"))?;
        move_mount(
            view.as_fd(),
            c"",
            stage.as_fd(),
            c"view",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(step("attaching the view tmpfs"))?;
        let view = rustix::fs::openat(
            &stage,
            c"view",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(step("opening the view"))?;
        let merged_rel = format!("runtime/{name}/merged");
        for dir in ["runtime", &format!("runtime/{name}"), &merged_rel] {
            rustix::fs::mkdirat(&view, dir, Mode::from_raw_mode(0o755))
                .map_err(step("creating the view's directories"))?;
        }
        move_mount(
            overlay.as_fd(),
            c"",
            view.as_fd(),
            merged_rel.as_str(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(step("attaching the overlay to the view"))?;
        if !steam.is_empty() {
            for dir in ["steam", ".steam"] {
                rustix::fs::mkdirat(&view, dir, Mode::from_raw_mode(0o755))
                    .map_err(step("creating the view's directories"))?;
            }
        }
        for (dir, tree) in &steam {
            let rel = format!("steam/{dir}");
            rustix::fs::mkdirat(&view, rel.as_str(), Mode::from_raw_mode(0o755))
                .map_err(step("creating the view's directories"))?;
            move_mount(
                tree.as_fd(),
                c"",
                view.as_fd(),
                rel.as_str(),
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(step("attaching the Steam libraries"))?;
            let sdk = if *dir == "linux32" { "sdk32" } else { "sdk64" };
            let target = self.root_path.join("steam").join(dir);
            rustix::fs::symlinkat(target.as_path(), &view, format!(".steam/{sdk}").as_str())
                .map_err(step("linking the Steam libraries"))?;
        }
        if let Some(tree) = &workshop {
            rustix::fs::mkdirat(&view, c"workshop_cache", Mode::from_raw_mode(0o755))
                .map_err(step("creating the view's directories"))?;
            move_mount(
                tree.as_fd(),
                c"",
                view.as_fd(),
                c"workshop_cache",
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
            .map_err(step("attaching the workshop cache"))?;
        }
        rustix::process::umask(old_umask);
        set_mount_attrs(view.as_fd(), ATTR_RDONLY, None, false)
            .map_err(io_step("making the view read-only"))?;
        let tree = open_tree(
            view.as_fd(),
            c"",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE
                | OpenTreeFlags::AT_EMPTY_PATH,
        )
        .map_err(step("copying the view"))?;
        set_propagation_private(tree.as_fd()).map_err(io_step("making the view private"))?;
        // The stage (and the idmapped layer mounts on it) is not needed any
        // more: overlayfs keeps its own references to its layers.
        drop(stage);
        rustix::mount::unmount(self.root_path.as_path(), UnmountFlags::DETACH)
            .map_err(step("detaching the staging tmpfs"))?;
        Ok(tree)
    }

    fn create_overlay(
        &self,
        lowers: &[OwnedFd],
        upper: &OwnedFd,
        work: &OwnedFd,
    ) -> Result<OwnedFd, ViewError> {
        let fail =
            |step: &'static str, e: rustix::io::Errno, fs: Option<&OwnedFd>| ViewError::Build {
                name: self.name.clone(),
                step,
                source: e.into(),
                kernel: fs.map(read_fs_log).unwrap_or_default(),
            };
        let fs = fsopen(c"overlay", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| fail("opening overlayfs", e, None))?;
        for fd in lowers {
            fsconfig_set_string(
                fs.as_fd(),
                c"lowerdir+",
                proc_fd_path(fd.as_raw_fd()).as_c_str(),
            )
            .map_err(|e| fail("adding a lower layer", e, Some(&fs)))?;
        }
        fsconfig_set_string(
            fs.as_fd(),
            c"upperdir",
            proc_fd_path(upper.as_raw_fd()).as_c_str(),
        )
        .map_err(|e| fail("setting the upper layer", e, Some(&fs)))?;
        fsconfig_set_string(
            fs.as_fd(),
            c"workdir",
            proc_fd_path(work.as_raw_fd()).as_c_str(),
        )
        .map_err(|e| fail("setting the work directory", e, Some(&fs)))?;
        fsconfig_create(fs.as_fd()).map_err(|e| fail("creating the overlay", e, Some(&fs)))?;
        fsmount(
            fs.as_fd(),
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
        )
        .map_err(|e| fail("mounting the overlay", e, Some(&fs)))
    }
}

/// Where the view goes.
pub enum Target<'a> {
    /// The mount namespace of this process (a pidfd).
    Process(BorrowedFd<'a>),
    /// The calling process's own (private) namespace.
    Current,
}

/// The path of a lowerdir relative to the data root, checked against the
/// layer rules. `path` comes from instance.env (absolute, canonical when
/// `l4d2ctl initialize` wrote it).
fn layer_path(root: &Path, path: &Path) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err("is not an absolute path".into());
    }
    let rel = path
        .strip_prefix(root)
        .map_err(|_| format!("is not inside the data root {}", root.display()))?;
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(p) => Ok(p),
            _ => Err("is not a plain path (no `.` or `..` allowed)".to_string()),
        })
        .collect::<Result<_, _>>()?;
    let allowed = match parts.first().and_then(|p| p.to_str()) {
        Some("installation") => true,
        Some("overlays" | "workshop_cache") => parts.len() >= 2,
        _ => false,
    };
    if allowed {
        Ok(rel.to_path_buf())
    } else {
        Err(
            "must be installation/ or a directory strictly inside overlays/ or workshop_cache/"
                .into(),
        )
    }
}

fn describe_open_error(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ELOOP) => "a symlink is in the way; refusing to follow it".into(),
        Some(libc::EXDEV) => "it leaves the data root".into(),
        Some(libc::ENOTDIR) => "it is not a directory".into(),
        _ => e.to_string(),
    }
}

fn proc_fd_path(fd: RawFd) -> CString {
    // Digits only: cannot contain NUL.
    CString::new(format!("/proc/self/fd/{fd}")).unwrap_or_default()
}

fn new_tmpfs(mode: &str, attrs: MountAttrFlags) -> rustix::io::Result<OwnedFd> {
    let fs = fsopen(c"tmpfs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(fs.as_fd(), c"mode", mode)?;
    fsconfig_set_string(fs.as_fd(), c"size", c"1m")?;
    fsconfig_create(fs.as_fd())?;
    fsmount(fs.as_fd(), FsMountFlags::FSMOUNT_CLOEXEC, attrs)
}

/// Drains the messages the kernel attached to a filesystem context.
fn read_fs_log(fs: &OwnedFd) -> Vec<String> {
    let mut lines = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = rustix::io::read(fs, &mut buf) {
        if n == 0 || lines.len() > 32 {
            break;
        }
        lines.push(String::from_utf8_lossy(&buf[..n]).trim().to_string());
    }
    lines
}

const ATTR_RDONLY: u64 = libc::MOUNT_ATTR_RDONLY;
const ATTR_NOSUID: u64 = libc::MOUNT_ATTR_NOSUID;
const ATTR_NODEV: u64 = libc::MOUNT_ATTR_NODEV;
const ATTR_IDMAP: u64 = libc::MOUNT_ATTR_IDMAP;

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// mount_setattr(2), which rustix does not wrap.
fn set_mount_attrs(
    mount: BorrowedFd<'_>,
    attrs: u64,
    userns: Option<BorrowedFd<'_>>,
    recursive: bool,
) -> std::io::Result<()> {
    mount_setattr(
        mount,
        &MountAttr {
            attr_set: attrs,
            attr_clr: 0,
            propagation: 0,
            userns_fd: userns.map(|fd| fd.as_raw_fd() as u64).unwrap_or(0),
        },
        recursive,
    )
}

fn set_propagation_private(mount: BorrowedFd<'_>) -> std::io::Result<()> {
    mount_setattr(
        mount,
        &MountAttr {
            attr_set: 0,
            attr_clr: 0,
            propagation: libc::MS_PRIVATE,
            userns_fd: 0,
        },
        true,
    )
}

fn mount_setattr(mount: BorrowedFd<'_>, attr: &MountAttr, recursive: bool) -> std::io::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: mount_setattr(2) with a valid fd, an empty C string, and a
    // pointer to a correctly laid out, live `struct mount_attr` of the size
    // passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A user namespace whose only mapping is `owner` → `game` (uid and gid),
/// the mapping an idmapped mount applies: files owned by `owner` on disk
/// appear as owned by `game`, and the game's new files land as `owner`.
struct IdmapNamespace {
    fd: OwnedFd,
}

impl IdmapNamespace {
    /// A child process enters a new user namespace; this process writes its
    /// maps (as root, no `setgroups` restriction applies) and keeps a
    /// descriptor of the namespace; the child then exits.
    fn new(owner: GameIds, game: GameIds) -> std::io::Result<IdmapNamespace> {
        let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        let (done_r, done_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        // SAFETY: the caller is single-threaded (see ViewPlan::place); the
        // child only makes raw syscalls and exits with _exit.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: async-signal-safe syscalls only, then _exit.
            unsafe {
                // The child's copies of the parent's pipe ends: without
                // closing them it would wait for its own EOF forever.
                libc::close(ready_r.as_raw_fd());
                libc::close(done_w.as_raw_fd());
                let ok = libc::unshare(libc::CLONE_NEWUSER) == 0;
                let byte = [u8::from(ok)];
                libc::write(ready_w.as_raw_fd(), byte.as_ptr().cast(), 1);
                let mut buf = [0u8; 1];
                libc::read(done_r.as_raw_fd(), buf.as_mut_ptr().cast(), 1);
                libc::_exit(0);
            }
        }
        drop(ready_w);
        drop(done_r);
        let result = (|| {
            let mut byte = [0u8; 1];
            let n = rustix::io::read(&ready_r, &mut byte)?;
            if n != 1 || byte[0] != 1 {
                return Err(std::io::Error::other(
                    "the child could not create a user namespace",
                ));
            }
            std::fs::write(
                format!("/proc/{pid}/uid_map"),
                format!("{} {} 1\n", owner.uid, game.uid),
            )?;
            std::fs::write(
                format!("/proc/{pid}/gid_map"),
                format!("{} {} 1\n", owner.gid, game.gid),
            )?;
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/user"))?;
            Ok(IdmapNamespace { fd: ns.into() })
        })();
        drop(done_w);
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        result
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// While alive, this thread's filesystem uid/gid are the game's, with every
/// permitted capability effective: overlayfs records the credentials of its
/// creator and does its own work (copy-up, whiteouts, `work/work`) with
/// them, so through the idmapped upper layer that work lands on disk as the
/// files' owner instead of root.
struct CreatorCreds {
    uid: u32,
    gid: u32,
}

impl CreatorCreds {
    fn assume(game: GameIds) -> std::io::Result<CreatorCreds> {
        // setfsuid/setfsgid return the previous value and cannot report an
        // error; calling them with -1 reads the current value back.
        // SAFETY: plain syscalls on this thread's credentials.
        let (uid, gid) = unsafe {
            let gid = libc::setfsgid(game.gid) as u32;
            let uid = libc::setfsuid(game.uid) as u32;
            (uid, gid)
        };
        let restore = CreatorCreds { uid, gid };
        // SAFETY: see above.
        let (now_uid, now_gid) = unsafe {
            (
                libc::setfsuid(u32::MAX) as u32,
                libc::setfsgid(u32::MAX) as u32,
            )
        };
        if now_uid != game.uid || now_gid != game.gid {
            return Err(std::io::Error::other(
                "setfsuid/setfsgid did not take effect",
            ));
        }
        // A fsuid change away from 0 clears the file capabilities from the
        // effective set; overlayfs needs them (trusted xattrs, copy-up).
        let caps = rustix::thread::capabilities(None)?;
        rustix::thread::set_capabilities(
            None,
            rustix::thread::CapabilitySets {
                effective: caps.permitted,
                ..caps
            },
        )?;
        Ok(restore)
    }
}

impl Drop for CreatorCreds {
    fn drop(&mut self) {
        // SAFETY: restoring this thread's own previous fs credentials.
        unsafe {
            libc::setfsuid(self.uid);
            libc::setfsgid(self.gid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_paths_follow_the_rules() {
        let root = Path::new("/r");
        for ok in [
            "/r/installation",
            "/r/installation/sub",
            "/r/overlays/1",
            "/r/workshop_cache/x",
        ] {
            assert!(layer_path(root, Path::new(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "/etc",
            "/r",
            "/r/overlays",
            "/r/workshop_cache",
            "/r/instances/a",
            "/r/runtime/a/upper",
            "/r/overlays/../instances",
            "/rx/overlays/1",
        ] {
            assert!(layer_path(root, Path::new(bad)).is_err(), "{bad}");
        }
    }
}
