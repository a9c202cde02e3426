//! A fake Steam Web API (Steam is the one boundary tests must not cross): a
//! real HTTP server on 127.0.0.1:0 that answers the three Web API endpoints
//! from the recorded responses in `crates/steam-api/tests/fixtures/` and
//! serves workshop files with scripted misbehaviour.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

pub const KEY: &str = "SECRETKEY0123456789ABCDEF0123456";
pub const ROBIN: u64 = 76561197960435530;
pub const REAL_L4D2_ITEM: u64 = 3434972877;
pub const REAL_SE_ITEM: u64 = 294534489;
pub const REAL_NOT_A_COLLECTION: u64 = 3043951128;
pub const REAL_COLLECTION: u64 = 3400000001;

/// How the three API endpoints behave.
#[derive(Clone, Debug)]
pub enum ApiMode {
    Normal,
    Status(u16),
    Html,
    TruncatedJson,
    Hang,
    Huge,
    /// This exact JSON body, for every endpoint.
    Json(Value),
}

/// How `/files/<id>` behaves.
#[derive(Clone, Debug)]
pub enum FileMode {
    Normal,
    /// Announces the full Content-Length, sends half, then drops the connection.
    CutOff,
    /// Sends these bytes instead, with a matching Content-Length.
    Other(Vec<u8>),
    /// Sends these bytes without Content-Length (chunked).
    Chunked(Vec<u8>),
    Status(u16),
    /// Sends the headers, then nothing.
    Stall,
}

#[derive(Default)]
pub struct SimState {
    pub items: Mutex<HashMap<u64, Value>>,
    pub collections: Mutex<HashMap<u64, Value>>,
    pub players: Mutex<HashMap<u64, Value>>,
    pub file_bytes: Mutex<HashMap<u64, Vec<u8>>>,
    pub file_modes: Mutex<HashMap<u64, FileMode>>,
    pub api_mode: Mutex<Option<ApiMode>>,
    pub api_requests: AtomicUsize,
    pub detail_forms: Mutex<Vec<Vec<(String, String)>>>,
    pub collection_forms: Mutex<Vec<Vec<(String, String)>>>,
    pub player_batches: Mutex<Vec<usize>>,
    pub file_requests: Mutex<Vec<u64>>,
    pub file_delay: Mutex<Duration>,
    in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

pub struct SteamSim {
    pub addr: SocketAddr,
    pub state: Arc<SimState>,
}

/// A recorded response from `crates/steam-api/tests/fixtures/`.
pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../steam-api/tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Deterministic file content of a given size, different per id.
pub fn content(id: u64, size: usize) -> Vec<u8> {
    content_version(id, size, 0)
}

/// [`content`] of another version of the item (0 is the first).
pub fn content_version(id: u64, size: usize, version: u8) -> Vec<u8> {
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
    pub async fn start() -> SteamSim {
        let state = Arc::new(SimState::default());
        let app = Router::new()
            .route(
                "/ISteamRemoteStorage/GetPublishedFileDetails/v1/",
                post(details),
            )
            .route(
                "/ISteamRemoteStorage/GetCollectionDetails/v1/",
                post(collections),
            )
            .route("/ISteamUser/GetPlayerSummaries/v2/", get(players))
            .route("/files/{id}", get(file))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let sim = SteamSim { addr, state };
        sim.load_fixtures();
        sim
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn file_url(&self, id: u64) -> String {
        format!("http://{}/files/{id}", self.addr)
    }

    /// Loads the recorded responses. Changes made here (documented in fixtures/README.md): file_url
    /// points at this server and file_size is reduced so the tests move kilobytes, not 34 MiB.
    fn load_fixtures(&self) {
        for name in [
            "published_file_details_l4d2.json",
            "published_file_details_space_engineers.json",
        ] {
            let v = fixture(name);
            for entry in v["response"]["publishedfiledetails"].as_array().unwrap() {
                let id: u64 = entry["publishedfileid"].as_str().unwrap().parse().unwrap();
                let mut entry = entry.clone();
                entry["file_url"] = json!(self.file_url(id));
                self.state.items.lock().unwrap().insert(id, entry);
            }
        }
        self.set_size(REAL_L4D2_ITEM, 40_000);
        for entry in fixture("collection_details.json")["response"]["collectiondetails"]
            .as_array()
            .unwrap()
        {
            let id: u64 = entry["publishedfileid"].as_str().unwrap().parse().unwrap();
            self.state
                .collections
                .lock()
                .unwrap()
                .insert(id, entry.clone());
        }
        for entry in fixture("player_summaries.json")["response"]["players"]
            .as_array()
            .unwrap()
        {
            let id: u64 = entry["steamid"].as_str().unwrap().parse().unwrap();
            self.state.players.lock().unwrap().insert(id, entry.clone());
        }
        // The recorded collection lists two more L4D2 items; clone the real item record for them.
        self.add_item(3400000102, "Second map", 30_000, 1_700_000_102);
        self.add_item(3400000103, "Third map", 20_000, 1_700_000_103);
    }

    /// A new L4D2 item cloned from the real recorded one, with id/title/size/time changed.
    pub fn add_item(&self, id: u64, title: &str, size: usize, time_updated: i64) {
        let mut entry = self.state.items.lock().unwrap()[&REAL_L4D2_ITEM].clone();
        entry["publishedfileid"] = json!(id.to_string());
        entry["title"] = json!(title);
        entry["filename"] = json!(format!("myl4d2addons/{}.vpk", title.replace(' ', "_")));
        entry["file_url"] = json!(self.file_url(id));
        entry["time_updated"] = json!(time_updated);
        self.state.items.lock().unwrap().insert(id, entry);
        self.set_size(id, size);
    }

    /// Sets the announced size and serves matching content.
    pub fn set_size(&self, id: u64, size: usize) {
        if let Some(e) = self.state.items.lock().unwrap().get_mut(&id) {
            e["file_size"] = json!(size.to_string());
        }
        self.state
            .file_bytes
            .lock()
            .unwrap()
            .insert(id, content(id, size));
    }

    /// A new version of item `id` on the Workshop: announced size, served
    /// content (`version`) and, when given, `time_updated`.
    pub fn set_file(&self, id: u64, size: usize, version: u8, time_updated: Option<i64>) {
        let mut items = self.state.items.lock().unwrap();
        let e = items.get_mut(&id).expect("known item");
        e["file_size"] = json!(size.to_string());
        if let Some(t) = time_updated {
            e["time_updated"] = json!(t);
        }
        self.state
            .file_bytes
            .lock()
            .unwrap()
            .insert(id, content_version(id, size, version));
    }

    /// The bytes `/files/<id>` serves now.
    pub fn bytes(&self, id: u64) -> Vec<u8> {
        self.state.file_bytes.lock().unwrap()[&id].clone()
    }

    pub fn set_item_field(&self, id: u64, field: &str, value: Value) {
        self.state.items.lock().unwrap().get_mut(&id).unwrap()[field] = value;
    }

    /// A collection in the recorded shape with the given children (id, filetype).
    pub fn add_collection(&self, id: u64, children: &[(u64, i64)]) {
        let kids: Vec<Value> = children
            .iter()
            .enumerate()
            .map(|(i, (cid, ft))| json!({"publishedfileid": cid.to_string(), "sortorder": i, "filetype": ft}))
            .collect();
        self.state.collections.lock().unwrap().insert(
            id,
            json!({"publishedfileid": id.to_string(), "result": 1, "children": kids}),
        );
    }

    /// A player cloned from the recorded profile with id and name changed.
    pub fn add_player(&self, id: u64, name: &str) {
        let mut p = self.state.players.lock().unwrap()[&ROBIN].clone();
        p["steamid"] = json!(id.to_string());
        p["personaname"] = json!(name);
        self.state.players.lock().unwrap().insert(id, p);
    }

    pub fn set_api_mode(&self, mode: ApiMode) {
        *self.state.api_mode.lock().unwrap() = Some(mode);
    }

    pub fn set_file_mode(&self, id: u64, mode: FileMode) {
        self.state.file_modes.lock().unwrap().insert(id, mode);
    }

    pub fn api_requests(&self) -> usize {
        self.state.api_requests.load(Ordering::SeqCst)
    }

    pub fn file_requests(&self) -> Vec<u64> {
        self.state.file_requests.lock().unwrap().clone()
    }

    /// How many times `/files/<id>` was requested.
    pub fn requests_for(&self, id: u64) -> usize {
        self.file_requests().iter().filter(|r| **r == id).count()
    }
}

/// The API mode, if not Normal, answers instead of the handler.
async fn misbehave(state: &SimState) -> Option<Response> {
    state.api_requests.fetch_add(1, Ordering::SeqCst);
    let mode = state.api_mode.lock().unwrap().clone();
    match mode? {
        ApiMode::Normal => None,
        ApiMode::Status(code) => Some(
            (
                StatusCode::from_u16(code).unwrap(),
                format!("<html><body>Error {code} for key={KEY}</body></html>"),
            )
                .into_response(),
        ),
        ApiMode::Html => Some(
            (
                [(header::CONTENT_TYPE, "text/html")],
                "<html><head><title>Sorry!</title></head><body>Steam is down for maintenance</body></html>",
            )
                .into_response(),
        ),
        ApiMode::TruncatedJson => {
            let full = fixture("published_file_details_l4d2.json").to_string();
            Some(full[..full.len() / 2].to_string().into_response())
        }
        ApiMode::Hang => {
            std::future::pending::<()>().await;
            None
        }
        ApiMode::Huge => Some(" ".repeat(9 * 1024 * 1024).into_response()),
        ApiMode::Json(v) => Some(axum::Json(v).into_response()),
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
                .map(|(_, v)| v.parse().unwrap())
                .unwrap()
        })
        .collect()
}

async fn details(
    State(state): State<Arc<SimState>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = misbehave(&state).await {
        return r;
    }
    state.detail_forms.lock().unwrap().push(form.clone());
    let ids = form_ids(&form, "itemcount");
    let items = state.items.lock().unwrap();
    let entries: Vec<Value> = ids
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
    State(state): State<Arc<SimState>>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if let Some(r) = misbehave(&state).await {
        return r;
    }
    state.collection_forms.lock().unwrap().push(form.clone());
    let ids = form_ids(&form, "collectioncount");
    let cols = state.collections.lock().unwrap();
    let entries: Vec<Value> = ids
        .iter()
        .map(|id| {
            cols.get(id)
                .cloned()
                .unwrap_or_else(|| json!({"publishedfileid": id.to_string(), "result": 9}))
        })
        .collect();
    let found = entries.iter().filter(|e| e["result"] == 1).count();
    axum::Json(
        json!({"response": {"result": 1, "resultcount": found, "collectiondetails": entries}}),
    )
    .into_response()
}

async fn players(
    State(state): State<Arc<SimState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = misbehave(&state).await {
        return r;
    }
    if q.get("key").map(String::as_str) != Some(KEY) {
        return (StatusCode::FORBIDDEN, "<html><body>Forbidden</body></html>").into_response();
    }
    let ids: Vec<u64> = q["steamids"]
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    state.player_batches.lock().unwrap().push(ids.len());
    if ids.len() > 100 {
        return (StatusCode::BAD_REQUEST, "too many steamids").into_response();
    }
    let players = state.players.lock().unwrap();
    let found: Vec<Value> = ids
        .iter()
        .filter_map(|id| players.get(id).cloned())
        .collect();
    axum::Json(json!({"response": {"players": found}})).into_response()
}

struct InFlight<'a>(&'a SimState);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn file(State(state): State<Arc<SimState>>, Path(id): Path<u64>) -> Response {
    state.file_requests.lock().unwrap().push(id);
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let guard = InFlight(&state);
    let delay = *state.file_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    drop(guard);
    let Some(bytes) = state.file_bytes.lock().unwrap().get(&id).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mode = state
        .file_modes
        .lock()
        .unwrap()
        .get(&id)
        .cloned()
        .unwrap_or(FileMode::Normal);
    match mode {
        FileMode::Normal => bytes.into_response(),
        FileMode::Other(other) => other.into_response(),
        FileMode::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        FileMode::Chunked(data) => {
            let stream = futures_stream(vec![Ok(data)]);
            Response::new(Body::from_stream(stream))
        }
        FileMode::CutOff => {
            let half = bytes[..bytes.len() / 2].to_vec();
            // The pause lets the headers and the first half reach the client before the abort.
            use futures_util::StreamExt;
            let stream = futures_stream(vec![Ok(half)]).chain(futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(std::io::Error::other("connection cut off by test"))
            }));
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_LENGTH, bytes.len().into());
            (headers, Body::from_stream(stream)).into_response()
        }
        FileMode::Stall => {
            let stream = async_stream_stall();
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_LENGTH, bytes.len().into());
            (headers, Body::from_stream(stream)).into_response()
        }
    }
}

fn futures_stream(
    parts: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::iter(parts)
}

fn async_stream_stall() -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::pending()
}
