//! SteamIDs of individual accounts in the forms Source games print:
//! `STEAM_X:Y:Z` (SteamID2, `status` and HL logs) and `[U:1:N]` (SteamID3),
//! converted to and from the 64-bit form the Steam Web API uses.
//!
//! SteamID64 layout: universe (8 bits) | account type (4) | instance (20) |
//! account id (32). Individual accounts have type 1 and instance 1, so the
//! public universe's base is 76561197960265728.

use thiserror::Error;

/// Account type "individual" (a player).
const TYPE_INDIVIDUAL: u64 = 1;
/// The desktop instance individual accounts use.
const INSTANCE_DESKTOP: u64 = 1;
/// The public universe.
const UNIVERSE_PUBLIC: u64 = 1;
/// Highest defined universe (5: RC).
const MAX_UNIVERSE: u64 = 5;

/// An input that is not a SteamID we understand.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SteamIdError {
    #[error("{0:?} is not a SteamID (expected STEAM_X:Y:Z, [U:1:N] or a 17-digit SteamID64)")]
    Format(String),
    #[error("SteamID {input:?}: {why}")]
    OutOfRange { input: String, why: &'static str },
    #[error("SteamID64 {0} is not an individual account")]
    NotIndividual(u64),
}

fn out_of_range(input: &str, why: &'static str) -> SteamIdError {
    SteamIdError::OutOfRange {
        input: input.to_string(),
        why,
    }
}

/// Digits only (no sign, no spaces, no `+`): `str::parse` alone would
/// accept `+5`.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn compose(universe: u64, account: u64) -> u64 {
    (universe << 56) | (TYPE_INDIVIDUAL << 52) | (INSTANCE_DESKTOP << 32) | account
}

/// Parses `STEAM_X:Y:Z`, `[U:1:N]` or a decimal SteamID64 of an individual
/// account into its SteamID64.
///
/// `STEAM_0:` is what older Source games print for the public universe, so
/// X = 0 means universe 1, as Valve documents.
pub fn parse_steam_id(input: &str) -> Result<u64, SteamIdError> {
    let format_err = || SteamIdError::Format(input.to_string());
    if let Some(rest) = input.strip_prefix("STEAM_") {
        let mut parts = rest.split(':');
        let (Some(x), Some(y), Some(z), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format_err());
        };
        let x = parse_digits(x).ok_or_else(format_err)?;
        let y = parse_digits(y).ok_or_else(format_err)?;
        let z = parse_digits(z).ok_or_else(format_err)?;
        if x > MAX_UNIVERSE {
            return Err(out_of_range(input, "universe X must be 0..=5"));
        }
        if y > 1 {
            return Err(out_of_range(input, "Y must be 0 or 1"));
        }
        if z > u64::from(u32::MAX >> 1) {
            return Err(out_of_range(input, "Z must be below 2^31"));
        }
        let universe = if x == 0 { UNIVERSE_PUBLIC } else { x };
        return Ok(compose(universe, z * 2 + y));
    }
    if let Some(inner) = input.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let mut parts = inner.split(':');
        let (Some(kind), Some(universe), Some(account), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format_err());
        };
        if kind != "U" {
            return Err(out_of_range(
                input,
                "only individual accounts (U) are players",
            ));
        }
        let universe = parse_digits(universe).ok_or_else(format_err)?;
        let account = parse_digits(account).ok_or_else(format_err)?;
        if universe == 0 || universe > MAX_UNIVERSE {
            return Err(out_of_range(input, "universe must be 1..=5"));
        }
        if account > u64::from(u32::MAX) {
            return Err(out_of_range(input, "account id must fit 32 bits"));
        }
        return Ok(compose(universe, account));
    }
    let id = parse_digits(input).ok_or_else(format_err)?;
    check_individual(id)?;
    Ok(id)
}

fn check_individual(id: u64) -> Result<(), SteamIdError> {
    let universe = id >> 56;
    let kind = (id >> 52) & 0xF;
    if kind != TYPE_INDIVIDUAL || universe == 0 || universe > MAX_UNIVERSE {
        return Err(SteamIdError::NotIndividual(id));
    }
    Ok(())
}

/// `STEAM_1:Y:Z` for an individual SteamID64 (the form L4D2 prints).
pub fn to_steam2(id: u64) -> Result<String, SteamIdError> {
    check_individual(id)?;
    let universe = id >> 56;
    let account = id & 0xFFFF_FFFF;
    Ok(format!("STEAM_{universe}:{}:{}", account & 1, account >> 1))
}

/// `[U:1:N]` for an individual SteamID64.
pub fn to_steam3(id: u64) -> Result<String, SteamIdError> {
    check_individual(id)?;
    Ok(format!("[U:{}:{}]", id >> 56, id & 0xFFFF_FFFF))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Valve's documented example: STEAM_0:1:1 ⇔ [U:1:3] ⇔ 76561197960265731.
        assert_eq!(parse_steam_id("STEAM_0:1:1"), Ok(76561197960265731));
        assert_eq!(parse_steam_id("STEAM_1:1:1"), Ok(76561197960265731));
        assert_eq!(parse_steam_id("[U:1:3]"), Ok(76561197960265731));
        assert_eq!(parse_steam_id("76561197960265731"), Ok(76561197960265731));
        assert_eq!(to_steam2(76561197960265731).unwrap(), "STEAM_1:1:1");
        assert_eq!(to_steam3(76561197960265731).unwrap(), "[U:1:3]");
    }

    #[test]
    fn rejects() {
        for bad in [
            "",
            "BOT",
            "STEAM_1:0",
            "STEAM_1:2:5",
            "STEAM_6:0:1",
            "STEAM_1:0:-1",
            "STEAM_1:0:+1",
            "STEAM_1:0:1:2",
            "STEAM_1:0:4294967295",
            "[U:1:]",
            "[U:0:1]",
            "[G:1:5]",
            "[U:1:4294967296]",
            "[U:1:1",
            "0",
            "123",
            "STEAM_ID_PENDING",
            "STEAM_1:0: 1",
        ] {
            assert!(parse_steam_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(to_steam2(0).is_err());
    }
}
