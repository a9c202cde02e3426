//! Webhook alerts against a real receiver on 127.0.0.1: delivery, retries,
//! giving up, timeouts, 429s, event toggles, payload shapes and their
//! allow-list, the private-address rule, shutdown, and the pages (form
//! validation, test button, owner-only access).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::response::{IntoResponse, Response};
use l4d2web::alerts::{self, AlertEvent, AlertSender, DeliveryState, SenderSettings, WebhookInput};
use l4d2web::config::{self, Config, EnvSource};
use reqwest::StatusCode;
use serde_json::Value;
use test_support::DataRoot;
use tokio_util::sync::CancellationToken;

use crate::util::{TestServer, ADMIN, USER, USER2};

const SECRET: &str = "alerts-test-secret-key-0123456789abcdef";

/// What the receiver answers to the next request (then: 200).
#[derive(Clone, Copy)]
enum Reply {
    Status(u16),
    Slow(Duration),
    TooMany { retry_after: u64 },
}

struct Got {
    at: Instant,
    content_type: String,
    body: Value,
}

#[derive(Clone)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    pub(crate) async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            url: format!("http://{}/hook/token", listener.local_addr().unwrap()),
            replies: Arc::default(),
            got: Arc::default(),
        };
        let app = axum::Router::new().fallback(receive).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        r
    }

    fn then(&self, replies: &[Reply]) {
        self.replies.lock().unwrap().extend(replies.iter().copied());
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    pub(crate) fn bodies(&self) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|g| g.body.clone())
            .collect()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    r.got.lock().unwrap().push(Got {
        at: Instant::now(),
        content_type: headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let reply = r.replies.lock().unwrap().pop_front();
    match reply {
        None => AxStatus::NO_CONTENT.into_response(),
        Some(Reply::Status(code)) => AxStatus::from_u16(code).unwrap().into_response(),
        Some(Reply::Slow(d)) => {
            tokio::time::sleep(d).await;
            AxStatus::OK.into_response()
        }
        Some(Reply::TooMany { retry_after }) => (
            AxStatus::TOO_MANY_REQUESTS,
            [("retry-after", retry_after.to_string())],
        )
            .into_response(),
    }
}

/// Waits (polling) until `check` gives Some, at most `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn config(root: &std::path::Path) -> Config {
    let map: HashMap<String, String> = HashMap::from([
        ("LEFT4ME_ROOT".to_string(), root.display().to_string()),
        ("SECRET_KEY".to_string(), SECRET.to_string()),
    ]);
    config::load(&EnvSource(move |k| map.get(k).cloned())).unwrap()
}

fn fast(allow_private: bool) -> SenderSettings {
    SenderSettings {
        timeout: Duration::from_millis(500),
        backoff: vec![Duration::from_millis(50)],
        max_attempts: 3,
        max_retry_after: Duration::from_secs(5),
        allow_private,
        parallel: 4,
    }
}

/// A database with users alice and bob and a sender on it (no web server).
struct Env {
    root: DataRoot,
    pool: sqlx::SqlitePool,
    alice: i64,
    bob: i64,
    stop: CancellationToken,
    sender: Option<tokio::task::JoinHandle<()>>,
}

impl Env {
    async fn new(settings: SenderSettings) -> Env {
        let root = DataRoot::empty();
        let url = format!("sqlite://{}", root.path().join("left4me.db").display());
        let pool = l4d2web::db::connect(&url).await.unwrap();
        l4d2web::db::migrate(&pool).await.unwrap();
        let alice = l4d2web::accounts::create_user(&pool, USER.0, USER.1, false)
            .await
            .unwrap()
            .id;
        let bob = l4d2web::accounts::create_user(&pool, USER2.0, USER2.1, false)
            .await
            .unwrap()
            .id;
        let mut env = Env {
            root,
            pool,
            alice,
            bob,
            stop: CancellationToken::new(),
            sender: None,
        };
        env.start(settings);
        env
    }

    fn start(&mut self, settings: SenderSettings) {
        self.stop = CancellationToken::new();
        let sender =
            AlertSender::with_settings(self.pool.clone(), &config(self.root.path()), settings);
        self.sender = Some(sender.spawn(self.stop.clone()));
    }

    async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.sender.take() {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("the sender stops at once")
                .unwrap();
        }
    }

    /// A webhook of `user` to `url` (made as the form would, private
    /// targets allowed: the sender's own rule is under test).
    async fn webhook(&self, user: i64, url: &str, format: &str, events: &[&str]) -> i64 {
        let input = WebhookInput::validate("hook", url, format, events.iter().copied()).unwrap();
        alerts::create(&self.pool, user, &input, true)
            .await
            .unwrap()
            .id
    }

    /// Waits until the only delivery of `webhook` is final; returns it.
    async fn settled(&self, webhook: i64) -> alerts::Delivery {
        wait_for(
            "a final delivery state",
            Duration::from_secs(15),
            || async {
                let d = alerts::deliveries(&self.pool, self.alice, webhook, 10)
                    .await
                    .unwrap();
                assert!(d.len() <= 1, "one delivery expected: {d:?}");
                d.into_iter()
                    .next()
                    .filter(|d| d.state != DeliveryState::Pending)
            },
        )
        .await
    }
}

fn crash() -> AlertEvent {
    AlertEvent::ServerCrashed {
        server_id: 7,
        server_name: "alpha".into(),
        detail: "exited with status 139 (SIGSEGV)".into(),
    }
}

const ALL: &[&str] = &[
    "server.crashed",
    "server.crash_loop",
    "job.failed",
    "server.recovered",
];

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(items: &[&'a str]) -> BTreeSet<&'a str> {
    items.iter().copied().collect()
}

#[tokio::test]
async fn delivered_on_first_try_as_generic_json() {
    let rec = Receiver::start().await;
    let env = Env::new(fast(true)).await;
    let hook = env.webhook(env.alice, &rec.url, "json", ALL).await;
    assert_eq!(
        alerts::raise(&env.pool, env.alice, &crash()).await.unwrap(),
        1
    );
    let d = env.settled(hook).await;
    assert_eq!(d.state, DeliveryState::Delivered, "{d:?}");
    assert_eq!(
        (d.attempts, d.last_status, d.last_error),
        (1, Some(204), None)
    );
    assert!(d.finished_at.is_some());
    assert_eq!(d.event, "server.crashed");
    assert_eq!(rec.count(), 1);
    let got = &rec.got.lock().unwrap()[0];
    assert_eq!(got.content_type, "application/json");
    let b = &got.body;
    assert_eq!(
        keys(b),
        set(&["event", "server", "message", "detail", "time"])
    );
    assert_eq!(b["event"], "server.crashed");
    assert_eq!(b["server"], serde_json::json!({"id": 7, "name": "alpha"}));
    assert_eq!(b["message"], "Server alpha crashed");
    assert_eq!(b["detail"], "exited with status 139 (SIGSEGV)");
    let time = b["time"].as_str().unwrap();
    time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("time {time:?} is not RFC 3339: {e}"));
    // The stored payload is what was sent.
    assert_eq!(serde_json::from_str::<Value>(&d.payload).unwrap(), *b);
}

#[tokio::test]
async fn discord_payload_shape() {
    let rec = Receiver::start().await;
    let env = Env::new(fast(true)).await;
    let hook = env.webhook(env.alice, &rec.url, "discord", ALL).await;
    let event = AlertEvent::JobFailed {
        job_id: 42,
        title: "start server alpha".into(),
        summary: "l4d2ctl start exited with status 1".into(),
    };
    alerts::raise(&env.pool, env.alice, &event).await.unwrap();
    assert_eq!(env.settled(hook).await.state, DeliveryState::Delivered);
    let b = &rec.bodies()[0];
    assert_eq!(
        keys(b),
        set(&["username", "content", "allowed_mentions", "embeds"])
    );
    assert_eq!(b["username"], "left4me");
    assert_eq!(b["content"], "Job #42 failed: start server alpha");
    assert_eq!(b["allowed_mentions"], serde_json::json!({"parse": []}));
    let embeds = b["embeds"].as_array().unwrap();
    assert_eq!(embeds.len(), 1);
    assert_eq!(
        keys(&embeds[0]),
        set(&["title", "description", "color", "timestamp"])
    );
    assert_eq!(embeds[0]["title"], "Job failed");
    assert_eq!(
        embeds[0]["description"],
        "l4d2ctl start exited with status 1"
    );
    assert!(embeds[0]["color"].is_u64());
}

#[tokio::test]
async fn retried_after_a_500_then_delivered() {
    let rec = Receiver::start().await;
    rec.then(&[Reply::Status(500)]);
    let env = Env::new(fast(true)).await;
    let hook = env.webhook(env.alice, &rec.url, "json", ALL).await;
    alerts::raise(&env.pool, env.alice, &crash()).await.unwrap();
    let d = env.settled(hook).await;
    assert_eq!(d.state, DeliveryState::Delivered, "{d:?}");
    assert_eq!(d.attempts, 2);
    assert_eq!(rec.count(), 2);
}

#[tokio::test]
async fn gives_up_after_the_attempt_limit() {
    let rec = Receiver::start().await;
    rec.then(&[Reply::Status(500); 10]);
    let env = Env::new(fast(true)).await;
    let hook = env.webhook(env.alice, &rec.url, "json", ALL).await;
    alerts::raise(&env.pool, env.alice, &crash()).await.unwrap();
    let d = env.settled(hook).await;
    assert_eq!(d.state, DeliveryState::Failed, "{d:?}");
    assert_eq!((d.attempts, d.last_status), (3, Some(500)));
    let error = d.last_error.unwrap();
    assert!(
        error.contains("HTTP 500") && error.contains("gave up after 3 attempts"),
        "{error}"
    );
    assert_eq!(rec.count(), 3, "no attempt after the limit");
}

#[tokio::test]
async fn a_timeout_is_recorded() {
    let rec = Receiver::start().await;
    rec.then(&[Reply::Slow(Duration::from_secs(3))]);
    let env = Env::new(SenderSettings {
        max_attempts: 1,
        ..fast(true)
    })
    .await;
    let hook = env.webhook(env.alice, &rec.url, "json", ALL).await;
    alerts::raise(&env.pool, env.alice, &crash()).await.unwrap();
    let d = env.settled(hook).await;
    assert_eq!(d.state, DeliveryState::Failed, "{d:?}");
    assert_eq!(d.last_status, None);
    let error = d.last_error.unwrap();
    assert!(error.contains("no answer within 0.5 s"), "{error}");
}

#[tokio::test]
async fn a_429_waits_as_long_as_the_receiver_asks() {
    let rec = Receiver::start().await;
    rec.then(&[Reply::TooMany { retry_after: 1 }]);
    let env = Env::new(fast(true)).await;
    let hook = env.webhook(env.alice, &rec.url, "json", ALL).await;
    alerts::raise(&env.pool, env.alice, &crash()).await.unwrap();
    let d = env.settled(hook).await;
    assert_eq!(
        (d.state, d.attempts),
        (DeliveryState::Delivered, 2),
        "{d:?}"
    );
    let got = rec.got.lock().unwrap();
    let waited = got[1].at - got[0].at;
    // The backoff alone would have retried after 50 ms.
    assert!(
        waited >= Duration::from_millis(900),
        "retried after {waited:?}"
    );
}

#[tokio::test]
async fn a_disabled_event_creates_no_delivery() {
    let rec = Receiver::start().await;
    let env = Env::new(fast(true)).await;
    let hook = env
        .webhook(env.alice, &rec.url, "json", &["job.failed"])
        .await;
    assert_eq!(
        alerts::raise(&env.pool, env.alice, &crash()).await.unwrap(),
        0
    );
    assert!(alerts::deliveries(&env.pool, env.alice, hook, 10)
        .await
        .unwrap()
        .is_empty());
    // Another user's event reaches none of alice's webhooks.
    let job = AlertEvent::JobFailed {
        job_id: 1,
        title: "install".into(),
        summary: "steamcmd failed".into(),
    };
    assert_eq!(alerts::raise(&env.pool, env.bob, &job).await.unwrap(), 0);
    assert_eq!(alerts::raise(&env.pool, env.alice, &job).await.unwrap(), 1);
    assert_eq!(env.settled(hook).await.state, DeliveryState::Delivered);
    // Switched off, nothing more is queued.
    alerts::set_events(&env.pool, env.alice, hook, &alerts::EventSet::default())
        .await
        .unwrap();
    assert_eq!(alerts::raise(&env.pool, env.alice, &job).await.unwrap(), 0);
    assert_eq!(rec.count(), 1);
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let rec = Receiver::start().await;
    let mut env = Env::new(fast(false)).await;
    // The form refuses it at once.
    let input = WebhookInput::validate("lan", &rec.url, "json", ALL.iter().copied()).unwrap();
    let err = alerts::create(&env.pool, env.alice, &input, false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("loopback") && err.contains("LEFT4ME_WEBHOOK_ALLOW_PRIVATE=true"),
        "{err}"
    );
    // One made while private targets were allowed is refused at delivery.
    let hook = env.webhook(env.alice, &rec.url, "json", ALL).await;
    alerts::raise(&env.pool, env.alice, &crash()).await.unwrap();
    let d = env.settled(hook).await;
    assert_eq!((d.state, d.attempts), (DeliveryState::Failed, 1), "{d:?}");
    let error = d.last_error.unwrap();
    assert!(
        error.contains("not sent") && error.contains("LEFT4ME_WEBHOOK_ALLOW_PRIVATE=true"),
        "{error}"
    );
    assert_eq!(rec.count(), 0, "nothing reached the receiver");
    // The metadata service is refused even with private targets allowed.
    let meta = WebhookInput::validate(
        "meta",
        "http://169.254.169.254/latest",
        "json",
        ALL.iter().copied(),
    )
    .unwrap();
    let err = alerts::create(&env.pool, env.alice, &meta, true)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("never allowed"), "{err}");
    env.stop().await;
}

#[tokio::test]
async fn private_targets_are_delivered_when_allowed() {
    let rec = Receiver::start().await;
    let env = Env::new(fast(true)).await;
    let hook = env.webhook(env.alice, &rec.url, "json", ALL).await;
    alerts::raise(&env.pool, env.alice, &crash()).await.unwrap();
    assert_eq!(env.settled(hook).await.state, DeliveryState::Delivered);
    assert_eq!(rec.count(), 1);
}

#[tokio::test]
async fn payloads_carry_only_the_events_fixed_fields() {
    let now = time::OffsetDateTime::now_utc();
    // Texts that try to add fields, forge lines or smuggle a log.
    let hostile =
        "x\",\"rcon_password\":\"hunter2\",\"a\":\"\n[log] sv_logsecret 123\r\n{\"job_log\":1}";
    let events = [
        AlertEvent::ServerCrashed {
            server_id: 1,
            server_name: hostile.into(),
            detail: hostile.into(),
        },
        AlertEvent::CrashLoop {
            server_id: 1,
            server_name: "a".into(),
            detail: hostile.repeat(50),
        },
        AlertEvent::JobFailed {
            job_id: 2,
            title: hostile.into(),
            summary: hostile.into(),
        },
        AlertEvent::ServerRecovered {
            server_id: 3,
            server_name: hostile.into(),
        },
        AlertEvent::Test,
    ];
    for event in &events {
        let json = event.payload(alerts::Format::Json, now);
        let allowed = set(&["event", "message", "time", "server", "job", "detail"]);
        assert!(keys(&json).is_subset(&allowed), "{json}");
        for (k, v) in json.as_object().unwrap() {
            match k.as_str() {
                "server" => assert_eq!(keys(v), set(&["id", "name"])),
                "job" => assert_eq!(keys(v), set(&["id", "title"])),
                _ => assert!(v.is_string(), "{k}: {v}"),
            }
        }
        let discord = event.payload(alerts::Format::Discord, now);
        assert_eq!(
            keys(&discord),
            set(&["username", "content", "allowed_mentions", "embeds"])
        );
        assert_eq!(
            keys(&discord["embeds"][0]),
            set(&["title", "description", "color", "timestamp"])
        );
        for text in [json.to_string(), discord.to_string()] {
            // Every text is one line: control characters are gone.
            let v: Value = serde_json::from_str(&text).unwrap();
            fn strings(v: &Value, out: &mut Vec<String>) {
                match v {
                    Value::String(s) => out.push(s.clone()),
                    Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
                    Value::Object(o) => o.values().for_each(|x| strings(x, out)),
                    _ => {}
                }
            }
            let mut all = Vec::new();
            strings(&v, &mut all);
            for s in all {
                assert!(!s.chars().any(char::is_control), "{s:?}");
                assert!(
                    s.chars().count() <= 600,
                    "capped: {} chars",
                    s.chars().count()
                );
            }
        }
    }
}

#[tokio::test]
async fn secrets_of_servers_and_panel_never_leave() {
    let rec = Receiver::start().await;
    let env = Env::new(fast(true)).await;
    let hook = env.webhook(env.alice, &rec.url, "json", ALL).await;
    // A real server of alice's, with its RCON password and log secret.
    let bp =
        l4d2web::servers::blueprints::BlueprintInput::validate("b", "+map c1m1_hotel", "").unwrap();
    let bp = l4d2web::servers::blueprints::create(&env.pool, env.alice, &bp)
        .await
        .unwrap();
    let server = l4d2web::servers::create_server(
        &env.pool,
        &config(env.root.path()),
        env.alice,
        "alpha",
        bp.id,
    )
    .await
    .unwrap();
    let rcon = l4d2web::servers::find_owned_rcon(&env.pool, env.alice, server.id)
        .await
        .unwrap()
        .unwrap()
        .rcon_password;
    let (_, log_secret) = l4d2web::servers::log_secrets(&env.pool)
        .await
        .unwrap()
        .into_iter()
        .find(|(id, _)| *id == server.id)
        .unwrap();
    let event = AlertEvent::ServerCrashed {
        server_id: server.id,
        server_name: server.name.clone(),
        detail: format!("rcon_password {rcon}; sv_logsecret {log_secret}"),
    };
    alerts::raise(&env.pool, env.alice, &event).await.unwrap();
    assert_eq!(env.settled(hook).await.state, DeliveryState::Delivered);
    let body = rec.bodies()[0].to_string();
    assert!(
        !body.contains(&rcon) && !body.contains(&log_secret),
        "{body}"
    );
    assert!(
        body.contains("rcon_password [hidden]; sv_logsecret [hidden]"),
        "{body}"
    );
    // A payload quoting the panel's own key is not sent at all.
    alerts::delete(&env.pool, env.alice, hook).await.unwrap();
    let hook = env.webhook(env.alice, &rec.url, "json", ALL).await;
    let leak = AlertEvent::JobFailed {
        job_id: 9,
        title: "build".into(),
        summary: format!("SECRET_KEY={SECRET}"),
    };
    alerts::raise(&env.pool, env.alice, &leak).await.unwrap();
    let d = env.settled(hook).await;
    assert_eq!(d.state, DeliveryState::Failed);
    assert!(d.last_error.unwrap().contains("secret"));
    assert_eq!(rec.count(), 1, "the leaking payload never went out");
}

#[tokio::test]
async fn pending_at_shutdown_goes_out_after_the_next_start() {
    let rec = Receiver::start().await;
    rec.then(&[Reply::Slow(Duration::from_secs(30))]);
    let mut env = Env::new(SenderSettings {
        timeout: Duration::from_secs(60),
        ..fast(true)
    })
    .await;
    let hook = env.webhook(env.alice, &rec.url, "json", ALL).await;
    alerts::raise(&env.pool, env.alice, &crash()).await.unwrap();
    wait_for("the request in flight", Duration::from_secs(10), || async {
        (rec.count() == 1).then_some(())
    })
    .await;
    env.stop().await;
    let d = alerts::deliveries(&env.pool, env.alice, hook, 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 0), "{d:?}");
    // Raised while no sender runs: queued all the same.
    alerts::raise(&env.pool, env.alice, &AlertEvent::Test)
        .await
        .unwrap();
    env.start(fast(true));
    let all = wait_for("both delivered", Duration::from_secs(15), || async {
        let d = alerts::deliveries(&env.pool, env.alice, hook, 10)
            .await
            .unwrap();
        d.iter()
            .all(|d| d.state == DeliveryState::Delivered)
            .then_some(d)
    })
    .await;
    assert_eq!(all.len(), 2);
    assert_eq!(rec.count(), 3);
}

#[tokio::test]
async fn the_log_is_bounded() {
    let env = Env::new(fast(true)).await;
    // A target nobody listens on: the deliveries fail, which is fine here.
    let hook = env
        .webhook(env.alice, "http://127.0.0.1:9/", "json", ALL)
        .await;
    for _ in 0..(alerts::KEEP_DELIVERIES + 5) {
        alerts::raise(&env.pool, env.alice, &crash()).await.unwrap();
    }
    let d = alerts::deliveries(&env.pool, env.alice, hook, 1000)
        .await
        .unwrap();
    assert_eq!(d.len() as i64, alerts::KEEP_DELIVERIES);
}

async fn webhook_count(pool: &sqlx::SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM webhooks")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_urls_are_refused_by_the_form_and_change_nothing() {
    let s = TestServer::start().await;
    let mut alice = s.login(USER).await;
    assert_eq!(alice.get("/alerts").await.status, StatusCode::OK);
    let too_long = format!("https://example.com/{}", "a".repeat(2100));
    for (url, want) in [
        ("ftp://example.com/hook", "http:// or https://"),
        ("https://user:pw@example.com/hook", "user name or password"),
        ("garbage", "not a valid URL"),
        ("http://", "not a valid URL"),
        (too_long.as_str(), "at most 2048"),
        (
            "http://127.0.0.1:9/hook",
            "LEFT4ME_WEBHOOK_ALLOW_PRIVATE=true",
        ),
        ("http://[::1]:9/hook", "loopback"),
        ("http://10.0.0.1/hook", "private"),
        ("http://169.254.169.254/latest", "never allowed"),
        ("http://0.0.0.0:9/", "never allowed"),
    ] {
        let r = alice
            .post(
                "/alerts",
                &[
                    ("name", "ops"),
                    ("url", url),
                    ("format", "json"),
                    ("event", "server.crashed"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}: {}", r.body);
        assert!(r.body.contains(want), "{url}: want {want:?} in the page");
        assert!(r.body.contains("id=\"webhook-error\""), "{url}");
        assert!(r.body.contains("value=\"ops\""), "the form keeps its input");
    }
    for (fields, want) in [
        (
            vec![
                ("name", ""),
                ("url", "https://example.com/"),
                ("format", "json"),
            ],
            "enter a name",
        ),
        (
            vec![
                ("name", "x"),
                ("url", "https://example.com/"),
                ("format", "xml"),
            ],
            "unknown format",
        ),
        (
            vec![
                ("name", "x"),
                ("url", "https://example.com/"),
                ("format", "json"),
                ("event", "server.exploded"),
            ],
            "unknown event",
        ),
    ] {
        let r = alice.post("/alerts", &fields).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{fields:?}");
        assert!(r.body.contains(want), "{fields:?}: {}", r.body);
    }
    assert_eq!(webhook_count(&s.pool).await, 0, "nothing was stored");
    s.stop().await;
}

#[tokio::test]
async fn the_test_button_delivers_and_webhooks_are_their_owners_alone() {
    let rec = Receiver::start().await;
    let s = TestServer::start_with(&[("LEFT4ME_WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let mut alice = s.login(USER).await;
    let r = alice
        .post(
            "/alerts",
            &[
                ("name", "lan receiver"),
                ("url", rec.url.as_str()),
                ("format", "json"),
                ("event", "server.crashed"),
                ("event", "job.failed"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = r.location().to_string();
    let id = page.trim_start_matches("/alerts/").to_string();
    let list = alice.get("/alerts").await;
    assert!(list.body.contains("lan receiver") && list.body.contains("href=\"/alerts\""));
    assert!(
        !list.body.contains("/hook/token"),
        "the list hides the URL's path"
    );
    let r = alice.get(&page).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Nothing sent yet"));
    let r = alice.post(&format!("{page}/test"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    wait_for("the test alert", Duration::from_secs(20), || async {
        (rec.count() == 1).then_some(())
    })
    .await;
    assert_eq!(rec.bodies()[0]["event"], "test");
    let alice_id = s.ids["alice"];
    let hook_id: i64 = id.parse().unwrap();
    wait_for(
        "the log to say delivered",
        Duration::from_secs(10),
        || async {
            let d = alerts::deliveries(&s.pool, alice_id, hook_id, 10)
                .await
                .unwrap();
            (d.len() == 1 && d[0].state == DeliveryState::Delivered).then_some(())
        },
    )
    .await;
    let r = alice.get(&page).await;
    assert!(r.body.contains(">delivered<"), "{}", r.body);
    assert!(r.body.contains("Test"), "{}", r.body);

    // Toggles: exactly the checked events; an unknown one changes nothing.
    let r = alice
        .post(&format!("{page}/events"), &[("event", "server.recovered")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let hook = alerts::get(&s.pool, s.ids["alice"], id.parse().unwrap())
        .await
        .unwrap();
    assert!(hook.events.contains(alerts::EventKind::ServerRecovered));
    assert!(!hook.events.contains(alerts::EventKind::ServerCrashed));
    let r = alice
        .post(&format!("{page}/events"), &[("event", "nope")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Anyone else: 404 on the page and on every action, nothing changes.
    let before: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, state FROM webhook_deliveries ORDER BY id")
            .fetch_all(&s.pool)
            .await
            .unwrap();
    for who in [USER2, ADMIN] {
        let mut other = s.login(who).await;
        assert_eq!(
            other.get(&page).await.status,
            StatusCode::NOT_FOUND,
            "{}",
            who.0
        );
        for action in ["events", "test", "delete"] {
            let r = other
                .post(&format!("{page}/{action}"), &[("event", "server.crashed")])
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{} {action}", who.0);
        }
        assert!(!other.get("/alerts").await.body.contains("lan receiver"));
    }
    assert_eq!(
        alice.get("/alerts/nope").await.status,
        StatusCode::NOT_FOUND
    );
    let after: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, state FROM webhook_deliveries ORDER BY id")
            .fetch_all(&s.pool)
            .await
            .unwrap();
    assert_eq!(before, after);
    let still = alerts::get(&s.pool, s.ids["alice"], id.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(still.events, hook.events);
    assert_eq!(rec.count(), 1);

    // The owner deletes it, with its log.
    let r = alice.post(&format!("{page}/delete"), &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(alice.get(&page).await.status, StatusCode::NOT_FOUND);
    assert_eq!(webhook_count(&s.pool).await, 0);
    s.stop().await;
}

#[tokio::test]
async fn a_failed_job_reaches_its_owners_webhook_with_its_summary_only() {
    let rec = Receiver::start().await;
    let s = TestServer::start_with(&[("LEFT4ME_WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let mut alice = s.login(USER).await;
    let r = alice
        .post(
            "/alerts",
            &[
                ("name", "jobs"),
                ("url", rec.url.as_str()),
                ("format", "json"),
                ("event", "job.failed"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // Without the game installed, a start fails before anything runs.
    let bp = crate::servers::create_blueprint(&mut alice, "b", "+map c1m1_hotel", "").await;
    let server = crate::servers::create_server(&mut alice, "failing", bp).await;
    let (job, state) = crate::servers::act(&s, &mut alice, server, "start").await;
    assert_eq!(state, "failed");
    let bodies = wait_for("the job-failed alert", Duration::from_secs(20), || async {
        let b = rec.bodies();
        (!b.is_empty()).then_some(b)
    })
    .await;
    let e = &bodies[0];
    assert_eq!(e["event"], "job.failed", "{e}");
    assert_eq!(e["job"]["id"], job, "{e}");
    assert_eq!(e["job"]["title"], "start server failing", "{e}");
    let error = crate::util::job_error(&s, job).await;
    assert!(error.contains("not installed"), "{error}");
    assert_eq!(e["detail"], error.as_str(), "the failure's one line: {e}");
    // One failure, one alert.
    assert_eq!(rec.bodies().len(), 1);
    s.stop().await;
}
