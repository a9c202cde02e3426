//! The overlay of an instance run by an unprivileged user (local backend
//! without root): the game's child process enters a new user + mount
//! namespace between fork and exec and mounts the overlay there
//! (overlayfs is mountable in user namespaces since Linux 5.11). The mount
//! disappears with the process.
//!
//! The layer rules are [`crate::view::ViewPlan::prepare`]'s, so both paths
//! accept exactly the same instance definitions. Lower layers go through
//! the new mount API one at a time (`fsconfig(lowerdir+)`), so 500 layers
//! do not hit the one-page limit of a classic `mount(2)` option string.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
};

use crate::view::{ViewError, ViewPlan};
use crate::{InstanceName, Layout};

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error(transparent)]
    View(#[from] ViewError),
    #[error("instance {name}: cannot resolve a layer directory: {source}")]
    RealPath {
        name: InstanceName,
        source: std::io::Error,
    },
}

/// A validated mount for a user namespace. [`MountPlan::mount`] only makes
/// syscalls with data prepared here, so it can run in a freshly forked
/// child.
pub struct MountPlan {
    lowerdirs: Vec<CString>,
    upper: CString,
    work: CString,
    merged: CString,
}

impl MountPlan {
    /// Validates the instance's layers (see [`ViewPlan::prepare`]) and
    /// records their real paths. In a new user namespace the kernel refuses
    /// to stack mounts of the parent namespace reached through descriptors,
    /// so the mount uses paths; no privilege boundary is crossed (the
    /// caller owns the files), so there is no race to win.
    pub fn prepare(layout: &Layout, name: &InstanceName) -> Result<MountPlan, OverlayError> {
        let view = ViewPlan::prepare(layout, name)?;
        let real = |fd: BorrowedFd<'_>| -> Result<CString, OverlayError> {
            let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(
                |source| OverlayError::RealPath {
                    name: name.clone(),
                    source,
                },
            )?;
            CString::new(path.into_os_string().into_encoded_bytes()).map_err(|e| {
                OverlayError::RealPath {
                    name: name.clone(),
                    source: std::io::Error::other(e),
                }
            })
        };
        let lowerdirs = view
            .lower_fds()
            .iter()
            .map(|fd| real(fd.as_fd()))
            .collect::<Result<Vec<_>, _>>()?;
        let runtime = PathBuf::from(real(view.runtime_fd())?.into_string().map_err(|e| {
            OverlayError::RealPath {
                name: name.clone(),
                source: std::io::Error::other(e),
            }
        })?);
        let c = |sub: &str| {
            CString::new(runtime.join(sub).into_os_string().into_encoded_bytes()).map_err(|e| {
                OverlayError::RealPath {
                    name: name.clone(),
                    source: std::io::Error::other(e),
                }
            })
        };
        Ok(MountPlan {
            lowerdirs,
            upper: c("upper")?,
            work: c("work")?,
            merged: c("merged")?,
        })
    }

    /// Performs the mount (`userxattr`: `trusted.*` xattrs belong to the
    /// initial namespace; `nosuid,nodev`). Allocates nothing, so it is safe
    /// between fork and exec. On failure returns the step and the errno.
    pub fn mount(&self) -> Result<(), (&'static str, std::io::Error, Option<OwnedFd>)> {
        let fs = fsopen(c"overlay", FsOpenFlags::FSOPEN_CLOEXEC)
            .map_err(|e| ("fsopen", e.into(), None))?;
        let fail =
            |step: &'static str, e: rustix::io::Errno, fs: OwnedFd| (step, e.into(), Some(fs));
        for dir in &self.lowerdirs {
            if let Err(e) = fsconfig_set_string(fs.as_fd(), c"lowerdir+", dir.as_c_str()) {
                return Err(fail("fsconfig lowerdir+", e, fs));
            }
        }
        if let Err(e) = fsconfig_set_string(fs.as_fd(), c"upperdir", self.upper.as_c_str()) {
            return Err(fail("fsconfig upperdir", e, fs));
        }
        if let Err(e) = fsconfig_set_string(fs.as_fd(), c"workdir", self.work.as_c_str()) {
            return Err(fail("fsconfig workdir", e, fs));
        }
        if let Err(e) = fsconfig_set_flag(fs.as_fd(), c"userxattr") {
            return Err(fail("fsconfig userxattr", e, fs));
        }
        if let Err(e) = fsconfig_create(fs.as_fd()) {
            return Err(fail("fsconfig create", e, fs));
        }
        let mnt = match fsmount(
            fs.as_fd(),
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
        ) {
            Ok(mnt) => mnt,
            Err(e) => return Err(fail("fsmount", e, fs)),
        };
        move_mount(
            mnt.as_fd(),
            c"",
            rustix::fs::CWD,
            self.merged.as_c_str(),
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| ("move_mount", e.into(), None))
    }
}
