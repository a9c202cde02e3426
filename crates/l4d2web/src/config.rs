//! Configuration from the environment (docs/product.md). Every invalid value is an
//! error naming the variable; nothing falls back silently.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::path::PathBuf;

use ipnet::IpNet;

/// Default data root in production.
pub const DEFAULT_ROOT: &str = "/var/lib/left4me";

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
    load(&EnvSource(|k| std::env::var(k).ok()))
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
    let job_workers: usize = env.parse("JOB_WORKER_THREADS", 4, "a number of workers (1-64)")?;
    if !(1..=64).contains(&job_workers) {
        return Err(ConfigError::Invalid {
            var: "JOB_WORKER_THREADS",
            value: job_workers.to_string(),
            reason: "must be between 1 and 64".into(),
        });
    }
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
        log_listener_addr: env.opt_addr("LOG_LISTENER_ADDR")?,
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
        login_limit_window_secs: {
            let w: u64 = env.parse(
                "LEFT4ME_LOGIN_LIMIT_WINDOW_SECS",
                60,
                "a number of seconds (1-86400)",
            )?;
            if !(1..=86400).contains(&w) {
                return Err(ConfigError::Invalid {
                    var: "LEFT4ME_LOGIN_LIMIT_WINDOW_SECS",
                    value: w.to_string(),
                    reason: "must be between 1 and 86400".into(),
                });
            }
            w
        },
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
        workshop_parallel: {
            let n: usize = env.parse(
                "LEFT4ME_WORKSHOP_PARALLEL",
                4,
                "a number of parallel downloads (1-32)",
            )?;
            if !(1..=32).contains(&n) {
                return Err(ConfigError::Invalid {
                    var: "LEFT4ME_WORKSHOP_PARALLEL",
                    value: n.to_string(),
                    reason: "must be between 1 and 32".into(),
                });
            }
            n
        },
    })
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
        ] {
            let err = load_map(&pairs).expect_err("must fail").to_string();
            assert!(err.starts_with(var), "{err:?} should name {var}");
        }
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
