//! Argument grammar shared by the helpers: names, numbers, UTF-8.

use std::ffi::OsString;

/// A rejected argument list. The message names what was wrong and on which input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrammarError {
    #[error("usage: {0}")]
    Usage(&'static str),
    #[error("{what} is not valid UTF-8: {value:?}")]
    NotUtf8 { what: &'static str, value: String },
    #[error("invalid {what} {value:?}: must match ^[a-z0-9][a-z0-9_-]{{0,63}}$")]
    BadName { what: &'static str, value: String },
    #[error("invalid line count {0:?}: must be a decimal number from 0 to {max}", max = MAX_LINES)]
    BadLines(String),
    #[error("unknown verb {verb:?}: expected one of {expected}")]
    UnknownVerb {
        verb: String,
        expected: &'static str,
    },
}

/// Upper bound for `--lines`, so a caller cannot ask journald for an unbounded dump.
pub const MAX_LINES: u32 = 100_000;

/// The argument as UTF-8, or an error naming it.
pub fn utf8<'a>(arg: &'a OsString, what: &'static str) -> Result<&'a str, GrammarError> {
    arg.to_str().ok_or_else(|| GrammarError::NotUtf8 {
        what,
        value: arg.to_string_lossy().into_owned(),
    })
}

/// `^[a-z0-9][a-z0-9_-]{0,63}$`: instance names and overlay ids. These end up
/// in unit names and paths, so nothing else (no dots, slashes, `@`) passes.
/// One rule for the whole project: `l4d2host`'s [`InstanceName`].
///
/// [`InstanceName`]: l4d2host::InstanceName
pub fn validate_name(value: &str, what: &'static str) -> Result<(), GrammarError> {
    l4d2host::InstanceName::parse(value)
        .map(drop)
        .map_err(|_| GrammarError::BadName {
            what,
            value: value.to_string(),
        })
}

/// A line count: plain decimal digits only (no sign, no spaces), at most [`MAX_LINES`].
pub fn parse_lines(value: &str) -> Result<u32, GrammarError> {
    let bad = || GrammarError::BadLines(value.to_string());
    if value.is_empty() || value.len() > 6 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u32 = value.parse().map_err(|_| bad())?;
    if n > MAX_LINES {
        return Err(bad());
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "0", "srv-1", "a_b", &"x".repeat(64)] {
            assert_eq!(validate_name(ok, "name"), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "A",
            "a.b",
            "a/b",
            "a@b",
            "a b",
            "ä",
            &"x".repeat(65),
            "a\n",
        ] {
            assert!(validate_name(bad, "name").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lines() {
        assert_eq!(parse_lines("0"), Ok(0));
        assert_eq!(parse_lines("100"), Ok(100));
        assert_eq!(parse_lines("100000"), Ok(100_000));
        for bad in [
            "", "-1", "+1", "1.5", " 1", "100001", "9999999", "0x10", "abc",
        ] {
            assert!(parse_lines(bad).is_err(), "{bad:?}");
        }
    }
}
