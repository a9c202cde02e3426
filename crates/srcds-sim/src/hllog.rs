//! HL Log Standard lines and the UDP framing srcds uses for `logaddress_add`
//! destinations:
//!
//! * without a secret: `FF FF FF FF 'R'(0x52) "L MM/DD/YYYY - HH:MM:SS: <event>" '\n' 0x00`
//! * with `sv_logsecret` set (non-zero): `FF FF FF FF 'S'(0x53) <secret> "L ..." '\n' 0x00`

/// Packet type byte of a log line without secret (S2A_LOGSTRING2).
pub const LOG_PLAIN: u8 = 0x52;
/// Packet type byte of a log line prefixed with `sv_logsecret` (S2A_LOGKEY).
pub const LOG_WITH_SECRET: u8 = 0x53;

/// `L <stamp>: <event>` — one log line without the trailing newline.
pub fn line(stamp: &str, event: &str) -> String {
    format!("L {stamp}: {event}")
}

/// A log line framed as srcds sends it over UDP.
pub fn packet(line: &str, secret: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 16);
    out.extend_from_slice(&[0xFF; 4]);
    match secret {
        Some(secret) => {
            out.push(LOG_WITH_SECRET);
            out.extend_from_slice(secret.as_bytes());
        }
        None => out.push(LOG_PLAIN),
    }
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    out.push(0);
    out
}

/// The secret to frame with: `sv_logsecret` unless empty or "0" (its default).
pub fn effective_secret(sv_logsecret: &str) -> Option<&str> {
    let s = sv_logsecret.trim();
    (!s.is_empty() && s != "0").then_some(s)
}

/// `"Name<uid><STEAM_1:0:x><Team>"`, the player tag of the HL Log Standard.
pub fn player_tag(name: &str, userid: u32, steam_id: &str, team: &str) -> String {
    format!("\"{name}<{userid}><{steam_id}><{team}>\"")
}

/// The tag srcds uses for the server console as a speaker or kicker.
pub const CONSOLE_TAG: &str = "\"Console<0><Console><Console>\"";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_plain_and_secret() {
        let l = line("11/22/2025 - 00:35:07", "Started map \"c1m1_hotel\"");
        assert_eq!(l, "L 11/22/2025 - 00:35:07: Started map \"c1m1_hotel\"");
        let p = packet(&l, None);
        assert_eq!(&p[..5], &[0xFF, 0xFF, 0xFF, 0xFF, b'R']);
        assert_eq!(&p[5..p.len() - 2], l.as_bytes());
        assert_eq!(&p[p.len() - 2..], b"\n\0");
        let s = packet(&l, Some("4242"));
        assert_eq!(&s[..9], b"\xFF\xFF\xFF\xFFS4242");
        assert_eq!(&s[9..s.len() - 2], l.as_bytes());
    }

    #[test]
    fn secret_default_is_none() {
        assert_eq!(effective_secret("0"), None);
        assert_eq!(effective_secret(""), None);
        assert_eq!(effective_secret("77"), Some("77"));
    }
}
