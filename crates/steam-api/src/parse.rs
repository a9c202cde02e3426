//! Turning what a user pastes (an id or a workshop URL) into a workshop id.

use url::Url;

use crate::error::SteamError;

/// Longest input echoed back in an error, so a pasted novel does not become a novel-sized message.
const MAX_ECHO: usize = 120;

/// Accepts `123456789` or a Steam Community workshop URL such as
/// `https://steamcommunity.com/sharedfiles/filedetails/?id=123456789` (also `/workshop/filedetails/`,
/// `http`, `www.`, extra query parameters, surrounding spaces). Anything else is an error naming the input.
pub fn parse_workshop_ref(input: &str) -> Result<u64, SteamError> {
    let trimmed = input.trim();
    let fail = |reason: &str| SteamError::InvalidRef {
        input: echo(trimmed),
        reason: reason.to_string(),
    };
    if trimmed.is_empty() {
        return Err(fail("it is empty"));
    }
    if trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return parse_id(trimmed).map_err(&fail);
    }
    if !trimmed.contains("://") {
        return Err(fail(
            "expected a number or a https://steamcommunity.com/sharedfiles/filedetails/?id=... URL",
        ));
    }
    let url = Url::parse(trimmed).map_err(|e| fail(&format!("not a valid URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail("the URL must start with http:// or https://"));
    }
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if host != "steamcommunity.com" && host != "www.steamcommunity.com" {
        return Err(fail("the URL is not on steamcommunity.com"));
    }
    let path = url.path().trim_end_matches('/');
    if path != "/sharedfiles/filedetails" && path != "/workshop/filedetails" {
        return Err(fail(
            "the URL is not a workshop item page (/sharedfiles/filedetails/?id=...)",
        ));
    }
    let mut ids = url.query_pairs().filter(|(k, _)| k == "id");
    let Some((_, id)) = ids.next() else {
        return Err(fail("the URL has no ?id= parameter"));
    };
    if ids.next().is_some() {
        return Err(fail("the URL has more than one id= parameter"));
    }
    parse_id(id.trim()).map_err(|r| fail(&format!("its id= parameter: {r}")))
}

fn parse_id(digits: &str) -> Result<u64, &'static str> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the id must consist of digits only");
    }
    match digits.parse::<u64>() {
        Ok(0) => Err("the id must not be 0"),
        Ok(id) => Ok(id),
        Err(_) => Err("the id is too large"),
    }
}

fn echo(input: &str) -> String {
    if input.chars().count() <= MAX_ECHO {
        input.to_string()
    } else {
        let mut s: String = input.chars().take(MAX_ECHO).collect();
        s.push('…');
        s
    }
}
