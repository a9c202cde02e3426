//! `left4me-systemctl enable|disable|delete <name>` and `left4me-systemctl
//! show <name>...`: the web user's only way to change or inspect game server
//! units.
//!
//! `enable` first writes the instance's own unit configuration (a drop-in
//! generated from the validated name and its instance.env, read without
//! following symlinks): the dynamic user the game runs as, one per
//! instance, the exact ports it may bind, and its port and launch arguments
//! as `Environment=` (so PID 1 never reads a file the panel user can
//! redirect, as `EnvironmentFile=` would). systemd is reloaded only when
//! that file changed (the first start, a new port or new arguments), then
//! the unit is started and enabled.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use l4d2_contract::launch::{game_user, server_unit, GamePorts};
use l4d2host::instance::InstanceEnv;
use l4d2host::InstanceName;

use crate::grammar::{utf8, validate_name, GrammarError};
use crate::{tools, Argv};

pub const USAGE: &str =
    "left4me-systemctl [--dry-run] enable|disable|delete <name> | show <name>...";

/// The properties `show` reports, as `KEY=VALUE` lines per unit.
pub const SHOW_PROPERTIES: &str = "Id,ActiveState,SubState,MainPID,UID,NRestarts,Result,ExecMainCode,ExecMainStatus,CPUUsageNSec,MemoryCurrent,UnitFileState";
/// At most this many names in one `show` (a bound on the argv).
pub const MAX_SHOW: usize = 2000;
/// Where per-instance drop-ins go.
pub const UNIT_DIR: &str = "/etc/systemd/system";
const DROP_IN_NAME: &str = "50-left4me-instance.conf";

/// What a request does, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Enable(InstanceName),
    Disable(InstanceName),
    Delete(InstanceName),
    Show(Vec<InstanceName>),
}

/// Parses the arguments (after `--dry-run`).
pub fn plan(args: &[OsString]) -> Result<Plan, GrammarError> {
    let Some((verb, rest)) = args.split_first() else {
        return Err(GrammarError::Usage(USAGE));
    };
    let verb = utf8(verb, "verb")?;
    let name = |arg: &OsString| -> Result<InstanceName, GrammarError> {
        let value = utf8(arg, "instance name")?;
        validate_name(value, "instance name")?;
        InstanceName::parse(value).map_err(|_| GrammarError::BadName {
            what: "instance name",
            value: value.to_string(),
        })
    };
    let one = || match rest {
        [n] => name(n),
        _ => Err(GrammarError::Usage(USAGE)),
    };
    match verb {
        "enable" => Ok(Plan::Enable(one()?)),
        "disable" => Ok(Plan::Disable(one()?)),
        "delete" => Ok(Plan::Delete(one()?)),
        "show" if !rest.is_empty() && rest.len() <= MAX_SHOW => {
            Ok(Plan::Show(rest.iter().map(name).collect::<Result<_, _>>()?))
        }
        "show" => Err(GrammarError::Usage(USAGE)),
        other => Err(GrammarError::UnknownVerb {
            verb: other.to_string(),
            expected: "enable, disable, delete, show",
        }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DropInError {
    #[error(transparent)]
    Port(#[from] l4d2_contract::launch::PortTooHigh),
    #[error("instance arguments: {0}")]
    Args(#[from] l4d2_contract::launch::LaunchArgError),
}

/// The per-instance drop-in of `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropIn {
    pub dir: PathBuf,
    pub content: String,
}

impl DropIn {
    pub fn for_instance(
        unit_dir: &Path,
        name: &InstanceName,
        env: &InstanceEnv,
    ) -> Result<DropIn, DropInError> {
        let ports = GamePorts::for_game_port(env.port)?;
        // Checked again here: these words end up in a unit file.
        l4d2_contract::launch::check_user_args(&env.args)?;
        let user = game_user(name);
        // `%` starts a specifier in unit files; the other special characters
        // are already refused by the argument rules.
        let args = env.args.join(" ").replace('%', "%%");
        let mut content = format!(
            "# Written by left4me-systemctl when {name} starts; do not edit.\n\
             # The game runs as its own dynamic user and may bind only its ports.\n\
             [Service]\nUser={user}\nGroup={user}\n\
             Environment=L4D2_PORT={}\n\
             Environment=\"L4D2_ARGS={args}\"\n",
            ports.game
        );
        for rule in ports.socket_bind_rules() {
            content.push_str(&format!("SocketBindAllow={rule}\n"));
        }
        Ok(DropIn {
            dir: unit_dir.join(format!("{}.d", server_unit(name))),
            content,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(DROP_IN_NAME)
    }

    /// Whether the file on disk already says exactly this.
    pub fn is_current(&self) -> bool {
        std::fs::read_to_string(self.path()).is_ok_and(|c| c == self.content)
    }

    /// Writes it atomically (temporary file + rename, in root's own
    /// directory).
    pub fn write(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".{DROP_IN_NAME}.tmp"));
        std::fs::write(&tmp, &self.content)?;
        std::fs::rename(&tmp, self.path())
    }
}

pub fn enable_argvs(name: &InstanceName) -> [Argv; 2] {
    let unit = server_unit(name);
    [
        // A unit that hit its start limit (a crash loop) refuses to start
        // until it is reset; an operator's start is exactly that reset.
        Argv::new(tools::SYSTEMCTL, ["reset-failed", unit.as_str()]),
        Argv::new(tools::SYSTEMCTL, ["enable", "--now", unit.as_str()]),
    ]
}

pub fn disable_argv(name: &InstanceName) -> Argv {
    Argv::new(tools::SYSTEMCTL, ["disable", "--now", &server_unit(name)])
}

pub fn daemon_reload_argv() -> Argv {
    Argv::new(tools::SYSTEMCTL, ["daemon-reload"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn verbs_parse() {
        let n = InstanceName::parse("srv1").unwrap();
        assert_eq!(
            plan(&os(&["enable", "srv1"])).unwrap(),
            Plan::Enable(n.clone())
        );
        assert_eq!(
            plan(&os(&["delete", "srv1"])).unwrap(),
            Plan::Delete(n.clone())
        );
        assert_eq!(
            plan(&os(&["show", "srv1", "b"])).unwrap(),
            Plan::Show(vec![n.clone(), InstanceName::parse("b").unwrap()])
        );
        assert_eq!(
            enable_argvs(&n)[1].to_json_line(),
            r#"["/usr/bin/systemctl","enable","--now","left4me-server@srv1.service"]"#
        );
    }

    #[test]
    fn rejects_everything_else() {
        let too_many: Vec<&str> = std::iter::once("show")
            .chain(std::iter::repeat_n("a", MAX_SHOW + 1))
            .collect();
        for bad in [
            vec![],
            vec!["enable"],
            vec!["enable", "a", "b"],
            vec!["show"],
            vec!["start", "a"],
            vec!["enable", "../a"],
            vec!["enable", "a.service"],
            vec!["show", "a", "B"],
            vec!["ENABLE", "a"],
            too_many,
        ] {
            assert!(plan(&os(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn drop_in_names_the_user_and_exact_ports() {
        let n = InstanceName::parse("srv1").unwrap();
        let env = InstanceEnv {
            port: 27015,
            args: vec![
                "+map".into(),
                "c1m1_hotel".into(),
                "+hostname".into(),
                "100%".into(),
            ],
            lowerdirs: vec![],
        };
        let d = DropIn::for_instance(Path::new("/etc/systemd/system"), &n, &env).unwrap();
        assert_eq!(
            d.path(),
            Path::new("/etc/systemd/system/left4me-server@srv1.service.d/50-left4me-instance.conf")
        );
        for line in [
            "User=l4d2-srv1\n",
            "SocketBindAllow=udp:27015\n",
            "SocketBindAllow=tcp:27015\n",
            "SocketBindAllow=udp:37015\n",
            "SocketBindAllow=udp:47015\n",
            "Environment=L4D2_PORT=27015\n",
            "Environment=\"L4D2_ARGS=+map c1m1_hotel +hostname 100%%\"\n",
        ] {
            assert!(d.content.contains(line), "{line}: {}", d.content);
        }
        assert!(!d.content.contains("tcp:37015"));
        let hostile = InstanceEnv {
            args: vec!["+rcon_password".into(), "x".into()],
            ..env.clone()
        };
        assert!(DropIn::for_instance(Path::new("/x"), &n, &hostile).is_err());
        let dir = tempfile::tempdir().unwrap();
        let d = DropIn::for_instance(dir.path(), &n, &env).unwrap();
        assert!(!d.is_current());
        d.write().unwrap();
        assert!(d.is_current());
    }
}
