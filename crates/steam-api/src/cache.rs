//! The shared workshop download cache `<LEFT4ME_ROOT>/workshop_cache/`.
//!
//! Each item lives once as `<id>.vpk` next to a sidecar `<id>.json` recording the `time_updated` and
//! size it was downloaded for. Both are written to a temporary name in the same directory, fsynced and
//! renamed into place, so a reader sees the old complete file or the new complete file, never a part.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::error::error_chain;
use crate::resolve::{is_http_url, WorkshopItem};

/// What one [`WorkshopCache::sync`] did, per item id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub downloaded: Vec<u64>,
    pub up_to_date: Vec<u64>,
    pub failed: Vec<(u64, String)>,
}

impl SyncReport {
    pub fn is_success(&self) -> bool {
        self.failed.is_empty()
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Sidecar {
    time_updated: i64,
    file_size: u64,
}

/// Downloads workshop files into the shared cache, a bounded number at a time.
#[derive(Debug, Clone)]
pub struct WorkshopCache {
    dir: PathBuf,
    http: reqwest::Client,
    max_parallel: usize,
    max_file_size: u64,
}

/// How long a download may sit without receiving a byte before it is abandoned.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl WorkshopCache {
    /// `max_parallel` downloads at a time (0 is treated as 1); files announced larger than
    /// `max_file_size` are refused before any byte is fetched. Stalled downloads give up after
    /// [`DEFAULT_STALL_TIMEOUT`]; see [`WorkshopCache::with_stall_timeout`].
    pub fn new(
        dir: PathBuf,
        max_parallel: usize,
        max_file_size: u64,
    ) -> Result<Self, crate::SteamError> {
        Self::with_stall_timeout(dir, max_parallel, max_file_size, DEFAULT_STALL_TIMEOUT)
    }

    /// Like [`WorkshopCache::new`] with an explicit stall timeout (no byte received for this long).
    /// There is deliberately no whole-download timeout: a large map on a slow link is fine while it moves.
    pub fn with_stall_timeout(
        dir: PathBuf,
        max_parallel: usize,
        max_file_size: u64,
        stall_timeout: Duration,
    ) -> Result<Self, crate::SteamError> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(stall_timeout))
            .read_timeout(stall_timeout)
            .user_agent(concat!("left4me/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::SteamError::Config(format!("cannot build HTTP client: {e}")))?;
        Ok(WorkshopCache {
            dir,
            http,
            max_parallel: max_parallel.max(1),
            max_file_size,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `dir/<id>.vpk`.
    pub fn path_of(&self, item_id: u64) -> PathBuf {
        self.dir.join(format!("{item_id}.vpk"))
    }

    /// Ids whose `<id>.vpk` is absent from the cache (a server whose overlay expects one must not start).
    pub fn missing_files(&self, item_ids: &[u64]) -> Vec<u64> {
        item_ids
            .iter()
            .copied()
            .filter(|&id| !self.path_of(id).is_file())
            .collect()
    }

    fn sidecar_of(&self, item_id: u64) -> PathBuf {
        self.dir.join(format!("{item_id}.json"))
    }

    /// True when `<id>.vpk` exists with the expected size and its sidecar says it was downloaded for
    /// this `time_updated`.
    pub fn is_current(&self, item: &WorkshopItem) -> bool {
        let Ok(meta) = std::fs::metadata(self.path_of(item.id)) else {
            return false;
        };
        if !meta.is_file() || meta.len() != item.file_size {
            return false;
        }
        let Ok(text) = std::fs::read(self.sidecar_of(item.id)) else {
            return false;
        };
        match serde_json::from_slice::<Sidecar>(&text) {
            Ok(s) => s.time_updated == item.time_updated && s.file_size == item.file_size,
            Err(_) => false,
        }
    }

    /// Downloads every item that is not current, at most `max_parallel` at a time. A failing item does
    /// not stop the others; its temporary file is removed and an older cached copy stays as it was.
    /// `progress` receives one human-readable line per event, for the job log.
    pub async fn sync(
        &self,
        items: &[WorkshopItem],
        progress: impl Fn(String) + Send + Sync,
    ) -> SyncReport {
        let mut report = SyncReport::default();
        if let Err(e) = tokio::fs::create_dir_all(&self.dir).await {
            for item in items {
                let msg = format!("cannot create cache directory {}: {e}", self.dir.display());
                progress(format!("{} failed: {msg}", item.id));
                report.failed.push((item.id, msg));
            }
            return report;
        }
        let mut seen = std::collections::HashSet::new();
        let mut todo = Vec::new();
        for item in items {
            if !seen.insert(item.id) {
                continue;
            }
            if self.is_current(item) {
                progress(format!("{} up to date", item.id));
                report.up_to_date.push(item.id);
            } else {
                todo.push(item);
            }
        }
        let progress = &progress;
        let mut results = futures_util::stream::iter(todo)
            .map(|item| async move {
                progress(format!(
                    "downloading {} ({}, {})",
                    item.id,
                    item.title,
                    human_size(item.file_size)
                ));
                (item.id, self.download(item).await)
            })
            .buffer_unordered(self.max_parallel);
        while let Some((id, result)) = results.next().await {
            match result {
                Ok(()) => {
                    progress(format!("{id} downloaded"));
                    report.downloaded.push(id);
                }
                Err(msg) => {
                    tracing::warn!(item = id, error = %msg, "workshop download failed");
                    progress(format!("{id} failed: {msg}"));
                    report.failed.push((id, msg));
                }
            }
        }
        report
    }

    async fn download(&self, item: &WorkshopItem) -> Result<(), String> {
        if !is_http_url(&item.file_url) {
            return Err("download URL is not http(s)".to_string());
        }
        if item.file_size > self.max_file_size {
            return Err(format!(
                "file is {} but the limit is {}; refused",
                human_size(item.file_size),
                human_size(self.max_file_size)
            ));
        }
        let temp = TempFile::new(&self.dir, &format!("{}.vpk", item.id));
        let response = self
            .http
            .get(item.file_url.trim())
            .send()
            .await
            .map_err(describe_reqwest)?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("download answered HTTP {}", status.as_u16()));
        }
        match response.content_length() {
            Some(len) if len != item.file_size => {
                return Err(format!(
                    "server announces {len} bytes but Steam says the file has {} bytes",
                    item.file_size
                ));
            }
            _ => {}
        }
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp.path)
            .await
            .map_err(|e| format!("cannot create {}: {e}", temp.path.display()))?;
        let mut received: u64 = 0;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(describe_reqwest)?;
            received += chunk.len() as u64;
            if received > item.file_size {
                return Err(format!(
                    "server sent more than the expected {} bytes",
                    item.file_size
                ));
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| format!("cannot write {}: {e}", temp.path.display()))?;
        }
        if received != item.file_size {
            return Err(format!(
                "received {received} bytes but expected {}",
                item.file_size
            ));
        }
        file.sync_all()
            .await
            .map_err(|e| format!("cannot fsync {}: {e}", temp.path.display()))?;
        drop(file);
        temp.persist(&self.path_of(item.id)).await?;

        let sidecar = serde_json::to_vec(&Sidecar {
            time_updated: item.time_updated,
            file_size: item.file_size,
        })
        .map_err(|e| format!("cannot encode sidecar: {e}"))?;
        let side_temp = TempFile::new(&self.dir, &format!("{}.json", item.id));
        write_synced(&side_temp.path, &sidecar).await?;
        side_temp.persist(&self.sidecar_of(item.id)).await?;
        sync_dir(&self.dir).await;
        Ok(())
    }
}

/// A temporary file in the cache directory, removed on drop unless persisted (also when the sync
/// future is dropped midway).
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    fn new(dir: &Path, final_name: &str) -> Self {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!(".{final_name}.{}.{n}.part", std::process::id());
        TempFile {
            path: dir.join(name),
            keep: false,
        }
    }

    async fn persist(mut self, target: &Path) -> Result<(), String> {
        tokio::fs::rename(&self.path, target)
            .await
            .map_err(|e| format!("cannot rename into {}: {e}", target.display()))?;
        self.keep = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

async fn write_synced(path: &Path, data: &[u8]) -> Result<(), String> {
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(data)
        .await
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.sync_all()
        .await
        .map_err(|e| format!("cannot fsync {}: {e}", path.display()))
}

/// Makes the renames durable. Best effort: some filesystems refuse fsync on directories.
async fn sync_dir(dir: &Path) {
    if let Ok(d) = tokio::fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
}

fn describe_reqwest(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "download timed out (no data received in time)".to_string()
    } else if e.is_body() || e.is_decode() {
        format!("download cut off: {}", error_chain(&e.without_url()))
    } else {
        format!("download failed: {}", error_chain(&e.without_url()))
    }
}

/// `12.3 MiB`-style sizes for log lines.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}
