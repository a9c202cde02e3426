//! The job queue end to end: real `l4d2ctl` subprocesses, output in SQLite,
//! live SSE fan-out to several viewers, coalescing, failures with reasons.

use std::time::Duration;

use crate::util::*;
use futures_util::StreamExt;
use l4d2web::jobs::JobState;
use l4d2web::tasks::Task;
use reqwest::StatusCode;

#[derive(Debug, Clone, PartialEq)]
struct SseEvent {
    event: String,
    data: String,
}

/// Reads an SSE stream until the `end` event (or the stream closes).
/// `as_browser`: send `Accept: text/event-stream` like EventSource does
/// (the server's lean event-stream path); without it hyper serves it.
async fn read_sse(base: String, cookie: String, path: String, as_browser: bool) -> Vec<SseEvent> {
    let mut req = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("cookie", format!("left4me_session={cookie}"));
    if as_browser {
        req = req.header("accept", "text/event-stream");
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut stream = res.bytes_stream();
    let mut buf = String::new();
    let mut events = Vec::new();
    while let Some(chunk) = stream.next().await {
        buf.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(i) = buf.find("\n\n") {
            let block: String = buf.drain(..i + 2).collect();
            let mut ev = SseEvent {
                event: "message".into(),
                data: String::new(),
            };
            let mut is_comment = true;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    ev.event = v.trim().to_string();
                    is_comment = false;
                } else if let Some(v) = line.strip_prefix("data:") {
                    ev.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    is_comment = false;
                }
            }
            if !is_comment {
                let end = ev.event == "end";
                events.push(ev);
                if end {
                    return events;
                }
            }
        }
    }
    events
}

fn html_unescape(s: &str) -> String {
    s.replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
        .replace("&#38;", "&")
}

/// The text of `line` events: `<div class="l s-..">text</div>`.
fn line_texts(events: &[SseEvent]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "line")
        .map(|e| {
            let start = e.data.find('>').unwrap() + 1;
            let end = e.data.rfind("</div>").unwrap();
            html_unescape(&e.data[start..end])
        })
        .collect()
}

#[tokio::test]
async fn job_log_streams_live_to_several_viewers() {
    let s = TestServer::start().await;
    slow_steamcmd(s.root.path(), 15, 0.2);
    let mut admin = s.login(ADMIN).await;
    let cookie = admin.cookie.clone().unwrap();
    let r = admin.post("/admin/install", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let id: i64 = r
        .location()
        .strip_prefix("/jobs/")
        .unwrap()
        .parse()
        .unwrap();
    let path = format!("/jobs/{id}/stream");
    // Viewers joining at different times: right away, mid-run, mid-run;
    // like a browser and not.
    let mut viewers = Vec::new();
    for (delay_ms, as_browser) in [(0u64, true), (0, false), (700, true), (1500, false)] {
        let (b, c, p) = (s.base.clone(), cookie.clone(), path.clone());
        viewers.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            read_sse(b, c, p, as_browser).await
        }));
    }
    // The job page of a running job subscribes over SSE.
    let page = admin.get(&format!("/jobs/{id}")).await;
    assert!(
        page.body
            .contains(&format!("sse-connect=\"/jobs/{id}/stream\"")),
        "{}",
        page.body
    );
    let mut results = Vec::new();
    for v in viewers {
        results.push(v.await.unwrap());
    }
    assert_eq!(s.wait_job(id).await, "succeeded");
    let db_lines = s.job_lines(id).await;
    assert!(db_lines.iter().any(|l| l == "slow-steamcmd tick 15"));
    assert!(db_lines
        .iter()
        .any(|l| l.contains("Success! App '222860' fully installed")));
    for (i, events) in results.iter().enumerate() {
        assert_eq!(
            line_texts(events),
            db_lines,
            "viewer {i} got the whole log in order"
        );
        let last = events.last().unwrap();
        assert_eq!(last.event, "end", "viewer {i}");
        assert!(last.data.contains("succeeded"));
    }
    // A viewer of a finished job gets the log and the end at once.
    for as_browser in [true, false] {
        let late = read_sse(s.base.clone(), cookie.clone(), path.clone(), as_browser).await;
        assert_eq!(line_texts(&late), db_lines);
    }
    // A reconnect with Last-Event-ID resumes after that line.
    let res = reqwest::Client::new()
        .get(format!("{}{path}", s.base))
        .header("cookie", format!("left4me_session={cookie}"))
        .header("accept", "text/event-stream")
        .header("last-event-id", "3")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!res.contains("id: 3\n") && res.contains("id: 4\n"), "{res}");
    assert_eq!(res.matches("event: line").count(), db_lines.len() - 3);
    // The finished job page renders the log server-side, no stream.
    let page = admin.get(&format!("/jobs/{id}")).await;
    assert!(!page.body.contains("sse-connect"));
    assert!(page.body.contains("slow-steamcmd tick 15"));
    assert!(page.body.contains("state-succeeded"));
    s.stop().await;
}

#[tokio::test]
async fn failing_command_fails_the_job_with_its_reason() {
    let s = TestServer::start().await;
    // l4d2ctl refuses the install with a one-line reason: steamcmd is gone.
    std::fs::remove_file(s.root.path().join("steam/steamcmd.sh")).unwrap();
    let jobs = crate::util::enqueuer(s.pool.clone());
    let id = crate::util::queue_install(&jobs, Some(s.ids["alice"]), None).await;
    assert_eq!(s.wait_job(id).await, "failed");
    let job = jobs.get(id).await.unwrap().unwrap();
    let error = job.error.unwrap();
    assert!(error.starts_with("l4d2ctl failed (exit code"), "{error}");
    assert!(
        error.contains("steamcmd"),
        "the reason is l4d2ctl's: {error}"
    );
    let lines = s.job_lines(id).await;
    assert_eq!(lines[0], "$ l4d2ctl install");
    assert!(lines.last().unwrap().contains("l4d2ctl failed"));
    // Alice sees the failure on her job page.
    let mut alice = s.login(USER).await;
    let page = alice.get(&format!("/jobs/{id}")).await;
    assert!(page.body.contains("state-failed") && page.body.contains("job-error"));
    // Times read as a person says them, the exact time on hover (no
    // nanoseconds), and how long the job took.
    let job = jobs.get(id).await.unwrap().unwrap();
    assert!(page.body.contains(" ago</time>"), "{}", page.body);
    assert!(page.body.contains(" UTC\">"), "{}", page.body);
    assert!(
        !page.body.contains(&format!(">{}<", job.created_at)),
        "raw stamp shown"
    );
    assert!(page.body.contains("· took "), "{}", page.body);
    let list = alice.get("/jobs").await.body;
    assert!(
        list.contains("<th>Took</th>") && list.contains(" ago</time>"),
        "{list}"
    );
    s.stop().await;
}

#[tokio::test]
async fn missing_l4d2ctl_fails_clearly() {
    let root = test_support::DataRoot::empty();
    let mut config = config_for(root.path(), &[]);
    config.l4d2ctl = Some(root.path().join("no-such-l4d2ctl"));
    let pool = l4d2web::db::connect(&config.database_url).await.unwrap();
    l4d2web::db::migrate(&pool).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(l4d2web::serve(config, listener, token.clone()));
    let jobs = crate::util::enqueuer(pool.clone());
    let id = crate::util::queue_install(&jobs, None, None).await;
    let mut state = JobState::Queued;
    for _ in 0..100 {
        state = jobs.get(id).await.unwrap().unwrap().state;
        if state == JobState::Failed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, JobState::Failed);
    let error = jobs.get(id).await.unwrap().unwrap().error.unwrap();
    assert!(
        error.contains("cannot start") && error.contains("no-such-l4d2ctl"),
        "{error}"
    );
    token.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn identical_queued_system_jobs_are_coalesced() {
    // No server running: jobs stay queued.
    let root = test_support::DataRoot::empty();
    let config = config_for(root.path(), &[]);
    let pool = l4d2web::db::connect(&config.database_url).await.unwrap();
    l4d2web::db::migrate(&pool).await.unwrap();
    let alice = l4d2web::accounts::create_user(&pool, "alice", "alice-password", false)
        .await
        .unwrap();
    let jobs = crate::util::enqueuer(pool.clone());
    let install = |user: Option<i64>| Task::Install.to_job(user, None);
    let a = jobs.submit(install(None)).await.unwrap();
    let b = jobs.submit(install(None)).await.unwrap();
    assert!(a.new && !b.new);
    assert_eq!(a.id, b.id, "identical system jobs coalesce");
    let a = a.id;
    let mut different = install(None);
    different.payload = serde_json::json!({"other": 1});
    let other = jobs.submit(different).await.unwrap().id;
    assert_ne!(a, other, "different payloads are different jobs");
    let refresh = jobs
        .submit(Task::WorkshopRefresh.to_job(None, None))
        .await
        .unwrap()
        .id;
    assert_ne!(a, refresh, "different kinds are different jobs");
    let u1 = jobs.submit(install(Some(alice.id))).await.unwrap().id;
    let u2 = jobs.submit(install(Some(alice.id))).await.unwrap().id;
    assert_ne!(u1, u2, "user jobs are never coalesced");
    // Once the queued one has started, a new request queues a new job.
    sqlx::query("UPDATE jobs SET state = 'running' WHERE id = ?")
        .bind(a)
        .execute(&pool)
        .await
        .unwrap();
    let c = jobs.submit(install(None)).await.unwrap().id;
    assert_ne!(a, c);
    assert_eq!(jobs.submit(install(None)).await.unwrap().id, c);
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 6);
}

#[tokio::test]
async fn jobs_with_one_lock_key_run_one_at_a_time_in_order() {
    let root = test_support::DataRoot::empty();
    // A stand-in l4d2ctl that records when it ran (ordering, not speed).
    let ctl = root.path().join("clock-l4d2ctl");
    test_support::write_executable(
        &ctl,
        "#!/bin/sh\necho start $(date +%s%N)\nsleep 1\necho end $(date +%s%N)\n",
        0o755,
    );
    let mut config = config_for(root.path(), &[]);
    config.l4d2ctl = Some(ctl);
    let pool = l4d2web::db::connect(&config.database_url).await.unwrap();
    l4d2web::db::migrate(&pool).await.unwrap();
    let jobs = crate::util::enqueuer(pool.clone());
    // Queued before the workers start, so all three are eligible at once.
    // User jobs: identical system jobs would coalesce into one.
    let user = l4d2web::accounts::create_user(&pool, "alice", "alice-password", false)
        .await
        .unwrap()
        .id;
    let a = crate::util::queue_install(&jobs, Some(user), Some("server:x")).await;
    let b = crate::util::queue_install(&jobs, Some(user), Some("server:x")).await;
    let c = crate::util::queue_install(&jobs, Some(user), Some("server:y")).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(l4d2web::serve(config, listener, token.clone()));
    let stamps = |id: i64| {
        let pool = pool.clone();
        async move {
            for _ in 0..300 {
                let state: String = sqlx::query_scalar("SELECT state FROM jobs WHERE id = ?")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                if state == "succeeded" {
                    let lines: Vec<String> = sqlx::query_scalar(
                        "SELECT line FROM job_lines WHERE job_id = ? ORDER BY seq",
                    )
                    .bind(id)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                    let stamp = |p: &str| -> u128 {
                        lines
                            .iter()
                            .find_map(|l| l.strip_prefix(p))
                            .unwrap()
                            .trim()
                            .parse()
                            .unwrap()
                    };
                    return (stamp("start "), stamp("end "));
                }
                assert_ne!(state, "failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("job {id} did not finish");
        }
    };
    let (a_start, a_end) = stamps(a).await;
    let (b_start, _) = stamps(b).await;
    let (c_start, _) = stamps(c).await;
    assert!(
        b_start >= a_end,
        "b ({b_start}) waited for a ({a_end}) on the same server"
    );
    assert!(
        c_start < a_end && a_start < c_start + 1_000_000_000,
        "c ran alongside a (other server)"
    );
    token.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_install_pushes_its_progress_with_bytes_and_rate() {
    let s = TestServer::start().await;
    // steamcmd-sim downloading at a set speed, so the reports arrive over
    // a couple of seconds as a real download's do.
    let script = s.root.path().join("steam/steamcmd.sh");
    let _ = std::fs::remove_file(&script);
    test_support::write_executable(
        &script,
        &format!(
            "#!/bin/sh\nSTEAMCMD_SIM_KIB_PER_SEC=8192 exec {} \"$@\"\n",
            test_support::workspace_bin("steamcmd-sim").display()
        ),
        0o755,
    );
    let mut admin = s.login(ADMIN).await;
    let cookie = admin.cookie.clone().unwrap();
    let r = admin.post("/admin/install", &[]).await;
    let id: i64 = r
        .location()
        .strip_prefix("/jobs/")
        .unwrap()
        .parse()
        .unwrap();
    let page = admin.get(&format!("/jobs/{id}")).await;
    assert!(page.body.contains("sse-swap=\"progress\""), "{}", page.body);
    let events = read_sse(s.base.clone(), cookie, format!("/jobs/{id}/stream"), true).await;
    assert_eq!(s.wait_job(id).await, "succeeded");
    let progress: Vec<&str> = events
        .iter()
        .filter(|e| e.event == "progress")
        .map(|e| e.data.as_str())
        .collect();
    assert!(progress.len() > 5, "{events:?}");
    assert!(
        progress
            .iter()
            .all(|p| p.starts_with("<progress max=\"100\" value=\"")),
        "{progress:?}"
    );
    assert!(
        progress.iter().any(|p| p.contains("downloading")
            && p.contains(" MiB of ")
            && p.contains("/s</span>")),
        "a download with its rate: {progress:?}"
    );
    let last = progress.last().unwrap();
    assert!(last.contains("100.0 %"), "{last}");
    // The raw lines stay in the log as steamcmd printed them.
    assert!(s
        .job_lines(id)
        .await
        .iter()
        .any(|l| l.contains("Update state (0x61) downloading, progress: ")));
}

/// Queues an install from the Jobs page (with a Steam Guard code when
/// given); the job's id, or the refusal's status and page.
async fn post_install(admin: &mut Client, code: Option<&str>) -> Result<i64, (StatusCode, String)> {
    let fields: Vec<(&str, &str)> = code
        .map(|c| vec![("steam_guard_code", c)])
        .unwrap_or_default();
    let r = admin.post("/admin/install", &fields).await;
    if r.status != StatusCode::SEE_OTHER {
        return Err((r.status, r.body));
    }
    Ok(r.location()
        .strip_prefix("/jobs/")
        .unwrap()
        .parse()
        .unwrap())
}

#[tokio::test]
async fn a_steam_guard_code_entered_on_the_jobs_page_lets_the_install_log_in() {
    const PASSWORD: &str = "hunter2: the sequel";
    let account = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(account.path(), format!("left4me_host\n{PASSWORD}\n")).unwrap();
    let account_path = account.path().display().to_string();
    let s = TestServer::start_with_host_env(&[
        ("LEFT4ME_STEAM_ACCOUNT_FILE", &account_path),
        ("STEAMCMD_SIM_ACCOUNT", &format!("left4me_host:{PASSWORD}")),
        ("STEAMCMD_SIM_GUARD_CODE", "F7K2Q"),
    ])
    .await;
    let mut admin = s.login(ADMIN).await;
    // Steam asks for a code: the job fails and says so, the Jobs page asks.
    let id = post_install(&mut admin, None).await.unwrap();
    assert_eq!(s.wait_job(id).await, "failed");
    let page = admin.get("/jobs").await;
    assert!(page.body.contains("id=\"steam-guard\""), "{}", page.body);
    assert!(page
        .body
        .contains("Steam asks for a Steam Guard code for the account left4me_host"));
    // Not a code: refused, nothing queued.
    let jobs_before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    for bad in ["", "1234", "F7K2Q9", "F7;2Q"] {
        let (status, body) = post_install(&mut admin, Some(bad)).await.unwrap_err();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(
            body.contains("a Steam Guard code is the 5 letters or digits"),
            "{body}"
        );
    }
    let jobs_after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(jobs_before, jobs_after);
    // A wrong code: Steam refuses the login, and the page says so.
    let id = post_install(&mut admin, Some("AAAAA")).await.unwrap();
    assert_eq!(s.wait_job(id).await, "failed");
    let page = admin.get("/jobs").await;
    assert!(
        page.body.contains("id=\"steam-login-refused\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("the Steam Guard code is wrong"),
        "{}",
        page.body
    );
    // The right code installs; the next install needs none.
    let id = post_install(&mut admin, Some("F7K2Q")).await.unwrap();
    assert_eq!(
        s.wait_job(id).await,
        "succeeded",
        "{:?}",
        s.job_lines(id).await
    );
    let page = admin.get("/jobs").await;
    assert!(!page.body.contains("steam-guard") && !page.body.contains("steam-login-refused"));
    let id = post_install(&mut admin, None).await.unwrap();
    assert_eq!(
        s.wait_job(id).await,
        "succeeded",
        "{:?}",
        s.job_lines(id).await
    );
    // Neither the password nor the code is in the database (jobs, their
    // logs, facts).
    let dump: Vec<String> = sqlx::query_scalar(
        "SELECT args || COALESCE(error, '') FROM jobs UNION ALL SELECT line FROM job_lines UNION ALL SELECT value FROM panel_facts",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    for text in &dump {
        assert!(
            !text.contains(PASSWORD) && !text.contains("F7K2Q"),
            "{text}"
        );
    }
    // A user who is not an administrator sees no Steam login and cannot install.
    let mut alice = s.login(USER).await;
    assert!(!alice.get("/jobs").await.body.contains("Steam Guard"));
    assert_eq!(
        alice
            .post("/admin/install", &[("steam_guard_code", "F7K2Q")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    s.stop().await;
}
