//! `left4me-journalctl <name> --lines N --follow|--no-follow`: console lines of
//! one game server unit, the web user's only read access to the journal.

use std::ffi::OsString;

use crate::grammar::{parse_lines, utf8, validate_name, GrammarError};
use crate::{tools, Argv};

pub const USAGE: &str = "left4me-journalctl [--dry-run] <name> --lines <N> --follow|--no-follow";

/// Parses the arguments (after `--dry-run`) into the `journalctl` argv. The
/// grammar is positional and exact: no `--lines=N`, no reordering.
pub fn plan(args: &[OsString]) -> Result<Argv, GrammarError> {
    let [name, lines_flag, lines, follow] = args else {
        return Err(GrammarError::Usage(USAGE));
    };
    let name = utf8(name, "instance name")?;
    validate_name(name, "instance name")?;
    if lines_flag != "--lines" {
        return Err(GrammarError::Usage(USAGE));
    }
    let lines = parse_lines(utf8(lines, "line count")?)?;
    let follow = match utf8(follow, "follow flag")? {
        "--follow" => true,
        "--no-follow" => false,
        _ => return Err(GrammarError::Usage(USAGE)),
    };
    let unit = format!("left4me-server@{name}.service");
    let lines = lines.to_string();
    let mut args = vec![
        "--unit",
        unit.as_str(),
        "--lines",
        lines.as_str(),
        "--output=cat",
        "--no-pager",
    ];
    if follow {
        args.push("--follow");
    }
    Ok(Argv::new(tools::JOURNALCTL, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn accepted_forms() {
        let argv = plan(&os(&["srv", "--lines", "50", "--no-follow"])).unwrap();
        assert_eq!(
            argv.to_json_line(),
            r#"["/usr/bin/journalctl","--unit","left4me-server@srv.service","--lines","50","--output=cat","--no-pager"]"#
        );
        let argv = plan(&os(&["srv", "--lines", "0", "--follow"])).unwrap();
        assert_eq!(argv.args.last().map(String::as_str), Some("--follow"));
    }

    #[test]
    fn rejected_forms() {
        for bad in [
            vec!["srv"],
            vec!["srv", "--lines=5", "--follow"],
            vec!["srv", "--lines", "5"],
            vec!["srv", "--follow", "--lines", "5"],
            vec!["srv", "-n", "5", "--follow"],
            vec!["srv", "--lines", "-5", "--follow"],
            vec!["srv", "--lines", "5", "-f"],
            vec!["srv", "--lines", "5", "--follow", "extra"],
            vec!["Srv", "--lines", "5", "--follow"],
        ] {
            assert!(plan(&os(&bad)).is_err(), "{bad:?}");
        }
    }
}
