//! Actual state of servers from `l4d2ctl list --json` (one call for the
//! dashboard) or `l4d2ctl status <name> --json`, and drift against the
//! desired state in the database.

use std::collections::HashMap;

use super::model::{Action, DesiredState};
use crate::l4d2ctl::{HostClient, HostError};

/// What `l4d2ctl` reports for one instance: the contract's type, the same
/// one `l4d2ctl` prints.
pub use crate::l4d2ctl::InstanceStatus;

/// A state for pages, in systemd's words.
/// The state in an operator's words: running, starting…, stopping…,
/// stopped, crashed, not started (see [`detail`] for systemd's own).
pub fn label(s: &InstanceStatus) -> String {
    if !s.exists {
        return NOT_STARTED.into();
    }
    match s.service.active_state.as_str() {
        "active" | "reloading" => "running",
        "activating" => "starting…",
        "deactivating" => "stopping…",
        "inactive" => "stopped",
        "failed" if s.service.result.as_deref() == Some("start-limit-hit") => CRASH_LOOP,
        "failed" => "crashed",
        other => other,
    }
    .into()
}

/// A server that crashed too often to be restarted until someone acts.
pub const CRASH_LOOP: &str = "crash loop";

/// A server the host has no instance of (never started, or deleted).
pub const NOT_STARTED: &str = "not started";

/// The service manager's words for the state (shown on hover).
pub fn detail(s: &InstanceStatus) -> String {
    if !s.exists {
        "no instance on the host yet".into()
    } else {
        format!(
            "{} ({}), backend {}",
            s.service.active_state, s.service.sub_state, s.backend
        )
    }
}

/// Every instance on the host by name, in one `l4d2ctl list --json` call.
pub async fn list_all(host: &HostClient) -> Result<HashMap<String, InstanceStatus>, HostError> {
    host.list().await
}

/// One instance (`l4d2ctl status <name> --json`).
pub async fn one(host: &HostClient, name: &str) -> Result<InstanceStatus, HostError> {
    host.status(name).await
}

/// Desired (database) vs actual (service) state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Should run but does not (crash loop, reboot without enable, …).
    ShouldRun { actual: String },
    /// Should be stopped but runs.
    ShouldStop { actual: String },
}

impl Drift {
    pub fn message(&self) -> String {
        match self {
            Drift::ShouldRun { actual } => format!("should be running, but is {actual}"),
            Drift::ShouldStop { actual } => format!("should be stopped, but is {actual}"),
        }
    }
    /// The action that restores the desired state.
    pub fn fix(&self) -> Action {
        match self {
            Drift::ShouldRun { .. } => Action::Start,
            Drift::ShouldStop { .. } => Action::Stop,
        }
    }
}

/// Drift of a server whose instance status is `actual` (None: the host
/// has no such instance).
pub fn drift(desired: DesiredState, actual: Option<&InstanceStatus>) -> Option<Drift> {
    let up = actual.is_some_and(InstanceStatus::is_up);
    let label = actual.map(label).unwrap_or_else(|| NOT_STARTED.into());
    match desired {
        DesiredState::Running if !up => Some(Drift::ShouldRun { actual: label }),
        DesiredState::Stopped if up => Some(Drift::ShouldStop { actual: label }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(active: &str, exists: bool) -> InstanceStatus {
        InstanceStatus {
            name: "a".into(),
            exists,
            backend: "local".into(),
            port: Some(27015),
            service: l4d2_contract::status::ServiceState {
                active_state: active.into(),
                sub_state: "x".into(),
                ..l4d2_contract::status::ServiceState::stopped()
            },
        }
    }

    #[test]
    fn drift_rules() {
        assert_eq!(
            drift(DesiredState::Running, Some(&st("active", true))),
            None
        );
        assert_eq!(
            drift(DesiredState::Stopped, Some(&st("inactive", true))),
            None
        );
        assert_eq!(drift(DesiredState::Stopped, None), None);
        assert!(matches!(
            drift(DesiredState::Running, Some(&st("failed", true))),
            Some(Drift::ShouldRun { .. })
        ));
        assert!(matches!(
            drift(DesiredState::Running, None),
            Some(Drift::ShouldRun { .. })
        ));
        assert!(matches!(
            drift(DesiredState::Stopped, Some(&st("active", true))),
            Some(Drift::ShouldStop { .. })
        ));
        let parsed: Vec<InstanceStatus> = serde_json::from_str(
            r#"[{"name":"a","exists":true,"backend":"local","port":27015,"active_state":"failed","sub_state":"failed","pid":null,"enabled":null,"restarts":null}]"#,
        )
        .unwrap();
        assert_eq!(parsed[0].service.active_state, "failed");
    }
}
