//! Workshop overlays end to end. Steam is the one boundary we must not
//! cross: a local axum server answers `GetPublishedFileDetails` and
//! `GetCollectionDetails` from the **recorded real responses** in
//! `crates/steam-api/tests/fixtures/` (file URLs pointed at this server,
//! sizes reduced to kilobytes) and serves the files, with scripted
//! failures (HTTP errors, a hanging API, a download cut off midway).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Form, Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode as AxStatus};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use common::{TestServer, USER};
use reqwest::StatusCode;
use serde_json::{json, Value};

const REAL_ITEM: u64 = 3434972877; // recorded L4D2 item
const SE_ITEM: u64 = 294534489; // recorded Space Engineers item
const COLLECTION: u64 = 3400000001; // recorded collection: REAL_ITEM, 3400000102, 3400000103
const SECOND: u64 = 3400000102;
const THIRD: u64 = 3400000103;

#[derive(Clone, Debug, PartialEq)]
enum ApiMode {
    Normal,
    Status(u16),
    Hang,
}

#[derive(Clone, Debug, PartialEq)]
enum FileMode {
    Normal,
    CutOff,
}

#[derive(Default)]
struct Sim {
    items: Mutex<HashMap<u64, Value>>,
    collections: Mutex<HashMap<u64, Value>>,
    bytes: Mutex<HashMap<u64, Vec<u8>>>,
    file_modes: Mutex<HashMap<u64, FileMode>>,
    api_mode: Mutex<Option<ApiMode>>,
    file_requests: Mutex<Vec<u64>>,
}

struct SteamSim {
    addr: SocketAddr,
    sim: Arc<Sim>,
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../steam-api/tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn content(id: u64, size: usize, version: u8) -> Vec<u8> {
    (0..size)
        .map(|i| {
            ((i as u64)
                .wrapping_mul(31)
                .wrapping_add(id + version as u64)
                % 251) as u8
        })
        .collect()
}

impl SteamSim {
    async fn start() -> SteamSim {
        let sim = Arc::new(Sim::default());
        let app = Router::new()
            .route(
                "/ISteamRemoteStorage/GetPublishedFileDetails/v1/",
                post(details),
            )
            .route(
                "/ISteamRemoteStorage/GetCollectionDetails/v1/",
                post(collections),
            )
            .route("/files/{id}", get(file))
            .with_state(sim.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let s = SteamSim { addr, sim };
        for name in [
            "published_file_details_l4d2.json",
            "published_file_details_space_engineers.json",
        ] {
            for e in fixture(name)["response"]["publishedfiledetails"]
                .as_array()
                .unwrap()
            {
                let id: u64 = e["publishedfileid"].as_str().unwrap().parse().unwrap();
                let mut e = e.clone();
                e["file_url"] = json!(s.file_url(id));
                s.sim.items.lock().unwrap().insert(id, e);
            }
        }
        for e in fixture("collection_details.json")["response"]["collectiondetails"]
            .as_array()
            .unwrap()
        {
            let id: u64 = e["publishedfileid"].as_str().unwrap().parse().unwrap();
            s.sim.collections.lock().unwrap().insert(id, e.clone());
        }
        s.set_file(REAL_ITEM, 40_000, 0, None);
        // The recorded collection lists two more items: clones of the real record.
        for (id, title, size) in [(SECOND, "Second map", 30_000), (THIRD, "Third map", 20_000)] {
            let mut e = s.sim.items.lock().unwrap()[&REAL_ITEM].clone();
            e["publishedfileid"] = json!(id.to_string());
            e["title"] = json!(title);
            e["file_url"] = json!(s.file_url(id));
            s.sim.items.lock().unwrap().insert(id, e);
            s.set_file(id, size, 0, Some(1_700_000_000));
        }
        s
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn file_url(&self, id: u64) -> String {
        format!("http://{}/files/{id}", self.addr)
    }

    /// Announced size, served content version and (optionally) time_updated.
    fn set_file(&self, id: u64, size: usize, version: u8, time_updated: Option<i64>) {
        let mut items = self.sim.items.lock().unwrap();
        let e = items.get_mut(&id).unwrap();
        e["file_size"] = json!(size.to_string());
        if let Some(t) = time_updated {
            e["time_updated"] = json!(t);
        }
        self.sim
            .bytes
            .lock()
            .unwrap()
            .insert(id, content(id, size, version));
    }

    fn bytes(&self, id: u64) -> Vec<u8> {
        self.sim.bytes.lock().unwrap()[&id].clone()
    }

    fn api(&self, mode: ApiMode) {
        *self.sim.api_mode.lock().unwrap() = Some(mode);
    }

    fn file_mode(&self, id: u64, mode: FileMode) {
        self.sim.file_modes.lock().unwrap().insert(id, mode);
    }

    fn requests_for(&self, id: u64) -> usize {
        self.sim
            .file_requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r == id)
            .count()
    }
}

async fn misbehave(sim: &Sim) -> Option<Response> {
    let mode = sim.api_mode.lock().unwrap().clone();
    match mode? {
        ApiMode::Normal => None,
        ApiMode::Status(code) => Some(
            (
                AxStatus::from_u16(code).unwrap(),
                "<html><body>Server error</body></html>",
            )
                .into_response(),
        ),
        ApiMode::Hang => {
            std::future::pending::<()>().await;
            None
        }
    }
}

fn form_ids(form: &[(String, String)], count_field: &str) -> Vec<u64> {
    let count: usize = form
        .iter()
        .find(|(k, _)| k == count_field)
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    (0..count)
        .map(|i| {
            let key = format!("publishedfileids[{i}]");
            form.iter()
                .find(|(k, _)| *k == key)
                .unwrap()
                .1
                .parse()
                .unwrap()
        })
        .collect()
}

async fn details(State(sim): State<Arc<Sim>>, Form(form): Form<Vec<(String, String)>>) -> Response {
    if let Some(r) = misbehave(&sim).await {
        return r;
    }
    let items = sim.items.lock().unwrap();
    let entries: Vec<Value> = form_ids(&form, "itemcount")
        .iter()
        .map(|id| {
            items
                .get(id)
                .cloned()
                .unwrap_or_else(|| json!({"publishedfileid": id.to_string(), "result": 9}))
        })
        .collect();
    axum::Json(json!({"response": {"result": 1, "resultcount": entries.len(), "publishedfiledetails": entries}}))
        .into_response()
}

async fn collections(
    State(sim): State<Arc<Sim>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = misbehave(&sim).await {
        return r;
    }
    let cols = sim.collections.lock().unwrap();
    let entries: Vec<Value> = form_ids(&form, "collectioncount")
        .iter()
        .map(|id| {
            cols.get(id)
                .cloned()
                .unwrap_or_else(|| json!({"publishedfileid": id.to_string(), "result": 9}))
        })
        .collect();
    axum::Json(json!({"response": {"result": 1, "resultcount": entries.len(), "collectiondetails": entries}}))
        .into_response()
}

async fn file(State(sim): State<Arc<Sim>>, UrlPath(id): UrlPath<u64>) -> Response {
    sim.file_requests.lock().unwrap().push(id);
    let Some(bytes) = sim.bytes.lock().unwrap().get(&id).cloned() else {
        return AxStatus::NOT_FOUND.into_response();
    };
    let mode = sim
        .file_modes
        .lock()
        .unwrap()
        .get(&id)
        .cloned()
        .unwrap_or(FileMode::Normal);
    match mode {
        FileMode::Normal => bytes.into_response(),
        FileMode::CutOff => {
            use futures_util::StreamExt;
            let half = bytes[..bytes.len() / 2].to_vec();
            let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(half)]).chain(
                futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err(std::io::Error::other("connection cut off by test"))
                }),
            );
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_LENGTH, bytes.len().into());
            (headers, Body::from_stream(stream)).into_response()
        }
    }
}

async fn setup() -> (SteamSim, TestServer) {
    let steam = SteamSim::start().await;
    let base = steam.base();
    let server = TestServer::start_with(&[
        ("STEAM_API_BASE_URL", base.as_str()),
        // A hanging API call fails the job quickly.
        ("LEFT4ME_STEAM_API_TIMEOUT_SECS", "2"),
        ("LEFT4ME_WORKSHOP_PARALLEL", "2"),
    ])
    .await;
    (steam, server)
}

async fn create_workshop(c: &mut common::Client, name: &str, refs: &str) -> i64 {
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

async fn sync(s: &TestServer, c: &mut common::Client, id: i64) -> (i64, String) {
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

async fn job_error(s: &TestServer, id: i64) -> String {
    sqlx::query_scalar::<_, Option<String>>("SELECT error FROM jobs WHERE id = ?")
        .bind(id)
        .fetch_one(&s.pool)
        .await
        .unwrap()
        .unwrap_or_default()
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

fn left4me(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_left4me"))
        .args(args)
        .env("LEFT4ME_ROOT", root)
        .env_remove("DATABASE_URL")
        .env("LEFT4ME_LOG", "warn")
        .output()
        .unwrap()
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
    let out = left4me(&root, &["workshop-refresh"]);
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
    steam.api(ApiMode::Status(500));
    let (job, state) = sync(&s, &mut alice, id).await;
    assert_eq!(state, "failed");
    let err = job_error(&s, job).await;
    assert!(err.contains("HTTP 500"), "{err}");
    steam.api(ApiMode::Hang);
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
    steam.api(ApiMode::Normal);
    let (_, state) = sync(&s, &mut alice, id).await;
    assert_eq!(state, "succeeded");
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
    steam.file_mode(REAL_ITEM, FileMode::CutOff);
    // And a brand-new item that cannot be fetched at all.
    steam.file_mode(THIRD, FileMode::CutOff);
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
    steam.file_mode(REAL_ITEM, FileMode::Normal);
    steam.file_mode(THIRD, FileMode::Normal);
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
    let first = left4me(root.path(), &["workshop-refresh"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = left4me(root.path(), &["workshop-refresh"]);
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
