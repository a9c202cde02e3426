//! `left4me-overlay mount|umount <name>`: mounts or unmounts one instance's
//! overlay. Run by systemd (`ExecStartPre=+`/`ExecStopPost=+` through
//! `nsenter --mount=/proc/1/ns/mnt`), so the mount lives in PID 1's mount
//! namespace. All overlay rules (SPEC §5) live in `l4d2host::overlay`.

use std::ffi::OsString;
use std::path::Path;

use crate::grammar::{utf8, validate_name, GrammarError};

pub const USAGE: &str = "left4me-overlay [--dry-run] mount|umount <name>";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Mount,
    Umount,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Mount => "mount",
            Verb::Umount => "umount",
        }
    }
}

/// A parsed request: the verb and a validated instance name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub verb: Verb,
    pub name: String,
}

pub fn parse(args: &[OsString]) -> Result<Request, GrammarError> {
    let [verb, name] = args else {
        return Err(GrammarError::Usage(USAGE));
    };
    let verb = match utf8(verb, "verb")? {
        "mount" => Verb::Mount,
        "umount" => Verb::Umount,
        other => {
            return Err(GrammarError::UnknownVerb {
                verb: other.to_string(),
                expected: "mount, umount",
            })
        }
    };
    let name = utf8(name, "instance name")?;
    validate_name(name, "instance name")?;
    Ok(Request {
        verb,
        name: name.to_string(),
    })
}

/// What `--dry-run` prints: the overlay helper runs no external tool (it uses
/// `fsopen`/`fsconfig` in-process), so it prints the operation it would do.
pub fn dry_run_line(request: &Request, root: &Path) -> String {
    serde_json::json!({
        "operation": request.verb.as_str(),
        "instance": request.name,
        "data_root": root.display().to_string(),
        "merged": root.join("runtime").join(&request.name).join("merged").display().to_string(),
    })
    .to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid instance name: {0}")]
    Name(#[from] l4d2host::NameError),
    #[error("overlay {verb} of instance {name:?} failed: {source}")]
    Overlay {
        verb: &'static str,
        name: String,
        source: Box<l4d2host::overlay::OverlayError>,
    },
}

/// Performs the request; returns a one-line description of the outcome.
pub fn run(request: &Request, root: &Path) -> Result<String, RunError> {
    let layout = l4d2host::Layout::new(root);
    let name = l4d2host::InstanceName::parse(&request.name)?;
    let wrap = |source| RunError::Overlay {
        verb: request.verb.as_str(),
        name: request.name.clone(),
        source: Box::new(source),
    };
    let outcome = match request.verb {
        Verb::Mount => format!(
            "{:?}",
            l4d2host::overlay::mount(&layout, &name).map_err(wrap)?
        ),
        Verb::Umount => format!(
            "{:?}",
            l4d2host::overlay::umount(&layout, &name).map_err(wrap)?
        ),
    };
    Ok(format!(
        "{} {}: {outcome}",
        request.verb.as_str(),
        request.name
    ))
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
            parse(&os(&["mount", "a1"])).unwrap(),
            Request {
                verb: Verb::Mount,
                name: "a1".into()
            }
        );
        assert_eq!(parse(&os(&["umount", "a1"])).unwrap().verb, Verb::Umount);
        for bad in [
            vec![],
            vec!["mount"],
            vec!["unmount", "a"],
            vec!["mount", "a", "b"],
            vec!["mount", "../x"],
            vec!["mount", ""],
        ] {
            assert!(parse(&os(&bad)).is_err(), "{bad:?}");
        }
    }
}
