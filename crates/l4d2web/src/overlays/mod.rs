//! Overlays (SPEC §7): script overlays built in a sandbox, Steam Workshop
//! overlays linked into the shared cache, and what a server needs to know
//! about them before it mounts them.

use std::path::{Path, PathBuf};

use sqlx::SqlitePool;

use crate::jobs::{JobCtx, JobFailure};

/// The directory of overlay `id` under the data root.
pub fn overlay_dir(root: &Path, id: i64) -> PathBuf {
    root.join("overlays").join(id.to_string())
}

/// The cached file of a workshop item (shared by every workshop overlay).
pub fn workshop_cache_file(root: &Path, item_id: i64) -> PathBuf {
    root.join("workshop_cache").join(format!("{item_id}.vpk"))
}

/// Checks that overlay `id` can be mounted into a server: its directory
/// exists and, for a workshop overlay, every file it expects is in the
/// cache with the expected size. The error says what is missing.
pub async fn check_ready(pool: &SqlitePool, root: &Path, id: i64) -> Result<(), String> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT name, kind FROM overlays WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(|e| format!("cannot read overlay {id}: {e}"))?;
    let Some((name, kind)) = row else {
        return Err(format!("overlay {id} does not exist"));
    };
    let dir = overlay_dir(root, id);
    if !dir.is_dir() {
        return Err(format!(
            "overlay {name:?} has no directory {} (build it first)",
            dir.display()
        ));
    }
    if kind == "workshop" {
        let items: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT w.id, w.title, w.file_size FROM overlay_workshop_items o
             JOIN workshop_items w ON w.id = o.item_id WHERE o.overlay_id = ? ORDER BY w.id",
        )
        .bind(id)
        .fetch_all(pool)
        .await
        .map_err(|e| format!("cannot read the items of overlay {name:?}: {e}"))?;
        for (item, title, size) in items {
            let file = workshop_cache_file(root, item);
            match std::fs::metadata(&file) {
                Ok(m) if m.len() == size as u64 => {}
                Ok(m) => {
                    return Err(format!(
                        "overlay {name:?}: workshop item {item} ({title}) in the cache has {} bytes, expected {size}; refresh the overlay",
                        m.len()
                    ))
                }
                Err(_) => {
                    return Err(format!(
                        "overlay {name:?}: workshop item {item} ({title}) is missing from the cache ({}); refresh the overlay",
                        file.display()
                    ))
                }
            }
        }
    }
    Ok(())
}

/// Runs an `overlay-*` or `workshop-*` job.
pub async fn run_job(ctx: &mut JobCtx) -> Result<(), JobFailure> {
    Err(JobFailure::msg(format!(
        "job kind {:?} is not implemented yet (overlays, issue 5)",
        ctx.job.kind
    )))
}
