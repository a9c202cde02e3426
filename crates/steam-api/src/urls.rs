//! Which Steam profile and avatar URLs the web app may render.
//!
//! `GetPlayerSummaries` answers with URLs the panel puts into `<a href>` and
//! `<img src>`. They are only as trustworthy as the answer (a wrong
//! `STEAM_API_BASE_URL`, a compromised proxy), so only `https://` URLs on
//! Steam's own hosts pass; anything else is dropped and the panel shows its
//! placeholder avatar and no link. [`AVATAR_HOSTS`] is also what the web
//! app's Content-Security-Policy allows for images (see
//! [`avatar_csp_sources`]), so the two cannot drift apart.

use url::{Host, Url};

/// Hosts a profile link may point to.
pub const PROFILE_HOSTS: &[&str] = &["steamcommunity.com"];

/// Hosts Steam serves avatars from (current and legacy CDNs).
pub const AVATAR_HOSTS: &[&str] = &[
    "avatars.steamstatic.com",
    "avatars.akamai.steamstatic.com",
    "avatars.cloudflare.steamstatic.com",
    "steamcdn-a.akamaihd.net",
];

/// Longest URL accepted, before and after normalisation. Real ones are
/// about 100 bytes; anything near this is not from Steam.
pub const MAX_URL_LEN: usize = 512;

/// The CSP source list for [`AVATAR_HOSTS`]:
/// `https://avatars.steamstatic.com https://…`.
pub fn avatar_csp_sources() -> String {
    AVATAR_HOSTS
        .iter()
        .map(|h| format!("https://{h}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `raw` parsed as an `https` URL on one of `hosts`: no user name or
/// password (`https://steamcommunity.com@evil.example/` is a URL on
/// evil.example), no explicit port other than 443, within [`MAX_URL_LEN`].
fn steam_https(raw: &str, hosts: &[&str]) -> Option<Url> {
    if raw.len() > MAX_URL_LEN {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    if url.scheme() != "https"
        || !url.username().is_empty()
        || url.password().is_some()
        || url.port().is_some()
        || url.as_str().len() > MAX_URL_LEN
    {
        return None;
    }
    // The parser lower-cases and IDNA-normalises domains, so this is an
    // exact comparison with what the browser would connect to.
    match url.host() {
        Some(Host::Domain(domain)) if hosts.contains(&domain) => Some(url),
        _ => None,
    }
}

/// A profile link to render, or `None`: `https://steamcommunity.com/id/<name>…`
/// or `…/profiles/<id>…` only, without query or fragment (Steam sends nothing
/// else; other pages on the host, such as its link filter, are no profile).
pub fn profile_url(raw: &str) -> Option<String> {
    let url = steam_https(raw, PROFILE_HOSTS)?;
    if url.query().is_some() || url.fragment().is_some() {
        return None;
    }
    let mut segments = url.path_segments()?;
    let kind = segments.next()?;
    let name = segments.next()?;
    if !matches!(kind, "id" | "profiles") || name.is_empty() {
        return None;
    }
    Some(url.into())
}

/// An avatar image to render, or `None`: `https` on [`AVATAR_HOSTS`].
pub fn avatar_url(raw: &str) -> Option<String> {
    steam_https(raw, AVATAR_HOSTS).map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_sources_list_every_avatar_host() {
        assert_eq!(
            avatar_csp_sources(),
            "https://avatars.steamstatic.com https://avatars.akamai.steamstatic.com https://avatars.cloudflare.steamstatic.com https://steamcdn-a.akamaihd.net"
        );
    }
}
