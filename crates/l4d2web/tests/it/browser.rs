//! Headless Chromium (via chromedriver) against a real server: login,
//! failed login, rate-limited login, and a job log growing live in the page.

use std::time::{Duration, Instant};

use crate::util::*;
use fantoccini::Locator;

#[tokio::test]
async fn login_and_failed_login() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    let c = &b.client;
    submit_login(c, &s.base, ADMIN.0, "wrong-password").await;
    let err = wait_text(c, "#login-error", "Wrong username or password").await;
    assert!(!err.is_empty());
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    submit_login(c, &s.base, ADMIN.0, ADMIN.1).await;
    wait_text(c, "main h1", "Servers").await;
    assert_eq!(c.current_url().await.unwrap().path(), "/servers");
    wait_text(c, "header nav", "Log out admin").await;
    // The stylesheet and scripts loaded under the CSP (no inline script needed).
    let htmx_loaded = c
        .execute(
            "return typeof htmx !== 'undefined' && !!htmx.version",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(htmx_loaded, serde_json::Value::Bool(true));
    // Log out via the nav button.
    c.find(Locator::Css("header nav button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "main h1", "Log in").await;
    b.client.clone().close().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn rate_limited_login() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start_with(&[("LEFT4ME_LOGIN_LIMIT_PER_USER", "2")]).await;
    let c = &b.client;
    for _ in 0..2 {
        submit_login(c, &s.base, USER.0, "wrong-password").await;
        wait_text(c, "#login-error", "Wrong username or password").await;
    }
    // Even the right password is refused now.
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "#login-error", "Too many login attempts").await;
    assert!(c.current_url().await.unwrap().path().ends_with("/login"));
    b.client.clone().close().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn job_log_grows_live_without_reload() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    slow_steamcmd(s.root.path(), 30, 0.25);
    let c = &b.client;
    submit_login(c, &s.base, ADMIN.0, ADMIN.1).await;
    wait_text(c, "main h1", "Servers").await;
    c.goto(&format!("{}/jobs", s.base)).await.unwrap();
    wait_text(c, "main h1", "Jobs").await;
    c.find(Locator::Css("main form[action='/admin/install'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(c, "main h1", "install").await;
    assert!(c.current_url().await.unwrap().path().starts_with("/jobs/"));
    // A marker that a reload would wipe.
    c.execute("window.__left4meNoReload = 42; return 1", vec![])
        .await
        .unwrap();
    let count = || async {
        c.execute(
            "return document.querySelectorAll('#job-log .l').length",
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let n = count().await;
        if n >= 2 {
            break n;
        }
        assert!(Instant::now() < deadline, "no log lines arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = count().await;
        if n >= first + 5 {
            break;
        }
        assert!(Instant::now() < deadline, "log did not grow past {first}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_text(c, "#job-log", "slow-steamcmd tick 30").await;
    wait_text(c, "#job-state", "succeeded").await;
    wait_text(c, "#job-log", "Success! App '222860' fully installed").await;
    let marker = c
        .execute("return window.__left4meNoReload", vec![])
        .await
        .unwrap();
    assert_eq!(marker, serde_json::json!(42), "the page was not reloaded");
    // Exactly the database's log, once (no duplicate from a reconnect).
    let shown = c
        .execute(
            "return Array.from(document.querySelectorAll('#job-log .l')).map(e => e.textContent)",
            vec![],
        )
        .await
        .unwrap();
    let id: i64 = c
        .current_url()
        .await
        .unwrap()
        .path()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(shown, serde_json::json!(s.job_lines(id).await));
    b.client.clone().close().await.unwrap();
    s.stop().await;
}

/// What a new operator hits first: empty example fields, a question before
/// anything destructive (Cancel changes nothing), and error pages that keep
/// the navigation.
#[tokio::test]
async fn forms_ask_before_destroying_and_error_pages_keep_the_navigation() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    let c = &b.client;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "main h1", "Servers").await;

    // The new-blueprint form shows examples as placeholders, not values.
    c.goto(&format!("{}/blueprints", s.base)).await.unwrap();
    let args = c
        .find(Locator::Css("#create-blueprint-form input[name=args]"))
        .await
        .unwrap();
    assert_eq!(args.prop("value").await.unwrap().as_deref(), Some(""));
    assert!(args
        .attr("placeholder")
        .await
        .unwrap()
        .unwrap()
        .contains("+map"));
    fill(c, "#create-blueprint-form input[name=name]", "base").await;
    fill(
        c,
        "#create-blueprint-form input[name=args]",
        "+map c2m1_highway",
    )
    .await;
    click(c, "#create-blueprint-form button[type=submit]").await;
    wait_text(c, "main h1", "Blueprint base").await;
    let saved: String = sqlx::query_scalar("SELECT args FROM blueprints WHERE name = 'base'")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(saved, "+map c2m1_highway", "typed text is the whole value");

    c.goto(&format!("{}/servers", s.base)).await.unwrap();
    fill(c, "#create-server-form input[name=name]", "ask1").await;
    click(c, "#create-server-form button[type=submit]").await;
    wait_text(c, "main h1", "Server ask1").await;
    let jobs = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs")
            .fetch_one(&s.pool)
            .await
            .unwrap()
    };
    let before = jobs().await;
    // Delete asks first; Cancel sends nothing. (Reset, disabled until the
    // server has run, asks too: see the servers' main loop.)
    click(c, "#action-delete").await;
    answer_confirm(c, "Delete server ask1", false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(jobs().await, before, "a cancelled delete queued a job");
    wait_text(c, "main h1", "Server ask1").await;
    // Start does not ask.
    click(c, "#action-start").await;
    wait_text(c, ".flash", "Start of server ask1 queued").await;
    assert_eq!(jobs().await, before + 1);

    // A page that does not exist: the error inside the layout, with the
    // navigation of the logged-in user.
    c.goto(&format!("{}/servers/999999", s.base)).await.unwrap();
    wait_text(c, "main h1", "404").await;
    wait_text(c, "header nav", "Log out alice").await;
    wait_text(c, "main", "Back to your servers").await;
    b.client.clone().close().await.unwrap();
    s.stop().await;
}
