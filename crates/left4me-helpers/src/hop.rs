//! Leaving the caller's sandbox before doing anything privileged.
//!
//! The web app runs hardened (`left4me-web.service`): a private mount
//! namespace with `/etc` read-only, and a capability bounding set of only
//! what sudo needs. sudo gives a helper uid 0 inside that, but the bounding
//! set still applies: no CAP_DAC_OVERRIDE or CAP_DAC_READ_SEARCH, so the
//! `left4me`-owned data root (mode 0750) cannot even be traversed, and
//! nothing under `/etc` can be written. Instead of widening the web unit,
//! a helper that needs real root re-runs itself as a transient system unit
//! (`systemd-run --wait --pipe`): PID 1 starts it in its own mount
//! namespace with full capabilities, stdin/stdout/stderr are piped
//! through and the exit status comes back. Only then does it open paths or
//! validate anything on disk. The hop costs ~30 ms.

use std::os::unix::fs::MetadataExt;

use crate::{tools, Argv};

/// Set in the transient unit, so a helper that still lacks privileges
/// there fails instead of hopping again. (Trusting it can only make a
/// helper refuse, never skip a check.)
pub const HOP_ENV: &str = "LEFT4ME_HELPER_HOP";

/// Capabilities a helper's privileged work needs.
const NEEDED: rustix::thread::CapabilitySet = rustix::thread::CapabilitySet::CHOWN
    .union(rustix::thread::CapabilitySet::DAC_OVERRIDE)
    .union(rustix::thread::CapabilitySet::DAC_READ_SEARCH)
    .union(rustix::thread::CapabilitySet::FOWNER)
    .union(rustix::thread::CapabilitySet::SETUID)
    .union(rustix::thread::CapabilitySet::SETGID)
    .union(rustix::thread::CapabilitySet::SYS_ADMIN)
    .union(rustix::thread::CapabilitySet::SYS_CHROOT);

/// True when this process is root with the needed capabilities, in PID
/// 1's mount namespace (so paths mean what they mean for systemd).
pub fn fully_privileged() -> bool {
    rustix::process::geteuid().is_root() && has_needed_caps() && in_pid1_mount_namespace()
}

fn has_needed_caps() -> bool {
    rustix::thread::capabilities(None).is_ok_and(|caps| caps.effective.contains(NEEDED))
}

/// True when this process lives in PID 1's mount namespace. When PID 1 is
/// invisible (the caller's `ProtectProc=invisible` without CAP_SYS_PTRACE)
/// we are certainly not in its namespace.
pub fn in_pid1_mount_namespace() -> bool {
    let ns_id = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    match (ns_id("/proc/self/ns/mnt"), ns_id("/proc/1/ns/mnt")) {
        (Some(ours), Some(init)) => ours == init,
        _ => false,
    }
}

/// Whether this run is already the hop.
pub fn is_hop() -> bool {
    std::env::var_os(HOP_ENV).is_some()
}

/// `systemd-run` re-running `helper args…` as a plain root transient unit.
pub fn transient_argv(description: &str, helper: &str, args: &[String]) -> Argv {
    let mut all = vec![
        "--quiet".to_string(),
        "--wait".to_string(),
        "--pipe".to_string(),
        "--collect".to_string(),
        "--service-type=exec".to_string(),
        format!("--description={description}"),
        format!("--setenv={HOP_ENV}=1"),
        "--".to_string(),
        helper.to_string(),
    ];
    all.extend(args.iter().cloned());
    Argv::new(tools::SYSTEMD_RUN, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_argv_is_exact() {
        let argv = transient_argv(
            "x",
            "/usr/local/libexec/left4me/left4me-systemctl",
            &["enable".into(), "a".into()],
        );
        assert_eq!(
            argv.to_json_line(),
            r#"["/usr/bin/systemd-run","--quiet","--wait","--pipe","--collect","--service-type=exec","--description=x","--setenv=LEFT4ME_HELPER_HOP=1","--","/usr/local/libexec/left4me/left4me-systemctl","enable","a"]"#
        );
    }

    #[test]
    fn an_ordinary_test_process_is_not_fully_privileged_unless_root() {
        if !rustix::process::geteuid().is_root() {
            assert!(!fully_privileged());
        }
    }
}
