//! `left4me seed-script-overlays <dir>`: every `*.sh` file in `dir` becomes
//! a system script overlay (no owner). Idempotent: an existing system
//! overlay of the same name gets its body and description refreshed and
//! keeps its id. Everything is validated first and written in one
//! transaction: a bad file changes nothing.
//!
//! The overlay name is the `# name:` header line, else the file stem; the
//! description is the `# description:` header line. `README`/`README.md`
//! are skipped (documentation); any other non-`.sh` entry is an error.

use std::path::{Path, PathBuf};

use sqlx::SqlitePool;

use super::model::{
    make_fresh_dir, normalize_script, overlay_dir, remove_tree, validate_name, MAX_SCRIPT_BYTES,
};

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{}: {reason}; nothing was changed", .path.display())]
    Bad { path: PathBuf, reason: String },
    #[error("database error: {0}; nothing was changed")]
    Db(#[from] sqlx::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedScript {
    pub file: PathBuf,
    pub name: String,
    pub description: String,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    Unchanged,
}

/// What happened to one script: its overlay id and name.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: i64,
    pub name: String,
    pub action: Action,
}

fn bad(path: &Path, reason: impl Into<String>) -> SeedError {
    SeedError::Bad {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads and validates every script in `dir` (sorted by file name).
pub fn read_dir(dir: &Path) -> Result<Vec<SeedScript>, SeedError> {
    let meta = std::fs::metadata(dir).map_err(|e| bad(dir, e.to_string()))?;
    if !meta.is_dir() {
        return Err(bad(dir, "not a directory"));
    }
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| bad(dir, e.to_string()))? {
        let entry = entry.map_err(|e| bad(dir, e.to_string()))?;
        paths.push(entry.path());
    }
    paths.sort();
    let mut out: Vec<SeedScript> = Vec::new();
    for path in paths {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if matches!(file_name.as_str(), "README" | "README.md") {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|e| bad(&path, e.to_string()))?;
        if !meta.is_file() {
            return Err(bad(
                &path,
                "not a regular file (only *.sh scripts belong here)",
            ));
        }
        let Some(stem) = file_name.strip_suffix(".sh") else {
            return Err(bad(
                &path,
                "not a .sh script (only *.sh scripts and a README belong here)",
            ));
        };
        if meta.len() > MAX_SCRIPT_BYTES as u64 {
            return Err(bad(
                &path,
                format!(
                    "{} bytes; the limit is {MAX_SCRIPT_BYTES} bytes",
                    meta.len()
                ),
            ));
        }
        let bytes = std::fs::read(&path).map_err(|e| bad(&path, e.to_string()))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            bad(
                &path,
                format!("not valid UTF-8 (at byte {})", e.utf8_error().valid_up_to()),
            )
        })?;
        let body = normalize_script(&text).map_err(|e| bad(&path, e.to_string()))?;
        let (header_name, description) = header(&body);
        let name = header_name.unwrap_or_else(|| stem.to_string());
        validate_name(&name).map_err(|e| bad(&path, e.to_string()))?;
        if let Some(other) = out.iter().find(|s| s.name == name) {
            return Err(bad(
                &path,
                format!(
                    "overlay name {name:?} is also used by {}",
                    other.file.display()
                ),
            ));
        }
        out.push(SeedScript {
            file: path,
            name,
            description: description.unwrap_or_default(),
            body,
        });
    }
    Ok(out)
}

/// `# name: X` and `# description: Y` from the leading comment block.
fn header(body: &str) -> (Option<String>, Option<String>) {
    let mut name = None;
    let mut description = None;
    for line in body.lines() {
        let line = line.trim();
        if line.starts_with("#!") || line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        let comment = comment.trim();
        if let Some(v) = comment.strip_prefix("name:") {
            name = Some(v.trim().to_string());
        } else if let Some(v) = comment.strip_prefix("description:") {
            description = Some(v.trim().to_string());
        }
    }
    (name, description)
}

/// Writes the scripts as system overlays in one transaction. New overlays
/// get their directory before the commit; if anything fails, the created
/// directories are removed again and the database is unchanged.
pub async fn apply(
    pool: &SqlitePool,
    root: &Path,
    scripts: &[SeedScript],
) -> Result<Vec<Outcome>, SeedError> {
    let mut created_dirs = Vec::new();
    let result = apply_inner(pool, root, scripts, &mut created_dirs).await;
    if result.is_err() {
        for dir in created_dirs {
            let _ = remove_tree(&dir);
        }
    }
    result
}

async fn apply_inner(
    pool: &SqlitePool,
    root: &Path,
    scripts: &[SeedScript],
    created_dirs: &mut Vec<PathBuf>,
) -> Result<Vec<Outcome>, SeedError> {
    let mut tx = pool.begin().await?;
    let mut outcomes = Vec::new();
    for s in scripts {
        let existing: Option<(i64, String, String, String)> = sqlx::query_as(
            "SELECT id, kind, script, description FROM overlays WHERE owner_id IS NULL AND name = ?",
        )
        .bind(&s.name)
        .fetch_optional(&mut *tx)
        .await?;
        match existing {
            Some((_, kind, _, _)) if kind != "script" => {
                return Err(bad(
                    &s.file,
                    format!(
                        "a system {kind} overlay named {:?} exists; rename the script",
                        s.name
                    ),
                ))
            }
            Some((id, _, script, description)) => {
                let action = if script == s.body && description == s.description {
                    Action::Unchanged
                } else {
                    sqlx::query(
                        "UPDATE overlays SET script = ?, description = ?, updated_at = ? WHERE id = ?",
                    )
                    .bind(&s.body)
                    .bind(&s.description)
                    .bind(crate::db::now_text())
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    Action::Updated
                };
                outcomes.push(Outcome {
                    id,
                    name: s.name.clone(),
                    action,
                });
            }
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO overlays (name, kind, owner_id, description, script)
                     VALUES (?, 'script', NULL, ?, ?) RETURNING id",
                )
                .bind(&s.name)
                .bind(&s.description)
                .bind(&s.body)
                .fetch_one(&mut *tx)
                .await?;
                let dir = overlay_dir(root, id);
                make_fresh_dir(&dir).map_err(|e| bad(&s.file, e.to_string()))?;
                created_dirs.push(dir);
                outcomes.push(Outcome {
                    id,
                    name: s.name.clone(),
                    action: Action::Created,
                });
            }
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// The CLI command: validate everything, apply, print one line per script.
pub async fn run_cli(dir: &Path) -> anyhow::Result<()> {
    let scripts = read_dir(dir)?;
    if scripts.is_empty() {
        anyhow::bail!(
            "{}: no *.sh scripts found; nothing was changed",
            dir.display()
        );
    }
    let (root, url) = crate::config::database_location_from_env()?;
    let pool = crate::db::connect(&url).await?;
    crate::db::migrate(&pool).await?;
    let outcomes = apply(&pool, &root, &scripts).await?;
    for o in &outcomes {
        let what = match o.action {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
        };
        println!("{what} system overlay {:?} (#{})", o.name, o.id);
    }
    println!(
        "{} script overlay(s) seeded from {}; build them from the web UI",
        outcomes.len(),
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines() {
        let (n, d) = header(
            "#!/bin/bash\n# name: Metamod\n# description: MM:S + SM\nset -e\n# name: late\n",
        );
        assert_eq!(n.as_deref(), Some("Metamod"));
        assert_eq!(d.as_deref(), Some("MM:S + SM"));
        assert_eq!(header("echo hi\n# name: x\n"), (None, None));
    }

    #[test]
    fn bad_dirs_and_files() {
        let d = tempfile::tempdir().unwrap();
        assert!(read_dir(&d.path().join("missing")).is_err());
        std::fs::write(d.path().join("a.sh"), "# name: A\ntrue\n").unwrap();
        std::fs::write(d.path().join("README.md"), "docs").unwrap();
        assert_eq!(read_dir(d.path()).unwrap().len(), 1);
        std::fs::write(d.path().join("b.txt"), "x").unwrap();
        let e = read_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("b.txt") && e.contains("not a .sh"), "{e}");
        std::fs::remove_file(d.path().join("b.txt")).unwrap();
        std::fs::write(d.path().join("c.sh"), [0xff, 0xfe, b'\n']).unwrap();
        let e = read_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("c.sh") && e.contains("UTF-8"), "{e}");
        std::fs::write(d.path().join("c.sh"), vec![b'#'; MAX_SCRIPT_BYTES + 1]).unwrap();
        let e = read_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("limit"), "{e}");
        std::fs::write(d.path().join("c.sh"), "# name: A\n").unwrap();
        let e = read_dir(d.path()).unwrap_err().to_string();
        assert!(e.contains("also used"), "{e}");
    }
}
