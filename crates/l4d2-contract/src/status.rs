//! What `l4d2ctl status <name> --json` (one object) and `l4d2ctl list
//! --json` (an array, sorted by name) print.

use serde::{Deserialize, Serialize};

/// The state of one instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    /// Whether `instances/<name>/` is defined.
    pub exists: bool,
    /// `systemd` or `local`.
    pub backend: String,
    pub port: Option<u16>,
    #[serde(flatten)]
    pub service: ServiceState,
}

impl InstanceStatus {
    /// Running or on its way there (systemd's words).
    pub fn is_up(&self) -> bool {
        self.exists && self.service.is_up()
    }
}

/// What the service manager says about an instance, in systemd's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// `active`, `inactive`, `failed`, `activating`, `deactivating`, …
    pub active_state: String,
    /// `running`, `dead`, `failed`, `auto-restart`, …
    pub sub_state: String,
    pub pid: Option<u32>,
    /// The uid the game process runs as (each instance has its own), when
    /// it runs. Lets the panel check that a port really belongs to the
    /// instance before it sends the RCON password there.
    #[serde(default)]
    pub uid: Option<u32>,
    /// Whether it comes back after a reboot (systemd only).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// How often systemd restarted it since it was started (systemd only).
    #[serde(default)]
    pub restarts: Option<u32>,
    /// How the unit's last run ended, systemd's `Result=`: `success`,
    /// `exit-code`, `signal`, `core-dump`, `timeout`, `start-limit-hit`, …
    /// (systemd only).
    #[serde(default)]
    pub result: Option<String>,
    /// How the main process last ended, when it has ended (systemd only).
    #[serde(default)]
    pub last_exit: Option<ProcessExit>,
    /// CPU time the game has used since it started, in nanoseconds: its
    /// unit's cgroup under systemd, its process tree's `/proc` times
    /// locally. None when unknown or not running.
    #[serde(default)]
    pub cpu_usage_nsec: Option<u64>,
    /// Memory it holds now, in bytes: the cgroup's `memory.current` under
    /// systemd, the process tree's resident set locally.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
}

/// How a process ended: its exit status, or the signal that ended it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessExit {
    Exited(i32),
    Killed(i32),
    /// Killed by a signal, with a core dump.
    Dumped(i32),
}

impl ProcessExit {
    /// From systemd's `ExecMainCode` (the `si_code` of the exit: 1 exited,
    /// 2 killed, 3 dumped) and `ExecMainStatus`; None before any exit.
    pub fn from_systemd(code: i32, status: i32) -> Option<ProcessExit> {
        match code {
            1 => Some(ProcessExit::Exited(status)),
            2 => Some(ProcessExit::Killed(status)),
            3 => Some(ProcessExit::Dumped(status)),
            _ => None,
        }
    }

    /// In an operator's words: "exit status 1", "killed by signal 11 (SIGSEGV)".
    pub fn describe(&self) -> String {
        match *self {
            ProcessExit::Exited(status) => format!("exit status {status}"),
            ProcessExit::Killed(sig) => format!("killed by signal {sig}{}", signal_name(sig)),
            ProcessExit::Dumped(sig) => {
                format!("killed by signal {sig}{}, core dumped", signal_name(sig))
            }
        }
    }
}

/// " (SIGSEGV)" for the signals a crashing game server usually dies of.
fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => " (SIGHUP)",
        2 => " (SIGINT)",
        4 => " (SIGILL)",
        6 => " (SIGABRT)",
        7 => " (SIGBUS)",
        8 => " (SIGFPE)",
        9 => " (SIGKILL)",
        11 => " (SIGSEGV)",
        13 => " (SIGPIPE)",
        15 => " (SIGTERM)",
        _ => "",
    }
}

impl ServiceState {
    pub fn stopped() -> ServiceState {
        ServiceState {
            active_state: "inactive".into(),
            sub_state: "dead".into(),
            pid: None,
            uid: None,
            enabled: None,
            restarts: None,
            result: None,
            last_exit: None,
            cpu_usage_nsec: None,
            memory_bytes: None,
        }
    }

    pub fn is_up(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "reloading"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_flattened() {
        let s = InstanceStatus {
            name: "a".into(),
            exists: true,
            backend: "local".into(),
            port: Some(27015),
            service: ServiceState {
                pid: Some(7),
                uid: Some(61000),
                ..ServiceState::stopped()
            },
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""active_state":"inactive""#), "{json}");
        assert_eq!(serde_json::from_str::<InstanceStatus>(&json).unwrap(), s);
        // Older hosts did not print uid: still readable.
        let old = r#"{"name":"a","exists":false,"backend":"systemd","port":null,"active_state":"inactive","sub_state":"dead","pid":null}"#;
        assert_eq!(
            serde_json::from_str::<InstanceStatus>(old)
                .unwrap()
                .service
                .uid,
            None
        );
    }

    #[test]
    fn exits_in_words() {
        assert_eq!(ProcessExit::from_systemd(0, 0), None);
        assert_eq!(
            ProcessExit::from_systemd(2, 11).map(|e| e.describe()),
            Some("killed by signal 11 (SIGSEGV)".into())
        );
        assert_eq!(
            ProcessExit::from_systemd(1, 3).map(|e| e.describe()),
            Some("exit status 3".into())
        );
        assert_eq!(
            ProcessExit::Dumped(6).describe(),
            "killed by signal 6 (SIGABRT), core dumped"
        );
        let json = serde_json::to_string(&ProcessExit::Killed(9)).unwrap();
        assert_eq!(json, r#"{"killed":9}"#);
    }
}
