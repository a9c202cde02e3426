//! The instance spec (`l4d2ctl initialize <name> -f spec.yaml`): parsing and
//! validation. Parsing walks a generic YAML value by hand instead of deriving
//! `Deserialize`, so every error names the field and says what is wrong in
//! words an operator understands (serde's messages for a u16 overflow or an
//! unknown variant are not that).

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use l4d2_contract::launch::GamePorts;

use crate::Layout;

use l4d2_contract::spec::KEYS;
pub use l4d2_contract::spec::{
    MAX_ARGS, MAX_ARG_LEN, MAX_CONFIG_BYTES, MAX_LOWERDIRS, MAX_OVERLAYS, MAX_SPEC_BYTES,
};

/// Ports an instance may use (`LEFT4ME_PORT_RANGE_START`/`_END`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange {
            start: 27000,
            end: 27999,
        }
    }
}

impl PortRange {
    pub fn from_env() -> Result<PortRange, SpecError> {
        let default = PortRange::default();
        let read = |var: &'static str, fallback: u16| -> Result<u16, SpecError> {
            match std::env::var(var) {
                Err(_) => Ok(fallback),
                Ok(v) if v.trim().is_empty() => Ok(fallback),
                Ok(v) => match v.trim().parse::<u16>() {
                    Ok(p) if p > 0 => Ok(p),
                    _ => Err(SpecError::Config(format!(
                        "{var}={v:?} is not a port number between 1 and 65535"
                    ))),
                },
            }
        };
        let range = PortRange {
            start: read("LEFT4ME_PORT_RANGE_START", default.start)?,
            end: read("LEFT4ME_PORT_RANGE_END", default.end)?,
        };
        if range.start > range.end {
            return Err(SpecError::Config(format!(
                "LEFT4ME_PORT_RANGE_START ({}) is greater than LEFT4ME_PORT_RANGE_END ({})",
                range.start, range.end
            )));
        }
        if let Err(e) = GamePorts::for_game_port(range.end) {
            return Err(SpecError::Config(format!("LEFT4ME_PORT_RANGE_END: {e}")));
        }
        Ok(range)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spec is not valid YAML: {0}")]
    Yaml(String),
    #[error("spec field `{field}`: {message}")]
    Field { field: String, message: String },
    #[error("spec: {0}")]
    Shape(String),
    #[error("configuration: {0}")]
    Config(String),
}

fn field_err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::Field {
        field: field.into(),
        message: message.into(),
    }
}

/// A validated spec: [`l4d2_contract::spec::InstanceSpec`] with overlay
/// paths resolved (canonical, inside the allowed roots) and launch
/// arguments checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    pub port: u16,
    /// Uppermost first.
    pub overlays: Vec<PathBuf>,
    pub args: Vec<String>,
    pub config: String,
}

impl InstanceSpec {
    pub fn from_file(path: &Path, layout: &Layout, ports: PortRange) -> Result<Self, SpecError> {
        let read_err = |source| SpecError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        if meta.len() > MAX_SPEC_BYTES as u64 {
            return Err(SpecError::Shape(format!(
                "file is {} bytes, more than the {MAX_SPEC_BYTES} allowed",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        Self::parse(&text, layout, ports)
    }

    pub fn parse(text: &str, layout: &Layout, ports: PortRange) -> Result<Self, SpecError> {
        let value: Value =
            serde_yaml_ng::from_str(text).map_err(|e| SpecError::Yaml(e.to_string()))?;
        let Value::Mapping(map) = value else {
            return Err(SpecError::Shape(format!(
                "expected a mapping with the keys {KEYS}, found {}",
                describe(&value)
            )));
        };
        let mut raw = l4d2_contract::spec::InstanceSpec {
            port: 0,
            overlays: Vec::new(),
            args: Vec::new(),
            config: String::new(),
        };
        let mut port = None;
        for (key, value) in &map {
            let Value::String(key) = key else {
                return Err(SpecError::Shape(format!(
                    "keys must be strings, found {}",
                    describe(key)
                )));
            };
            match key.as_str() {
                "port" => port = Some(parse_port(value, ports)?),
                "overlays" => raw.overlays = parse_overlays(value)?,
                "args" => raw.args = parse_args(value)?,
                "config" => raw.config = parse_config(value)?,
                other => {
                    return Err(SpecError::Shape(format!(
                        "unknown key `{other}` (allowed keys: {KEYS})"
                    )))
                }
            }
        }
        raw.port = port.ok_or_else(|| field_err("port", "is required"))?;
        Self::resolve(raw, layout)
    }

    /// Resolves the overlay directories of a spec read from YAML.
    fn resolve(raw: l4d2_contract::spec::InstanceSpec, layout: &Layout) -> Result<Self, SpecError> {
        let mut overlays: Vec<PathBuf> = Vec::with_capacity(raw.overlays.len());
        for (i, entry) in raw.overlays.iter().enumerate() {
            let field = format!("overlays[{i}]");
            let dir = resolve_overlay_dir(entry, layout).map_err(|m| field_err(&field, m))?;
            if overlays.contains(&dir) {
                return Err(field_err(
                    field,
                    format!("{} is listed twice", dir.display()),
                ));
            }
            overlays.push(dir);
        }
        Ok(InstanceSpec {
            port: raw.port,
            overlays,
            args: raw.args,
            config: raw.config,
        })
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn parse_port(value: &Value, ports: PortRange) -> Result<u16, SpecError> {
    let Some(n) = value.as_i64() else {
        return Err(field_err(
            "port",
            format!("expected a whole number, found {}", describe(value)),
        ));
    };
    let port = u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| field_err("port", format!("{n} is not a port number (1–65535)")))?;
    if let Err(e) = GamePorts::for_game_port(port) {
        return Err(field_err("port", e.to_string()));
    }
    if port < ports.start || port > ports.end {
        return Err(field_err(
            "port",
            format!(
                "{port} is outside the configured range {}–{} (LEFT4ME_PORT_RANGE_START/_END)",
                ports.start, ports.end
            ),
        ));
    }
    Ok(port)
}

fn parse_overlays(value: &Value) -> Result<Vec<String>, SpecError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Sequence(items) => items,
        other => {
            return Err(field_err(
                "overlays",
                format!("expected a list of directories, found {}", describe(other)),
            ))
        }
    };
    if items.len() > MAX_OVERLAYS {
        return Err(field_err(
            "overlays",
            format!(
                "{} entries; at most {MAX_OVERLAYS} are allowed (the kernel stacks at most {MAX_LOWERDIRS} lower layers, one is the installation)",
                items.len()
            ),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(raw) => Ok(raw.clone()),
            other => Err(field_err(
                format!("overlays[{i}]"),
                format!("expected a directory path, found {}", describe(other)),
            )),
        })
        .collect()
}

/// Resolves one overlay entry (absolute, or relative to the data root) to a
/// canonical directory strictly inside `overlays/` or `workshop_cache/`.
pub fn resolve_overlay_dir(raw: &str, layout: &Layout) -> Result<PathBuf, String> {
    if raw.is_empty() {
        return Err("is empty".into());
    }
    let path = Path::new(raw);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        layout.root().join(path)
    };
    let canonical = joined
        .canonicalize()
        .map_err(|e| format!("{raw:?} cannot be resolved: {e}"))?;
    if !canonical.is_dir() {
        return Err(format!("{raw:?} is not a directory"));
    }
    check_under_roots(&canonical, &layout.overlay_roots()).map_err(|m| format!("{raw:?} {m}"))?;
    check_mount_safe(&canonical).map_err(|m| format!("{raw:?} {m}"))?;
    Ok(canonical)
}

/// `path` (canonical) must lie strictly below one of `roots` (canonicalised here).
pub(crate) fn check_under_roots(path: &Path, roots: &[PathBuf]) -> Result<(), String> {
    for root in roots {
        if let Ok(root) = root.canonicalize() {
            if path != root && path.starts_with(&root) {
                return Ok(());
            }
        }
    }
    let names: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    Err(format!(
        "resolves to {}, which is not inside {}",
        path.display(),
        names.join(" or ")
    ))
}

/// Characters that would break the colon-joined `L4D2_LOWERDIRS`, the
/// instance.env quoting or an overlayfs option.
pub(crate) fn check_mount_safe(path: &Path) -> Result<(), String> {
    let s = path
        .to_str()
        .ok_or_else(|| "is not valid UTF-8".to_string())?;
    if let Some(c) = s
        .chars()
        .find(|c| matches!(c, ':' | ',' | '"' | '\'' | '\\' | '$' | '`') || c.is_control())
    {
        return Err(format!(
            "contains the character {c:?}, which overlay paths may not"
        ));
    }
    Ok(())
}

fn parse_args(value: &Value) -> Result<Vec<String>, SpecError> {
    let tokens: Vec<String> = match value {
        Value::Null => return Ok(Vec::new()),
        // `args: "-tickrate 60 +map c1m1_hotel"` is how people write a command line.
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => out.push(s.clone()),
                    Value::Number(n) => out.push(n.to_string()),
                    other => {
                        return Err(field_err(
                            format!("args[{i}]"),
                            format!("expected a string, found {}", describe(other)),
                        ))
                    }
                }
            }
            out
        }
        other => {
            return Err(field_err(
                "args",
                format!("expected a list of strings, found {}", describe(other)),
            ))
        }
    };
    l4d2_contract::launch::check_user_args(&tokens)
        .map_err(|e| field_err("args", e.to_string()))?;
    Ok(tokens)
}

fn parse_config(value: &Value) -> Result<String, SpecError> {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => {
            return Err(field_err(
                "config",
                format!(
                    "expected server.cfg text (a string), found {}",
                    describe(other)
                ),
            ))
        }
    };
    if text.len() > MAX_CONFIG_BYTES {
        return Err(field_err(
            "config",
            format!(
                "is {} bytes; at most {MAX_CONFIG_BYTES} are allowed",
                text.len()
            ),
        ));
    }
    if text.contains('\0') {
        return Err(field_err("config", "contains a NUL byte"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        std::fs::create_dir_all(layout.overlays().join("maps")).unwrap();
        std::fs::create_dir_all(layout.overlays().join("cfg")).unwrap();
        std::fs::create_dir_all(layout.workshop_cache().join("item")).unwrap();
        (dir, layout)
    }

    fn err(text: &str, layout: &Layout) -> String {
        InstanceSpec::parse(text, layout, PortRange::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parses_a_full_spec() {
        let (_d, layout) = setup();
        let spec = InstanceSpec::parse(
            "port: 27015\noverlays: [overlays/maps, workshop_cache/item]\nargs: [-tickrate, 60, +map, c1m1_hotel]\nconfig: |\n  hostname \"x\"\n",
            &layout,
            PortRange::default(),
        )
        .unwrap();
        assert_eq!(spec.port, 27015);
        let root = layout.root().canonicalize().unwrap();
        assert_eq!(
            spec.overlays,
            vec![root.join("overlays/maps"), root.join("workshop_cache/item")]
        );
        assert_eq!(spec.args, ["-tickrate", "60", "+map", "c1m1_hotel"]);
        assert_eq!(spec.config, "hostname \"x\"\n");
    }

    #[test]
    fn args_may_be_one_string() {
        let (_d, layout) = setup();
        let spec = InstanceSpec::parse(
            "port: 27015\nargs: \"-tickrate 60  +map c1m1_hotel\"",
            &layout,
            PortRange::default(),
        )
        .unwrap();
        assert_eq!(spec.args, ["-tickrate", "60", "+map", "c1m1_hotel"]);
    }

    #[test]
    fn rejects_bad_specs_naming_the_field() {
        let (_d, layout) = setup();
        let cases: &[(&str, &str)] = &[
            ("port: [1", "not valid YAML"),
            ("- a\n- b", "expected a mapping"),
            ("port: 27015\nfoo: 1", "unknown key `foo`"),
            ("overlays: []", "`port`: is required"),
            (
                "port: \"27015\"",
                "`port`: expected a whole number, found a string",
            ),
            ("port: 0", "`port`: 0 is not a port number"),
            ("port: 65536", "`port`: 65536 is not a port number"),
            ("port: -1", "`port`: -1 is not a port number"),
            ("port: 26999", "outside the configured range 27000–27999"),
            (
                "port: 27015\noverlays: overlays/maps",
                "`overlays`: expected a list",
            ),
            (
                "port: 27015\noverlays: [1]",
                "`overlays[0]`: expected a directory path",
            ),
            ("port: 27015\noverlays: [\"\"]", "`overlays[0]`: is empty"),
            ("port: 27015\noverlays: [/etc]", "not inside"),
            ("port: 27015\noverlays: [overlays]", "not inside"),
            ("port: 27015\noverlays: [overlays/../..]", "not inside"),
            (
                "port: 27015\noverlays: [overlays/nope]",
                "cannot be resolved",
            ),
            (
                "port: 27015\noverlays: [overlays/maps, overlays/maps]",
                "listed twice",
            ),
            ("port: 27015\nargs: {a: 1}", "`args`: expected a list"),
            ("port: 27015\nargs: [[1]]", "`args[0]`: expected a string"),
            (
                "port: 27015\nargs: [\"a b\"]",
                "launch argument \"a b\" contains ' '",
            ),
            ("port: 27015\nargs: [\"$(reboot)\"]", "contains '$'"),
            ("port: 27015\nargs: [\"\"]", "launch argument 0 is empty"),
            (
                "port: 27015\nargs: [+hostport, \"27016\"]",
                "`+hostport` is managed by left4me",
            ),
            (
                "port: 27015\nargs: [-frobnicate]",
                "unknown launch option `-frobnicate`",
            ),
            (
                "port: 27015\nargs: [+map, c1m1_hotel, +sv_logsecret, \"7\"]",
                "`+sv_logsecret`",
            ),
            ("port: 45536", "too high"),
            (
                "port: 27015\nconfig: 5",
                "`config`: expected server.cfg text",
            ),
            (
                "port: 27015\nconfig: [a]",
                "`config`: expected server.cfg text",
            ),
        ];
        for (text, expected) in cases {
            let message = err(text, &layout);
            assert!(
                message.contains(expected),
                "{text:?} gave {message:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn rejects_symlink_escaping_the_roots() {
        let (_d, layout) = setup();
        std::os::unix::fs::symlink("/etc", layout.overlays().join("evil")).unwrap();
        let message = err("port: 27015\noverlays: [overlays/evil]", &layout);
        assert!(message.contains("resolves to /etc"), "{message}");
    }

    #[test]
    fn rejects_too_many_overlays() {
        let (_d, layout) = setup();
        let list: Vec<String> = (0..=MAX_OVERLAYS)
            .map(|i| format!("overlays/o{i}"))
            .collect();
        let text = format!("port: 27015\noverlays: [{}]", list.join(", "));
        assert!(err(&text, &layout).contains("at most 499"));
    }

    #[test]
    fn respects_a_custom_port_range() {
        let (_d, layout) = setup();
        let ports = PortRange {
            start: 30000,
            end: 30010,
        };
        assert!(InstanceSpec::parse("port: 30005", &layout, ports).is_ok());
        let e = InstanceSpec::parse("port: 27015", &layout, ports).unwrap_err();
        assert!(e.to_string().contains("30000–30010"));
    }
}
