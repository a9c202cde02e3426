//! Workshop overlays end to end. Steam is the one boundary we must not
//! cross: `test_support::steam`, a local server, answers
//! `GetPublishedFileDetails` and `GetCollectionDetails` from the **recorded
//! real responses** in `crates/steam-api/tests/fixtures/` (file URLs pointed
//! at this server, sizes reduced to kilobytes) and serves the files, with
//! scripted failures (HTTP errors, a hanging API, a download cut off midway).

use std::path::{Path, PathBuf};

use crate::util::{job_error, left4me_cli, TestServer, USER};
use reqwest::StatusCode;
use test_support::steam::{
    ApiMode, FileMode, SteamSim, REAL_COLLECTION, REAL_L4D2_ITEM, REAL_SE_ITEM,
};

const REAL_ITEM: u64 = REAL_L4D2_ITEM; // recorded L4D2 item
const SE_ITEM: u64 = REAL_SE_ITEM; // recorded Space Engineers item
const COLLECTION: u64 = REAL_COLLECTION; // recorded collection: REAL_ITEM, 3400000102, 3400000103
const SECOND: u64 = 3400000102;
const THIRD: u64 = 3400000103;

async fn setup() -> (SteamSim, TestServer) {
    let steam = SteamSim::start().await;
    let base = steam.base_url();
    let server = TestServer::start_with(&[
        ("STEAM_API_BASE_URL", base.as_str()),
        // A hanging API call fails the job quickly.
        ("LEFT4ME_STEAM_API_TIMEOUT_SECS", "2"),
        ("LEFT4ME_WORKSHOP_PARALLEL", "2"),
    ])
    .await;
    (steam, server)
}

async fn create_workshop(c: &mut crate::util::Client, name: &str, refs: &str) -> i64 {
    let res = c
        .post(
            "/overlays",
            &[("name", name), ("kind", "workshop"), ("refs", refs)],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    res.location()
        .strip_prefix("/overlays/")
        .unwrap()
        .parse()
        .unwrap()
}

async fn sync(s: &TestServer, c: &mut crate::util::Client, id: i64) -> (i64, String) {
    let res = c.post(&format!("/overlays/{id}/build"), &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    let job: i64 = res
        .location()
        .strip_prefix("/jobs/")
        .unwrap()
        .parse()
        .unwrap();
    let state = s.wait_job(job).await;
    (job, state)
}

fn cache(root: &Path, id: u64) -> PathBuf {
    root.join(format!("workshop_cache/{id}.vpk"))
}

fn addons(root: &Path, overlay: i64) -> PathBuf {
    root.join(format!("overlays/{overlay}/left4dead2/addons"))
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test]
async fn sync_links_every_item_and_refresh_redownloads_changed_ones() {
    let (steam, s) = setup().await;
    let root = s.root.path().to_path_buf();
    let mut alice = s.login(USER).await;
    let refs =
        format!("https://steamcommunity.com/sharedfiles/filedetails/?id={COLLECTION}\n{REAL_ITEM}");
    let id = create_workshop(&mut alice, "campaigns", &refs).await;
    let (job, state) = sync(&s, &mut alice, id).await;
    assert_eq!(state, "succeeded", "{:?}", s.job_lines(job).await);
    let log = s.job_lines(job).await.join("\n");
    assert!(
        log.contains("3 downloaded, 0 up to date, 0 failed"),
        "{log}"
    );
    assert!(
        log.contains("usada pekora safe room loading music"),
        "{log}"
    );
    assert_eq!(
        listing(&addons(&root, id)),
        [
            format!("{SECOND}.vpk"),
            format!("{THIRD}.vpk"),
            format!("{REAL_ITEM}.vpk")
        ]
    );
    for item in [REAL_ITEM, SECOND, THIRD] {
        let link = addons(&root, id).join(format!("{item}.vpk"));
        assert_eq!(std::fs::read_link(&link).unwrap(), cache(&root, item));
        assert_eq!(std::fs::read(&link).unwrap(), steam.bytes(item));
    }
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT w.id, w.file_size FROM overlay_workshop_items o JOIN workshop_items w ON w.id = o.item_id
         WHERE o.overlay_id = ? ORDER BY w.id",
    )
    .bind(id)
    .fetch_all(&s.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    l4d2web::overlays::check_ready(&s.pool, &root, id)
        .await
        .unwrap();

    // The addon link is downloadable through the file browser (the one
    // symlink it serves); a foreign link planted next to it is not.
    let dl = alice
        .get(&format!(
            "/overlays/{id}/download?path=left4dead2/addons/{SECOND}.vpk"
        ))
        .await;
    assert_eq!(dl.status, StatusCode::OK);
    // (The test client reads bodies as text; the length header is exact.)
    assert_eq!(dl.headers["content-length"], "30000");
    assert_eq!(dl.headers["content-type"], "application/octet-stream");
    std::os::unix::fs::symlink("/etc/passwd", addons(&root, id).join("1.vpk")).unwrap();
    let res = alice
        .get(&format!(
            "/overlays/{id}/download?path=left4dead2/addons/1.vpk"
        ))
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(!res.body.contains("root:x:0"));

    // Second overlay sharing an item: nothing downloaded twice.
    let other = create_workshop(&mut alice, "one map", &SECOND.to_string()).await;
    let (job, state) = sync(&s, &mut alice, other).await;
    assert_eq!(state, "succeeded");
    assert!(s
        .job_lines(job)
        .await
        .join("\n")
        .contains("0 downloaded, 1 up to date"));
    assert_eq!(steam.requests_for(SECOND), 1);

    // An item changes on the Workshop; the refresh (enqueued by the CLI,
    // run by the server's workers) fetches only that one and removes the
    // planted stale link.
    steam.set_file(THIRD, 25_000, 1, Some(1_800_000_000));
    let out = left4me_cli(&root, &["workshop-refresh"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: i64 = stdout
        .split('#')
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no job id in {stdout:?}"));
    assert_eq!(
        s.wait_job(job).await,
        "succeeded",
        "{:?}",
        s.job_lines(job).await
    );
    let (user, kind): (Option<i64>, String) =
        sqlx::query_as("SELECT user_id, kind FROM jobs WHERE id = ?")
            .bind(job)
            .fetch_one(&s.pool)
            .await
            .unwrap();
    assert_eq!((user, kind.as_str()), (None, "workshop-refresh"));
    assert_eq!(steam.requests_for(THIRD), 2);
    assert_eq!(steam.requests_for(REAL_ITEM), 1);
    assert_eq!(
        std::fs::read(cache(&root, THIRD)).unwrap(),
        steam.bytes(THIRD)
    );
    assert!(!addons(&root, id).join("1.vpk").exists());
    l4d2web::overlays::check_ready(&s.pool, &root, id)
        .await
        .unwrap();

    // A cache file vanishes: the overlay is not ready and says why.
    std::fs::remove_file(cache(&root, SECOND)).unwrap();
    let err = l4d2web::overlays::check_ready(&s.pool, &root, id)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&SECOND.to_string()) && err.contains("missing from the cache"),
        "{err}"
    );
    s.stop().await;
}

#[tokio::test]
async fn unknown_and_foreign_items_fail_clearly() {
    let (_steam, s) = setup().await;
    let mut alice = s.login(USER).await;
    let id = create_workshop(&mut alice, "bad", &format!("{REAL_ITEM}, 999, {SE_ITEM}")).await;
    let (job, state) = sync(&s, &mut alice, id).await;
    assert_eq!(state, "failed");
    let err = job_error(&s, job).await;
    assert!(err.contains("workshop item 999 is unavailable"), "{err}");
    assert!(
        err.contains(&format!("workshop item {SE_ITEM} is for app")),
        "{err}"
    );
    let page = alice.get(&format!("/overlays/{id}")).await;
    assert!(
        page.body.contains(
            "Steam returned an error for item 999: it was removed, is private or never existed."
        ) && page
            .body
            .contains(&format!("Item {SE_ITEM} is not a Left 4 Dead 2 item.")),
        "{}",
        page.body
    );
    assert!(listing(&addons(s.root.path(), id)).is_empty());
    assert!(l4d2web::overlays::check_ready(&s.pool, s.root.path(), id)
        .await
        .is_err());
    s.stop().await;
}

#[tokio::test]
async fn api_errors_and_timeouts_fail_the_job_and_change_nothing() {
    let (steam, s) = setup().await;
    let root = s.root.path().to_path_buf();
    let mut alice = s.login(USER).await;
    let id = create_workshop(&mut alice, "maps", &REAL_ITEM.to_string()).await;
    steam.set_api_mode(ApiMode::Status(500));
    let (job, state) = sync(&s, &mut alice, id).await;
    assert_eq!(state, "failed");
    let err = job_error(&s, job).await;
    assert!(err.contains("HTTP 500"), "{err}");
    // The overlay says so in plain words, the full error in its details.
    let page = alice.get(&format!("/overlays/{id}")).await;
    assert!(
        page.body.contains("sync failed")
            && page
                .body
                .contains("Steam had a server error (HTTP 500); try again later.")
            && page.body.contains("answered HTTP 500"),
        "{}",
        page.body
    );
    let list = alice.get("/overlays").await;
    assert!(list.body.contains("sync-failed"), "{}", list.body);
    steam.set_api_mode(ApiMode::Hang);
    let (job, state) = sync(&s, &mut alice, id).await;
    assert_eq!(state, "failed");
    let err = job_error(&s, job).await;
    assert!(err.contains("timed out"), "{err}");
    assert!(!cache(&root, REAL_ITEM).exists());
    let items: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workshop_items")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(items, 0);
    assert_eq!(steam.requests_for(REAL_ITEM), 0);
    let page = alice.get(&format!("/overlays/{id}")).await;
    assert!(
        page.body.contains("Steam did not answer in time"),
        "{}",
        page.body
    );
    steam.set_api_mode(ApiMode::Normal);
    let (_, state) = sync(&s, &mut alice, id).await;
    assert_eq!(state, "succeeded");
    // A sync that works clears the failure.
    let page = alice.get(&format!("/overlays/{id}")).await;
    assert!(!page.body.contains("sync failed"), "{}", page.body);
    s.stop().await;
}

#[tokio::test]
async fn a_download_cut_off_midway_fails_and_keeps_the_cache_intact() {
    let (steam, s) = setup().await;
    let root = s.root.path().to_path_buf();
    let mut alice = s.login(USER).await;
    let id = create_workshop(&mut alice, "maps", &format!("{REAL_ITEM},{SECOND}")).await;
    let (_, state) = sync(&s, &mut alice, id).await;
    assert_eq!(state, "succeeded");
    let old = std::fs::read(cache(&root, REAL_ITEM)).unwrap();

    // New version announced, but its download breaks halfway.
    steam.set_file(REAL_ITEM, 50_000, 1, Some(1_900_000_000));
    steam.set_file_mode(REAL_ITEM, FileMode::CutOff);
    // And a brand-new item that cannot be fetched at all.
    steam.set_file_mode(THIRD, FileMode::CutOff);
    let res = alice
        .post(
            &format!("/overlays/{id}"),
            &[
                ("name", "maps"),
                ("refs", &format!("{REAL_ITEM},{SECOND},{THIRD}")),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let (job, state) = sync(&s, &mut alice, id).await;
    assert_eq!(state, "failed");
    let err = job_error(&s, job).await;
    assert!(err.contains("2 of 3 workshop item(s) failed"), "{err}");
    assert!(
        err.contains(&REAL_ITEM.to_string()) && err.contains(&THIRD.to_string()),
        "{err}"
    );
    // The old complete file is untouched, no partial files remain.
    assert_eq!(std::fs::read(cache(&root, REAL_ITEM)).unwrap(), old);
    assert!(!cache(&root, THIRD).exists());
    let parts: Vec<String> = listing(&root.join("workshop_cache"))
        .into_iter()
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(parts.is_empty(), "{parts:?}");
    // The old copy stays linked and usable; the new item is expected but
    // missing, so a server using this overlay refuses to start.
    assert!(addons(&root, id).join(format!("{REAL_ITEM}.vpk")).exists());
    let err = l4d2web::overlays::check_ready(&s.pool, &root, id)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains(&THIRD.to_string()), "{err}");

    // Once the network behaves, a sync completes it.
    steam.set_file_mode(REAL_ITEM, FileMode::Normal);
    steam.set_file_mode(THIRD, FileMode::Normal);
    let (_, state) = sync(&s, &mut alice, id).await;
    assert_eq!(state, "succeeded");
    assert_eq!(
        std::fs::read(cache(&root, REAL_ITEM)).unwrap(),
        steam.bytes(REAL_ITEM)
    );
    l4d2web::overlays::check_ready(&s.pool, &root, id)
        .await
        .unwrap();
    s.stop().await;
}

#[tokio::test]
async fn workshop_refresh_cli_coalesces_queued_jobs() {
    let root = test_support::DataRoot::empty();
    let first = left4me_cli(root.path(), &["workshop-refresh"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = left4me_cli(root.path(), &["workshop-refresh"]);
    let out = String::from_utf8_lossy(&second.stdout);
    assert!(out.contains("already queued"), "{out}");
    let url = format!("sqlite://{}", root.path().join("left4me.db").display());
    let pool = l4d2web::db::connect(&url).await.unwrap();
    let rows: Vec<(String, Option<i64>, String)> =
        sqlx::query_as("SELECT kind, user_id, state FROM jobs")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [("workshop-refresh".to_string(), None, "queued".to_string())]
    );
}
