//! Overlay mounts of instances (SPEC §5). This is the code behind the
//! privileged `left4me-overlay` helper and the local backend.
//!
//! Every path is opened once (`O_PATH`), the opened file's real location is
//! read back from `/proc/self/fd` and validated, and the kernel is then handed
//! `/proc/self/fd/<n>`: a symlink swapped in after validation cannot redirect
//! the mount. Lower layers go through the new mount API one at a time
//! (`fsconfig(lowerdir+)`), so 500 layers do not hit the one-page limit of a
//! classic `mount(2)` option string.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount, unmount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags,
};

use crate::instance::{remove_tree, InstanceEnv, InstanceError};
use crate::{InstanceName, Layout};

/// The kernel's overlayfs stacking limit.
pub const MAX_LOWERDIRS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error(transparent)]
    Instance(#[from] InstanceError),
    #[error(
        "instance {name}: L4D2_LOWERDIRS has {count} entries; at most {MAX_LOWERDIRS} are allowed"
    )]
    TooManyLowerdirs { name: InstanceName, count: usize },
    #[error("instance {name}: lowerdir {path}: {message}")]
    BadLowerdir {
        name: InstanceName,
        path: PathBuf,
        message: String,
    },
    #[error("instance {name}: {path} must resolve inside {expected}, but resolves to {actual}")]
    OutsideRuntime {
        name: InstanceName,
        path: PathBuf,
        expected: PathBuf,
        actual: PathBuf,
    },
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mounting overlay for instance {name} at {merged} failed during {step}: {source}{}", kernel_log(.kernel))]
    Mount {
        name: InstanceName,
        merged: PathBuf,
        step: &'static str,
        source: std::io::Error,
        kernel: Vec<String>,
    },
    #[error("unmounting {merged}: {source}{}", if .source.raw_os_error() == Some(libc::EBUSY) { " (still in use: is the server process gone?)" } else { "" })]
    Umount {
        merged: PathBuf,
        source: std::io::Error,
    },
}

fn kernel_log(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!(" (kernel: {})", lines.join("; "))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountOutcome {
    Mounted,
    AlreadyMounted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UmountOutcome {
    Unmounted,
    NotMounted,
}

/// A validated, ready-to-run overlay mount. Holds `O_PATH` descriptors of
/// every directory; [`MountPlan::mount`] only makes syscalls with data
/// prepared here, so it can run in a freshly forked child (local backend).
pub struct MountPlan {
    name: InstanceName,
    merged_path: PathBuf,
    lowerdirs: Vec<Dir>,
    upper: Dir,
    work: Dir,
    merged: Dir,
    in_user_namespace: bool,
}

/// A validated directory: its `O_PATH` descriptor, that descriptor's
/// `/proc/self/fd/<n>` name, and its real path.
struct Dir {
    fd: OwnedFd,
    proc_name: CString,
    real: CString,
}

/// Opens `path` as an `O_PATH` directory and returns it with the real path
/// it refers to.
fn open_dir(path: &Path) -> Result<(Dir, PathBuf), OverlayError> {
    let open_err = |source: std::io::Error| OverlayError::Open {
        path: path.to_owned(),
        source,
    };
    let fd = rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| open_err(e.into()))?;
    let proc_name = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let real = std::fs::read_link(&proc_name).map_err(open_err)?;
    let to_c = |s: Vec<u8>| CString::new(s).map_err(|e| open_err(std::io::Error::other(e)));
    let proc_name = to_c(proc_name.into_bytes())?;
    let real_c = to_c(real.clone().into_os_string().into_encoded_bytes())?;
    Ok((
        Dir {
            fd,
            proc_name,
            real: real_c,
        },
        real,
    ))
}

fn canonical(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

impl MountPlan {
    /// Reads `instances/<name>/instance.env` and validates every rule of SPEC §5.
    pub fn prepare(layout: &Layout, name: &InstanceName) -> Result<MountPlan, OverlayError> {
        let env = InstanceEnv::read(&layout.instance_env(name))?;
        if env.lowerdirs.len() > MAX_LOWERDIRS {
            return Err(OverlayError::TooManyLowerdirs {
                name: name.clone(),
                count: env.lowerdirs.len(),
            });
        }
        let installation = canonical(&layout.installation());
        let layer_roots = [
            canonical(&layout.overlays()),
            canonical(&layout.workshop_cache()),
        ];
        let mut lowerdirs = Vec::with_capacity(env.lowerdirs.len());
        for path in &env.lowerdirs {
            let bad = |message: String| OverlayError::BadLowerdir {
                name: name.clone(),
                path: path.clone(),
                message,
            };
            if !path.is_absolute() {
                return Err(bad("is not an absolute path".into()));
            }
            let (dir, real) = open_dir(path)?;
            let allowed = real.starts_with(&installation)
                || layer_roots
                    .iter()
                    .any(|root| real != *root && real.starts_with(root));
            if !allowed {
                return Err(bad(format!(
                    "resolves to {}, which is not inside {}, {} or {}",
                    real.display(),
                    installation.display(),
                    layer_roots[0].display(),
                    layer_roots[1].display()
                )));
            }
            lowerdirs.push(dir);
        }

        let runtime = canonical(&layout.runtime()).join(name.as_str());
        let inside_runtime = |path: PathBuf| -> Result<Dir, OverlayError> {
            let leaf = path.file_name().map(PathBuf::from).unwrap_or_default();
            let (dir, real) = open_dir(&path)?;
            let expected = runtime.join(leaf);
            if real != expected {
                return Err(OverlayError::OutsideRuntime {
                    name: name.clone(),
                    path,
                    expected,
                    actual: real,
                });
            }
            Ok(dir)
        };
        let upper = inside_runtime(layout.upper(name))?;
        let work = inside_runtime(layout.work(name))?;
        let merged = inside_runtime(layout.merged(name))?;
        Ok(MountPlan {
            name: name.clone(),
            merged_path: layout.merged(name),
            lowerdirs,
            upper,
            work,
            merged,
            in_user_namespace: false,
        })
    }

    /// Prepares the plan for a mount made from inside a new user + mount
    /// namespace by the (unprivileged) owner of the files: the kernel refuses
    /// to stack mounts of the parent namespace reached through descriptors,
    /// so the validated real paths are used (no privilege boundary is crossed,
    /// so there is nothing to race), and `userxattr` because `trusted.*`
    /// xattrs belong to the initial namespace.
    pub fn for_user_namespace(mut self) -> MountPlan {
        self.in_user_namespace = true;
        self
    }

    fn path_of<'a>(&self, dir: &'a Dir) -> &'a std::ffi::CStr {
        if self.in_user_namespace {
            &dir.real
        } else {
            &dir.proc_name
        }
    }

    /// Performs the mount. Allocates nothing, so it is safe between fork and
    /// exec. On failure returns the step that failed and the errno.
    pub fn mount(&self) -> Result<(), (&'static str, std::io::Error, Option<OwnedFd>)> {
        let fs = fsopen(c"overlay", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| ("fsopen", e.into(), None))?;
        let fail =
            |step: &'static str, e: rustix::io::Errno, fs: OwnedFd| (step, e.into(), Some(fs));
        for dir in &self.lowerdirs {
            if let Err(e) = fsconfig_set_string(fs.as_fd(), c"lowerdir+", self.path_of(dir)) {
                return Err(fail("fsconfig lowerdir+", e, fs));
            }
        }
        if let Err(e) = fsconfig_set_string(fs.as_fd(), c"upperdir", self.path_of(&self.upper)) {
            return Err(fail("fsconfig upperdir", e, fs));
        }
        if let Err(e) = fsconfig_set_string(fs.as_fd(), c"workdir", self.path_of(&self.work)) {
            return Err(fail("fsconfig workdir", e, fs));
        }
        if self.in_user_namespace {
            if let Err(e) = fsconfig_set_flag(fs.as_fd(), c"userxattr") {
                return Err(fail("fsconfig userxattr", e, fs));
            }
        }
        if let Err(e) = fsconfig_create(fs.as_fd()) {
            return Err(fail("fsconfig create", e, fs));
        }
        let mnt = match fsmount(
            fs.as_fd(),
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::empty(),
        ) {
            Ok(mnt) => mnt,
            Err(e) => return Err(fail("fsmount", e, fs)),
        };
        let moved = if self.in_user_namespace {
            move_mount(
                mnt.as_fd(),
                c"",
                rustix::fs::CWD,
                self.merged.real.as_c_str(),
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
            )
        } else {
            move_mount(
                mnt.as_fd(),
                c"",
                self.merged.fd.as_fd(),
                c"",
                MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        moved.map_err(|e| ("move_mount", e.into(), None))
    }

    /// [`MountPlan::mount`] with the kernel's own explanation attached.
    pub fn mount_reporting(&self) -> Result<(), OverlayError> {
        self.mount()
            .map_err(|(step, source, fs)| OverlayError::Mount {
                name: self.name.clone(),
                merged: self.merged_path.clone(),
                step,
                source,
                kernel: fs.map(|fs| read_fs_log(&fs)).unwrap_or_default(),
            })
    }
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

/// Whether `merged` is a mount point in the calling process's namespace.
pub fn is_mounted(layout: &Layout, name: &InstanceName) -> bool {
    let merged = layout.merged(name);
    rustix::fs::statx(
        rustix::fs::CWD,
        &merged,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        rustix::fs::StatxFlags::BASIC_STATS,
    )
    .is_ok_and(|st| {
        st.stx_attributes_mask
            .contains(rustix::fs::StatxAttributes::MOUNT_ROOT)
            && st
                .stx_attributes
                .contains(rustix::fs::StatxAttributes::MOUNT_ROOT)
    })
}

/// Mounts the overlay of `name` at `runtime/<name>/merged`. Idempotent.
pub fn mount(layout: &Layout, name: &InstanceName) -> Result<MountOutcome, OverlayError> {
    let plan = MountPlan::prepare(layout, name)?;
    if is_mounted(layout, name) {
        return Ok(MountOutcome::AlreadyMounted);
    }
    plan.mount_reporting()?;
    Ok(MountOutcome::Mounted)
}

/// Unmounts the overlay of `name` and removes the `work/work` directory the
/// kernel leaves behind (root-owned, mode 0: the unprivileged owner could
/// not delete the instance later). Idempotent.
pub fn umount(layout: &Layout, name: &InstanceName) -> Result<UmountOutcome, OverlayError> {
    let merged = layout.merged(name);
    let outcome = if is_mounted(layout, name) {
        // The merged dir must still be the instance's own, not a swapped-in symlink.
        let runtime = canonical(&layout.runtime()).join(name.as_str());
        let real = canonical(&merged);
        if real != runtime.join("merged") {
            return Err(OverlayError::OutsideRuntime {
                name: name.clone(),
                path: merged,
                expected: runtime.join("merged"),
                actual: real,
            });
        }
        unmount(&merged, UnmountFlags::NOFOLLOW).map_err(|e| OverlayError::Umount {
            merged: merged.clone(),
            source: e.into(),
        })?;
        UmountOutcome::Unmounted
    } else {
        UmountOutcome::NotMounted
    };
    remove_tree(&layout.work(name).join("work"))?;
    Ok(outcome)
}
