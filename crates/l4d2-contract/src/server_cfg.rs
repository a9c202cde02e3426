//! The cvars the panel manages in server.cfg.
//!
//! The web app appends its own lines (`rcon_password`, `sv_logsecret`,
//! `log on`, `logaddress_add`) after a blueprint's server.cfg text. A
//! blueprint may not set them at all: the panel's values must hold however
//! the engine orders command-line and config commands, and a line that
//! sets them is almost certainly a mistake or an attack.

use crate::launch::owned_cvar;

/// A blueprint server.cfg line that sets something the panel manages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server.cfg line {line}: `{command}` is managed by left4me ({reason}); remove it")]
pub struct ManagedCvarLine {
    pub line: usize,
    pub command: String,
    pub reason: &'static str,
}

/// Checks a blueprint's server.cfg text. Every command position counts:
/// the start of a line, after `;`, and inside quotes (an `alias` body runs
/// as a command later). `//` starts a comment outside quotes.
pub fn check_user_config(text: &str) -> Result<(), ManagedCvarLine> {
    for (i, line) in text.lines().enumerate() {
        for segment in command_segments(line) {
            let Some(word) = segment.split_whitespace().next() else {
                continue;
            };
            if let Some(reason) = owned_cvar(word) {
                return Err(ManagedCvarLine {
                    line: i + 1,
                    command: word.to_string(),
                    reason,
                });
            }
        }
    }
    Ok(())
}

/// Splits a line at `;` and `"` (both start a new command position), up to
/// a `//` comment outside quotes.
fn command_segments(line: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' if !in_quotes && bytes.get(i + 1) == Some(&b'/') => {
                segments.push(&line[start..i]);
                return segments;
            }
            b'"' => {
                in_quotes = !in_quotes;
                segments.push(&line[start..i]);
                start = i + 1;
            }
            b';' => {
                segments.push(&line[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    segments.push(&line[start..]);
    segments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_configs_pass() {
        let cfg = "hostname \"my server\" // rcon_password in a comment is fine\n\
                   sv_cheats 0; mp_gamemode coop\n\
                   exec extra.cfg\n\
                   sm_cvar logging_thing 1\n\
                   say \"hello; world\"\n";
        assert_eq!(check_user_config(cfg), Ok(()));
    }

    #[test]
    fn managed_cvars_are_refused_everywhere() {
        for (cfg, line, command) in [
            ("rcon_password secret", 1, "rcon_password"),
            ("hostname x\n  RCON_PASSWORD \"a\"", 2, "RCON_PASSWORD"),
            ("sv_cheats 0; sv_logsecret 5", 1, "sv_logsecret"),
            ("log off", 1, "log"),
            ("logaddress_add 1.2.3.4:27500", 1, "logaddress_add"),
            ("logaddress_delall", 1, "logaddress_delall"),
            ("alias steal \"rcon_password mine\"", 1, "rcon_password"),
            ("hostport 27016", 1, "hostport"),
            (
                "net_usesocketsforloopback 1",
                1,
                "net_usesocketsforloopback",
            ),
        ] {
            let e = check_user_config(cfg).unwrap_err();
            assert_eq!((e.line, e.command.as_str()), (line, command), "{cfg}");
            assert!(e.to_string().contains("managed by left4me"));
        }
    }
}
