//! Steam sends 64-bit ids as strings and some sizes/timestamps as numbers or strings depending on the
//! endpoint and its age; these deserializers accept both forms and nothing else.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

struct U64Visitor;

impl Visitor<'_> for U64Visitor {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an unsigned integer or a string of digits")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("negative value {v}")))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::custom(format!("{v:?} is not an unsigned integer")))
    }
}

struct I64Visitor;

impl Visitor<'_> for I64Visitor {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer or a string of digits")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::custom(format!("{v:?} is not an integer")))
    }
}

pub(crate) fn flex_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(U64Visitor)
}

pub(crate) fn flex_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(I64Visitor)
}

struct OptU64Visitor;

impl Visitor<'_> for OptU64Visitor {
    type Value = Option<u64>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("null, an unsigned integer or a string of digits")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Option<u64>, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<u64>, E> {
        U64Visitor.visit_u64(v).map(Some)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<u64>, E> {
        U64Visitor.visit_i64(v).map(Some)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u64>, E> {
        U64Visitor.visit_str(v).map(Some)
    }
}

pub(crate) fn flex_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(OptU64Visitor)
}
