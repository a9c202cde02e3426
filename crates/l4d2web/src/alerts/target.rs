//! Where a webhook may point. Every tenant is hostile to the others and to
//! the panel, so a webhook URL must not make the panel a door into its own
//! host or network: http(s) only, no credentials in the URL, and every
//! address its host resolves to must be public (unless the operator allows
//! private targets). The check runs on the addresses actually connected
//! to: the sender resolves, checks, and pins its connection to exactly
//! those addresses, so a name that re-resolves elsewhere (DNS rebinding)
//! cannot redirect it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;

/// Longest accepted webhook URL.
pub const MAX_URL_LEN: usize = 2048;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("enter the webhook URL")]
    Empty,
    #[error("webhook URL is {0} characters long; at most {MAX_URL_LEN} are allowed")]
    TooLong(usize),
    #[error("webhook URL contains control characters or spaces")]
    Control,
    #[error("webhook URL is not a valid URL ({0}); it should look like https://example.com/hook")]
    Malformed(String),
    #[error("webhook URL must start with http:// or https://, not {0}:")]
    Scheme(String),
    #[error("webhook URL must not contain a user name or password")]
    Userinfo,
    #[error("webhook URL has no host")]
    NoHost,
    #[error("cannot resolve the webhook host {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("the webhook host {0} has no address")]
    NoAddress(String),
    #[error(
        "webhook URL points at a {what} address ({addr}); set LEFT4ME_WEBHOOK_ALLOW_PRIVATE=true \
         to allow loopback and private targets"
    )]
    Private { what: &'static str, addr: IpAddr },
    #[error("webhook URL points at {addr}, a {what} address, which is never allowed")]
    Forbidden { what: &'static str, addr: IpAddr },
}

impl TargetError {
    /// A refusal by rule (retrying changes nothing), not a passing failure
    /// such as a name that does not resolve right now.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            TargetError::Resolve { .. } | TargetError::NoAddress(_)
        )
    }
}

/// A webhook URL checked by its form alone (no lookup).
pub fn parse(text: &str) -> Result<Url, TargetError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(TargetError::Empty);
    }
    let len = text.chars().count();
    if len > MAX_URL_LEN {
        return Err(TargetError::TooLong(len));
    }
    // The URL parser drops tabs and newlines silently; refuse them instead.
    if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(TargetError::Control);
    }
    let url = Url::parse(text).map_err(|e| TargetError::Malformed(e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(TargetError::Scheme(url.scheme().to_string()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Userinfo);
    }
    match url.host_str() {
        None | Some("") => return Err(TargetError::NoHost),
        Some(_) => {}
    }
    if url.as_str().len() > MAX_URL_LEN {
        return Err(TargetError::TooLong(url.as_str().len()));
    }
    Ok(url)
}

/// What kind of address an IP is, for the webhook rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    /// Allowed only with LEFT4ME_WEBHOOK_ALLOW_PRIVATE.
    Private(&'static str),
    /// Never allowed.
    Forbidden(&'static str),
}

/// Cloud instance metadata services: never a webhook, even on a LAN.
const METADATA: [IpAddr; 3] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
];

pub fn classify(ip: IpAddr) -> AddressClass {
    let ip = ip.to_canonical();
    if METADATA.contains(&ip) {
        return AddressClass::Forbidden("cloud metadata");
    }
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = ip.octets();
    if ip.is_unspecified() || a == 0 {
        AddressClass::Forbidden("unspecified")
    } else if ip.is_multicast() {
        AddressClass::Forbidden("multicast")
    } else if ip.is_broadcast() || a >= 240 || (a == 192 && b == 0 && c == 0) {
        AddressClass::Forbidden("reserved")
    } else if ip.is_loopback() {
        AddressClass::Private("loopback")
    } else if ip.is_private() {
        AddressClass::Private("private")
    } else if ip.is_link_local() {
        AddressClass::Private("link-local")
    } else if a == 100 && (64..128).contains(&b) {
        AddressClass::Private("shared (CGNAT)")
    } else {
        AddressClass::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let seg = ip.segments();
    // Addresses that carry an IPv4 address (NAT64, 6to4) are what they carry.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        let [a, b] = seg[6].to_be_bytes();
        let [c, d] = seg[7].to_be_bytes();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    if seg[0] == 0x2002 {
        let [a, b] = seg[1].to_be_bytes();
        let [c, d] = seg[2].to_be_bytes();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    if ip.is_unspecified() {
        AddressClass::Forbidden("unspecified")
    } else if ip.is_multicast() {
        AddressClass::Forbidden("multicast")
    } else if ip.is_loopback() {
        AddressClass::Private("loopback")
    } else if seg[0] & 0xfe00 == 0xfc00 {
        AddressClass::Private("unique local (ULA)")
    } else if seg[0] & 0xffc0 == 0xfe80 || seg[0] & 0xffc0 == 0xfec0 {
        AddressClass::Private("link-local")
    } else if seg[..6] == [0, 0, 0, 0, 0, 0] {
        // IPv4-compatible (deprecated): never a real destination.
        AddressClass::Forbidden("reserved")
    } else {
        AddressClass::Public
    }
}

/// `ip` under the rule: public always, private only when allowed.
pub fn check_address(ip: IpAddr, allow_private: bool) -> Result<(), TargetError> {
    match classify(ip) {
        AddressClass::Public => Ok(()),
        AddressClass::Private(_) if allow_private => Ok(()),
        AddressClass::Private(what) => Err(TargetError::Private { what, addr: ip }),
        AddressClass::Forbidden(what) => Err(TargetError::Forbidden { what, addr: ip }),
    }
}

/// The checked addresses of a URL's host, to pin a connection to.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The host as the URL names it (None: an IP literal, nothing to pin).
    pub name: Option<String>,
    pub addrs: Vec<SocketAddr>,
}

/// Resolves `url`'s host (within `timeout`) and checks every address it
/// has: one forbidden address refuses the whole URL, since which one a
/// connection would use is not ours to choose.
pub async fn resolve(
    url: &Url,
    allow_private: bool,
    timeout: Duration,
) -> Result<Resolved, TargetError> {
    let port = url.port_or_known_default().unwrap_or(80);
    let (name, addrs) = match url.host() {
        None => return Err(TargetError::NoHost),
        Some(url::Host::Ipv4(ip)) => (None, vec![SocketAddr::new(IpAddr::V4(ip), port)]),
        Some(url::Host::Ipv6(ip)) => (None, vec![SocketAddr::new(IpAddr::V6(ip), port)]),
        Some(url::Host::Domain(host)) => {
            let lookup = tokio::net::lookup_host((host, port));
            let found = tokio::time::timeout(timeout, lookup)
                .await
                .map_err(|_| TargetError::Resolve {
                    host: host.to_string(),
                    reason: format!("no answer within {} s", timeout.as_secs_f32()),
                })?
                .map_err(|e| TargetError::Resolve {
                    host: host.to_string(),
                    reason: e.to_string(),
                })?;
            let mut addrs: Vec<SocketAddr> = Vec::new();
            for a in found {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
            (Some(host.to_string()), addrs)
        }
    };
    if addrs.is_empty() {
        return Err(TargetError::NoAddress(
            url.host_str().unwrap_or_default().to_string(),
        ));
    }
    for a in &addrs {
        check_address(a.ip(), allow_private)?;
    }
    Ok(Resolved { name, addrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(ip: &str) -> AddressClass {
        classify(ip.parse().unwrap())
    }

    #[test]
    fn address_classes() {
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700::1111",
            "100.63.0.1",
            "100.128.0.1",
        ] {
            assert_eq!(class(public), AddressClass::Public, "{public}");
        }
        for private in [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "::1",
            "fd12::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:c0a8:0101::1",
        ] {
            assert!(
                matches!(class(private), AddressClass::Private(_)),
                "{private}"
            );
        }
        for never in [
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "224.0.0.1",
            "239.1.1.1",
            "ff02::1",
            "255.255.255.255",
            "240.0.0.1",
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
        ] {
            assert!(
                matches!(class(never), AddressClass::Forbidden(_)),
                "{never}"
            );
        }
    }

    #[test]
    fn urls_by_form() {
        assert!(parse("https://discord.com/api/webhooks/1/abc").is_ok());
        assert!(parse("http://192.0.2.7:8080/hook?x=1").is_ok());
        for (bad, want) in [
            ("", "enter"),
            ("ftp://example.com/x", "http:// or https://"),
            ("file:///etc/passwd", "http:// or https://"),
            ("https://user:pw@example.com/", "user name or password"),
            ("https://user@example.com/", "user name or password"),
            ("not a url", "control characters or spaces"),
            ("garbage", "not a valid URL"),
            ("http://", "not a valid URL"),
            ("https://exa\nmple.com/", "control"),
        ] {
            let err = parse(bad).expect_err(bad).to_string();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(parse(&long)
            .unwrap_err()
            .to_string()
            .contains("at most 2048"));
    }

    #[tokio::test]
    async fn every_resolved_address_is_checked() {
        let t = Duration::from_secs(5);
        let url = parse("http://127.0.0.1:9/x").unwrap();
        let err = resolve(&url, false, t).await.unwrap_err();
        assert!(err.is_refusal());
        assert!(
            err.to_string()
                .contains("LEFT4ME_WEBHOOK_ALLOW_PRIVATE=true"),
            "{err}"
        );
        assert!(resolve(&url, true, t).await.is_ok());
        let meta = parse("http://169.254.169.254/latest").unwrap();
        assert!(resolve(&meta, true, t).await.is_err(), "metadata never");
        // A name is refused when one of its addresses is (localhost: ::1 and 127.0.0.1).
        let named = parse("http://localhost:9/").unwrap();
        match resolve(&named, false, t).await {
            Err(e) => assert!(e.is_refusal(), "{e}"),
            Ok(r) => panic!("localhost accepted: {r:?}"),
        }
        let r = resolve(&named, true, t).await.unwrap();
        assert_eq!(r.name.as_deref(), Some("localhost"));
        assert!(r
            .addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 9));
    }
}
