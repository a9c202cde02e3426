//! Actual state of servers from `l4d2ctl list --json` (one call for the
//! dashboard) or `l4d2ctl status <name> --json`, and drift against the
//! desired state in the database.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use crate::jobs::Jobs;

/// Status calls must not hang a page.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// What `l4d2ctl` reports for one instance (l4d2host::InstanceStatus).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub exists: bool,
    pub port: Option<u16>,
    pub active_state: String,
    pub sub_state: String,
    pub pid: Option<u32>,
    #[serde(default)]
    pub restarts: Option<u32>,
}

impl InstanceStatus {
    /// Running or on its way there (systemd's words).
    pub fn is_up(&self) -> bool {
        self.exists
            && matches!(
                self.active_state.as_str(),
                "active" | "activating" | "reloading"
            )
    }
    pub fn label(&self) -> String {
        if !self.exists {
            "not initialized".into()
        } else {
            format!("{} ({})", self.active_state, self.sub_state)
        }
    }
}

async fn run_json(jobs: &Jobs, args: &[&str]) -> Result<Vec<u8>, String> {
    let mut cmd = jobs.l4d2ctl_command().map_err(|e| e.to_string())?;
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(STATUS_TIMEOUT, cmd.output())
        .await
        .map_err(|_| {
            format!(
                "l4d2ctl {} did not answer within {} s",
                args.join(" "),
                STATUS_TIMEOUT.as_secs()
            )
        })?
        .map_err(|e| format!("cannot run l4d2ctl: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim();
        return Err(format!("l4d2ctl {} failed: {last}", args.join(" ")));
    }
    Ok(out.stdout)
}

/// Every instance on the host by name, in one `l4d2ctl list --json` call.
pub async fn list_all(jobs: &Jobs) -> Result<HashMap<String, InstanceStatus>, String> {
    let out = run_json(jobs, &["list", "--json"]).await?;
    let all: Vec<InstanceStatus> = serde_json::from_slice(&out)
        .map_err(|e| format!("l4d2ctl list --json printed something unexpected: {e}"))?;
    Ok(all.into_iter().map(|s| (s.name.clone(), s)).collect())
}

/// One instance (`l4d2ctl status <name> --json`).
pub async fn one(jobs: &Jobs, name: &str) -> Result<InstanceStatus, String> {
    let out = run_json(jobs, &["status", name, "--json"]).await?;
    serde_json::from_slice(&out)
        .map_err(|e| format!("l4d2ctl status --json printed something unexpected: {e}"))
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
    /// The job kind that restores the desired state.
    pub fn fix_kind(&self) -> &'static str {
        match self {
            Drift::ShouldRun { .. } => "server-start",
            Drift::ShouldStop { .. } => "server-stop",
        }
    }
}

/// Drift of a server whose instance status is `actual` (None: the host
/// has no such instance).
pub fn drift(desired: &str, actual: Option<&InstanceStatus>) -> Option<Drift> {
    let up = actual.is_some_and(InstanceStatus::is_up);
    let label = actual
        .map(InstanceStatus::label)
        .unwrap_or_else(|| "not initialized".into());
    match desired {
        "running" if !up => Some(Drift::ShouldRun { actual: label }),
        "stopped" if up => Some(Drift::ShouldStop { actual: label }),
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
            port: Some(27015),
            active_state: active.into(),
            sub_state: "x".into(),
            pid: None,
            restarts: None,
        }
    }

    #[test]
    fn drift_rules() {
        assert_eq!(drift("running", Some(&st("active", true))), None);
        assert_eq!(drift("stopped", Some(&st("inactive", true))), None);
        assert_eq!(drift("stopped", None), None);
        assert!(matches!(
            drift("running", Some(&st("failed", true))),
            Some(Drift::ShouldRun { .. })
        ));
        assert!(matches!(
            drift("running", None),
            Some(Drift::ShouldRun { .. })
        ));
        assert!(matches!(
            drift("stopped", Some(&st("active", true))),
            Some(Drift::ShouldStop { .. })
        ));
        let parsed: Vec<InstanceStatus> = serde_json::from_str(
            r#"[{"name":"a","exists":true,"backend":"local","port":27015,"active_state":"failed","sub_state":"failed","pid":null,"enabled":null,"restarts":null}]"#,
        )
        .unwrap();
        assert_eq!(parsed[0].active_state, "failed");
    }
}
