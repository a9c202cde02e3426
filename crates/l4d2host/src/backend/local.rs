//! The local backend: `l4d2ctl` supervises the game process itself, for
//! development, the demo and CI without systemd.
//!
//! The process is started detached (own session, stdin from /dev/null,
//! console to `runtime/<name>/console.log`). Its identity is the pid plus the
//! kernel's start time of that pid (`/proc/<pid>/stat` field 22), so a
//! recycled pid is never mistaken for the server.
//!
//! Overlay: as root the server is started through `l4d2-launch local`, which
//! builds the same view of the data root a systemd unit gets (see
//! [`crate::view`]) in its own mount namespace and runs the game as the
//! instance's own uid ([`l4d2_contract::launch::local_game_uid`]).
//! Unprivileged, the child enters a new user + mount namespace between fork
//! and exec, mounts the overlay there ([`crate::overlay`]) and the game runs
//! inside it as the caller: one user, one trust domain (development, demo).
//! Either way the mount disappears with the process.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use super::procfs::{self, ProcessTable};
use super::BackendError;
use crate::instance::{io_err, InstanceEnv};
use crate::overlay::MountPlan;
use crate::{InstanceName, Layout, ServiceState};

/// SIGINT grace period before SIGKILL, as `TimeoutStopSec=15s` in the unit.
pub const STOP_GRACE: Duration = Duration::from_secs(15);

#[derive(Debug, Default)]
pub struct LocalBackend;

/// A process identity that survives pid reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcessId {
    pid: i32,
    start_time: u64,
}

impl ProcessId {
    fn of(pid: i32) -> Option<ProcessId> {
        let (_, start_time) = proc_stat(pid)?;
        Some(ProcessId { pid, start_time })
    }

    /// Alive and still the same process (zombies count as gone).
    fn is_alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }

    fn read(path: &Path) -> Option<ProcessId> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut parts = text.split_whitespace();
        Some(ProcessId {
            pid: parts.next()?.parse().ok()?,
            start_time: parts.next()?.parse().ok()?,
        })
    }
}

/// (state, starttime) from `/proc/<pid>/stat`.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = procfs::read_stat(pid)?;
    Some((stat.state, stat.start_time))
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

impl LocalBackend {
    fn running(&self, layout: &Layout, name: &InstanceName) -> Option<ProcessId> {
        ProcessId::read(&layout.pid_file(name)).filter(ProcessId::is_alive)
    }

    /// The state of each of `names`, `/proc` walked once for all of them.
    pub fn states(&self, layout: &Layout, names: &[InstanceName]) -> Vec<ServiceState> {
        let ids: Vec<Option<ProcessId>> = names
            .iter()
            .map(|n| ProcessId::read(&layout.pid_file(n)))
            .collect();
        let table = if ids.iter().flatten().any(ProcessId::is_alive) {
            ProcessTable::read()
        } else {
            ProcessTable::default()
        };
        ids.into_iter().map(|id| state_of(id, &table)).collect()
    }
}

/// An instance's state from its pid file's identity. The game leads its
/// own session (started with setsid), so its CPU time and memory are those
/// of every process in that session: srcds_run, the game, what it started.
fn state_of(id: Option<ProcessId>, table: &ProcessTable) -> ServiceState {
    match id {
        None => ServiceState::stopped(),
        Some(id) if id.is_alive() => {
            let usage = table.session_usage(id.pid);
            ServiceState {
                active_state: "active".into(),
                sub_state: "running".into(),
                pid: u32::try_from(id.pid).ok(),
                uid: process_uid(id.pid),
                cpu_usage_nsec: usage.cpu_usage_nsec,
                memory_bytes: usage.memory_bytes,
                ..ServiceState::stopped()
            }
        }
        // A pid file without its process: it died without `stop` (a crash).
        Some(_) => ServiceState {
            active_state: "failed".into(),
            sub_state: "failed".into(),
            ..ServiceState::stopped()
        },
    }
}

impl LocalBackend {
    pub fn start(&self, layout: &Layout, name: &InstanceName) -> Result<(), BackendError> {
        if self.running(layout, name).is_some() {
            return Ok(());
        }
        let env = InstanceEnv::read(layout, name)?;
        let spawn_err = |message: String| BackendError::Spawn {
            name: name.clone(),
            message,
        };
        let log_path = layout.console_log(name);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err("cannot open", &log_path))?;
        let log_err = log.try_clone().map_err(io_err("cannot open", &log_path))?;

        let privileged = is_root();
        let mut cmd = if privileged {
            // The launcher builds the game's view and drops to its uid.
            let mut cmd = Command::new(launcher().map_err(spawn_err)?);
            cmd.arg("local").arg(layout.root()).arg(name.as_str());
            cmd
        } else {
            let merged = layout.merged(name);
            let mut cmd = Command::new(merged.join("srcds_run"));
            cmd.args(crate::launch::game_args(&env).map_err(|e| spawn_err(e.to_string()))?);
            cmd
        };
        // srcds finds steamclient.so in $HOME/.steam/sdk32.
        cmd.env("HOME", layout.root())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);

        // Root: the launcher reports on this pipe why it could not start the
        // game; the pipe closing without a word means the game was exec'd.
        let mut status_pipe = None;
        if privileged {
            let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| spawn_err(format!("cannot create a pipe: {e}")))?;
            let write_fd = std::os::fd::AsRawFd::as_raw_fd(&write);
            status_pipe = Some((read, write));
            // SAFETY: setsid(2) and dup2(2) only, between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    rustix::process::setsid()?;
                    if libc::dup2(write_fd, crate::launch::STATUS_FD) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            cmd.env(
                crate::launch::STATUS_FD_ENV,
                crate::launch::STATUS_FD.to_string(),
            );
        } else {
            let plan = MountPlan::prepare(layout, name)?;
            let namespace = UserNamespace::for_current_user();
            let game_dir = CString::new(
                layout
                    .merged(name)
                    .join(l4d2_contract::launch::GAME_DIR)
                    .into_os_string()
                    .into_encoded_bytes(),
            )
            .map_err(|e| spawn_err(e.to_string()))?;
            // SAFETY: the closure runs between fork and exec in a
            // single-threaded child; it only makes syscalls on data prepared
            // above and allocates nothing.
            unsafe {
                cmd.pre_exec(move || {
                    rustix::process::setsid()?;
                    namespace.enter()?;
                    plan.mount().map_err(|(_, e, _)| e)?;
                    rustix::process::chdir(game_dir.as_c_str())?;
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().map_err(|e| {
            let how = if privileged {
                "starting l4d2-launch"
            } else {
                "entering a user + mount namespace, mounting the overlay there and spawning srcds_run"
            };
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (is the game installed? run `l4d2ctl install`)"
            } else {
                ""
            };
            spawn_err(format!("{how}: {e}{hint}"))
        })?;
        if let Some((read, write)) = status_pipe {
            drop(write);
            let mut reason = String::new();
            let _ = std::io::Read::read_to_string(&mut std::fs::File::from(read), &mut reason);
            if !reason.trim().is_empty() {
                let mut child = child;
                let _ = child.wait();
                let hint = if reason.contains("srcds_run: No such file") {
                    " (is the game installed? run `l4d2ctl install`)"
                } else {
                    ""
                };
                return Err(spawn_err(format!("{}{hint}", reason.trim())));
            }
        }
        let pid = child.id() as i32;
        // The child is ours until this process exits, so its /proc entry
        // (even as a zombie) still exists here.
        let id = ProcessId::of(pid)
            .ok_or_else(|| spawn_err(format!("process {pid} vanished right after spawn")))?;
        write_pid_file(layout, name, id)?;
        Ok(())
    }

    pub fn stop(&self, layout: &Layout, name: &InstanceName) -> Result<(), BackendError> {
        if let Some(id) = self.running(layout, name) {
            signal(id, Signal::INT);
            if !wait_gone(id, STOP_GRACE) {
                tracing::warn!(instance = %name, pid = id.pid, "no exit after SIGINT; sending SIGKILL");
                signal(id, Signal::KILL);
                if !wait_gone(id, Duration::from_secs(5)) {
                    return Err(BackendError::Unkillable {
                        name: name.clone(),
                        pid: id.pid,
                    });
                }
            }
        }
        let pid_file = layout.pid_file(name);
        match std::fs::remove_file(&pid_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err("cannot remove", &pid_file)(e).into())
            }
            _ => {}
        }
        Ok(())
    }
}

/// The `l4d2-launch` binary: `LEFT4ME_LAUNCH`, else next to the running
/// executable (l4d2ctl is installed beside it).
fn launcher() -> Result<std::path::PathBuf, String> {
    if let Some(path) = std::env::var_os("LEFT4ME_LAUNCH").filter(|v| !v.is_empty()) {
        return Ok(path.into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find l4d2-launch: {e}"))?;
    let path = exe.with_file_name("l4d2-launch");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "cannot find l4d2-launch next to {} (set LEFT4ME_LAUNCH)",
            exe.display()
        ))
    }
}

/// The real uid of a running process.
fn process_uid(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Signals the whole process group (the server leads its own session).
fn signal(id: ProcessId, sig: Signal) {
    if let Some(pid) = Pid::from_raw(id.pid) {
        if rustix::process::kill_process_group(pid, sig).is_err() {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }
}

fn wait_gone(id: ProcessId, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !id.is_alive() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !id.is_alive()
}

fn write_pid_file(layout: &Layout, name: &InstanceName, id: ProcessId) -> Result<(), BackendError> {
    let path = layout.pid_file(name);
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{} {}\n", id.pid, id.start_time))
        .map_err(io_err("cannot write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io_err("cannot write", &path))?;
    Ok(())
}

/// The id maps for an unprivileged user namespace: the caller's own uid and
/// gid map to themselves, so files land on disk owned by the caller.
struct UserNamespace {
    uid_map: CString,
    gid_map: CString,
}

impl UserNamespace {
    fn for_current_user() -> UserNamespace {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        // Formatting into a CString cannot contain NUL bytes.
        UserNamespace {
            uid_map: CString::new(format!("{uid} {uid} 1")).unwrap_or_default(),
            gid_map: CString::new(format!("{gid} {gid} 1")).unwrap_or_default(),
        }
    }

    /// Between fork and exec: unshare user + mount namespaces and write the
    /// id maps (setgroups must be denied before an unprivileged gid_map).
    fn enter(&self) -> std::io::Result<()> {
        use rustix::thread::UnshareFlags;
        // SAFETY: the forked child is single-threaded; no fd table is unshared.
        unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNS)? };
        write_proc(c"/proc/self/setgroups", b"deny")?;
        write_proc(c"/proc/self/uid_map", self.uid_map.as_bytes())?;
        write_proc(c"/proc/self/gid_map", self.gid_map.as_bytes())?;
        Ok(())
    }
}

fn write_proc(path: &std::ffi::CStr, data: &[u8]) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
    rustix::io::write(&fd, data)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_identity_checks_start_time() {
        let me = ProcessId::of(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let recycled = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(
            !recycled.is_alive(),
            "same pid, different start time must not count"
        );
    }

    #[test]
    fn proc_stat_copes_with_odd_command_names() {
        // The test binary's own stat parses; a name with ") (" would too
        // because fields are counted after the last ')'.
        assert!(proc_stat(std::process::id() as i32).is_some());
        assert!(proc_stat(i32::MAX).is_none());
    }
}
