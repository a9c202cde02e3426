//! Workshop overlays: resolve the entered items and collections through the
//! Steam Web API, keep the shared cache (`workshop_cache/<id>.vpk`) current,
//! and make `overlays/<id>/left4dead2/addons/` hold exactly one symlink
//! `<item>.vpk` → the absolute cache path per item (the directory is fully
//! managed: anything else in it is removed).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::SqlitePool;
use steam_api::{SteamApi, SteamError, SyncReport, WorkshopCache, WorkshopItem};
use tokio::sync::mpsc;

use super::model::{
    job_overlay, mark_built, overlay_dir, remove_tree, workshop_cache_file, Kind, Overlay,
};
use crate::config::Config;
use crate::jobs::{JobCtx, JobFailure};

/// Why one overlay's sync failed (a refresh goes on with the others).
#[derive(Debug, thiserror::Error)]
pub enum WorkshopError {
    #[error("overlay {name:?} is a {kind} overlay, not a workshop overlay")]
    NotWorkshop { name: String, kind: Kind },
    #[error("workshop overlay {0:?} lists no items; edit it first")]
    NoItems(String),
    #[error("cannot resolve the workshop items: {0}")]
    Resolve(SteamError),
    #[error("{failed} of {total} workshop item(s) failed: {list}")]
    ItemsFailed {
        failed: usize,
        total: usize,
        list: String,
    },
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        /// Relative to the overlay directory (job logs are read by owners).
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the Steam Web API client cannot be set up: {0}")]
    Setup(SteamError),
}

impl WorkshopError {
    /// What went wrong in an operator's words, for the overlay's page; the
    /// full error stays in the job log and the page's details.
    pub fn plain(&self) -> String {
        match self {
            WorkshopError::NotWorkshop { .. } => "This is not a workshop overlay.".into(),
            WorkshopError::NoItems(_) => "It lists no workshop items yet: edit it first.".into(),
            WorkshopError::Resolve(e) | WorkshopError::Setup(e) => steam_plain(e),
            WorkshopError::ItemsFailed { total: 1, .. } => {
                "Its workshop item could not be downloaded.".into()
            }
            WorkshopError::ItemsFailed { failed, total, .. } => {
                format!("{failed} of its {total} workshop items could not be downloaded.")
            }
            WorkshopError::Io { .. } => {
                "Its files could not be written on this host (see the details).".into()
            }
        }
    }
}

/// The steam-api crate's error kinds in plain words.
fn steam_plain(e: &SteamError) -> String {
    match e {
        SteamError::Unreachable { .. } | SteamError::Transport { .. } => {
            "Steam could not be reached from this host.".into()
        }
        SteamError::Timeout { .. } => "Steam did not answer in time; try again later.".into(),
        SteamError::Status { status: 429, .. } => {
            "Steam is limiting requests from this host; try again later.".into()
        }
        SteamError::Status {
            status: 401 | 403, ..
        } => "Steam refused the request: check the Steam Web API key of this host.".into(),
        SteamError::Status { status, .. } if *status >= 500 => {
            format!("Steam had a server error (HTTP {status}); try again later.")
        }
        SteamError::Status { status, .. } => format!("Steam returned an error (HTTP {status})."),
        SteamError::ResponseTooLarge { .. } | SteamError::BadResponse { .. } => {
            "Steam's answer could not be read; try again later.".into()
        }
        SteamError::MissingKey { .. } => {
            "A Steam Web API key is needed and this host has none.".into()
        }
        SteamError::Config(_) => "The Steam settings of this host are unusable.".into(),
        SteamError::InvalidRef { input, .. } => {
            format!("{input:?} is not a workshop item or collection.")
        }
        SteamError::Unusable(problems) => {
            let words: Vec<String> = problems.iter().map(problem_plain).collect();
            words.join(" ")
        }
    }
}

fn problem_plain(p: &steam_api::ItemProblem) -> String {
    use steam_api::ProblemKind as K;
    let id = p.id;
    match &p.reason {
        K::Unavailable { .. } => {
            format!("Steam returned an error for item {id}: it was removed, is private or never existed.")
        }
        K::NotInResponse => format!("Steam returned nothing for item {id}."),
        K::WrongApp { .. } => format!("Item {id} is not a Left 4 Dead 2 item."),
        K::NoFileUrl | K::BadFileUrl { .. } => {
            format!("Item {id} cannot be downloaded directly from Steam.")
        }
        K::EmptyFile => format!("Steam says item {id} is empty."),
        K::NestedTooDeep { .. } => format!("Collection {id} nests too many collections."),
    }
}

/// Notes on the overlay why its sync failed (cleared by the next success).
async fn record_failure(
    pool: &SqlitePool,
    overlay_id: i64,
    e: &WorkshopError,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE overlays SET sync_error = ?, sync_error_detail = ? WHERE id = ?")
        .bind(e.plain())
        .bind(e.to_string())
        .bind(overlay_id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// The link of `item` inside overlay directory `dir`.
pub fn addon_link(dir: &Path, item: i64) -> PathBuf {
    addons_dir(dir).join(format!("{item}.vpk"))
}

pub fn addons_dir(dir: &Path) -> PathBuf {
    dir.join(ADDONS)
}

const ADDONS: &str = "left4dead2/addons";

/// A workshop item of an overlay, as last recorded.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRow {
    pub id: i64,
    pub title: String,
    pub file_size: i64,
    pub time_updated: i64,
}

/// The recorded items of overlay `overlay_id`, by id.
pub async fn items(pool: &SqlitePool, overlay_id: i64) -> Result<Vec<ItemRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT w.id, w.title, w.file_size, w.time_updated FROM overlay_workshop_items o
         JOIN workshop_items w ON w.id = o.item_id WHERE o.overlay_id = ? ORDER BY w.id",
    )
    .bind(overlay_id)
    .fetch_all(pool)
    .await
}

/// The Steam client and the cache, configured for one job.
struct Steam {
    api: SteamApi,
    cache: WorkshopCache,
}

fn steam_for(config: &Config) -> Result<Steam, WorkshopError> {
    let api = SteamApi::new(
        &config.steam_api_base_url,
        config.steam_web_api_key.clone(),
        Duration::from_secs(config.steam_api_timeout_secs),
    )
    .map_err(WorkshopError::Setup)?;
    let cache = WorkshopCache::new(
        config.root.join("workshop_cache"),
        config.workshop_parallel,
        config.workshop_max_file_bytes,
    )
    .map_err(WorkshopError::Setup)?;
    Ok(Steam { api, cache })
}

/// The `workshop-sync` job of one overlay.
pub async fn sync_job(
    ctx: &mut JobCtx,
    config: &Config,
    overlay_id: i64,
) -> Result<(), JobFailure> {
    let overlay = job_overlay(ctx, overlay_id).await?;
    if !overlay.is_workshop() {
        return Err(JobFailure::from_error(WorkshopError::NotWorkshop {
            name: overlay.name,
            kind: overlay.kind,
        }));
    }
    let result = match steam_for(config) {
        Ok(steam) => sync_overlay(ctx, config, &steam, &overlay).await?,
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        record_failure(ctx.pool(), overlay.id, e).await?;
    }
    result.map_err(JobFailure::from_error)
}

/// The coalesced `workshop-refresh` system job: every workshop overlay is
/// resolved again; items whose `time_updated` changed are downloaded again.
/// One overlay failing does not stop the others; the job then fails naming
/// every failed overlay.
pub async fn refresh_job(ctx: &mut JobCtx, config: &Config) -> Result<(), JobFailure> {
    let overlays: Vec<Overlay> =
        sqlx::query_as("SELECT * FROM overlays WHERE kind = 'workshop' ORDER BY id")
            .fetch_all(ctx.pool())
            .await?;
    ctx.say(format!(
        "workshop refresh: {} workshop overlay(s)",
        overlays.len()
    ))
    .await?;
    let steam = steam_for(config).map_err(JobFailure::from_error)?;
    let mut failed = Vec::new();
    for overlay in &overlays {
        ctx.say(format!("== overlay {:?} (#{})", overlay.name, overlay.id))
            .await?;
        if let Err(e) = sync_overlay(ctx, config, &steam, overlay).await? {
            record_failure(ctx.pool(), overlay.id, &e).await?;
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
    config: &Config,
    steam: &Steam,
    overlay: &Overlay,
) -> Result<Result<(), WorkshopError>, JobFailure> {
    let refs = overlay.refs();
    if refs.is_empty() {
        return Ok(Err(WorkshopError::NoItems(overlay.name.clone())));
    }
    ctx.say(format!(
        "resolving {} workshop reference(s) through the Steam Web API ({})",
        refs.len(),
        config.steam_api_base_url
    ))
    .await?;
    let items = match steam_api::resolve(&steam.api, &refs).await {
        Ok(items) => items,
        Err(e) => return Ok(Err(WorkshopError::Resolve(e))),
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
    let root = &config.root;
    let dir = overlay_dir(root, overlay.id);
    let linked = match link_items(root, &dir, &items) {
        Ok(n) => n,
        Err(e) => return Ok(Err(e)),
    };
    ctx.say(format!(
        "{} downloaded, {} up to date, {} failed; {linked} link(s) in {ADDONS}/",
        report.downloaded.len(),
        report.up_to_date.len(),
        report.failed.len(),
    ))
    .await?;
    if !report.failed.is_empty() {
        let list: Vec<String> = report
            .failed
            .iter()
            .map(|(id, msg)| format!("{id}: {msg}"))
            .collect();
        return Ok(Err(WorkshopError::ItemsFailed {
            failed: report.failed.len(),
            total: items.len(),
            list: list.join("; "),
        }));
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
fn link_items(root: &Path, dir: &Path, items: &[WorkshopItem]) -> Result<usize, WorkshopError> {
    let io = |what: &'static str, name: &str| {
        let path = Path::new(ADDONS).join(name);
        move |source| WorkshopError::Io { what, path, source }
    };
    let addons = addons_dir(dir);
    std::fs::create_dir_all(&addons).map_err(io("create", ""))?;
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
        let temp_name = format!(".{name}.{}.tmp", std::process::id());
        let temp = addons.join(&temp_name);
        let _ = std::fs::remove_file(&temp);
        std::os::unix::fs::symlink(&target, &temp).map_err(io("create link", &temp_name))?;
        std::fs::rename(&temp, &link).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            io("place link", &name)(e)
        })?;
    }
    let entries = std::fs::read_dir(&addons).map_err(io("read", ""))?;
    for entry in entries {
        let entry = entry.map_err(io("read", ""))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !wanted.contains(&name) {
            remove_tree(&entry.path()).map_err(io("remove stale", &name))?;
        }
    }
    Ok(wanted.len())
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
