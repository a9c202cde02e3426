//! Overlay rows: kinds, validation, create/edit/delete, and who may see
//! and edit what.

use std::path::{Path, PathBuf};

use sqlx::SqlitePool;

use crate::accounts::User;
use crate::jobs::{JobCtx, JobFailure, Jobs};

/// Largest script body (the sandbox helper refuses anything larger).
pub const MAX_SCRIPT_BYTES: usize = 1024 * 1024;
/// Longest overlay name.
pub const MAX_NAME: usize = 64;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 1000;
/// Most workshop references one overlay may list (collections count as one).
pub const MAX_WORKSHOP_REFS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("{0}")]
    Invalid(String),
    #[error("an overlay named {0:?} already exists; choose another name")]
    NameTaken(String),
    #[error("overlay {name:?} is used by {users}; remove it from there first")]
    InUse { name: String, users: String },
    #[error("overlay not found")]
    NotFound,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Stored as lower-case text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, sqlx::Type)]
#[sqlx(type_name = "TEXT", rename_all = "lowercase")]
pub enum Kind {
    Script,
    Workshop,
}

impl Kind {
    pub fn parse(s: &str) -> Result<Kind, OverlayError> {
        match s {
            "script" => Ok(Kind::Script),
            "workshop" => Ok(Kind::Workshop),
            other => Err(OverlayError::Invalid(format!(
                "overlay kind {other:?} is unknown: expected script or workshop"
            ))),
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Script => "script",
            Kind::Workshop => "workshop",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Overlay {
    pub id: i64,
    pub name: String,
    pub kind: Kind,
    /// None: a system overlay (usable by everyone, editable by admins).
    pub owner_id: Option<i64>,
    pub description: String,
    pub script: String,
    /// JSON array of workshop ids (items and collections) as entered.
    pub workshop_refs: String,
    pub built_at: Option<String>,
    /// Why the last workshop sync failed, in plain words (None once one
    /// succeeds), and the full error behind it.
    pub sync_error: Option<String>,
    pub sync_error_detail: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Overlay {
    pub fn is_system(&self) -> bool {
        self.owner_id.is_none()
    }
    pub fn is_script(&self) -> bool {
        self.kind == Kind::Script
    }
    pub fn is_workshop(&self) -> bool {
        self.kind == Kind::Workshop
    }
    /// The stored workshop ids (empty for script overlays or unreadable JSON).
    pub fn refs(&self) -> Vec<u64> {
        serde_json::from_str(&self.workshop_refs).unwrap_or_default()
    }
    /// The ids one per line, for the edit form.
    pub fn refs_text(&self) -> String {
        self.refs()
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
    /// Owner or, for system overlays, an administrator.
    pub fn editable_by(&self, user: &User) -> bool {
        match self.owner_id {
            Some(owner) => owner == user.id,
            None => user.is_admin,
        }
    }
}

/// The directory of overlay `id` under the data root.
pub fn overlay_dir(root: &Path, id: i64) -> PathBuf {
    root.join("overlays").join(id.to_string())
}

/// The cached file of a workshop item (shared by every workshop overlay).
pub fn workshop_cache_file(root: &Path, item_id: i64) -> PathBuf {
    root.join("workshop_cache").join(format!("{item_id}.vpk"))
}

/// Name rule: 1–64 characters, ASCII letters, digits, space, `.`, `_`, `-`,
/// starting with a letter or digit. (Shown in lists, job titles and the
/// blueprint editor; nothing builds a path from it.)
pub fn validate_name(name: &str) -> Result<(), OverlayError> {
    let bad = |why: &str| {
        Err(OverlayError::Invalid(format!(
            "overlay name {:?} is invalid: {why}",
            name.chars().take(80).collect::<String>()
        )))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.chars().count() > MAX_NAME {
        return bad(&format!("at most {MAX_NAME} characters"));
    }
    if !name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        return bad("it must start with a letter or a digit");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '.' | '_' | '-'))
    {
        return bad("use letters, digits, spaces, '.', '_' or '-'");
    }
    if name.ends_with(' ') {
        return bad("it must not end with a space");
    }
    Ok(())
}

/// CRLF → LF (browsers submit textareas with CRLF; bash chokes on `\r`),
/// then checks size and NUL bytes.
pub fn normalize_script(body: &str) -> Result<String, OverlayError> {
    let script = body.replace("\r\n", "\n");
    if script.len() > MAX_SCRIPT_BYTES {
        return Err(OverlayError::Invalid(format!(
            "the script has {} bytes; the limit is {MAX_SCRIPT_BYTES} bytes (1 MiB)",
            script.len()
        )));
    }
    if script.contains('\0') {
        return Err(OverlayError::Invalid(
            "the script contains a NUL byte; it must be plain text".into(),
        ));
    }
    Ok(script)
}

fn validate_description(d: &str) -> Result<String, OverlayError> {
    let d = d.trim().replace("\r\n", "\n");
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(OverlayError::Invalid(format!(
            "the description is longer than {MAX_DESCRIPTION} characters"
        )));
    }
    Ok(d)
}

/// Parses what a user pasted: workshop ids and/or full Steam URLs, one per
/// line or comma-separated. Every bad entry is reported; duplicates dropped.
pub fn parse_refs(text: &str) -> Result<Vec<u64>, OverlayError> {
    let mut ids = Vec::new();
    let mut errors = Vec::new();
    for entry in text
        .split(['\n', ',', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match steam_api::parse_workshop_ref(entry) {
            Ok(id) if !ids.contains(&id) => ids.push(id),
            Ok(_) => {}
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(OverlayError::Invalid(errors.join("; ")));
    }
    if ids.is_empty() {
        return Err(OverlayError::Invalid(
            "enter at least one workshop item or collection (id or URL)".into(),
        ));
    }
    if ids.len() > MAX_WORKSHOP_REFS {
        return Err(OverlayError::Invalid(format!(
            "{} workshop entries; at most {MAX_WORKSHOP_REFS} per overlay (use a collection)",
            ids.len()
        )));
    }
    Ok(ids)
}

/// What a create or edit form carries, already typed.
pub struct OverlayInput {
    pub name: String,
    pub description: String,
    /// The script body (script overlays).
    pub script: Option<String>,
    /// The refs text as typed (workshop overlays).
    pub refs: Option<String>,
}

struct Checked {
    name: String,
    description: String,
    script: String,
    refs_json: String,
}

fn check_input(kind: &Kind, input: &OverlayInput) -> Result<Checked, OverlayError> {
    let name = input.name.trim().to_string();
    validate_name(&name)?;
    let description = validate_description(&input.description)?;
    let (script, refs_json) = match kind {
        Kind::Script => (
            normalize_script(input.script.as_deref().unwrap_or(""))?,
            "[]".to_string(),
        ),
        Kind::Workshop => {
            let ids = parse_refs(input.refs.as_deref().unwrap_or(""))?;
            (String::new(), serde_json::json!(ids).to_string())
        }
    };
    Ok(Checked {
        name,
        description,
        script,
        refs_json,
    })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Creates the row and `overlays/<id>/` together: the directory is made
/// before the transaction commits, so a failure leaves neither.
pub async fn create(
    pool: &SqlitePool,
    root: &Path,
    owner_id: Option<i64>,
    kind: Kind,
    input: &OverlayInput,
) -> Result<Overlay, OverlayError> {
    let c = check_input(&kind, input)?;
    let mut tx = pool.begin().await?;
    let inserted: Result<Overlay, sqlx::Error> = sqlx::query_as(
        "INSERT INTO overlays (name, kind, owner_id, description, script, workshop_refs)
         VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
    )
    .bind(&c.name)
    .bind(kind)
    .bind(owner_id)
    .bind(&c.description)
    .bind(&c.script)
    .bind(&c.refs_json)
    .fetch_one(&mut *tx)
    .await;
    let overlay = match inserted {
        Ok(o) => o,
        Err(e) if is_unique_violation(&e) => return Err(OverlayError::NameTaken(c.name)),
        Err(e) => return Err(e.into()),
    };
    make_fresh_dir(&overlay_dir(root, overlay.id))?;
    tx.commit().await?;
    tracing::info!(overlay = overlay.id, name = %overlay.name, kind = %overlay.kind, "overlay created");
    Ok(overlay)
}

/// Creates `dir` empty. SQLite reuses the highest id after a delete, so a
/// leftover directory of a deleted overlay (crash between commit and
/// removal) is removed first: a new overlay never inherits old files.
pub(super) fn make_fresh_dir(dir: &Path) -> Result<(), OverlayError> {
    let io = |what: &'static str| {
        let path = dir.to_path_buf();
        move |source| OverlayError::Io { what, path, source }
    };
    if std::fs::symlink_metadata(dir).is_ok() {
        tracing::warn!(dir = %dir.display(), "removing a leftover overlay directory");
        remove_tree(dir).map_err(io("cannot remove leftover"))?;
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io("cannot create the parent of"))?;
    }
    std::fs::create_dir(dir).map_err(io("cannot create"))
}

/// Removes a directory tree, or a file/symlink, without following symlinks.
pub(super) fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Edits name, description and the script body or workshop refs. The kind
/// and owner never change.
pub async fn update(
    pool: &SqlitePool,
    overlay: &Overlay,
    input: &OverlayInput,
) -> Result<Overlay, OverlayError> {
    let c = check_input(&overlay.kind, input)?;
    let updated: Result<Overlay, sqlx::Error> = sqlx::query_as(
        "UPDATE overlays SET name = ?, description = ?, script = ?, workshop_refs = ?, updated_at = ?
         WHERE id = ? RETURNING *",
    )
    .bind(&c.name)
    .bind(&c.description)
    .bind(&c.script)
    .bind(&c.refs_json)
    .bind(crate::db::now_text())
    .bind(overlay.id)
    .fetch_one(pool)
    .await;
    match updated {
        Ok(o) => Ok(o),
        Err(e) if is_unique_violation(&e) => Err(OverlayError::NameTaken(c.name)),
        Err(sqlx::Error::RowNotFound) => Err(OverlayError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the overlay and its directory, unless a blueprint uses it. The
/// message names the requester's own blueprints and only counts others'.
pub async fn delete(
    pool: &SqlitePool,
    root: &Path,
    overlay: &Overlay,
    requester: &User,
) -> Result<(), OverlayError> {
    let mut tx = pool.begin().await?;
    let users: Vec<(i64, String)> = sqlx::query_as(
        "SELECT b.owner_id, b.name FROM blueprint_overlays bo JOIN blueprints b ON b.id = bo.blueprint_id
         WHERE bo.overlay_id = ? ORDER BY b.name",
    )
    .bind(overlay.id)
    .fetch_all(&mut *tx)
    .await?;
    if !users.is_empty() {
        return Err(in_use(overlay, requester, &users));
    }
    let deleted = sqlx::query("DELETE FROM overlays WHERE id = ?")
        .bind(overlay.id)
        .execute(&mut *tx)
        .await;
    match deleted {
        Ok(r) if r.rows_affected() == 0 => return Err(OverlayError::NotFound),
        Ok(_) => {}
        // The FK (ON DELETE RESTRICT) is the safety net for a blueprint
        // added between our check and the delete.
        Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
            return Err(OverlayError::InUse {
                name: overlay.name.clone(),
                users: "a blueprint".into(),
            })
        }
        Err(e) => return Err(e.into()),
    }
    Jobs::detach_subject(&mut tx, &subject(overlay.id)).await?;
    tx.commit().await?;
    let dir = overlay_dir(root, overlay.id);
    if let Err(e) = remove_tree(&dir) {
        // The row is gone; a leftover directory is removed when the id is reused.
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the directory of a deleted overlay");
    }
    tracing::info!(overlay = overlay.id, name = %overlay.name, "overlay deleted");
    Ok(())
}

fn in_use(overlay: &Overlay, requester: &User, users: &[(i64, String)]) -> OverlayError {
    let own: Vec<String> = users
        .iter()
        .filter(|(owner, _)| *owner == requester.id)
        .map(|(_, name)| format!("{name:?}"))
        .collect();
    let others = users.len() - own.len();
    let mut parts = Vec::new();
    if !own.is_empty() {
        parts.push(format!(
            "blueprint{} {}",
            if own.len() == 1 { "" } else { "s" },
            own.join(", ")
        ));
    }
    if others > 0 {
        parts.push(format!(
            "{others} blueprint{} of other users",
            if others == 1 { "" } else { "s" }
        ));
    }
    OverlayError::InUse {
        name: overlay.name.clone(),
        users: parts.join(" and "),
    }
}

/// Overlays `user` may use: their own and the system ones (other users'
/// private overlays are invisible, also to administrators).
pub async fn list_visible(pool: &SqlitePool, user: &User) -> Result<Vec<Overlay>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM overlays WHERE owner_id = ? OR owner_id IS NULL
         ORDER BY owner_id IS NOT NULL, lower(name)",
    )
    .bind(user.id)
    .fetch_all(pool)
    .await
}

/// One overlay if `user` may see it, else None (the caller answers 404).
pub async fn find_visible(
    pool: &SqlitePool,
    user: &User,
    id: i64,
) -> Result<Option<Overlay>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM overlays WHERE id = ? AND (owner_id = ? OR owner_id IS NULL)")
        .bind(id)
        .bind(user.id)
        .fetch_optional(pool)
        .await
}

pub async fn find(pool: &SqlitePool, id: i64) -> Result<Option<Overlay>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM overlays WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The lock key shared by every job that writes an overlay's directory.
pub fn lock_key(id: i64) -> String {
    format!("overlay:{id}")
}

/// The job subject of overlay `id`.
pub fn subject(id: i64) -> String {
    format!("overlay:{id}")
}

/// Loads the overlay a job works on, failing the job clearly when it is gone.
pub(super) async fn job_overlay(ctx: &JobCtx, id: i64) -> Result<Overlay, JobFailure> {
    find(ctx.pool(), id).await?.ok_or_else(|| {
        JobFailure::msg(format!(
            "overlay {id} does not exist (deleted after the job was queued)"
        ))
    })
}

/// Marks a successful build or sync.
pub(super) async fn mark_built(ctx: &JobCtx, id: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE overlays SET built_at = ?, sync_error = NULL, sync_error_detail = NULL WHERE id = ?",
    )
        .bind(crate::db::now_text())
        .bind(id)
        .execute(ctx.pool())
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "Maps 2024",
            "metamod-sourcemod_1.12",
            "x".repeat(64).as_str(),
        ] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            " lead",
            "-x",
            "trail ",
            "a/b",
            "a\0b",
            "ünï",
            "x".repeat(65).as_str(),
            "<script>",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn scripts_are_normalised_and_bounded() {
        assert_eq!(normalize_script("a\r\nb\r\n").unwrap(), "a\nb\n");
        assert!(normalize_script("a\0").is_err());
        assert!(normalize_script(&"#".repeat(MAX_SCRIPT_BYTES)).is_ok());
        let err = normalize_script(&"#".repeat(MAX_SCRIPT_BYTES + 1)).unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        // CRLF counts after normalisation: exactly 1 MiB of LF lines fits.
        let crlf = "#\r\n".repeat(MAX_SCRIPT_BYTES / 2);
        assert_eq!(normalize_script(&crlf).unwrap().len(), MAX_SCRIPT_BYTES);
    }

    #[test]
    fn refs() {
        let ids = parse_refs(
            "123, 456\nhttps://steamcommunity.com/sharedfiles/filedetails/?id=789&searchtext=x\r\n123\n\n",
        )
        .unwrap();
        assert_eq!(ids, vec![123, 456, 789]);
        let err = parse_refs("12, abc, https://example.com/?id=5")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"abc\"") && err.contains("example.com"),
            "{err}"
        );
        assert!(parse_refs(" \n, ").is_err());
        assert!(parse_refs("0").is_err());
    }
}
