//! The instance spec (`l4d2ctl initialize <name> -f spec.yaml`): parsing and
//! validation. Parsing walks a generic YAML value by hand instead of deriving
//! `Deserialize`, so every error names the field and says what is wrong in
//! words an operator understands (serde's messages for a u16 overflow or an
//! unknown variant are not that).

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use l4d2_contract::builds::BuildId;
use l4d2_contract::launch::GamePorts;

use crate::Layout;

use l4d2_contract::spec::KEYS;
pub use l4d2_contract::spec::{
    Admin, Ban, MAX_ADMINS, MAX_ARGS, MAX_ARG_LEN, MAX_BANS, MAX_BAN_MINUTES, MAX_CONFIG_BYTES,
    MAX_LOWERDIRS, MAX_OVERLAYS, MAX_SPEC_BYTES,
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
    /// The game build to run on; None: the newest installed.
    pub build: Option<BuildId>,
    /// Uppermost first.
    pub overlays: Vec<PathBuf>,
    pub args: Vec<String>,
    pub config: String,
    pub bans: Vec<Ban>,
    pub admins: Vec<Admin>,
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
            build: None,
            overlays: Vec::new(),
            args: Vec::new(),
            config: String::new(),
            bans: Vec::new(),
            admins: Vec::new(),
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
                "build" => raw.build = parse_build(value)?,
                "overlays" => raw.overlays = parse_overlays(value)?,
                "args" => raw.args = parse_args(value)?,
                "config" => raw.config = parse_config(value)?,
                "bans" => raw.bans = parse_bans(value)?,
                "admins" => raw.admins = parse_admins(value)?,
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
            build: raw.build,
            overlays,
            args: raw.args,
            config: raw.config,
            bans: raw.bans,
            admins: raw.admins,
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

/// A build id, written as a number or a string of digits; null = none.
fn parse_build(value: &Value) -> Result<Option<BuildId>, SpecError> {
    let text = match value {
        Value::Null => return Ok(None),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => {
            return Err(field_err(
                "build",
                format!("expected a build number, found {}", describe(other)),
            ))
        }
    };
    BuildId::parse(&text)
        .map(Some)
        .map_err(|e| field_err("build", e.to_string()))
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

/// The entries of a list field, bounded; `null` is an empty list.
fn list_of<'a>(
    value: &'a Value,
    field: &str,
    max: usize,
    what: &str,
) -> Result<&'a [Value], SpecError> {
    let items = match value {
        Value::Null => return Ok(&[]),
        Value::Sequence(items) => items,
        other => {
            return Err(field_err(
                field,
                format!("expected a list of {what}, found {}", describe(other)),
            ))
        }
    };
    if items.len() > max {
        return Err(field_err(
            field,
            format!("{} entries; at most {max} are allowed", items.len()),
        ));
    }
    Ok(items)
}

/// The keys of one list entry (a mapping with only `allowed` keys).
fn entry_fields<'a>(
    item: &'a Value,
    field: &str,
    allowed: &[&str],
) -> Result<Vec<(&'a str, &'a Value)>, SpecError> {
    let Value::Mapping(map) = item else {
        return Err(field_err(
            field,
            format!(
                "expected a mapping with the keys {}, found {}",
                allowed.join(", "),
                describe(item)
            ),
        ));
    };
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        match key.as_str() {
            Some(k) if allowed.contains(&k) => out.push((k, value)),
            _ => {
                return Err(field_err(
                    field,
                    format!("unknown key (allowed keys: {})", allowed.join(", ")),
                ))
            }
        }
    }
    Ok(out)
}

fn parse_steam_id_field(value: Option<&Value>, field: &str) -> Result<String, SpecError> {
    let field = format!("{field}.steam_id");
    match value {
        None => Err(field_err(field, "is required")),
        Some(Value::String(s)) => {
            l4d2_contract::spec::check_steam_id(s).map_err(|e| field_err(&field, e.to_string()))?;
            Ok(s.clone())
        }
        Some(other) => Err(field_err(
            field,
            format!("expected a Steam id (a string), found {}", describe(other)),
        )),
    }
}

fn parse_bans(value: &Value) -> Result<Vec<Ban>, SpecError> {
    let items = list_of(value, "bans", MAX_BANS, "bans")?;
    let mut bans: Vec<Ban> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("bans[{i}]");
        let fields = entry_fields(item, &field, &["steam_id", "minutes"])?;
        let get = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        let steam_id = parse_steam_id_field(get("steam_id"), &field)?;
        let minutes_field = format!("{field}.minutes");
        let minutes = match get("minutes") {
            None => return Err(field_err(minutes_field, "is required (0 for permanent)")),
            Some(v) => v
                .as_i64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n <= MAX_BAN_MINUTES)
                .ok_or_else(|| {
                    field_err(
                        &minutes_field,
                        format!("expected whole minutes from 0 (permanent) to {MAX_BAN_MINUTES}"),
                    )
                })?,
        };
        if bans.iter().any(|b| b.steam_id == steam_id) {
            return Err(field_err(field, format!("{steam_id} is listed twice")));
        }
        bans.push(Ban { steam_id, minutes });
    }
    Ok(bans)
}

fn parse_admins(value: &Value) -> Result<Vec<Admin>, SpecError> {
    let items = list_of(value, "admins", MAX_ADMINS, "admins")?;
    let mut admins: Vec<Admin> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("admins[{i}]");
        let fields = entry_fields(item, &field, &["steam_id", "flags", "immunity"])?;
        let get = |k: &str| fields.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        let steam_id = parse_steam_id_field(get("steam_id"), &field)?;
        let flags_field = format!("{field}.flags");
        let flags = match get("flags") {
            Some(Value::String(f)) => {
                l4d2_contract::spec::check_admin_flags(f)
                    .map_err(|e| field_err(&flags_field, e.to_string()))?;
                f.clone()
            }
            None => return Err(field_err(flags_field, "is required")),
            Some(other) => {
                return Err(field_err(
                    flags_field,
                    format!(
                        "expected flag letters (a string), found {}",
                        describe(other)
                    ),
                ))
            }
        };
        let immunity =
            match get("immunity") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_i64().and_then(|n| u8::try_from(n).ok()).ok_or_else(
                    || {
                        field_err(
                            format!("{field}.immunity"),
                            "expected a whole number from 0 to 255",
                        )
                    },
                )?),
            };
        if admins.iter().any(|a| a.steam_id == steam_id) {
            return Err(field_err(field, format!("{steam_id} is listed twice")));
        }
        admins.push(Admin {
            steam_id,
            flags,
            immunity,
        });
    }
    Ok(admins)
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
        assert_eq!(spec.build, None);
        for text in [
            "port: 27015\nbuild: 15000001",
            "port: 27015\nbuild: \"15000001\"",
        ] {
            let spec = InstanceSpec::parse(text, &layout, PortRange::default()).unwrap();
            assert_eq!(spec.build, Some(BuildId(15000001)), "{text}");
        }
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
            ("port: 27015\nbuild: 0", "`build`: \"0\" is not a game build id"),
            ("port: 27015\nbuild: -3", "`build`: \"-3\" is not a game build id"),
            ("port: 27015\nbuild: ../x", "`build`: \"../x\" is not a game build id"),
            ("port: 27015\nbuild: [1]", "`build`: expected a build number, found a list"),
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
            ("port: 27015\nbans: x", "`bans`: expected a list of bans"),
            (
                "port: 27015\nbans: [{steam_id: STEAM_1:2:3, minutes: 0}]",
                "`bans[0].steam_id`: \"STEAM_1:2:3\" is not a Steam id",
            ),
            ("port: 27015\nbans: [{steam_id: STEAM_1:0:3}]", "`bans[0].minutes`: is required"),
            (
                "port: 27015\nbans: [{steam_id: STEAM_1:0:3, minutes: -1}]",
                "`bans[0].minutes`: expected whole minutes",
            ),
            (
                "port: 27015\nbans: [{steam_id: STEAM_1:0:3, minutes: 0, why: x}]",
                "`bans[0]`: unknown key",
            ),
            (
                "port: 27015\nbans: [{steam_id: STEAM_1:0:3, minutes: 0}, {steam_id: STEAM_1:0:3, minutes: 5}]",
                "`bans[1]`: STEAM_1:0:3 is listed twice",
            ),
            (
                "port: 27015\nadmins: [{steam_id: \"[U:1:5]\", flags: abx}]",
                "`admins[0].flags`: 'x' is not a SourceMod admin flag",
            ),
            ("port: 27015\nadmins: [{steam_id: \"[U:1:5]\"}]", "`admins[0].flags`: is required"),
            (
                "port: 27015\nadmins: [{steam_id: \"[U:1:5]\", flags: z, immunity: 300}]",
                "`admins[0].immunity`",
            ),
            ("port: 27015\nadmins: [{flags: z}]", "`admins[0].steam_id`: is required"),
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
    fn parses_bans_and_admins_and_bounds_them() {
        let (_d, layout) = setup();
        let spec = InstanceSpec::parse(
            "port: 27015\nbans: [{steam_id: STEAM_1:0:1234, minutes: 0}, {steam_id: \"[U:1:7]\", minutes: 90}]\nadmins: [{steam_id: STEAM_1:1:5, flags: abcz, immunity: 99}, {steam_id: STEAM_0:0:6, flags: b}]",
            &layout,
            PortRange::default(),
        )
        .unwrap();
        assert_eq!(
            spec.bans[1],
            Ban {
                steam_id: "[U:1:7]".into(),
                minutes: 90
            }
        );
        assert_eq!(spec.admins[0].immunity, Some(99));
        assert_eq!(spec.admins[1].immunity, None);
        let many: Vec<String> = (0..=MAX_ADMINS)
            .map(|i| format!("{{steam_id: \"STEAM_1:0:{i}\", flags: b}}"))
            .collect();
        let text = format!("port: 27015\nadmins: [{}]", many.join(", "));
        assert!(err(&text, &layout).contains("`admins`: 501 entries; at most 500"));
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
