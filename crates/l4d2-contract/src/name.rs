//! Instance names: `^[a-z0-9][a-z0-9_-]{0,63}$`, checked before anything touches disk
//! or becomes part of a unit name.

use std::fmt;

/// A validated instance name. Safe to use as a single path component and
/// inside a systemd unit name (`left4me-server@<name>.service`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceName(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid instance name {input:?}: {reason} (allowed: a-z, 0-9, '_' and '-', starting with a letter or digit, at most 64 characters)")]
pub struct NameError {
    pub input: String,
    pub reason: &'static str,
}

impl InstanceName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(input: &str) -> Result<Self, NameError> {
        let fail = |reason| {
            Err(NameError {
                input: input.to_owned(),
                reason,
            })
        };
        let Some(first) = input.bytes().next() else {
            return fail("it is empty");
        };
        if input.len() > Self::MAX_LEN {
            return fail("it is longer than 64 characters");
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return fail("it must start with a lowercase letter or a digit");
        }
        let allowed =
            |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
        if !input.bytes().all(allowed) {
            return fail("it contains a character outside a-z, 0-9, '_' and '-'");
        }
        Ok(InstanceName(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for ok in ["a", "0", "srv-1", "my_server", &"a".repeat(64)] {
            assert_eq!(InstanceName::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_invalid_names_with_reason() {
        let cases = [
            ("", "empty"),
            ("../x", "start with"),
            ("A", "start with"),
            ("-x", "start with"),
            ("_x", "start with"),
            ("aB", "outside"),
            ("a/b", "outside"),
            ("a.b", "outside"),
            ("a b", "outside"),
            ("é", "start with"),
        ];
        for (input, reason) in cases {
            let err = InstanceName::parse(input).unwrap_err();
            assert!(err.reason.contains(reason), "{input:?}: {}", err.reason);
            assert!(err.to_string().contains(&format!("{input:?}")));
        }
        let long = "a".repeat(65);
        assert!(InstanceName::parse(&long)
            .unwrap_err()
            .reason
            .contains("longer"));
    }
}
