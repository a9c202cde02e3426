//! `left4me-overlay attach <name>`: builds an instance's view of the data
//! root (its overlay, the Steam libraries, the workshop cache; see
//! `l4d2host::view`) and places it into the mount namespace of the unit's
//! main process. Run by systemd only, as
//! `ExecStartPost=+left4me-overlay attach %i` of `left4me-server@.service`
//! (not in sudoers): `$MAINPID` is then the unit's `l4d2-launch`, waiting
//! for its view.
//!
//! The mounts exist only in the game's namespace and vanish with it, so
//! there is nothing to unmount and no other namespace can pin them.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use l4d2host::view::{GameIds, Target, ViewPlan};

use crate::grammar::{utf8, validate_name, GrammarError};

pub const USAGE: &str = "left4me-overlay [--dry-run] attach <name>";

/// systemd's range for `DynamicUser=` uids (DYNAMIC_UID_MIN..=MAX).
pub const DYNAMIC_UIDS: std::ops::RangeInclusive<u32> = 61184..=65519;
/// The program the unit's main process must be running.
pub const LAUNCHER: &str = "/opt/left4me/bin/l4d2-launch";

/// A parsed request: a validated instance name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
}

pub fn parse(args: &[OsString]) -> Result<Request, GrammarError> {
    let [verb, name] = args else {
        return Err(GrammarError::Usage(USAGE));
    };
    match utf8(verb, "verb")? {
        "attach" => {}
        other => {
            return Err(GrammarError::UnknownVerb {
                verb: other.to_string(),
                expected: "attach",
            })
        }
    }
    let name = utf8(name, "instance name")?;
    validate_name(name, "instance name")?;
    Ok(Request {
        name: name.to_string(),
    })
}

/// What `--dry-run` prints: the helper runs no external tool, so it prints
/// the operation it would do.
pub fn dry_run_line(request: &Request, root: &Path, main_pid: Option<u32>) -> String {
    serde_json::json!({
        "operation": "attach",
        "instance": request.name,
        "data_root": root.display().to_string(),
        "main_pid": main_pid,
    })
    .to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("invalid instance name: {0}")]
    Name(#[from] l4d2host::NameError),
    #[error("MAINPID is not set or not a pid: run this from the unit's ExecStartPost=")]
    NoMainPid,
    #[error("cannot open process {pid}: {source}")]
    Process { pid: u32, source: std::io::Error },
    #[error("process {pid} is not the main process of {unit} (its cgroup is {cgroup:?})")]
    WrongUnit {
        pid: u32,
        unit: String,
        cgroup: String,
    },
    #[error("process {pid} runs {exe}, not {LAUNCHER}")]
    WrongProgram { pid: u32, exe: String },
    #[error("process {pid} runs as uid {uid}, not as a dynamic user of its own (DynamicUser=); refusing to give it the instance's files")]
    NotDynamicUser { pid: u32, uid: u32 },
    #[error("process {pid} exited before its view was placed")]
    Gone { pid: u32 },
    #[error(transparent)]
    View(#[from] l4d2host::ViewError),
}

/// The main pid systemd passes to `ExecStartPost=` commands.
pub fn main_pid_from_env() -> Option<u32> {
    std::env::var("MAINPID")
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 1)
}

/// Verifies that `pid` is the waiting launcher of the instance's unit and
/// places the view into its namespace. Must run as root, single-threaded.
pub fn attach(request: &Request, root: &Path, pid: u32) -> Result<String, AttachError> {
    let name = l4d2host::InstanceName::parse(&request.name)?;
    let proc_err = |source: std::io::Error| AttachError::Process { pid, source };
    let raw_pid = rustix::process::Pid::from_raw(pid as i32).ok_or(AttachError::NoMainPid)?;
    // The pidfd pins the process: whatever we check below is this process,
    // as long as it is still alive afterwards.
    let pidfd: OwnedFd = rustix::process::pidfd_open(raw_pid, rustix::process::PidfdFlags::empty())
        .map_err(|e| proc_err(e.into()))?;
    let unit = l4d2_contract::launch::server_unit(&name);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(proc_err)?;
    let in_unit = cgroup
        .lines()
        .any(|l| l.starts_with("0::") && l.ends_with(&format!("/{unit}")));
    if !in_unit {
        return Err(AttachError::WrongUnit {
            pid,
            unit,
            cgroup: cgroup.trim().to_string(),
        });
    }
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map_err(proc_err)?;
    if exe != Path::new(LAUNCHER) {
        return Err(AttachError::WrongProgram {
            pid,
            exe: exe.display().to_string(),
        });
    }
    let game = process_ids(pid).map_err(proc_err)?;
    if !DYNAMIC_UIDS.contains(&game.uid) {
        return Err(AttachError::NotDynamicUser { pid, uid: game.uid });
    }
    if !pidfd_alive(&pidfd) {
        return Err(AttachError::Gone { pid });
    }
    let layout = l4d2host::Layout::new(root);
    ViewPlan::prepare(&layout, &name)?.place(game, Target::Process(pidfd.as_fd()))?;
    Ok(format!(
        "attach {}: view placed for pid {pid} (uid {})",
        request.name, game.uid
    ))
}

/// Signal 0 through the pidfd: the checked process still exists (so the
/// /proc files read above were its own, not a recycled pid's).
fn pidfd_alive(pidfd: &OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_send_signal(2) with signal 0 (existence check), no
    // siginfo, no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    rc == 0
}

/// Real uid/gid of a process (all four ids must agree: a launcher that
/// changed ids is not what the unit started).
fn process_ids(pid: u32) -> std::io::Result<GameIds> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let ids = |key: &str| -> Option<u32> {
        let values: Vec<u32> = status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        (values.len() == 4 && values.iter().all(|v| *v == values[0])).then(|| values[0])
    };
    match (ids("Uid:"), ids("Gid:")) {
        (Some(uid), Some(gid)) => Ok(GameIds { uid, gid }),
        _ => Err(std::io::Error::other(
            "unexpected or mixed uid/gid in /proc status",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn grammar() {
        assert_eq!(
            parse(&os(&["attach", "a1"])).unwrap(),
            Request { name: "a1".into() }
        );
        for bad in [
            vec![],
            vec!["attach"],
            vec!["mount", "a"],
            vec!["umount", "a"],
            vec!["attach", "a", "b"],
            vec!["attach", "../x"],
            vec!["attach", ""],
        ] {
            assert!(parse(&os(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_a_process_of_another_unit() {
        let me = std::process::id();
        let e = attach(
            &Request { name: "a1".into() },
            Path::new("/nonexistent"),
            me,
        )
        .unwrap_err();
        assert!(matches!(e, AttachError::WrongUnit { .. }), "{e}");
    }
}
