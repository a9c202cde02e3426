//! Configuration from the environment (docs/product.md): every variable the
//! web app reads is in [`VARS`] (printed by `left4me serve --help`) and read
//! here, nowhere else. Every invalid value is an error naming the variable;
//! nothing falls back silently.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;

use ipnet::IpNet;

/// Default data root in production.
pub const DEFAULT_ROOT: &str = "/var/lib/left4me";

/// One environment variable: its name, its default and what it sets.
pub struct Var {
    pub name: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
}

const fn var(name: &'static str, default: &'static str, meaning: &'static str) -> Var {
    Var {
        name,
        default,
        meaning,
    }
}

/// Every environment variable of the web app and its commands.
pub const VARS: &[Var] = &[
    var("SECRET_KEY", "(required)", "signs sessions and login forms; at least 32 characters (`openssl rand -hex 32`)"),
    var("LEFT4ME_ROOT", DEFAULT_ROOT, "the data root (absolute path): game, overlays, instances, database"),
    var("DATABASE_URL", "sqlite://<root>/left4me.db", "the SQLite database (only sqlite: URLs)"),
    var("LEFT4ME_BIND", "127.0.0.1:8000", "where the web app listens (ip:port); put a TLS proxy in front"),
    var("SESSION_COOKIE_SECURE", "false", "mark the session cookie Secure (true behind HTTPS)"),
    var("LEFT4ME_TRUSTED_PROXIES", "(none)", "IPs or networks whose X-Forwarded-For is believed, comma-separated"),
    var("JOB_WORKER_THREADS", "4", "jobs run at the same time (1-64)"),
    var("LEFT4ME_SHUTDOWN_GRACE_SECS", "20", "how long a shutdown waits for running jobs before handing them back to the queue"),
    var("LEFT4ME_PORT_RANGE_START", "27000", "first game port given to new servers"),
    var("LEFT4ME_PORT_RANGE_END", "27999", "last game port given to new servers (at most 45535: ports +10000 and +20000 are used too)"),
    var("LEFT4ME_BACKEND", "(detected)", "systemd or local: how servers run and builds are sandboxed; systemd when it is PID 1 and the helpers are installed"),
    var("LEFT4ME_L4D2CTL", "(next to left4me)", "path of the l4d2ctl binary (absolute)"),
    var("LOG_LISTENER_BIND", "(off)", "UDP ip:port where game servers' live events are received"),
    var("LOG_LISTENER_ADDR", "(from LOG_LISTENER_BIND)", "ip:port game servers send their events to; by default the bind address, 127.0.0.2 for 0.0.0.0; never 127.0.0.1 (the engine keeps those packets in-process)"),
    var("STEAM_WEB_API_KEY", "(none)", "Steam Web API key, for players' names and avatars; never shown"),
    var("STEAM_API_BASE_URL", "https://api.steampowered.com", "Steam Web API base URL"),
    var("LEFT4ME_STEAM_API_TIMEOUT_SECS", "30", "per-request timeout of Steam Web API calls (1-3600)"),
    var("LEFT4ME_WORKSHOP_PARALLEL", "4", "workshop downloads at the same time (1-32)"),
    var("LEFT4ME_WORKSHOP_MAX_FILE_BYTES", "4294967296", "largest workshop file accepted into the cache"),
    var("LEFT4ME_BUILD_TIMEOUT_SECS", "3600", "time limit of one overlay build (1-86400)"),
    var("LEFT4ME_SCHEDULE_GRACE_SECS", "600", "a scheduled run missed while the panel was down still runs when the panel is back within this many seconds (0-86400); later ones are recorded as missed"),
    var("LEFT4ME_AUTO_INSTALL", "true", "install a new game build beside the running one as soon as a check finds it (servers move onto it by their blueprint's update policy)"),
    var("LEFT4ME_ROLLOUT_TICK_SECS", "15", "how often the panel looks whether servers should move onto a new game build (1-600 seconds)"),
    var("LEFT4ME_LOGIN_LIMIT_PER_IP", "20", "login attempts per client address per window"),
    var("LEFT4ME_LOGIN_LIMIT_PER_USER", "5", "failed logins per username and client before logins are slowed down"),
    var("LEFT4ME_LOGIN_LIMIT_WINDOW_SECS", "60", "the window both login limits count over (1-86400)"),
    var("LEFT4ME_WEBHOOK_ALLOW_PRIVATE", "false", "let alert webhooks point at loopback, private (RFC 1918, ULA), link-local and CGNAT addresses, e.g. a receiver on the LAN"),
    var("LEFT4ME_AUDIT_RETENTION_DAYS", "365", "how long audit log entries are kept (1-3650 days); older ones are purged"),
    var("LEFT4ME_METRICS_BIND", "(off)", "ip:port of a separate listener serving only /metrics, without authentication: bind it where only Prometheus reaches it (never 0.0.0.0 or ::)"),
    var("LEFT4ME_METRICS_TOKEN", "(off)", "serve /metrics on the main listener to `Authorization: Bearer <token>`; at least 32 characters"),
    var("LEFT4ME_LOG", "info", "log filter (tracing syntax, e.g. info,l4d2web=debug)"),
    var("LEFT4ME_ADMIN_PASSWORD", "(prompt)", "create-user: the new user's password when there is no terminal"),
];

/// The [`VARS`] table as text, for `--help`.
pub fn help_table() -> String {
    let width = VARS.iter().map(|v| v.name.len()).max().unwrap_or(0);
    let mut out = String::from("Environment (the unit's EnvironmentFile in production):\n");
    for v in VARS {
        out.push_str(&format!(
            "  {:width$}  {} [default: {}]\n",
            v.name, v.meaning, v.default
        ));
    }
    out
}

/// The process environment's value of `name` (one of [`VARS`]); empty
/// counts as unset.
pub fn env_var(name: &str) -> Option<String> {
    debug_assert!(
        VARS.iter().any(|v| v.name == name),
        "{name} is missing from config::VARS"
    );
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var}: {reason} (got {value:?})")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("{var} is not set: {reason}")]
    Missing { var: &'static str, reason: String },
}

/// Fully validated configuration of the web app.
#[derive(Clone)]
pub struct Config {
    pub root: PathBuf,
    pub database_url: String,
    pub secret_key: Vec<u8>,
    pub job_workers: usize,
    pub session_cookie_secure: bool,
    pub port_range: (u16, u16),
    /// Never logged or rendered (docs/product.md, Security rules).
    pub steam_web_api_key: Option<String>,
    pub log_listener_addr: Option<SocketAddr>,
    pub log_listener_bind: Option<SocketAddr>,
    pub bind: SocketAddr,
    /// Peers whose X-Forwarded-For header is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub login_limit_per_ip: NonZeroU32,
    pub login_limit_per_user: NonZeroU32,
    /// The window both login limits count over (default 60 s).
    pub login_limit_window_secs: u64,
    /// Explicit `l4d2ctl` path (LEFT4ME_L4D2CTL).
    pub l4d2ctl: Option<PathBuf>,
    /// Extra environment for `l4d2ctl` children (demo: backend, steamcmd).
    pub child_env: Vec<(String, String)>,
    /// How long SIGTERM waits for running jobs before handing them back.
    pub shutdown_grace_secs: u64,
    /// Which service backend the host uses (decides how overlay builds are
    /// sandboxed). Same rule as l4d2ctl: LEFT4ME_BACKEND, else systemd when
    /// it is PID 1 and the helpers are installed, else local.
    pub backend: HostBackend,
    /// Steam Web API base URL (STEAM_API_BASE_URL; tests point it at a
    /// local server).
    pub steam_api_base_url: String,
    /// Workshop downloads running at the same time (LEFT4ME_WORKSHOP_PARALLEL).
    pub workshop_parallel: usize,
    /// Per-request timeout of Steam Web API calls.
    pub steam_api_timeout_secs: u64,
    /// Largest workshop file accepted into the cache.
    pub workshop_max_file_bytes: u64,
    /// Time limit of one overlay build.
    pub build_timeout_secs: u64,
    /// How late a missed scheduled run may still run.
    pub schedule_grace_secs: u64,
    pub auto_install: bool,
    pub rollout_tick_secs: u64,
    /// Alert webhooks may point at loopback and private addresses
    /// (LEFT4ME_WEBHOOK_ALLOW_PRIVATE; cloud metadata never).
    pub webhook_allow_private: bool,
    /// Days the audit log keeps its entries (LEFT4ME_AUDIT_RETENTION_DAYS).
    pub audit_retention_days: u32,
    /// The separate, unauthenticated `/metrics` listener.
    pub metrics_bind: Option<SocketAddr>,
    /// Bearer token of `/metrics` on the main listener. Never logged.
    pub metrics_token: Option<String>,
}

/// Where the privileged helpers live (fixed: sudoers names these paths).
pub const HELPER_DIR: &str = "/usr/local/libexec/left4me";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostBackend {
    Systemd,
    Local,
}

impl HostBackend {
    fn detect() -> HostBackend {
        let systemd_is_pid1 = std::path::Path::new("/run/systemd/system").is_dir();
        let helpers = std::path::Path::new(HELPER_DIR)
            .join("left4me-systemctl")
            .is_file();
        if systemd_is_pid1 && helpers {
            HostBackend::Systemd
        } else {
            HostBackend::Local
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HostBackend::Systemd => "systemd",
            HostBackend::Local => "local",
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Secrets stay out of debug output (and thus out of logs).
        f.debug_struct("Config")
            .field("root", &self.root)
            .field("database_url", &self.database_url)
            .field("job_workers", &self.job_workers)
            .field("session_cookie_secure", &self.session_cookie_secure)
            .field("port_range", &self.port_range)
            .field(
                "steam_web_api_key",
                &self.steam_web_api_key.as_ref().map(|_| "<set>"),
            )
            .field("bind", &self.bind)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("webhook_allow_private", &self.webhook_allow_private)
            .field("audit_retention_days", &self.audit_retention_days)
            .field("metrics_bind", &self.metrics_bind)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<set>"),
            )
            .finish_non_exhaustive()
    }
}

/// Reads configuration through `get` (the process environment in production,
/// a map in tests).
pub struct EnvSource<F: Fn(&str) -> Option<String>>(pub F);

impl<F: Fn(&str) -> Option<String>> EnvSource<F> {
    fn get(&self, var: &str) -> Option<String> {
        (self.0)(var).filter(|v| !v.is_empty())
    }

    /// A number in `range`, `default` when unset.
    fn ranged<T>(
        &self,
        var: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
        what: &str,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let n: T = self.parse(var, default, what)?;
        if !range.contains(&n) {
            return Err(ConfigError::Invalid {
                var,
                value: n.to_string(),
                reason: format!("must be between {} and {}", range.start(), range.end()),
            });
        }
        Ok(n)
    }

    fn parse<T: std::str::FromStr>(
        &self,
        var: &'static str,
        default: T,
        what: &str,
    ) -> Result<T, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(value) => value.trim().parse().map_err(|_| ConfigError::Invalid {
                var,
                value,
                reason: format!("expected {what}"),
            }),
        }
    }

    fn bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var) {
            None => Ok(default),
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(ConfigError::Invalid {
                    var,
                    value,
                    reason: "expected true/false/1/0/yes/no/on/off".into(),
                }),
            },
        }
    }

    fn opt_addr(&self, var: &'static str) -> Result<Option<SocketAddr>, ConfigError> {
        match self.get(var) {
            None => Ok(None),
            Some(value) => value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ConfigError::Invalid {
                    var,
                    value,
                    reason: "expected an ip:port address".into(),
                }),
        }
    }
}

pub fn from_process_env() -> Result<Config, ConfigError> {
    load(&EnvSource(env_var))
}

/// [`database_location`] from the process environment.
pub fn database_location_from_env() -> Result<(PathBuf, String), ConfigError> {
    database_location(&EnvSource(env_var))
}

/// The data root and database URL alone (for `migrate` and `create-user`,
/// which need no SECRET_KEY).
pub fn database_location<F: Fn(&str) -> Option<String>>(
    env: &EnvSource<F>,
) -> Result<(PathBuf, String), ConfigError> {
    let root = PathBuf::from(
        env.get("LEFT4ME_ROOT")
            .unwrap_or_else(|| DEFAULT_ROOT.into()),
    );
    if !root.is_absolute() {
        return Err(ConfigError::Invalid {
            var: "LEFT4ME_ROOT",
            value: root.display().to_string(),
            reason: "must be an absolute path".into(),
        });
    }
    let database_url = match env.get("DATABASE_URL") {
        Some(url) if url.starts_with("sqlite:") => url,
        Some(url) => {
            return Err(ConfigError::Invalid {
                var: "DATABASE_URL",
                value: url,
                reason: "only sqlite: URLs are supported".into(),
            })
        }
        None => format!("sqlite://{}", root.join("left4me.db").display()),
    };
    Ok((root, database_url))
}

pub fn load<F: Fn(&str) -> Option<String>>(env: &EnvSource<F>) -> Result<Config, ConfigError> {
    let (root, database_url) = database_location(env)?;
    let secret_key = match env.get("SECRET_KEY") {
        None => return Err(ConfigError::Missing {
            var: "SECRET_KEY",
            reason:
                "set it to a random string of at least 32 characters (e.g. `openssl rand -hex 32`)"
                    .into(),
        }),
        Some(k) if k.len() < 32 => {
            return Err(ConfigError::Invalid {
                var: "SECRET_KEY",
                value: "<hidden>".into(),
                reason: format!("must be at least 32 characters, has {}", k.len()),
            })
        }
        Some(k) => k.into_bytes(),
    };
    let job_workers = env.ranged("JOB_WORKER_THREADS", 4, 1..=64, "a number of workers")?;
    let start: u16 = env.parse("LEFT4ME_PORT_RANGE_START", 27000, "a port number")?;
    let end: u16 = env.parse("LEFT4ME_PORT_RANGE_END", 27999, "a port number")?;
    if start == 0 || start > end {
        return Err(ConfigError::Invalid {
            var: "LEFT4ME_PORT_RANGE_END",
            value: format!("{start}-{end}"),
            reason: "the port range must be non-empty and start above 0".into(),
        });
    }
    if let Err(e) = l4d2_contract::launch::GamePorts::for_game_port(end) {
        return Err(ConfigError::Invalid {
            var: "LEFT4ME_PORT_RANGE_END",
            value: end.to_string(),
            reason: e.to_string(),
        });
    }
    let bind: SocketAddr = env.parse(
        "LEFT4ME_BIND",
        SocketAddr::from(([127, 0, 0, 1], 8000)),
        "an ip:port address",
    )?;
    let trusted_proxies = match env.get("LEFT4ME_TRUSTED_PROXIES") {
        None => Vec::new(),
        Some(value) => parse_proxies(&value).map_err(|reason| ConfigError::Invalid {
            var: "LEFT4ME_TRUSTED_PROXIES",
            value: value.clone(),
            reason,
        })?,
    };
    let l4d2ctl = env.get("LEFT4ME_L4D2CTL").map(PathBuf::from);
    if let Some(p) = &l4d2ctl {
        if !p.is_absolute() {
            return Err(ConfigError::Invalid {
                var: "LEFT4ME_L4D2CTL",
                value: p.display().to_string(),
                reason: "must be an absolute path".into(),
            });
        }
    }
    Ok(Config {
        root,
        database_url,
        secret_key,
        job_workers,
        session_cookie_secure: env.bool("SESSION_COOKIE_SECURE", false)?,
        port_range: (start, end),
        steam_web_api_key: env.get("STEAM_WEB_API_KEY"),
        log_listener_addr: log_destination(
            env.opt_addr("LOG_LISTENER_BIND")?,
            env.opt_addr("LOG_LISTENER_ADDR")?,
        )?,
        log_listener_bind: env.opt_addr("LOG_LISTENER_BIND")?,
        bind,
        trusted_proxies,
        login_limit_per_ip: env.parse(
            "LEFT4ME_LOGIN_LIMIT_PER_IP",
            NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
            "a positive number of login attempts per window",
        )?,
        login_limit_per_user: env.parse(
            "LEFT4ME_LOGIN_LIMIT_PER_USER",
            NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            "a positive number of login attempts per window",
        )?,
        login_limit_window_secs: env.ranged(
            "LEFT4ME_LOGIN_LIMIT_WINDOW_SECS",
            60,
            1..=86400,
            "a number of seconds",
        )?,
        l4d2ctl,
        child_env: Vec::new(),
        shutdown_grace_secs: env.parse("LEFT4ME_SHUTDOWN_GRACE_SECS", 20, "a number of seconds")?,
        backend: match env.get("LEFT4ME_BACKEND").as_deref().map(str::trim) {
            None | Some("") => HostBackend::detect(),
            Some("systemd") => HostBackend::Systemd,
            Some("local") => HostBackend::Local,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "LEFT4ME_BACKEND",
                    value: other.to_string(),
                    reason: "expected systemd or local".into(),
                })
            }
        },
        steam_api_base_url: {
            let url = env
                .get("STEAM_API_BASE_URL")
                .unwrap_or_else(|| "https://api.steampowered.com".into());
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError::Invalid {
                    var: "STEAM_API_BASE_URL",
                    value: url,
                    reason: "expected an http:// or https:// URL".into(),
                });
            }
            url.trim_end_matches('/').to_string()
        },
        workshop_parallel: env.ranged(
            "LEFT4ME_WORKSHOP_PARALLEL",
            4,
            1..=32,
            "a number of parallel downloads",
        )?,
        steam_api_timeout_secs: env.ranged(
            "LEFT4ME_STEAM_API_TIMEOUT_SECS",
            30,
            1..=3600,
            "a number of seconds",
        )?,
        workshop_max_file_bytes: env.ranged(
            "LEFT4ME_WORKSHOP_MAX_FILE_BYTES",
            4 * 1024 * 1024 * 1024,
            1..=u64::MAX,
            "a number of bytes",
        )?,
        build_timeout_secs: env.ranged(
            "LEFT4ME_BUILD_TIMEOUT_SECS",
            3600,
            1..=86_400,
            "a number of seconds",
        )?,
        schedule_grace_secs: env.ranged(
            "LEFT4ME_SCHEDULE_GRACE_SECS",
            600,
            0..=86_400,
            "a number of seconds",
        )?,
        auto_install: env.bool("LEFT4ME_AUTO_INSTALL", true)?,
        rollout_tick_secs: env.ranged(
            "LEFT4ME_ROLLOUT_TICK_SECS",
            15,
            1..=600,
            "a number of seconds",
        )?,
        webhook_allow_private: env.bool("LEFT4ME_WEBHOOK_ALLOW_PRIVATE", false)?,
        audit_retention_days: env.ranged(
            "LEFT4ME_AUDIT_RETENTION_DAYS",
            365,
            1..=3650,
            "a number of days",
        )?,
        metrics_bind: metrics_bind(env.opt_addr("LEFT4ME_METRICS_BIND")?)?,
        metrics_token: metrics_token(env.get("LEFT4ME_METRICS_TOKEN"))?,
    })
}

/// The metrics listener asks for no credentials, so its address is its only
/// protection: every address of the host is refused.
fn metrics_bind(bind: Option<SocketAddr>) -> Result<Option<SocketAddr>, ConfigError> {
    match bind {
        Some(addr) if addr.ip().is_unspecified() => Err(ConfigError::Invalid {
            var: "LEFT4ME_METRICS_BIND",
            value: addr.to_string(),
            reason: "the metrics listener has no authentication and must not listen on every \
                     address; bind loopback or an address only Prometheus reaches, or use \
                     LEFT4ME_METRICS_TOKEN on the main listener"
                .into(),
        }),
        other => Ok(other),
    }
}

/// A bearer token: long enough not to be guessed, and only characters a
/// header carries unchanged.
fn metrics_token(token: Option<String>) -> Result<Option<String>, ConfigError> {
    let Some(token) = token.map(|t| t.trim().to_string()) else {
        return Ok(None);
    };
    let invalid = |reason: String| ConfigError::Invalid {
        var: "LEFT4ME_METRICS_TOKEN",
        value: "<hidden>".into(),
        reason,
    };
    if token.len() < 32 {
        return Err(invalid(format!(
            "must be at least 32 characters, has {}",
            token.len()
        )));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "only printable ASCII without spaces (e.g. `openssl rand -hex 32`)".into(),
        ));
    }
    Ok(Some(token))
}

/// Comma-separated IPs or CIDR networks.
fn parse_proxies(value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{item:?} is not an IP address or CIDR network"))
        })
        .collect()
}

/// Where game servers send their log lines: `LOG_LISTENER_ADDR`, else the
/// listener's own address (127.0.0.2 when it listens on every address).
/// Never 127.0.0.1: the engine's `NET_SendPacket` keeps packets for exactly
/// that address in an in-process queue nothing reads on a dedicated server
/// (unless `net_usesocketsforloopback`, which the panel does not let a
/// blueprint set), so no event would ever arrive.
fn log_destination(
    bind: Option<SocketAddr>,
    addr: Option<SocketAddr>,
) -> Result<Option<SocketAddr>, ConfigError> {
    const LOCALHOST: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const ALIAS: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    let refused = |var: &'static str, value: SocketAddr| ConfigError::Invalid {
        var,
        value: value.to_string(),
        reason: "game servers never send log packets to 127.0.0.1 (the engine keeps them \
                 in-process); use another loopback address such as 127.0.0.2, or the host's own"
            .into(),
    };
    match (bind, addr) {
        (_, Some(addr)) if addr.ip() == LOCALHOST => Err(refused("LOG_LISTENER_ADDR", addr)),
        (_, Some(addr)) => Ok(Some(addr)),
        (Some(bind), None) if bind.ip().is_unspecified() => {
            Ok(Some(SocketAddr::new(ALIAS, bind.port())))
        }
        (Some(bind), None) if bind.ip() == LOCALHOST => Err(refused("LOG_LISTENER_BIND", bind)),
        (Some(bind), None) => Ok(Some(bind)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load_map(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(&EnvSource(move |k| map.get(k).cloned()))
    }

    const KEY: (&str, &str) = ("SECRET_KEY", "0123456789abcdef0123456789abcdef");

    #[test]
    fn defaults() {
        let c = load_map(&[KEY]).unwrap();
        assert_eq!(c.job_workers, 4);
        assert_eq!(c.port_range, (27000, 27999));
        assert_eq!(c.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(c.database_url, "sqlite:///var/lib/left4me/left4me.db");
        assert!(!c.session_cookie_secure);
        assert!(c.trusted_proxies.is_empty());
        assert!(!c.webhook_allow_private);
        assert_eq!(c.audit_retention_days, 365);
    }

    #[test]
    fn errors_name_the_variable() {
        for (pairs, var) in [
            (vec![], "SECRET_KEY"),
            (vec![("SECRET_KEY", "short")], "SECRET_KEY"),
            (
                vec![KEY, ("JOB_WORKER_THREADS", "zero")],
                "JOB_WORKER_THREADS",
            ),
            (vec![KEY, ("JOB_WORKER_THREADS", "0")], "JOB_WORKER_THREADS"),
            (
                vec![KEY, ("SESSION_COOKIE_SECURE", "maybe")],
                "SESSION_COOKIE_SECURE",
            ),
            (
                vec![KEY, ("LEFT4ME_PORT_RANGE_START", "70000")],
                "LEFT4ME_PORT_RANGE_START",
            ),
            (
                vec![KEY, ("LEFT4ME_PORT_RANGE_END", "50000")],
                "LEFT4ME_PORT_RANGE_END",
            ),
            (
                vec![
                    KEY,
                    ("LEFT4ME_PORT_RANGE_START", "28000"),
                    ("LEFT4ME_PORT_RANGE_END", "27000"),
                ],
                "LEFT4ME_PORT_RANGE_END",
            ),
            (vec![KEY, ("LEFT4ME_BIND", "localhost")], "LEFT4ME_BIND"),
            (
                vec![KEY, ("LEFT4ME_LOGIN_LIMIT_PER_IP", "0")],
                "LEFT4ME_LOGIN_LIMIT_PER_IP",
            ),
            (
                vec![KEY, ("LEFT4ME_LOGIN_LIMIT_WINDOW_SECS", "0")],
                "LEFT4ME_LOGIN_LIMIT_WINDOW_SECS",
            ),
            (
                vec![KEY, ("LOG_LISTENER_ADDR", "1.2.3.4")],
                "LOG_LISTENER_ADDR",
            ),
            (
                vec![KEY, ("LOG_LISTENER_ADDR", "127.0.0.1:28000")],
                "LOG_LISTENER_ADDR",
            ),
            (
                vec![KEY, ("LOG_LISTENER_BIND", "127.0.0.1:28000")],
                "LOG_LISTENER_BIND",
            ),
            (
                vec![KEY, ("LEFT4ME_TRUSTED_PROXIES", "10.0.0.1,nope")],
                "LEFT4ME_TRUSTED_PROXIES",
            ),
            (vec![KEY, ("DATABASE_URL", "postgres://x")], "DATABASE_URL"),
            (vec![KEY, ("LEFT4ME_ROOT", "relative/dir")], "LEFT4ME_ROOT"),
            (vec![KEY, ("LEFT4ME_BACKEND", "docker")], "LEFT4ME_BACKEND"),
            (
                vec![KEY, ("STEAM_API_BASE_URL", "ftp://steam")],
                "STEAM_API_BASE_URL",
            ),
            (
                vec![KEY, ("LEFT4ME_WORKSHOP_PARALLEL", "0")],
                "LEFT4ME_WORKSHOP_PARALLEL",
            ),
            (
                vec![KEY, ("LEFT4ME_BUILD_TIMEOUT_SECS", "0")],
                "LEFT4ME_BUILD_TIMEOUT_SECS",
            ),
            (
                vec![KEY, ("LEFT4ME_BUILD_TIMEOUT_SECS", "86401")],
                "LEFT4ME_BUILD_TIMEOUT_SECS",
            ),
            (
                vec![KEY, ("LEFT4ME_BUILD_TIMEOUT_SECS", "-1")],
                "LEFT4ME_BUILD_TIMEOUT_SECS",
            ),
            (
                vec![KEY, ("LEFT4ME_STEAM_API_TIMEOUT_SECS", "abc")],
                "LEFT4ME_STEAM_API_TIMEOUT_SECS",
            ),
            (
                vec![KEY, ("LEFT4ME_WORKSHOP_MAX_FILE_BYTES", "0")],
                "LEFT4ME_WORKSHOP_MAX_FILE_BYTES",
            ),
            (
                vec![KEY, ("LEFT4ME_WEBHOOK_ALLOW_PRIVATE", "lan")],
                "LEFT4ME_WEBHOOK_ALLOW_PRIVATE",
            ),
            (
                vec![KEY, ("LEFT4ME_SCHEDULE_GRACE_SECS", "86401")],
                "LEFT4ME_SCHEDULE_GRACE_SECS",
            ),
            (
                vec![KEY, ("LEFT4ME_AUDIT_RETENTION_DAYS", "0")],
                "LEFT4ME_AUDIT_RETENTION_DAYS",
            ),
            (
                vec![KEY, ("LEFT4ME_AUDIT_RETENTION_DAYS", "3651")],
                "LEFT4ME_AUDIT_RETENTION_DAYS",
            ),
            (
                vec![KEY, ("LEFT4ME_AUDIT_RETENTION_DAYS", "a year")],
                "LEFT4ME_AUDIT_RETENTION_DAYS",
            ),
            (
                vec![KEY, ("LEFT4ME_METRICS_BIND", "localhost:9100")],
                "LEFT4ME_METRICS_BIND",
            ),
            (
                vec![KEY, ("LEFT4ME_METRICS_BIND", "0.0.0.0:9100")],
                "LEFT4ME_METRICS_BIND",
            ),
            (
                vec![KEY, ("LEFT4ME_METRICS_BIND", "[::]:9100")],
                "LEFT4ME_METRICS_BIND",
            ),
            (
                vec![KEY, ("LEFT4ME_METRICS_TOKEN", "too-short")],
                "LEFT4ME_METRICS_TOKEN",
            ),
            (
                vec![
                    KEY,
                    (
                        "LEFT4ME_METRICS_TOKEN",
                        "has a space 0123456789abcdef0123456789",
                    ),
                ],
                "LEFT4ME_METRICS_TOKEN",
            ),
        ] {
            let err = load_map(&pairs).expect_err("must fail").to_string();
            assert!(err.starts_with(var), "{err:?} should name {var}");
        }
    }

    #[test]
    fn every_variable_read_is_in_the_table() {
        let read = std::sync::Mutex::new(Vec::new());
        load(&EnvSource(|k: &str| {
            read.lock().unwrap().push(k.to_string());
            (k == KEY.0).then(|| KEY.1.to_string())
        }))
        .unwrap();
        let read = read.into_inner().unwrap();
        for name in &read {
            assert!(
                VARS.iter().any(|v| v.name == name),
                "{name} missing from VARS"
            );
        }
        // The table lists nothing that is not read somewhere: by `load`, or
        // by the commands that read one variable themselves.
        for v in VARS {
            assert!(
                read.iter().any(|r| r == v.name)
                    || ["LEFT4ME_LOG", "LEFT4ME_ADMIN_PASSWORD"].contains(&v.name),
                "{} is in VARS but never read",
                v.name
            );
        }
        let table = help_table();
        assert!(table.contains("LEFT4ME_BUILD_TIMEOUT_SECS") && table.contains("[default: 3600]"));
        let c = load_map(&[KEY, ("LEFT4ME_BUILD_TIMEOUT_SECS", " 15 ")]).unwrap();
        assert_eq!(c.build_timeout_secs, 15);
    }

    #[test]
    fn log_destination_follows_the_listener_and_is_never_127_0_0_1() {
        let dest = |pairs: &[(&str, &str)]| {
            let mut all = vec![KEY];
            all.extend_from_slice(pairs);
            load_map(&all).map(|c| c.log_listener_addr.map(|a| a.to_string()))
        };
        assert_eq!(dest(&[]).unwrap(), None, "no listener, no destination");
        assert_eq!(
            dest(&[("LOG_LISTENER_BIND", "0.0.0.0:28000")])
                .unwrap()
                .as_deref(),
            Some("127.0.0.2:28000"),
            "a listener on every address is reached on the loopback alias"
        );
        assert_eq!(
            dest(&[("LOG_LISTENER_BIND", "127.0.0.2:28001")])
                .unwrap()
                .as_deref(),
            Some("127.0.0.2:28001")
        );
        assert_eq!(
            dest(&[
                ("LOG_LISTENER_BIND", "0.0.0.0:28000"),
                ("LOG_LISTENER_ADDR", "192.0.2.1:28000")
            ])
            .unwrap()
            .as_deref(),
            Some("192.0.2.1:28000"),
            "an explicit address wins"
        );
        let err = dest(&[("LOG_LISTENER_BIND", "127.0.0.1:28000")]).unwrap_err();
        assert!(err.to_string().contains("127.0.0.2"), "{err}");
    }

    #[test]
    fn secret_key_never_in_errors_or_debug() {
        let err = load_map(&[("SECRET_KEY", "tiny-secret")])
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("tiny-secret"));
        let c = load_map(&[KEY, ("STEAM_WEB_API_KEY", "steamsecret")]).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(KEY.1) && !dbg.contains("steamsecret"));
    }

    #[test]
    fn metrics_are_off_unless_configured_and_the_token_stays_hidden() {
        let c = load_map(&[KEY]).unwrap();
        assert_eq!((c.metrics_bind, c.metrics_token), (None, None));
        let token = "metrics-token-0123456789abcdef0123456789";
        let c = load_map(&[
            KEY,
            ("LEFT4ME_METRICS_BIND", "127.0.0.1:9100"),
            ("LEFT4ME_METRICS_TOKEN", token),
        ])
        .unwrap();
        assert_eq!(
            c.metrics_bind.map(|a| a.to_string()).as_deref(),
            Some("127.0.0.1:9100")
        );
        assert_eq!(c.metrics_token.as_deref(), Some(token));
        assert!(!format!("{c:?}").contains(token));
        let short = "short-metrics-secret";
        let err = load_map(&[KEY, ("LEFT4ME_METRICS_TOKEN", short)])
            .unwrap_err()
            .to_string();
        assert!(!err.contains(short), "{err}");
    }

    #[test]
    fn proxies_accept_ips_and_networks() {
        let c = load_map(&[
            KEY,
            ("LEFT4ME_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8,::1"),
        ])
        .unwrap();
        assert_eq!(c.trusted_proxies.len(), 3);
        assert!(c.trusted_proxies[1].contains(&"10.1.2.3".parse::<IpAddr>().unwrap()));
    }
}
