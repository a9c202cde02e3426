//! Dashboard and reset latency through the real web app (`harness = false`).
//!
//! * GET /servers with 100 servers (100 rows + 100 initialized instances,
//!   5 running): one `l4d2ctl list --json` call for all of them.
//! * Reset end to end: POST /servers/{id}/reset → job succeeded → A2S answers.
//!
//! Prints median and p95; asserts nothing. `SERVERS=n`, `ROUNDS=n` override.
//! Run: `cargo build --workspace --bins && cargo bench -p l4d2web --bench dashboard`.

use std::time::{Duration, Instant};

use test_support::DataRoot;
use tokio_util::sync::CancellationToken;

mod support;

const RANGE_START: u16 = 27600;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn stats(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pick = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{label}: n={} median={:.1} ms p95={:.1} ms min={:.1} ms max={:.1} ms",
        samples.len(),
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.95).as_secs_f64() * 1e3,
        samples[0].as_secs_f64() * 1e3,
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
}

async fn wait_job(pool: &sqlx::SqlitePool, after: i64) -> (i64, String) {
    loop {
        let row: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, state FROM jobs WHERE id > ? AND state IN ('succeeded','failed') ORDER BY id LIMIT 1",
        )
        .bind(after)
        .fetch_optional(pool)
        .await
        .unwrap();
        if let Some(r) = row {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn a2s_wait(port: u16) {
    let mut c = a2s::A2SClient::new().unwrap();
    c.set_timeout(Duration::from_millis(50)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if c.info(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("A2S on {port} never answered");
}

#[tokio::main]
async fn main() {
    let n = env_usize("SERVERS", 100);
    let rounds = env_usize("ROUNDS", 30);
    let running = 5.min(n);
    let root = DataRoot::installed();
    let support::Panel {
        config,
        pool,
        user,
        blueprint: bp,
    } = support::panel(&root, RANGE_START, n, "+map c1m1_hotel -sim_players 0", &[]).await;

    // 100 rows + 100 initialized instances (initialize runs l4d2ctl directly).
    let t = Instant::now();
    let mut servers = Vec::new();
    for i in 0..n {
        let s =
            l4d2web::servers::create_server(&pool, &config, user.id, &format!("b{i:03}"), bp.id)
                .await
                .unwrap();
        let spec = root.path().join("tmp-spec.yaml");
        std::fs::write(
            &spec,
            format!(
                "port: {}\nargs: [+map, c1m1_hotel]\nconfig: 'hostname \"b\"'\n",
                s.port
            ),
        )
        .unwrap();
        let out = root.l4d2ctl(["initialize", &s.name, "-f", spec.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        servers.push(s);
    }
    println!(
        "setup: {n} servers created and initialized in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let (token, session) =
        l4d2web::auth::create_session(&pool, &config.secret_key, Some(user.clone()))
            .await
            .unwrap();
    let listener = tokio::net::TcpListener::bind(config.bind).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(l4d2web::serve(config, listener, shutdown.clone()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = format!("left4me_session={token}");
    let csrf = session.csrf_token.clone();
    let post = |path: String| {
        http.post(format!("{base}{path}"))
            .header("cookie", &cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf_token={csrf}"))
            .send()
    };

    // A few running, through the web app.
    for s in servers.iter().take(running) {
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id),0) FROM jobs")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            post(format!("/servers/{}/start", s.id))
                .await
                .unwrap()
                .status(),
            303
        );
        let (_, state) = wait_job(&pool, last).await;
        assert_eq!(state, "succeeded");
    }
    for s in servers.iter().take(running) {
        let port = s.port as u16;
        tokio::task::spawn_blocking(move || a2s_wait(port))
            .await
            .unwrap();
    }

    let mut samples = Vec::new();
    for i in 0..rounds + 3 {
        let t = Instant::now();
        let res = http
            .get(format!("{base}/servers"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        let elapsed = t.elapsed();
        assert_eq!(body.matches("data-server-id=").count(), n);
        if i >= 3 {
            samples.push(elapsed);
        }
    }
    stats(
        &format!("GET /servers ({n} servers, {running} running)"),
        samples,
    );

    let target = servers[0].clone();
    let port = target.port as u16;
    let mut resets = Vec::new();
    let mut job_only = Vec::new();
    for _ in 0..rounds.min(20) {
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id),0) FROM jobs")
            .fetch_one(&pool)
            .await
            .unwrap();
        let t = Instant::now();
        assert_eq!(
            post(format!("/servers/{}/reset", target.id))
                .await
                .unwrap()
                .status(),
            303
        );
        let (_, state) = wait_job(&pool, last).await;
        job_only.push(t.elapsed());
        assert_eq!(state, "succeeded");
        tokio::task::spawn_blocking(move || a2s_wait(port))
            .await
            .unwrap();
        resets.push(t.elapsed());
    }
    stats("reset: POST → job succeeded", job_only);
    stats("reset: POST → job succeeded → A2S answers", resets);

    for s in servers.iter().take(running) {
        let _ = root.l4d2ctl(["stop", &s.name]);
    }
    shutdown.cancel();
    let _ = task.await;
}
