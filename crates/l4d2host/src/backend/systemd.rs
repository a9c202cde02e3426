//! The systemd backend: `left4me-server@<name>.service`, reached only through
//! `sudo -n` and the privileged helpers (the web user has no other way in).

use std::process::{Command, Stdio};

use super::BackendError;
use crate::{InstanceName, ServiceState};

/// Where the deployment installs the privileged helpers.
pub const HELPER_DIR: &str = "/usr/local/libexec/left4me";
const SUDO: &str = "/usr/bin/sudo";

#[derive(Debug, Default)]
pub struct SystemdBackend;

/// One helper invocation, as an exact argv (tested; the sudoers grants
/// depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemdCommand<'a> {
    Enable(&'a InstanceName),
    Disable(&'a InstanceName),
    /// Disable, stop and forget the instance's unit configuration.
    Delete(&'a InstanceName),
    /// The state of any number of instances in one call.
    Show(&'a [InstanceName]),
    Journal {
        name: &'a InstanceName,
        lines: usize,
        follow: bool,
    },
}

impl SystemdCommand<'_> {
    pub fn argv(&self) -> Vec<String> {
        let helper = |h: &str| format!("{HELPER_DIR}/{h}");
        let mut argv = vec![SUDO.to_string(), "-n".to_string()];
        match self {
            SystemdCommand::Enable(n) => {
                argv.extend([helper("left4me-systemctl"), "enable".into(), n.to_string()])
            }
            SystemdCommand::Disable(n) => {
                argv.extend([helper("left4me-systemctl"), "disable".into(), n.to_string()])
            }
            SystemdCommand::Delete(n) => {
                argv.extend([helper("left4me-systemctl"), "delete".into(), n.to_string()])
            }
            SystemdCommand::Show(names) => {
                argv.extend([helper("left4me-systemctl"), "show".into()]);
                argv.extend(names.iter().map(ToString::to_string));
            }
            SystemdCommand::Journal {
                name,
                lines,
                follow,
            } => argv.extend([
                helper("left4me-journalctl"),
                name.to_string(),
                "--lines".into(),
                lines.to_string(),
                if *follow { "--follow" } else { "--no-follow" }.into(),
            ]),
        }
        argv
    }

    fn command(&self) -> (Command, String) {
        let argv = self.argv();
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        (cmd, argv.join(" "))
    }

    /// Runs it, returning stdout; a non-zero exit is an error carrying stderr.
    fn run(&self) -> Result<String, BackendError> {
        let (mut cmd, display) = self.command();
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(|source| BackendError::Exec {
                command: display.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(BackendError::Command {
                command: display,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl SystemdBackend {
    pub fn start(&self, name: &InstanceName) -> Result<(), BackendError> {
        SystemdCommand::Enable(name).run().map(drop)
    }

    pub fn stop(&self, name: &InstanceName) -> Result<(), BackendError> {
        SystemdCommand::Disable(name).run().map(drop)
    }

    pub fn delete(&self, name: &InstanceName) -> Result<(), BackendError> {
        SystemdCommand::Delete(name).run().map(drop)
    }

    /// The state of every instance in `names`, in order, from one
    /// privileged round trip (a dashboard shows dozens of servers).
    pub fn states(&self, names: &[InstanceName]) -> Result<Vec<ServiceState>, BackendError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let cmd = SystemdCommand::Show(names);
        let out = cmd.run()?;
        parse_show_many(&out, names).map_err(|message| BackendError::Parse {
            command: cmd.argv().join(" "),
            message,
        })
    }

    pub fn logs(
        &self,
        name: &InstanceName,
        lines: usize,
        follow: bool,
    ) -> Result<(), BackendError> {
        let (mut cmd, display) = SystemdCommand::Journal {
            name,
            lines,
            follow,
        }
        .command();
        let status = cmd.status().map_err(|source| BackendError::Exec {
            command: display.clone(),
            source,
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(BackendError::Command {
                command: display,
                status: status.to_string(),
                stderr: "see above".into(),
            })
        }
    }
}

/// Parses `systemctl show u1 u2 … --property=Id,…`: one block of KEY=VALUE
/// lines per unit, separated by blank lines, matched to `names` by `Id`.
pub(crate) fn parse_show_many(
    text: &str,
    names: &[InstanceName],
) -> Result<Vec<ServiceState>, String> {
    let mut by_unit = std::collections::HashMap::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let id = block
            .lines()
            .find_map(|l| l.strip_prefix("Id="))
            .ok_or("a block without Id")?;
        by_unit.insert(id.to_string(), parse_show(block)?);
    }
    names
        .iter()
        .map(|n| {
            let unit = l4d2_contract::launch::server_unit(n);
            by_unit
                .remove(&unit)
                .ok_or_else(|| format!("no state for {unit}"))
        })
        .collect()
}

/// Parses one unit's `systemctl show --property=…` output (KEY=VALUE lines).
pub(crate) fn parse_show(text: &str) -> Result<ServiceState, String> {
    let mut state = ServiceState::stopped();
    let (mut active, mut sub) = (None, None);
    let (mut exit_code, mut exit_status) = (None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "ActiveState" => active = Some(value.to_owned()),
            "SubState" => sub = Some(value.to_owned()),
            "MainPID" => state.pid = value.parse::<u32>().ok().filter(|p| *p != 0),
            "UID" => state.uid = value.parse::<u32>().ok(),
            "UnitFileState" => state.enabled = Some(value == "enabled"),
            "NRestarts" => state.restarts = value.parse().ok(),
            "Result" => state.result = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "ExecMainCode" => exit_code = value.parse().ok(),
            "ExecMainStatus" => exit_status = value.parse().ok(),
            // Read by systemd from the unit's cgroup; `[not set]` (or
            // u64::MAX over D-Bus) when it has none or accounting is off.
            "CPUUsageNSec" => state.cpu_usage_nsec = cgroup_figure(value),
            "MemoryCurrent" => state.memory_bytes = cgroup_figure(value),
            _ => {}
        }
    }
    state.active_state = active.ok_or("no ActiveState")?;
    state.sub_state = sub.ok_or("no SubState")?;
    if let (Some(code), Some(status)) = (exit_code, exit_status) {
        state.last_exit = l4d2_contract::status::ProcessExit::from_systemd(code, status);
    }
    Ok(state)
}

/// A cgroup counter as `systemctl show` prints it: a number, or
/// `[not set]`/u64::MAX for "unknown".
fn cgroup_figure(value: &str) -> Option<u64> {
    value.parse::<u64>().ok().filter(|v| *v != u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_helper_argv() {
        let n = InstanceName::parse("srv-1").unwrap();
        let h = "/usr/local/libexec/left4me";
        assert_eq!(
            SystemdCommand::Enable(&n).argv(),
            [
                "/usr/bin/sudo",
                "-n",
                &format!("{h}/left4me-systemctl"),
                "enable",
                "srv-1"
            ]
        );
        assert_eq!(
            SystemdCommand::Disable(&n).argv(),
            [
                "/usr/bin/sudo",
                "-n",
                &format!("{h}/left4me-systemctl"),
                "disable",
                "srv-1"
            ]
        );
        let m = InstanceName::parse("srv-2").unwrap();
        assert_eq!(
            SystemdCommand::Show(&[n.clone(), m]).argv(),
            [
                "/usr/bin/sudo",
                "-n",
                &format!("{h}/left4me-systemctl"),
                "show",
                "srv-1",
                "srv-2"
            ]
        );
        assert_eq!(SystemdCommand::Delete(&n).argv()[3], "delete");
        assert_eq!(
            SystemdCommand::Journal {
                name: &n,
                lines: 50,
                follow: true
            }
            .argv(),
            [
                "/usr/bin/sudo",
                "-n",
                &format!("{h}/left4me-journalctl"),
                "srv-1",
                "--lines",
                "50",
                "--follow"
            ]
        );
        assert_eq!(
            SystemdCommand::Journal {
                name: &n,
                lines: 7,
                follow: false
            }
            .argv()
            .last()
            .unwrap(),
            "--no-follow"
        );
    }

    #[test]
    fn parses_systemctl_show() {
        let s = parse_show(
            "LoadState=loaded\nActiveState=active\nSubState=running\nMainPID=4242\nUnitFileState=enabled\nNRestarts=2\n",
        )
        .unwrap();
        assert_eq!(s.active_state, "active");
        assert_eq!(s.sub_state, "running");
        assert_eq!(s.pid, Some(4242));
        assert_eq!(s.enabled, Some(true));
        assert_eq!(s.restarts, Some(2));
        assert_eq!((s.result, s.last_exit), (None, None));
        let s = parse_show(
            "ActiveState=failed\nSubState=failed\nResult=start-limit-hit\nExecMainCode=2\nExecMainStatus=11\n",
        )
        .unwrap();
        assert_eq!(s.result.as_deref(), Some("start-limit-hit"));
        assert_eq!(
            s.last_exit,
            Some(l4d2_contract::status::ProcessExit::Killed(11))
        );
        let s =
            parse_show("ActiveState=inactive\nSubState=dead\nMainPID=0\nUnitFileState=disabled\n")
                .unwrap();
        assert_eq!((s.pid, s.enabled), (None, Some(false)));
        assert!(parse_show("garbage").unwrap_err().contains("ActiveState"));
        let s = parse_show(
            "ActiveState=active\nSubState=running\nCPUUsageNSec=1500000000\nMemoryCurrent=734003200\n",
        )
        .unwrap();
        assert_eq!(
            (s.cpu_usage_nsec, s.memory_bytes),
            (Some(1_500_000_000), Some(734_003_200))
        );
        let s = parse_show(&format!(
            "ActiveState=inactive\nSubState=dead\nCPUUsageNSec=[not set]\nMemoryCurrent={}\n",
            u64::MAX
        ))
        .unwrap();
        assert_eq!((s.cpu_usage_nsec, s.memory_bytes), (None, None));
        let s = parse_show(
            "ActiveState=active\nSubState=running\nCPUUsageNSec=-5\nMemoryCurrent=12kB\n",
        )
        .unwrap();
        assert_eq!((s.cpu_usage_nsec, s.memory_bytes), (None, None));
    }

    #[test]
    fn parses_many_units_in_the_order_asked() {
        let a = InstanceName::parse("a").unwrap();
        let b = InstanceName::parse("b").unwrap();
        let text = "Id=left4me-server@b.service\nActiveState=active\nSubState=running\nMainPID=9\nUID=61234\n\nId=left4me-server@a.service\nActiveState=inactive\nSubState=dead\nMainPID=0\nUID=[not set]\n";
        let states = parse_show_many(text, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(states[0].active_state, "inactive");
        assert_eq!(states[0].uid, None);
        assert_eq!((states[1].pid, states[1].uid), (Some(9), Some(61234)));
        let c = InstanceName::parse("c").unwrap();
        assert!(parse_show_many(text, &[c])
            .unwrap_err()
            .contains("left4me-server@c"));
    }
}
