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
}
