//! Two-factor login (TOTP): enrollment, the code step of the login with its
//! replay rule and rate limits, recovery codes, turning it off, and the
//! setting that makes administrators use it; one browser run of it all.

use std::time::Duration;

use crate::util::*;
use fantoccini::Locator;
use reqwest::StatusCode;
use totp_rs::{Algorithm, Secret, TOTP};

fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = html.find(start)? + start.len();
    html[i..].split(end).next()
}

fn decode(base32: &str) -> Vec<u8> {
    Secret::Encoded(base32.to_string()).to_bytes().unwrap()
}

fn code_at(secret: &[u8], step: u64) -> String {
    TOTP::new(Algorithm::SHA1, 6, 1, 30, secret.to_vec(), None, "t".into())
        .unwrap()
        .generate(step * 30)
}

fn current_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 30
}

/// A 6-digit code that is no code of the secret near now.
fn wrong_code(secret: &[u8]) -> String {
    let now = current_step();
    let near: Vec<String> = (now - 2..=now + 2).map(|s| code_at(secret, s)).collect();
    (0..)
        .map(|n: u32| format!("{:06}", (n * 7919) % 1_000_000))
        .find(|c| !near.contains(c))
        .unwrap()
}

async fn last_step(s: &TestServer, user: &str) -> Option<i64> {
    sqlx::query_scalar("SELECT last_step FROM user_totp WHERE user_id = ?")
        .bind(s.ids[user])
        .fetch_optional(&s.pool)
        .await
        .unwrap()
        .flatten()
}

/// A code the server accepts next: the step after the last accepted one,
/// once that is within the skew (waits at most one step).
async fn fresh_code(s: &TestServer, user: &str, secret: &[u8]) -> String {
    let last = last_step(s, user).await.map(|l| l as u64);
    let Some(last) = last else {
        return code_at(secret, current_step());
    };
    while current_step() < last {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    code_at(secret, last + 1)
}

/// Everything two-factor keeps, to compare before and after.
async fn two_factor_rows(s: &TestServer) -> Vec<String> {
    let mut rows: Vec<String> = sqlx::query_scalar(
        "SELECT user_id || ',' || hex(secret) || ',' || enabled || ',' || quote(last_step) FROM user_totp ORDER BY user_id",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    rows.extend(
        sqlx::query_scalar::<_, String>(
            "SELECT user_id || ',' || code_hash || ',' || quote(used_at) FROM totp_recovery_codes ORDER BY id",
        )
        .fetch_all(&s.pool)
        .await
        .unwrap(),
    );
    rows.extend(
        sqlx::query_scalar::<_, String>("SELECT key || '=' || value FROM settings ORDER BY key")
            .fetch_all(&s.pool)
            .await
            .unwrap(),
    );
    rows
}

fn recovery_codes_in(html: &str) -> Vec<String> {
    let Some(list) = between(html, "<ul class=\"codes\">", "</ul>") else {
        return Vec::new();
    };
    list.split("<code>")
        .skip(1)
        .filter_map(|c| c.split("</code>").next())
        .map(str::to_string)
        .collect()
}

/// Sets up two-factor login for the logged-in client; returns the secret
/// and the recovery codes.
async fn enroll(s: &TestServer, c: &mut Client) -> (Vec<u8>, Vec<String>) {
    let r = c.post("/account/two-factor/begin", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = c.get("/account").await;
    let secret = decode(between(&page.body, "<code id=\"totp-secret\">", "</code>").unwrap());
    assert!(page.body.contains("<svg"), "a QR code is shown");
    let user = between(&page.body, "<h1>Account ", "</h1>")
        .unwrap()
        .to_string();
    let user: &str = s.ids.keys().find(|k| **k == user).unwrap();
    let code = fresh_code(s, user, &secret).await;
    let r = c
        .post("/account/two-factor/confirm", &[("code", &code)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let codes = recovery_codes_in(&r.body);
    assert_eq!(codes.len(), 10, "{}", r.body);
    (secret, codes)
}

/// The password step: the code page, with its signed step token.
async fn password_step(c: &mut Client, who: (&str, &str)) -> (Resp, String) {
    let r = c.login(who.0, who.1).await;
    let step = between(&r.body, "name=\"step\" value=\"", "\"")
        .unwrap_or_default()
        .to_string();
    (r, step)
}

async fn code_step(c: &mut Client, step: &str, code: &str) -> Resp {
    c.post("/login/code", &[("step", step), ("code", code)])
        .await
}

/// Logs in with password and code; the client then holds the session.
async fn login_with_code(c: &mut Client, who: (&str, &str), code: &str) {
    let (r, step) = password_step(c, who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = code_step(c, &step, code).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/servers");
    assert_eq!(c.get("/jobs").await.status, StatusCode::OK);
}

#[tokio::test]
async fn totp_enrollment_needs_a_right_code() {
    let s = TestServer::start().await;
    let mut c = s.login(USER).await;
    let page = c.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("href=\"/account\""),
        "linked in the navigation"
    );
    assert!(
        page.body.contains("is <strong>off</strong>"),
        "{}",
        page.body
    );
    c.post("/account/two-factor/begin", &[]).await;
    let page = c.get("/account").await;
    let base32 = between(&page.body, "<code id=\"totp-secret\">", "</code>")
        .unwrap()
        .to_string();
    let secret = decode(&base32);
    assert_eq!(secret.len(), 20);
    for bad in [
        wrong_code(&secret),
        "abc".into(),
        String::new(),
        "1".repeat(40),
    ] {
        let r = c
            .post("/account/two-factor/confirm", &[("code", &bad)])
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad:?}: {}",
            r.body
        );
        assert!(r.body.contains("Wrong code"), "{}", r.body);
        assert!(r.body.contains("not on yet"));
    }
    let enabled: bool = sqlx::query_scalar("SELECT enabled FROM user_totp WHERE user_id = ?")
        .bind(s.ids["alice"])
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert!(!enabled, "a wrong code enables nothing");
    // Not enabled yet: the password alone still logs in.
    s.login(USER).await;

    let code = code_at(&secret, current_step());
    let r = c
        .post("/account/two-factor/confirm", &[("code", &code)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let codes = recovery_codes_in(&r.body);
    assert_eq!(codes.len(), 10);
    assert!(r.body.contains("is <strong>on</strong>"));
    // Stored hashed only; the secret and the codes are not shown again.
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT code_hash FROM totp_recovery_codes WHERE user_id = ?")
            .bind(s.ids["alice"])
            .fetch_all(&s.pool)
            .await
            .unwrap();
    assert_eq!(hashes.len(), 10);
    for code in &codes {
        assert!(!hashes.iter().any(|h| h.contains(code.as_str())));
    }
    let page = c.get("/account").await;
    assert!(
        !page.body.contains(&base32),
        "secret shown after enrollment"
    );
    assert!(!page.body.contains(&codes[0]), "recovery codes shown twice");
    assert!(
        page.body.contains("10 unused recovery codes"),
        "{}",
        page.body
    );
    let r = c.post("/account/two-factor/begin", &[]).await;
    assert_eq!(
        r.status,
        StatusCode::BAD_REQUEST,
        "no second enrollment over the first"
    );
    // The password alone no longer logs in.
    let mut other = s.client();
    let (r, step) = password_step(&mut other, USER).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("id=\"code-form\""), "{}", r.body);
    assert!(!step.is_empty());
    assert_eq!(
        other.get("/servers").await.location(),
        "/login",
        "no session yet"
    );
    s.stop().await;
}

#[tokio::test]
async fn totp_login_refuses_wrong_and_replayed_codes() {
    let s = TestServer::start().await;
    let mut c = s.login(USER).await;
    let (secret, _) = enroll(&s, &mut c).await;
    let enrolled_step = last_step(&s, "alice").await.unwrap() as u64;

    let mut d = s.client();
    let (_, step) = password_step(&mut d, USER).await;
    let before = two_factor_rows(&s).await;
    let r = code_step(&mut d, &step, &wrong_code(&secret)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("Wrong code"), "{}", r.body);
    assert!(r.body.contains("id=\"code-form\""), "the code form again");
    // The enrollment's own code is spent.
    let r = code_step(&mut d, &step, &code_at(&secret, enrolled_step)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    // A forged or foreign step token: back to the password.
    let forged = step.replacen(
        &format!("{}-", s.ids["alice"]),
        &format!("{}-", s.ids["admin"]),
        1,
    );
    let code = fresh_code(&s, "alice", &secret).await;
    let r = code_step(&mut d, &forged, &code).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("log in again"), "{}", r.body);
    assert_eq!(
        two_factor_rows(&s).await,
        before,
        "refused codes changed something"
    );

    let r = code_step(&mut d, &step, &code).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(d.get("/jobs").await.status, StatusCode::OK, "logged in");
    let used = last_step(&s, "alice").await.unwrap() as u64;

    // The same code again, and a code of an earlier step: refused.
    let mut e = s.client();
    let (_, step) = password_step(&mut e, USER).await;
    let r = code_step(&mut e, &step, &code).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "replay: {}", r.body);
    let r = code_step(&mut e, &step, &code_at(&secret, used - 1)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "older step: {}", r.body);
    assert_eq!(e.get("/servers").await.location(), "/login");
    s.stop().await;
}

#[tokio::test]
async fn totp_recovery_code_works_once() {
    let s = TestServer::start().await;
    let mut c = s.login(USER).await;
    let (_, codes) = enroll(&s, &mut c).await;
    // Typed loosely: upper case, no dashes, spaces around.
    let typed = format!(" {} ", codes[3].replace('-', "").to_uppercase());
    let mut d = s.client();
    let (_, step) = password_step(&mut d, USER).await;
    let r = code_step(&mut d, &step, &typed).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = d.get("/servers").await;
    assert!(
        page.body.contains("9 unused recovery codes"),
        "{}",
        page.body
    );
    let mut e = s.client();
    let (_, step) = password_step(&mut e, USER).await;
    let r = code_step(&mut e, &step, &codes[3]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "spent: {}", r.body);
    let r = code_step(&mut e, &step, &codes[4]).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "another one works: {}",
        r.body
    );
    s.stop().await;
}

#[tokio::test]
async fn totp_code_step_is_rate_limited() {
    let s = TestServer::start_with(&[("LEFT4ME_LOGIN_LIMIT_PER_USER", "4")]).await;
    let mut c = s.login(USER).await; // attempt 1
    let (secret, _) = enroll(&s, &mut c).await;
    let mut d = s.client();
    let (r, step) = password_step(&mut d, USER).await; // 2
    assert_eq!(r.status, StatusCode::OK);
    for _ in 0..2 {
        // 3, 4
        let r = code_step(&mut d, &step, &wrong_code(&secret)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let before = two_factor_rows(&s).await;
    let code = fresh_code(&s, "alice", &secret).await;
    let r = code_step(&mut d, &step, &code).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.body.contains("Too many login attempts"), "{}", r.body);
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(
        two_factor_rows(&s).await,
        before,
        "the code was not even checked"
    );
    assert_eq!(d.get("/servers").await.location(), "/login");
    // The password step shares the limit.
    let mut e = s.client();
    let r = e.login(USER.0, USER.1).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // An administrator's unlock lifts it.
    let mut admin = s.login(ADMIN).await;
    let r = admin
        .post(&format!("/admin/users/{}/unlock", s.ids["alice"]), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    login_with_code(&mut e, USER, &code).await;
    s.stop().await;
}

#[tokio::test]
async fn totp_turning_off_needs_password_and_code() {
    let s = TestServer::start().await;
    let mut c = s.login(USER).await;
    let (secret, codes) = enroll(&s, &mut c).await;
    let before = two_factor_rows(&s).await;
    let code = fresh_code(&s, "alice", &secret).await;
    let wrong = wrong_code(&secret);
    for (password, code, why) in [
        ("wrong-password-1", code.as_str(), "wrong password"),
        (USER.1, "", "no code"),
        (USER.1, wrong.as_str(), "wrong code"),
        ("", code.as_str(), "no password"),
    ] {
        let r = c
            .post(
                "/account/two-factor/disable",
                &[("password", password), ("code", code)],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {}",
            r.body
        );
        assert!(r.body.contains("is <strong>on</strong>"), "{why}");
        assert_eq!(two_factor_rows(&s).await, before, "{why} changed something");
    }
    // New recovery codes need a code (a recovery code is one).
    let r = c
        .post(
            "/account/two-factor/recovery-codes",
            &[("code", &wrong_code(&secret))],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(two_factor_rows(&s).await, before);
    let r = c
        .post("/account/two-factor/recovery-codes", &[("code", &codes[0])])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new_codes = recovery_codes_in(&r.body);
    assert_eq!(new_codes.len(), 10);
    assert!(new_codes.iter().all(|n| !codes.contains(n)), "all new");
    // The old ones are gone.
    let r = c
        .post(
            "/account/two-factor/disable",
            &[("password", USER.1), ("code", &codes[1])],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "old recovery code"
    );

    let r = c
        .post(
            "/account/two-factor/disable",
            &[("password", USER.1), ("code", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(c
        .get("/account")
        .await
        .body
        .contains("Two-factor login is off."));
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM user_totp) + (SELECT COUNT(*) FROM totp_recovery_codes)",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "secret and codes deleted");
    s.login(USER).await;
    s.stop().await;
}

#[tokio::test]
async fn totp_can_be_required_of_administrators() {
    let s = TestServer::start().await;
    let mut admin = s.login(ADMIN).await;
    let mut alice = s.login(USER).await;
    let (alice_secret, _) = enroll(&s, &mut alice).await;
    let r = admin
        .post("/admin/settings/two-factor", &[("required", "yes")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(two_factor_rows(&s)
        .await
        .iter()
        .all(|r| !r.starts_with("admins_must")));
    let r = admin
        .post("/admin/settings/two-factor", &[("required", "on")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // The administrator without it: only the account page.
    for path in ["/servers", "/admin/users", "/jobs", "/no-such-page"] {
        let r = admin.get(path).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(r.location(), "/account", "{path}");
    }
    let page = admin.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("id=\"enroll-required\""),
        "{}",
        page.body
    );
    let r = admin
        .post(
            "/admin/users",
            &[("username", "carl"), ("password", "carl-password-1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("two-factor"), "{}", r.body);
    assert!(accounts_named(&s, "carl").await == 0);
    let r = admin.post("/admin/settings/two-factor", &[]).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "cannot switch it off first"
    );
    // A new login of that administrator gets the same restricted session.
    let mut again = s.client();
    let r = again.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(again.get("/servers").await.location(), "/account");
    // Users are not affected.
    assert_eq!(alice.get("/servers").await.status, StatusCode::OK);

    let (_, _) = enroll(&s, &mut admin).await;
    assert_eq!(admin.get("/servers").await.status, StatusCode::OK);
    assert_eq!(again.get("/servers").await.status, StatusCode::OK);
    let users = admin.get("/admin/users").await;
    assert!(users.body.contains("checked"), "the setting shows as on");
    // A lost authenticator: an administrator resets it.
    let r = admin
        .post(
            &format!("/admin/users/{}/reset-two-factor", s.ids["alice"]),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(!two_factor_rows(&s)
        .await
        .iter()
        .any(|r| r.starts_with(&format!("{},", s.ids["alice"]))));
    let _ = alice_secret;
    s.login(USER).await;
    s.stop().await;
}

async fn accounts_named(s: &TestServer, name: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE username = ?")
        .bind(name)
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn totp_bad_input_and_missing_tokens_change_nothing() {
    let s = TestServer::start().await;
    let mut c = s.login(USER).await;
    let (secret, codes) = enroll(&s, &mut c).await;
    let before = two_factor_rows(&s).await;
    let code = fresh_code(&s, "alice", &secret).await;
    // Forms of the account page without the session's CSRF token.
    for path in [
        "/account/two-factor/begin",
        "/account/two-factor/cancel",
        "/account/two-factor/confirm",
        "/account/two-factor/disable",
        "/account/two-factor/recovery-codes",
    ] {
        let r = c
            .post(
                path,
                &[("csrf_token", ""), ("password", USER.1), ("code", &code)],
            )
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    // The code step needs the login form's token of its own cookie.
    let mut d = s.client();
    let (_, step) = password_step(&mut d, USER).await;
    let r = d
        .post(
            "/login/code",
            &[("csrf_token", "x"), ("step", &step), ("code", &code)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Garbage at every field.
    let long = "9".repeat(5000);
    for (step, code) in [
        ("", code.as_str()),
        ("1-2.3.4", code.as_str()),
        (step.as_str(), ""),
        (step.as_str(), "12345"),
        (step.as_str(), "1234567"),
        (step.as_str(), long.as_str()),
        (step.as_str(), "'; DROP TABLE users; --"),
        (step.as_str(), &codes[0][..10]),
    ] {
        let r = code_step(&mut d, step, code).await;
        assert!(
            r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::BAD_REQUEST,
            "{step:?} {code:?}: {}",
            r.status
        );
    }
    // Enrolling again or confirming while on: refused.
    assert_eq!(
        c.post("/account/two-factor/begin", &[]).await.status,
        StatusCode::BAD_REQUEST
    );
    let r = c
        .post("/account/two-factor/confirm", &[("code", &code)])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    // Cancelling applies to a setup in progress only.
    c.post("/account/two-factor/cancel", &[]).await;
    assert_eq!(
        two_factor_rows(&s).await,
        before,
        "bad input changed something"
    );
    // Still usable.
    login_with_code(&mut d, USER, &code).await;
    s.stop().await;
}

#[tokio::test]
async fn totp_browser_enrollment_and_login_with_the_code() {
    let Some(b) = browser().await else { return };
    let s = TestServer::start().await;
    let c = &b.client;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "main h1", "Servers").await;
    click(c, "header nav a[href='/account']").await;
    wait_text(c, "#two-factor-status", "off").await;
    click(c, "#two-factor-begin button").await;
    wait_text(c, "#two-factor-status", "not on yet").await;
    // The QR code is drawn (inline SVG, no script).
    let size = c
        .execute(
            "const r = document.querySelector('.qr svg').getBoundingClientRect(); return r.width * r.height",
            vec![],
        )
        .await
        .unwrap();
    assert!(size.as_f64().unwrap() > 10_000.0, "QR size {size}");
    let base32 = c
        .find(Locator::Css("#totp-secret"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let secret = decode(base32.trim());
    fill(
        c,
        "#two-factor-confirm input[name=code]",
        &wrong_code(&secret),
    )
    .await;
    click(c, "#two-factor-confirm button").await;
    wait_text(c, "#account-error", "Wrong code").await;
    let code = fresh_code(&s, "alice", &secret).await;
    fill(c, "#two-factor-confirm input[name=code]", &code).await;
    click(c, "#two-factor-confirm button").await;
    wait_text(c, "#recovery-codes", "shown only now").await;
    wait_text(c, "#two-factor-status", "on").await;
    // Log out, log in again: the code is asked for.
    click(c, "header nav button").await;
    wait_text(c, "main h1", "Log in").await;
    submit_login(c, &s.base, USER.0, USER.1).await;
    wait_text(c, "main h1", "Two-factor code").await;
    fill(c, "#code-form input[name=code]", &code).await;
    click(c, "#code-form button").await;
    wait_text(c, "#login-error", "Wrong code").await;
    let code = fresh_code(&s, "alice", &secret).await;
    fill(c, "#code-form input[name=code]", &code).await;
    click(c, "#code-form button").await;
    wait_text(c, "main h1", "Servers").await;
    wait_text(c, "header nav", "Log out alice").await;
    b.client.clone().close().await.unwrap();
    s.stop().await;
}

#[tokio::test]
async fn totp_reset_from_the_host_cli() {
    let s = TestServer::start().await;
    let mut c = s.login(USER).await;
    enroll(&s, &mut c).await;
    let out = left4me_cli(s.root.path(), &["reset-two-factor", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user"));
    assert!(!two_factor_rows(&s).await.is_empty(), "nothing changed");
    let out = left4me_cli(s.root.path(), &["reset-two-factor", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(two_factor_rows(&s).await.is_empty());
    s.login(USER).await;
    s.stop().await;
}
