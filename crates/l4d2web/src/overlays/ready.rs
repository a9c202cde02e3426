//! Whether an overlay can be mounted into a server right now.

use std::path::Path;

use sqlx::SqlitePool;

use super::model::{overlay_dir, workshop_cache_file, Kind};
use super::workshop;

/// Why an overlay cannot be mounted (each says what to do about it).
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    #[error("overlay {0} does not exist")]
    Missing(i64),
    #[error("overlay {0:?} has no directory yet (build it first)")]
    NoDirectory(String),
    #[error("workshop overlay {0:?} has not been synced yet (no items); sync it first")]
    NotSynced(String),
    #[error("overlay {name:?}: workshop item {item} ({title}) in the cache has {actual} bytes, expected {expected}; refresh the overlay")]
    WrongSize {
        name: String,
        item: i64,
        title: String,
        actual: u64,
        expected: i64,
    },
    #[error("overlay {name:?}: workshop item {item} ({title}) is missing from the cache; refresh the overlay")]
    NotCached {
        name: String,
        item: i64,
        title: String,
    },
    #[error("overlay {name:?}: the link to workshop item {item} ({title}) is missing or wrong; sync the overlay")]
    BadLink {
        name: String,
        item: i64,
        title: String,
    },
    #[error("cannot read overlay {id}: {source}")]
    Db { id: i64, source: sqlx::Error },
}

/// Checks that overlay `id` can be mounted into a server: its directory
/// exists and, for a workshop overlay, every file it expects is in the
/// cache with the expected size and linked from `left4dead2/addons/`.
pub async fn check_ready(pool: &SqlitePool, root: &Path, id: i64) -> Result<(), NotReady> {
    let db = |source| NotReady::Db { id, source };
    let row: Option<(String, Kind)> =
        sqlx::query_as("SELECT name, kind FROM overlays WHERE id = ?")
            .bind(id)
            .fetch_optional(pool)
            .await
            .map_err(db)?;
    let Some((name, kind)) = row else {
        return Err(NotReady::Missing(id));
    };
    let dir = overlay_dir(root, id);
    if !dir.is_dir() {
        return Err(NotReady::NoDirectory(name));
    }
    if kind != Kind::Workshop {
        return Ok(());
    }
    let items = workshop::items(pool, id).await.map_err(db)?;
    if items.is_empty() {
        return Err(NotReady::NotSynced(name));
    }
    for item in items {
        let file = workshop_cache_file(root, item.id);
        match std::fs::metadata(&file) {
            Ok(m) if m.len() == item.file_size as u64 => {}
            Ok(m) => {
                return Err(NotReady::WrongSize {
                    name,
                    item: item.id,
                    title: item.title,
                    actual: m.len(),
                    expected: item.file_size,
                })
            }
            Err(_) => {
                return Err(NotReady::NotCached {
                    name,
                    item: item.id,
                    title: item.title,
                })
            }
        }
        match std::fs::read_link(workshop::addon_link(&dir, item.id)) {
            Ok(target) if target == file => {}
            _ => {
                return Err(NotReady::BadLink {
                    name,
                    item: item.id,
                    title: item.title,
                })
            }
        }
    }
    Ok(())
}
