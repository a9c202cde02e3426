//! Game builds side by side (docs/host-contract.md, Game builds): each build
//! of the game lives in `installation/<build id>/`, never changed once it is
//! complete. An instance's lowest layer is one build; it stays on it until it
//! is initialised again. `install` puts a new build beside the others and
//! prunes the ones no instance uses, except the newest two.
//!
//! Installations of older versions of left4me are one directory,
//! `installation/` itself (its `srcds_run` directly inside): instances
//! initialised on it keep it until they are initialised again; the first
//! install copies it into a build directory, and it is removed once no
//! instance uses it any more.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use l4d2_contract::builds::{Build, BuildId, BuildsReport, LEGACY_DIR};

use crate::instance::InstanceEnv;
use crate::Layout;

/// Builds `install` keeps besides the ones in use: the newest and the one
/// before it (where a rollback goes).
pub const KEEP_NEWEST: usize = 2;

/// The app manifest steamcmd writes into an installation.
pub const APP_MANIFEST: &str = "steamapps/appmanifest_222860.acf";

#[derive(Debug, thiserror::Error)]
pub enum BuildsError {
    #[error("game build {0} is not installed ({1})")]
    NotInstalled(BuildId, Installed),
    #[error("{path} does not name the game build: {problem}")]
    BadManifest { path: PathBuf, problem: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The installed builds, for an error message.
#[derive(Debug)]
pub struct Installed(pub Vec<BuildId>);

impl std::fmt::Display for Installed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no build is installed; run l4d2ctl install");
        }
        let list: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "installed: {}", list.join(", "))
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildsError {
    let path = path.to_owned();
    move |source| BuildsError::Io {
        action,
        path,
        source,
    }
}

impl Layout {
    /// `installation/<id>`.
    pub fn build_dir(&self, id: BuildId) -> PathBuf {
        self.installation().join(id.to_string())
    }
}

/// The build id in an app manifest (`"AppState" { "buildid" "…" }`).
pub fn parse_manifest(text: &str) -> Result<BuildId, String> {
    let vdf = keyvalues_parser::parse(text).map_err(|e| format!("not a KeyValues file ({e})"))?;
    if vdf.key != "AppState" {
        return Err(format!("expected \"AppState\", found {:?}", vdf.key));
    }
    let id = vdf
        .value
        .get_obj()
        .and_then(|o| o.get("buildid"))
        .and_then(|v| v.first())
        .and_then(|v| v.get_str())
        .ok_or("it has no \"buildid\"")?;
    BuildId::parse(id).map_err(|e| e.to_string())
}

/// The build of the installation in `dir`, from its app manifest.
pub fn manifest_build(dir: &Path) -> Result<BuildId, BuildsError> {
    let path = dir.join(APP_MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(io_err("cannot read", &path))?;
    parse_manifest(&text).map_err(|problem| BuildsError::BadManifest { path, problem })
}

/// The complete builds, newest first. A build directory only ever appears
/// complete (install renames it into place), so its name is enough.
pub fn installed(layout: &Layout) -> Result<Vec<BuildId>, BuildsError> {
    let dir = layout.installation();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("cannot list", &dir)(e)),
    };
    let mut ids: Vec<BuildId> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| BuildId::parse(e.file_name().to_str()?).ok())
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    Ok(ids)
}

/// Whether `installation/` is the single directory of older versions.
pub fn is_legacy(layout: &Layout) -> bool {
    layout.installation().join("srcds_run").is_file()
}

/// The lowest layer for an instance: the build asked for, else the newest;
/// with no build installed, the legacy installation directory (which may
/// not exist yet: starting then says the game is not installed).
pub fn lowest_layer(layout: &Layout, build: Option<BuildId>) -> Result<PathBuf, BuildsError> {
    let builds = installed(layout)?;
    match build {
        Some(id) if builds.contains(&id) => Ok(layout.build_dir(id)),
        Some(id) => Err(BuildsError::NotInstalled(id, Installed(builds))),
        None => Ok(builds
            .first()
            .map(|id| layout.build_dir(*id))
            .unwrap_or_else(|| layout.installation())),
    }
}

/// Every instance's lowest layer, by instance name (instances whose
/// definition cannot be read are left out: they use nothing they could
/// start on).
fn lowest_layers(layout: &Layout) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(layout.instances()) else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path().join("instance.env")) else {
            continue;
        };
        if let Some(lowest) = InstanceEnv::parse(&text)
            .ok()
            .and_then(|env| env.lowerdirs.last().cloned())
        {
            out.insert(name, lowest);
        }
    }
    out
}

/// `path` as a build directory of this layout, whichever spelling
/// (canonical or not) of the data root it uses.
fn as_build(layout: &Layout, path: &Path) -> Option<String> {
    let roots = [
        Some(layout.root().to_path_buf()),
        layout.root().canonicalize().ok(),
    ];
    roots.iter().flatten().find_map(|root| {
        let rel = path.strip_prefix(root).ok()?;
        let rel = rel.to_str()?;
        let is_build = rel
            .strip_prefix("installation/")
            .is_some_and(|id| BuildId::parse(id).is_ok());
        (rel == LEGACY_DIR || is_build).then(|| rel.to_owned())
    })
}

/// Disk blocks of the files under `dir`, hard links counted once.
fn disk_usage(dir: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            }
            if seen.insert((meta.dev(), meta.ino())) {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

/// Where install keeps a complete build's size: a build never changes, so
/// it is counted once, not at every report (a real build has thousands of
/// files). Hidden, outside the build: the game never sees it.
fn size_file(layout: &Layout, id: BuildId) -> PathBuf {
    layout.installation().join(format!(".size-{id}"))
}

/// Counts a new build's size once, for [`report`].
pub fn record_size(layout: &Layout, id: BuildId) -> Result<(), BuildsError> {
    let path = size_file(layout, id);
    std::fs::write(&path, disk_usage(&layout.build_dir(id)).to_string())
        .map_err(io_err("cannot write", &path))
}

fn build_size(layout: &Layout, id: BuildId) -> u64 {
    std::fs::read_to_string(size_file(layout, id))
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| disk_usage(&layout.build_dir(id)))
}

/// `l4d2ctl builds --json`.
pub fn report(layout: &Layout) -> Result<BuildsReport, BuildsError> {
    let ids = installed(layout)?;
    let users = lowest_layers(layout);
    let users_of = |dir: &str| -> Vec<String> {
        users
            .iter()
            .filter(|(_, p)| as_build(layout, p).as_deref() == Some(dir))
            .map(|(n, _)| n.clone())
            .collect()
    };
    let mut builds: Vec<Build> = ids
        .iter()
        .map(|id| {
            let dir = format!("installation/{id}");
            Build {
                id: *id,
                size_bytes: build_size(layout, *id),
                instances: users_of(&dir),
                dir,
            }
        })
        .collect();
    if is_legacy(layout) {
        let instances = users_of(LEGACY_DIR);
        if !instances.is_empty() || ids.is_empty() {
            let id = manifest_build(&layout.installation())?;
            builds.push(Build {
                id,
                dir: LEGACY_DIR.into(),
                // The build directories below it are not part of it.
                size_bytes: disk_usage(&layout.installation())
                    .saturating_sub(ids.iter().map(|id| build_size(layout, *id)).sum()),
                instances,
            });
        }
    }
    Ok(BuildsReport {
        newest: ids.first().copied(),
        builds,
    })
}

/// Removes the builds no instance uses, except the newest [`KEEP_NEWEST`];
/// and the legacy single installation once no instance uses it and a build
/// directory has replaced it. Returns what it removed.
pub fn prune(layout: &Layout, out: &mut dyn Write) -> Result<Vec<String>, BuildsError> {
    let ids = installed(layout)?;
    let in_use: HashSet<String> = lowest_layers(layout)
        .values()
        .filter_map(|p| as_build(layout, p))
        .collect();
    let mut removed = Vec::new();
    for id in ids.iter().skip(KEEP_NEWEST) {
        let dir = format!("installation/{id}");
        if in_use.contains(&dir) {
            continue;
        }
        let path = layout.build_dir(*id);
        // Renamed out of the build names first, so a crash half-way never
        // leaves a half-removed directory that looks like a build.
        let doomed = layout.installation().join(format!(".removing-{id}"));
        std::fs::rename(&path, &doomed).map_err(io_err("cannot move away", &path))?;
        std::fs::remove_dir_all(&doomed).map_err(io_err("cannot remove", &doomed))?;
        let _ = std::fs::remove_file(size_file(layout, *id));
        let _ = writeln!(out, "l4d2ctl: removed game build {id} (no server uses it)");
        removed.push(dir);
    }
    if is_legacy(layout) && !ids.is_empty() && !in_use.contains(LEGACY_DIR) {
        remove_legacy_files(layout)?;
        let _ = writeln!(
            out,
            "l4d2ctl: removed the old single installation directory's files (no server uses them)"
        );
        removed.push(LEGACY_DIR.into());
    }
    Ok(removed)
}

/// Every entry of `installation/` that is not a build or install's own
/// working file: the old single installation's content.
fn remove_legacy_files(layout: &Layout) -> Result<(), BuildsError> {
    let dir = layout.installation();
    // srcds_run first: once it is gone the directory no longer counts as
    // a legacy installation, whatever happens next.
    let srcds_run = dir.join("srcds_run");
    std::fs::remove_file(&srcds_run).map_err(io_err("cannot remove", &srcds_run))?;
    let entries = std::fs::read_dir(&dir).map_err(io_err("cannot list", &dir))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if BuildId::parse(&name).is_ok() || name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let result = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        result.map_err(io_err("cannot remove", &path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "\"AppState\"\n{\n\t\"appid\"\t\t\"222860\"\n\t\"buildid\"\t\t\"15000001\"\n\t\"UserConfig\"\n\t{\n\t}\n}\n";

    #[test]
    fn reads_the_manifest_build() {
        assert_eq!(parse_manifest(MANIFEST), Ok(BuildId(15000001)));
        for (bad, why) in [
            ("", "not a KeyValues"),
            (
                "\"Other\"\n{\n\t\"buildid\"\t\"1\"\n}\n",
                "expected \"AppState\"",
            ),
            ("\"AppState\"\n{\n\t\"appid\"\t\"1\"\n}\n", "no \"buildid\""),
            (
                "\"AppState\"\n{\n\t\"buildid\"\t\"../1\"\n}\n",
                "not a game build id",
            ),
        ] {
            let e = parse_manifest(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    fn build(layout: &Layout, id: u64) {
        let dir = layout.build_dir(BuildId(id));
        std::fs::create_dir_all(dir.join("steamapps")).unwrap();
        std::fs::write(dir.join("srcds_run"), "x").unwrap();
        std::fs::write(dir.join("big"), vec![1u8; 64 * 1024]).unwrap();
    }

    fn instance_on(layout: &Layout, name: &str, lowest: &Path) {
        let dir = layout.instances().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("instance.env"),
            format!(
                "L4D2_PORT=27015\nL4D2_ARGS=\"\"\nL4D2_LOWERDIRS=\"{}\"\n",
                lowest.display()
            ),
        )
        .unwrap();
    }

    #[test]
    fn prune_keeps_builds_in_use_and_the_newest_two() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path());
        for id in [10, 20, 30, 40] {
            build(&layout, id);
        }
        std::fs::create_dir_all(layout.installation().join(".new-x")).unwrap();
        instance_on(&layout, "old", &layout.build_dir(BuildId(10)));
        let mut out = Vec::new();
        let removed = prune(&layout, &mut out).unwrap();
        assert_eq!(removed, ["installation/20"]);
        assert_eq!(
            installed(&layout).unwrap(),
            [BuildId(40), BuildId(30), BuildId(10)]
        );
        let report = report(&layout).unwrap();
        assert_eq!(report.newest, Some(BuildId(40)));
        assert_eq!(report.build_of("old").map(|b| b.id), Some(BuildId(10)));
        assert!(report.builds.iter().all(|b| b.size_bytes >= 64 * 1024));
        // The instance moves on: its build goes at the next prune.
        instance_on(&layout, "old", &layout.build_dir(BuildId(40)));
        assert_eq!(prune(&layout, &mut out).unwrap(), ["installation/10"]);
    }

    #[test]
    fn lowest_layer_is_the_asked_or_newest_build() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path());
        assert_eq!(lowest_layer(&layout, None).unwrap(), layout.installation());
        let e = lowest_layer(&layout, Some(BuildId(5)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("game build 5 is not installed (no build is installed"),
            "{e}"
        );
        build(&layout, 5);
        build(&layout, 7);
        assert_eq!(
            lowest_layer(&layout, None).unwrap(),
            layout.build_dir(BuildId(7))
        );
        assert_eq!(
            lowest_layer(&layout, Some(BuildId(5))).unwrap(),
            layout.build_dir(BuildId(5))
        );
        let e = lowest_layer(&layout, Some(BuildId(6)))
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("(installed: 7, 5)"), "{e}");
    }

    #[test]
    fn the_legacy_directory_goes_when_nobody_uses_it() {
        let d = tempfile::tempdir().unwrap();
        let layout = Layout::new(d.path());
        let inst = layout.installation();
        std::fs::create_dir_all(inst.join("steamapps")).unwrap();
        std::fs::create_dir_all(inst.join("left4dead2/cfg")).unwrap();
        std::fs::write(inst.join("srcds_run"), "x").unwrap();
        std::fs::write(inst.join(APP_MANIFEST), MANIFEST).unwrap();
        instance_on(&layout, "legacy", &inst);
        let r = report(&layout).unwrap();
        assert_eq!(r.newest, None);
        assert_eq!(r.builds.len(), 1);
        assert_eq!(
            (r.builds[0].id, r.builds[0].dir.as_str()),
            (BuildId(15000001), "installation")
        );
        build(&layout, 15000002);
        let mut out = Vec::new();
        assert!(prune(&layout, &mut out).unwrap().is_empty(), "still in use");
        instance_on(&layout, "legacy", &layout.build_dir(BuildId(15000002)));
        assert_eq!(prune(&layout, &mut out).unwrap(), ["installation"]);
        assert!(!inst.join("left4dead2").exists());
        assert!(layout
            .build_dir(BuildId(15000002))
            .join("srcds_run")
            .is_file());
        assert!(!is_legacy(&layout));
    }
}
