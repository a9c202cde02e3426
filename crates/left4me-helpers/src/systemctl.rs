//! `left4me-systemctl enable|disable|show <name>`: the web user's only way to
//! change or inspect a game server unit.

use std::ffi::OsString;

use crate::grammar::{utf8, validate_name, GrammarError};
use crate::{tools, Argv};

pub const USAGE: &str = "left4me-systemctl [--dry-run] enable|disable|show <name>";

/// The properties `show` reports, as `KEY=VALUE` lines.
pub const SHOW_PROPERTIES: &str = "LoadState,ActiveState,SubState,MainPID,UnitFileState,NRestarts";

/// The unit of one game server instance.
pub fn server_unit(name: &str) -> String {
    format!("left4me-server@{name}.service")
}

/// Parses the arguments (after `--dry-run`) into the one `systemctl` argv to run.
pub fn plan(args: &[OsString]) -> Result<Argv, GrammarError> {
    let [verb, name] = args else {
        return Err(GrammarError::Usage(USAGE));
    };
    let verb = utf8(verb, "verb")?;
    let name = utf8(name, "instance name")?;
    validate_name(name, "instance name")?;
    let unit = server_unit(name);
    let argv = match verb {
        "enable" => Argv::new(tools::SYSTEMCTL, ["enable", "--now", unit.as_str()]),
        "disable" => Argv::new(tools::SYSTEMCTL, ["disable", "--now", unit.as_str()]),
        "show" => Argv::new(
            tools::SYSTEMCTL,
            [
                "show",
                unit.as_str(),
                &format!("--property={SHOW_PROPERTIES}"),
            ],
        ),
        other => {
            return Err(GrammarError::UnknownVerb {
                verb: other.to_string(),
                expected: "enable, disable, show",
            })
        }
    };
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn verbs_map_to_fixed_argv() {
        let enable = plan(&os(&["enable", "srv1"])).unwrap();
        assert_eq!(
            enable.to_json_line(),
            r#"["/usr/bin/systemctl","enable","--now","left4me-server@srv1.service"]"#
        );
        let show = plan(&os(&["show", "srv1"])).unwrap();
        assert_eq!(show.args[2], format!("--property={SHOW_PROPERTIES}"));
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            vec![],
            vec!["enable"],
            vec!["enable", "a", "b"],
            vec!["start", "a"],
            vec!["enable", "../a"],
            vec!["enable", "a.service"],
            vec!["ENABLE", "a"],
        ] {
            assert!(plan(&os(&bad)).is_err(), "{bad:?}");
        }
    }
}
