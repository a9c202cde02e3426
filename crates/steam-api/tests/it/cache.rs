//! `WorkshopCache::sync` against a local file server: atomic writes, size checks, bounded parallelism.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use steam_api::{resolve, SteamApi, WorkshopCache, WorkshopItem};
use test_support::steam::*;

const MAX: u64 = 10 * 1024 * 1024;

fn api(sim: &SteamSim) -> SteamApi {
    SteamApi::new(&sim.base_url(), None, Duration::from_secs(5)).unwrap()
}

fn item(sim: &SteamSim, id: u64, size: u64, time_updated: i64) -> WorkshopItem {
    WorkshopItem {
        id,
        title: format!("Item {id}"),
        file_name: format!("{id}.vpk"),
        original_file_name: "x.vpk".into(),
        file_url: sim.file_url(id),
        file_size: size,
        time_updated,
    }
}

/// Files in the cache dir other than `<id>.vpk` / `<id>.json` (temporary leftovers).
fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') || n.ends_with(".part"))
        .collect()
}

async fn sync_logged(
    cache: &WorkshopCache,
    items: &[WorkshopItem],
) -> (steam_api::SyncReport, Vec<String>) {
    let lines = Mutex::new(Vec::new());
    let report = cache
        .sync(items, |line| lines.lock().unwrap().push(line))
        .await;
    (report, lines.into_inner().unwrap())
}

#[tokio::test]
async fn resolved_items_download_once_and_are_current() {
    let sim = SteamSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = WorkshopCache::new(dir.path().join("workshop_cache"), 4, MAX).unwrap();
    let items = resolve(&api(&sim), &[REAL_COLLECTION]).await.unwrap();
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|i| !cache.is_current(i)));

    let (report, lines) = sync_logged(&cache, &items).await;
    assert!(report.is_success(), "{report:?}");
    let mut downloaded = report.downloaded.clone();
    downloaded.sort();
    assert_eq!(downloaded, vec![3400000102, 3400000103, REAL_L4D2_ITEM]);
    for it in &items {
        assert!(cache.is_current(it));
        let path = cache.path_of(it.id);
        assert_eq!(
            path,
            dir.path()
                .join("workshop_cache")
                .join(format!("{}.vpk", it.id))
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            content(it.id, it.file_size as usize)
        );
    }
    assert!(
        lines.contains(&format!(
            "downloading {REAL_L4D2_ITEM} (usada pekora safe room loading music, 39.1 KiB)"
        )),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("{REAL_L4D2_ITEM} downloaded")),
        "{lines:?}"
    );
    assert!(leftovers(cache.dir()).is_empty());
    assert_eq!(
        cache.missing_files(&[REAL_L4D2_ITEM, 3400000102, 77]),
        vec![77]
    );

    // Second sync: nothing fetched.
    let before = sim.file_requests().len();
    let (report, lines) = sync_logged(&cache, &items).await;
    assert_eq!(report.up_to_date.len(), 3);
    assert!(report.downloaded.is_empty());
    assert_eq!(sim.file_requests().len(), before);
    assert!(lines.contains(&format!("{REAL_L4D2_ITEM} up to date")));
}

#[tokio::test]
async fn refresh_redownloads_only_items_whose_time_updated_changed() {
    let sim = SteamSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = WorkshopCache::new(dir.path().to_path_buf(), 2, MAX).unwrap();
    let items = resolve(&api(&sim), &[REAL_COLLECTION]).await.unwrap();
    assert!(cache.sync(&items, |_| {}).await.is_success());

    // The author updates one item: new time_updated, new size, new content.
    sim.set_item_field(3400000102, "time_updated", serde_json::json!(1_800_000_000));
    sim.set_size(3400000102, 31_000);
    let refreshed = resolve(&api(&sim), &[REAL_COLLECTION]).await.unwrap();
    sim.state.file_requests.lock().unwrap().clear();
    let report = cache.sync(&refreshed, |_| {}).await;
    assert_eq!(report.downloaded, vec![3400000102]);
    assert_eq!(report.up_to_date.len(), 2);
    assert_eq!(sim.file_requests(), vec![3400000102]);
    assert_eq!(
        std::fs::read(cache.path_of(3400000102)).unwrap(),
        content(3400000102, 31_000)
    );
}

#[tokio::test]
async fn same_size_but_new_time_updated_is_not_current() {
    let sim = SteamSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = WorkshopCache::new(dir.path().to_path_buf(), 1, MAX).unwrap();
    let old = item(&sim, REAL_L4D2_ITEM, 40_000, 100);
    assert!(cache
        .sync(std::slice::from_ref(&old), |_| {})
        .await
        .is_success());
    let new = WorkshopItem {
        time_updated: 200,
        ..old.clone()
    };
    assert!(cache.is_current(&old));
    assert!(!cache.is_current(&new));
    // A truncated cache file is not current either.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(cache.path_of(old.id))
        .unwrap();
    f.set_len(10).unwrap();
    assert!(!cache.is_current(&old));
}

#[tokio::test]
async fn cut_off_download_fails_and_keeps_the_older_copy() {
    let sim = SteamSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = WorkshopCache::new(dir.path().to_path_buf(), 2, MAX).unwrap();
    let v1 = item(&sim, REAL_L4D2_ITEM, 40_000, 1);
    let other = item(&sim, 3400000102, 30_000, 1);
    assert!(cache
        .sync(std::slice::from_ref(&v1), |_| {})
        .await
        .is_success());
    let old_bytes = std::fs::read(cache.path_of(v1.id)).unwrap();

    // Version 2 is announced; the server sends half of it and closes the connection.
    sim.set_size(v1.id, 50_000);
    sim.set_file_mode(v1.id, FileMode::CutOff);
    let v2 = WorkshopItem {
        file_size: 50_000,
        time_updated: 2,
        ..v1.clone()
    };
    let (report, lines) = sync_logged(&cache, &[v2.clone(), other.clone()]).await;
    assert_eq!(
        report.downloaded,
        vec![other.id],
        "the other item still completes"
    );
    assert_eq!(report.failed.len(), 1);
    let (id, msg) = &report.failed[0];
    assert_eq!(*id, v1.id);
    assert!(msg.starts_with("download cut off"), "{msg}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{} failed: download cut off", v1.id))),
        "{lines:?}"
    );
    assert!(
        leftovers(cache.dir()).is_empty(),
        "{:?}",
        leftovers(cache.dir())
    );
    assert_eq!(std::fs::read(cache.path_of(v1.id)).unwrap(), old_bytes);
    assert!(cache.is_current(&v1), "old copy and its record untouched");
    assert!(!cache.is_current(&v2));
}

#[tokio::test]
async fn wrong_sizes_are_refused() {
    let sim = SteamSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = WorkshopCache::new(dir.path().to_path_buf(), 3, MAX).unwrap();
    sim.add_item(1, "longer", 100, 1);
    sim.add_item(2, "shorter chunked", 100, 1);
    sim.add_item(3, "longer chunked", 100, 1);
    sim.set_file_mode(1, FileMode::Other(vec![7; 150]));
    sim.set_file_mode(2, FileMode::Chunked(vec![7; 60]));
    sim.set_file_mode(3, FileMode::Chunked(vec![7; 5000]));
    let items = [
        item(&sim, 1, 100, 1),
        item(&sim, 2, 100, 1),
        item(&sim, 3, 100, 1),
    ];
    let report = cache.sync(&items, |_| {}).await;
    let mut failed = report.failed.clone();
    failed.sort();
    assert_eq!(failed.len(), 3, "{report:?}");
    assert_eq!(
        failed[0].1,
        "server announces 150 bytes but Steam says the file has 100 bytes"
    );
    assert_eq!(failed[1].1, "received 60 bytes but expected 100");
    assert_eq!(failed[2].1, "server sent more than the expected 100 bytes");
    for id in 1..=3 {
        assert!(!cache.path_of(id).exists());
    }
    assert!(leftovers(cache.dir()).is_empty());
}

#[tokio::test]
async fn http_errors_and_bad_urls_fail_per_item() {
    let sim = SteamSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = WorkshopCache::new(dir.path().to_path_buf(), 2, MAX).unwrap();
    sim.add_item(11, "gone", 10, 1);
    sim.set_file_mode(11, FileMode::Status(404));
    let mut ftp = item(&sim, 12, 10, 1);
    ftp.file_url = "ftp://example.invalid/file".into();
    let report = cache.sync(&[item(&sim, 11, 10, 1), ftp], |_| {}).await;
    let mut failed = report.failed.clone();
    failed.sort();
    assert_eq!(
        failed,
        vec![
            (11, "download answered HTTP 404".to_string()),
            (12, "download URL is not http(s)".to_string())
        ]
    );
    assert_eq!(sim.file_requests(), vec![11]);
}

#[tokio::test]
async fn oversized_items_are_refused_before_any_request() {
    let sim = SteamSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = WorkshopCache::new(dir.path().to_path_buf(), 1, 1000).unwrap();
    let report = cache
        .sync(&[item(&sim, REAL_L4D2_ITEM, 40_000, 1)], |_| {})
        .await;
    assert_eq!(report.failed.len(), 1);
    assert_eq!(
        report.failed[0].1,
        "file is 39.1 KiB but the limit is 1000 B; refused"
    );
    assert!(sim.file_requests().is_empty());
}

#[tokio::test]
async fn stalled_download_times_out_and_cleans_up() {
    let sim = SteamSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = WorkshopCache::with_stall_timeout(
        dir.path().to_path_buf(),
        2,
        MAX,
        Duration::from_millis(300),
    )
    .unwrap();
    sim.set_file_mode(REAL_L4D2_ITEM, FileMode::Stall);
    let report = cache
        .sync(
            &[
                item(&sim, REAL_L4D2_ITEM, 40_000, 1),
                item(&sim, 3400000102, 30_000, 1),
            ],
            |_| {},
        )
        .await;
    assert_eq!(report.downloaded, vec![3400000102]);
    assert_eq!(
        report.failed,
        vec![(
            REAL_L4D2_ITEM,
            "download timed out (no data received in time)".to_string()
        )]
    );
    assert!(leftovers(cache.dir()).is_empty());
}

#[tokio::test]
async fn parallel_downloads_are_bounded() {
    let sim = SteamSim::start().await;
    *sim.state.file_delay.lock().unwrap() = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let cache = WorkshopCache::new(dir.path().to_path_buf(), 3, MAX).unwrap();
    let items: Vec<WorkshopItem> = (0..10)
        .map(|i| {
            sim.add_item(20_000 + i, "p", 500, 1);
            item(&sim, 20_000 + i, 500, 1)
        })
        .collect();
    let report = cache.sync(&items, |_| {}).await;
    assert_eq!(report.downloaded.len(), 10, "{report:?}");
    let max = sim.state.max_in_flight.load(Ordering::SeqCst);
    assert_eq!(max, 3, "at most 3 at once, and the bound is actually used");
}

#[tokio::test]
async fn duplicate_items_in_one_sync_download_once() {
    let sim = SteamSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = WorkshopCache::new(dir.path().to_path_buf(), 4, MAX).unwrap();
    let it = item(&sim, REAL_L4D2_ITEM, 40_000, 1);
    let report = cache.sync(&[it.clone(), it.clone()], |_| {}).await;
    assert_eq!(report.downloaded, vec![REAL_L4D2_ITEM]);
    assert_eq!(sim.file_requests(), vec![REAL_L4D2_ITEM]);
}

#[tokio::test]
async fn unusable_cache_dir_fails_every_item_clearly() {
    let sim = SteamSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not_a_dir");
    std::fs::write(&blocker, b"x").unwrap();
    let cache = WorkshopCache::new(blocker.join("cache"), 1, MAX).unwrap();
    let report = cache
        .sync(&[item(&sim, REAL_L4D2_ITEM, 40_000, 1)], |_| {})
        .await;
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0]
            .1
            .starts_with("cannot create cache directory"),
        "{report:?}"
    );
    assert!(sim.file_requests().is_empty());
}
