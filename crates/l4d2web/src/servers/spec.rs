//! The instance spec a server action hands to `l4d2ctl initialize`,
//! generated fresh from the server's blueprint every time.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The spec `l4d2ctl initialize` reads: the contract's type, so a new
/// field is a compile error on both sides of the process boundary.
pub use l4d2_contract::spec::InstanceSpec;

/// The server's own settings that always win over the blueprint's text.
pub struct Managed<'a> {
    pub rcon_password: &'a str,
    pub log_secret: &'a str,
    pub log_listener: Option<SocketAddr>,
}

/// server.cfg = the blueprint's text, then the managed lines. srcds runs the
/// file top to bottom, so a later line wins over a blueprint line setting the
/// same cvar.
pub fn server_cfg(blueprint_cfg: &str, m: &Managed) -> String {
    let mut out = String::with_capacity(blueprint_cfg.len() + 200);
    out.push_str(blueprint_cfg);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("\n// --- managed by left4me (wins over the lines above) ---\n");
    out.push_str(&format!("rcon_password \"{}\"\n", m.rcon_password));
    out.push_str(&format!("sv_logsecret {}\n", m.log_secret));
    out.push_str("log on\n");
    if let Some(addr) = m.log_listener {
        out.push_str(&format!("logaddress_add {addr}\n"));
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot write the spec: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("no randomness for a temp file name: {0}")]
    Random(String),
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The spec as YAML.
pub fn to_yaml(spec: &InstanceSpec) -> Result<String, SpecError> {
    Ok(serde_yaml_ng::to_string(spec)?)
}

/// Writes `text` to a new file `<root>/tmp/spec-<name>-<random>.yaml`, mode
/// 0600 and O_EXCL (it holds the rcon password; nobody else may read it or
/// plant it first). The caller removes it.
pub fn write_spec_file(root: &Path, name: &str, text: &str) -> Result<PathBuf, SpecError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| SpecError::Io { what, path, source }
    };
    let dir = root.join("tmp");
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let mut rnd = [0u8; 8];
    getrandom::fill(&mut rnd).map_err(|e| SpecError::Random(e.to_string()))?;
    let path = dir.join(format!("spec-{name}-{}.yaml", hex::encode(rnd)));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io("create", &path))?;
    if let Err(e) = f.write_all(text.as_bytes()).and_then(|_| f.sync_all()) {
        let _ = std::fs::remove_file(&path);
        return Err(io("write", &path)(e));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_lines_come_last() {
        let cfg = server_cfg(
            "hostname \"x\"\nrcon_password \"mine\"",
            &Managed {
                rcon_password: "abc",
                log_secret: "42",
                log_listener: Some("10.0.0.1:28000".parse().unwrap()),
            },
        );
        let mine = cfg.find("\"mine\"").unwrap();
        let managed = cfg.find("rcon_password \"abc\"").unwrap();
        assert!(managed > mine, "{cfg}");
        assert!(cfg.contains("sv_logsecret 42\nlog on\nlogaddress_add 10.0.0.1:28000\n"));
        let none = server_cfg(
            "",
            &Managed {
                rcon_password: "a",
                log_secret: "1",
                log_listener: None,
            },
        );
        assert!(!none.contains("logaddress_add"));
    }

    #[test]
    fn yaml_round_trips_odd_text() {
        let spec = InstanceSpec {
            port: 27015,
            build: Some(l4d2_contract::builds::BuildId(15000001)),
            overlays: vec!["overlays/1".into()],
            args: vec!["+map".into(), "c1m1_hotel".into(), "60".into()],
            config: "hostname \"a: b # c\"\n'x'\n".into(),
            bans: Vec::new(),
            admins: Vec::new(),
        };
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&to_yaml(&spec).unwrap()).unwrap();
        assert_eq!(v["config"].as_str().unwrap(), spec.config);
        assert_eq!(v["args"][2].as_str().unwrap(), "60");
        assert_eq!(v["build"].as_u64(), Some(15000001));
        assert_eq!(v["port"].as_i64().unwrap(), 27015);
    }
}
