//! Workshop overlays: resolve the entered items and collections through the
//! Steam Web API, keep the shared cache (`workshop_cache/<id>.vpk`) current,
//! and make `overlays/<id>/left4dead2/addons/` hold exactly one symlink
//! `<item>.vpk` → the absolute cache path per item (the directory is fully
//! managed: anything else in it is removed).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use steam_api::{SteamApi, SyncReport, WorkshopCache, WorkshopItem};
use tokio::sync::mpsc;

use super::{job_overlay, mark_built, overlay_dir, workshop_cache_file, Overlay};
use crate::jobs::{JobCtx, JobFailure};

/// Per-request timeout of Steam Web API calls (seconds).
pub const API_TIMEOUT_VAR: &str = "LEFT4ME_STEAM_API_TIMEOUT_SECS";
pub const DEFAULT_API_TIMEOUT_SECS: u64 = 30;
/// Largest workshop file accepted into the cache (bytes).
pub const MAX_FILE_VAR: &str = "LEFT4ME_WORKSHOP_MAX_FILE_BYTES";
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// The link of `item` inside overlay directory `dir`.
pub fn addon_link(dir: &Path, item: i64) -> PathBuf {
    addons_dir(dir).join(format!("{item}.vpk"))
}

pub fn addons_dir(dir: &Path) -> PathBuf {
    dir.join("left4dead2").join("addons")
}

fn env_u64(var: &str, default: u64, max: u64) -> Result<u64, String> {
    match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(v) if v.trim().is_empty() => Ok(default),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!(
                "{var}: expected a number between 1 and {max} (got {v:?})"
            )),
        },
    }
}

/// The Steam client and the cache, configured for one job.
struct Steam {
    api: SteamApi,
    cache: WorkshopCache,
}

fn steam_for(ctx: &JobCtx) -> Result<Steam, JobFailure> {
    let timeout =
        env_u64(API_TIMEOUT_VAR, DEFAULT_API_TIMEOUT_SECS, 3600).map_err(JobFailure::msg)?;
    let max_file =
        env_u64(MAX_FILE_VAR, DEFAULT_MAX_FILE_BYTES, u64::MAX).map_err(JobFailure::msg)?;
    let config = ctx.config();
    let api = SteamApi::new(
        &config.steam_api_base_url,
        config.steam_web_api_key.clone(),
        Duration::from_secs(timeout),
    )
    .map_err(|e| JobFailure::msg(e.to_string()))?;
    let cache = WorkshopCache::new(
        config.root.join("workshop_cache"),
        config.workshop_parallel,
        max_file,
    )
    .map_err(|e| JobFailure::msg(e.to_string()))?;
    Ok(Steam { api, cache })
}

/// The `workshop-sync` job of one overlay.
pub async fn sync_job(ctx: &mut JobCtx, overlay_id: i64) -> Result<(), JobFailure> {
    let overlay = job_overlay(ctx, overlay_id).await?;
    if !overlay.is_workshop() {
        return Err(JobFailure::msg(format!(
            "overlay {:?} is a {} overlay, not a workshop overlay",
            overlay.name, overlay.kind
        )));
    }
    let steam = steam_for(ctx)?;
    sync_overlay(ctx, &steam, &overlay)
        .await?
        .map_err(JobFailure::msg)
}

/// The coalesced `workshop-refresh` system job: every workshop overlay is
/// resolved again; items whose `time_updated` changed are downloaded again.
/// One overlay failing does not stop the others; the job then fails naming
/// every failed overlay.
pub async fn refresh_job(ctx: &mut JobCtx) -> Result<(), JobFailure> {
    let overlays: Vec<Overlay> =
        sqlx::query_as("SELECT * FROM overlays WHERE kind = 'workshop' ORDER BY id")
            .fetch_all(ctx.pool())
            .await?;
    ctx.say(format!(
        "workshop refresh: {} workshop overlay(s)",
        overlays.len()
    ))
    .await?;
    let steam = steam_for(ctx)?;
    let mut failed = Vec::new();
    for overlay in &overlays {
        ctx.say(format!("== overlay {:?} (#{})", overlay.name, overlay.id))
            .await?;
        if let Err(e) = sync_overlay(ctx, &steam, overlay).await? {
            ctx.say(format!("overlay {:?} failed: {e}", overlay.name))
                .await?;
            failed.push(format!("{:?} (#{}): {e}", overlay.name, overlay.id));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(JobFailure::msg(format!(
            "{} of {} workshop overlay(s) failed to refresh: {}",
            failed.len(),
            overlays.len(),
            failed.join(" | ")
        )))
    }
}

/// Resolve, record, download and link one overlay. The outer error is a
/// database failure (the job's bookkeeping); the inner one is this
/// overlay's failure, shown in the log.
async fn sync_overlay(
    ctx: &mut JobCtx,
    steam: &Steam,
    overlay: &Overlay,
) -> Result<Result<(), String>, JobFailure> {
    let refs = overlay.refs();
    if refs.is_empty() {
        return Ok(Err(format!(
            "workshop overlay {:?} lists no items; edit it first",
            overlay.name
        )));
    }
    ctx.say(format!(
        "resolving {} workshop reference(s) through the Steam Web API ({})",
        refs.len(),
        ctx.config().steam_api_base_url
    ))
    .await?;
    let items = match steam_api::resolve(&steam.api, &refs).await {
        Ok(items) => items,
        Err(e) => return Ok(Err(format!("cannot resolve the workshop items: {e}"))),
    };
    for item in &items {
        ctx.say(format!(
            "item {}: {} ({}, updated {})",
            item.id,
            item.title,
            steam_api::human_size(item.file_size),
            item.time_updated
        ))
        .await?;
    }
    let report = sync_cache(ctx, &steam.cache, &items).await?;
    record(ctx, overlay, &items, &report).await?;
    let root = ctx.config().root.clone();
    let dir = overlay_dir(&root, overlay.id);
    let linked = match link_items(&root, &dir, &items) {
        Ok(n) => n,
        Err(e) => return Ok(Err(e)),
    };
    ctx.say(format!(
        "{} downloaded, {} up to date, {} failed; {linked} link(s) in {}",
        report.downloaded.len(),
        report.up_to_date.len(),
        report.failed.len(),
        addons_dir(&dir)
            .strip_prefix(&ctx.config().root)
            .unwrap_or(&addons_dir(&dir))
            .display()
    ))
    .await?;
    if !report.failed.is_empty() {
        let list: Vec<String> = report
            .failed
            .iter()
            .map(|(id, msg)| format!("{id}: {msg}"))
            .collect();
        return Ok(Err(format!(
            "{} of {} workshop item(s) failed: {}",
            report.failed.len(),
            items.len(),
            list.join("; ")
        )));
    }
    mark_built(ctx, overlay.id).await?;
    Ok(Ok(()))
}

/// Runs the cache sync while its progress lines stream into the job log.
///
/// The sync future borrows its progress callback inside a buffered stream,
/// which rustc cannot prove `Send` for every lifetime ("Send is not general
/// enough") once it sits inside the worker's boxed job future. It therefore
/// runs on a blocking thread driving it with `Handle::block_on` (no `Send`
/// needed), on the same runtime and its IO driver.
async fn sync_cache(
    ctx: &mut JobCtx,
    cache: &WorkshopCache,
    items: &[WorkshopItem],
) -> Result<SyncReport, JobFailure> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let cache = cache.clone();
    let items = items.to_vec();
    let handle = tokio::runtime::Handle::current();
    let mut task = tokio::task::spawn_blocking(move || {
        handle.block_on(cache.sync(&items, move |line| {
            let _ = tx.send(line);
        }))
    });
    let joined = loop {
        tokio::select! {
            r = &mut task => break r,
            Some(line) = rx.recv() => ctx.say(line).await?,
        }
    };
    while let Ok(line) = rx.try_recv() {
        ctx.say(line).await?;
    }
    joined.map_err(|e| JobFailure::msg(format!("the workshop download task failed: {e}")))
}

/// Stores item metadata and the overlay's item list in one transaction.
/// Items that synced get their new metadata; a failed item keeps the
/// metadata of its older cached copy (so that copy stays usable), and a
/// failed new item is recorded too, so `check_ready` refuses to start a
/// server without it.
async fn record(
    ctx: &JobCtx,
    overlay: &Overlay,
    items: &[WorkshopItem],
    report: &SyncReport,
) -> Result<(), sqlx::Error> {
    let failed: HashSet<u64> = report.failed.iter().map(|(id, _)| *id).collect();
    let mut tx = ctx.pool().begin().await?;
    for item in items {
        let sql = if failed.contains(&item.id) {
            "INSERT INTO workshop_items (id, title, file_size, time_updated, file_url, fetched_at)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING"
        } else {
            "INSERT INTO workshop_items (id, title, file_size, time_updated, file_url, fetched_at)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET title = excluded.title,
               file_size = excluded.file_size, time_updated = excluded.time_updated,
               file_url = excluded.file_url, fetched_at = excluded.fetched_at"
        };
        sqlx::query(sql)
            .bind(item.id as i64)
            .bind(&item.title)
            .bind(item.file_size as i64)
            .bind(item.time_updated)
            .bind(&item.file_url)
            .bind(crate::db::now_text())
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM overlay_workshop_items WHERE overlay_id = ?")
        .bind(overlay.id)
        .execute(&mut *tx)
        .await?;
    for item in items {
        sqlx::query("INSERT INTO overlay_workshop_items (overlay_id, item_id) VALUES (?, ?)")
            .bind(overlay.id)
            .bind(item.id as i64)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// Makes `addons/` hold exactly one link per item whose file is in the
/// cache (new links are created under a temporary name and renamed over
/// the old one); every other entry is removed. Returns the link count.
fn link_items(root: &Path, dir: &Path, items: &[WorkshopItem]) -> Result<usize, String> {
    let addons = addons_dir(dir);
    std::fs::create_dir_all(&addons)
        .map_err(|e| format!("cannot create {}: {e}", addons.display()))?;
    let mut wanted = HashSet::new();
    for item in items {
        let id = item.id as i64;
        let target = workshop_cache_file(root, id);
        if !target.is_file() {
            continue; // a failed new item: nothing to link (check_ready says so)
        }
        let name = format!("{id}.vpk");
        wanted.insert(name.clone());
        let link = addons.join(&name);
        if std::fs::read_link(&link).is_ok_and(|t| t == target) {
            continue;
        }
        let temp = addons.join(format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&temp);
        std::os::unix::fs::symlink(&target, &temp)
            .map_err(|e| format!("cannot create link {}: {e}", temp.display()))?;
        std::fs::rename(&temp, &link).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            format!("cannot place link {}: {e}", link.display())
        })?;
    }
    let entries =
        std::fs::read_dir(&addons).map_err(|e| format!("cannot read {}: {e}", addons.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", addons.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !wanted.contains(&name) {
            let path = entry.path();
            super::remove_tree(&path)
                .map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
        }
    }
    Ok(wanted.len())
}

/// Enqueues the coalesced system refresh job straight into the database
/// (used by `left4me workshop-refresh`, which has no job workers: the
/// serving process picks the job up). The coalesce key is the one
/// `Jobs::submit` uses for system jobs, so the web app and the CLI
/// coalesce with each other. Returns the job id and whether it is new.
pub async fn enqueue_refresh(pool: &sqlx::SqlitePool) -> Result<(i64, bool), sqlx::Error> {
    let payload = serde_json::json!({}).to_string();
    let key = format!("workshop-refresh:{payload}");
    for _ in 0..2 {
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO jobs (kind, args, user_id, coalesce_key, lock_key, title, state)
             VALUES ('workshop-refresh', ?, NULL, ?, NULL, 'refresh all workshop overlays', 'queued')
             ON CONFLICT (coalesce_key) WHERE state = 'queued' AND coalesce_key IS NOT NULL DO NOTHING
             RETURNING id",
        )
        .bind(&payload)
        .bind(&key)
        .fetch_optional(pool)
        .await?;
        if let Some(id) = inserted {
            return Ok((id, true));
        }
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM jobs WHERE coalesce_key = ? AND state = 'queued'")
                .bind(&key)
                .fetch_optional(pool)
                .await?;
        if let Some(id) = existing {
            return Ok((id, false));
        }
    }
    Err(sqlx::Error::RowNotFound)
}

/// `left4me workshop-refresh` (also the daily timer): enqueue only; the
/// serving process's workers (they poll the database) run the job.
pub async fn refresh_cli() -> anyhow::Result<()> {
    use crate::config::{self, EnvSource};
    let (_, url) = config::database_location(&EnvSource(|k| std::env::var(k).ok()))?;
    let pool = crate::db::connect(&url).await?;
    crate::db::migrate(&pool).await?;
    let (id, new) = enqueue_refresh(&pool).await?;
    if new {
        println!("queued workshop refresh job #{id}; the left4me web service runs it");
    } else {
        println!("workshop refresh job #{id} is already queued; nothing added");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: u64) -> WorkshopItem {
        WorkshopItem {
            id,
            title: format!("item {id}"),
            file_name: format!("{id}.vpk"),
            original_file_name: "x.vpk".into(),
            file_url: "http://127.0.0.1/x".into(),
            file_size: 3,
            time_updated: 1,
        }
    }

    #[test]
    fn links_are_exact_and_stale_ones_go() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("workshop_cache")).unwrap();
        for id in [1, 2] {
            std::fs::write(workshop_cache_file(root, id), "abc").unwrap();
        }
        let dir = overlay_dir(root, 5);
        let addons = addons_dir(&dir);
        std::fs::create_dir_all(&addons).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", addons.join("9.vpk")).unwrap();
        std::fs::write(addons.join("junk.txt"), "x").unwrap();
        // Item 3 is not in the cache (failed new item): no link.
        let n = link_items(root, &dir, &[item(1), item(2), item(3)]).unwrap();
        assert_eq!(n, 2);
        let mut names: Vec<String> = std::fs::read_dir(&addons)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["1.vpk", "2.vpk"]);
        assert_eq!(
            std::fs::read_link(addons.join("1.vpk")).unwrap(),
            workshop_cache_file(root, 1)
        );
        // Dropping an item removes its link; the cache file stays (shared).
        link_items(root, &dir, &[item(2)]).unwrap();
        assert!(std::fs::symlink_metadata(addons.join("1.vpk")).is_err());
        assert!(workshop_cache_file(root, 1).exists());
    }
}
