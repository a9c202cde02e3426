//! `player_summaries` and `ProfileCache` against the recorded `GetPlayerSummaries` response.

use std::time::Duration;

use steam_api::{ProfileCache, SteamApi, SteamError};
use test_support::steam::*;

fn api(sim: &SteamSim, key: Option<&str>) -> SteamApi {
    SteamApi::new(
        &sim.base_url(),
        key.map(String::from),
        Duration::from_millis(500),
    )
    .unwrap()
}

#[tokio::test]
async fn real_player_summary_is_parsed() {
    let sim = SteamSim::start().await;
    let players = api(&sim, Some(KEY))
        .player_summaries(&[ROBIN])
        .await
        .unwrap();
    assert_eq!(players.len(), 1);
    let p = &players[0];
    assert_eq!(p.steam_id, ROBIN);
    assert_eq!(p.persona_name, "Robin");
    // Recorded in 2017, when Steam still sent `http://` profile links (it
    // sends `https://` now): not rendered, the name shows without a link.
    assert_eq!(p.profile_url, None);
    assert_eq!(
        p.avatar_url.as_deref(),
        Some("https://steamcdn-a.akamaihd.net/steamcommunity/public/images/avatars/f1/f1dd60a188883caf82d0cbfccfe6aba0af1732d4_medium.jpg")
    );
}

/// Values that must never reach an `href` or `src`.
fn hostile_urls(host: &str) -> Vec<String> {
    vec![
        "javascript:alert(1)".into(),
        " javascript:alert(document.cookie)//https://steamcommunity.com/id/x/".into(),
        "JaVaScRiPt:alert(1)".into(),
        "data:text/html,<script>alert(1)</script>".into(),
        "vbscript:msgbox(1)".into(),
        format!("http://{host}/id/robinwalker/"),
        format!("//{host}/id/robinwalker/"),
        format!("/{host}/id/robinwalker/"),
        format!("ftp://{host}/id/robinwalker/"),
        format!("https://{host}@evil.example/id/robinwalker/"),
        format!("https://user:pw@{host}/id/robinwalker/"),
        format!("https://{host}:8443/id/robinwalker/"),
        format!("https://{host}.evil.example/id/robinwalker/"),
        format!("https://evil{host}/id/robinwalker/"),
        format!("https://{host}./id/robinwalker/"),
        "https://evil.example/id/robinwalker/".into(),
        "https://evil.example/?u=https://steamcommunity.com/".into(),
        "https://127.0.0.1/id/robinwalker/".into(),
        "https:/\\evil.example/id/x/".into(),
        format!("https://{host}/id/{}/", "a".repeat(600)),
        "".into(),
        "not a url".into(),
    ]
}

#[test]
fn only_https_urls_on_steams_hosts_are_kept() {
    use steam_api::urls::{avatar_url, profile_url, AVATAR_HOSTS, MAX_URL_LEN};
    for good in [
        "https://steamcommunity.com/id/robinwalker/",
        "https://steamcommunity.com/profiles/76561197960435530/",
        "https://steamcommunity.com/profiles/76561197960435530",
        "HTTPS://SteamCommunity.COM/id/robinwalker/",
        "https://steamcommunity.com:443/id/robinwalker/",
    ] {
        let kept = profile_url(good).unwrap_or_else(|| panic!("{good} dropped"));
        assert!(
            kept.starts_with("https://steamcommunity.com/"),
            "normalised: {kept}"
        );
    }
    for bad in hostile_urls("steamcommunity.com")
        .iter()
        .map(String::as_str)
        .chain([
            // On the host, but not a profile.
            "https://steamcommunity.com/",
            "https://steamcommunity.com/id/",
            "https://steamcommunity.com/linkfilter/?url=https://evil.example/",
            "https://steamcommunity.com/id/x/?next=https://evil.example/",
            "https://steamcommunity.com/id/x/#frag",
            // An avatar host is no profile host, and the other way round.
            "https://avatars.steamstatic.com/id/x/",
        ])
    {
        assert_eq!(profile_url(bad), None, "{bad:?} kept as profile");
    }

    for host in AVATAR_HOSTS {
        let good = format!("https://{host}/f1dd60a188883caf82d0cbfccfe6aba0af1732d4_medium.jpg");
        assert_eq!(avatar_url(&good), Some(good.clone()));
        for bad in hostile_urls(host) {
            assert_eq!(avatar_url(&bad), None, "{bad:?} kept as avatar");
        }
    }
    for bad in [
        "https://steamcommunity.com/a.jpg",
        "https://avatars.steamstatic.com.evil.example/a.jpg",
        "https://cdn.steamstatic.com/a.jpg",
    ] {
        assert_eq!(avatar_url(bad), None, "{bad:?} kept as avatar");
    }
    // The length limit holds after normalisation too (percent-encoding grows).
    let encoded = format!(
        "https://avatars.steamstatic.com/{}",
        "é".repeat(MAX_URL_LEN / 3)
    );
    assert!(encoded.len() <= MAX_URL_LEN);
    assert_eq!(avatar_url(&encoded), None);
}

#[tokio::test]
async fn hostile_urls_from_the_api_are_dropped_not_the_player() {
    let sim = SteamSim::start().await;
    let hostile = [
        ("javascript:alert(1)", "javascript:alert(1)"),
        (
            "https://steamcommunity.com@evil.example/id/x/",
            "https://avatars.steamstatic.com@evil.example/a.jpg",
        ),
        (
            "http://steamcommunity.com/id/x/",
            "http://avatars.steamstatic.com/a.jpg",
        ),
    ];
    let mut ids = Vec::new();
    for (i, (profile, avatar)) in hostile.iter().enumerate() {
        let id = 76561198000000100 + i as u64;
        sim.add_player(id, "mallory");
        let mut players = sim.state.players.lock().unwrap();
        let p = players.get_mut(&id).unwrap();
        p["profileurl"] = serde_json::json!(profile);
        p["avatarmedium"] = serde_json::json!(avatar);
        ids.push(id);
    }
    let good = 76561198000000200;
    sim.add_player(good, "alice");
    {
        let mut players = sim.state.players.lock().unwrap();
        let p = players.get_mut(&good).unwrap();
        p["profileurl"] =
            serde_json::json!("https://steamcommunity.com/profiles/76561198000000200/");
        p["avatarmedium"] = serde_json::json!("https://avatars.steamstatic.com/abc_medium.jpg");
    }
    ids.push(good);
    let players = api(&sim, Some(KEY)).player_summaries(&ids).await.unwrap();
    assert_eq!(players.len(), 4, "the players themselves are kept");
    for p in &players {
        if p.steam_id == good {
            assert_eq!(
                p.profile_url.as_deref(),
                Some("https://steamcommunity.com/profiles/76561198000000200/")
            );
            assert_eq!(
                p.avatar_url.as_deref(),
                Some("https://avatars.steamstatic.com/abc_medium.jpg")
            );
        } else {
            assert_eq!(p.persona_name, "mallory");
            assert_eq!((&p.profile_url, &p.avatar_url), (&None, &None), "{p:?}");
        }
    }
}

#[tokio::test]
async fn player_summaries_batch_by_100() {
    let sim = SteamSim::start().await;
    let ids: Vec<u64> = (0..250).map(|i| 76561198000000000 + i).collect();
    for &id in &ids {
        sim.add_player(id, &format!("player{id}"));
    }
    let players = api(&sim, Some(KEY)).player_summaries(&ids).await.unwrap();
    assert_eq!(players.len(), 250);
    assert_eq!(
        *sim.state.player_batches.lock().unwrap(),
        vec![100, 100, 50]
    );
    assert_eq!(players[249].persona_name, format!("player{}", ids[249]));
}

#[tokio::test]
async fn missing_key_means_no_request() {
    let sim = SteamSim::start().await;
    let err = api(&sim, None)
        .player_summaries(&[ROBIN])
        .await
        .unwrap_err();
    assert!(matches!(err, SteamError::MissingKey { .. }));
    assert_eq!(
        err.to_string(),
        "ISteamUser/GetPlayerSummaries/v2 needs a Steam Web API key (STEAM_WEB_API_KEY) and none is configured"
    );
    // Blank keys count as none.
    let cache = ProfileCache::new(Some(api(&sim, Some("  "))), Duration::from_secs(60));
    assert!(!cache.enabled());
    assert!(cache.get_many(&[ROBIN]).await.is_empty());
    let cache = ProfileCache::new(None, Duration::from_secs(60));
    assert!(cache.get_many(&[ROBIN]).await.is_empty());
    assert_eq!(sim.api_requests(), 0);
}

#[tokio::test]
async fn rejected_key_is_an_error_without_the_key() {
    let sim = SteamSim::start().await;
    let wrong = "WRONGKEY-do-not-print-me";
    let err = api(&sim, Some(wrong))
        .player_summaries(&[ROBIN])
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("HTTP 403"), "{msg}");
    assert!(
        !msg.contains(wrong) && !format!("{err:?}").contains(wrong),
        "{msg}"
    );
    // Errors raised by reqwest itself (here a timeout) must not carry the URL with ?key= either.
    sim.set_api_mode(ApiMode::Hang);
    let err = api(&sim, Some(wrong))
        .player_summaries(&[ROBIN])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "request to ISteamUser/GetPlayerSummaries/v2 timed out"
    );
    assert!(!format!("{err:?}").contains(wrong));
}

#[tokio::test]
async fn cache_serves_fresh_entries_without_requests() {
    let sim = SteamSim::start().await;
    sim.add_player(1, "one");
    let cache = ProfileCache::new(Some(api(&sim, Some(KEY))), Duration::from_secs(300));
    let got = cache.get_many(&[ROBIN, 1, 999]).await;
    assert_eq!(got.len(), 2, "unknown id 999 is simply absent");
    assert_eq!(got[&ROBIN].persona_name, "Robin");
    assert_eq!(got[&1].persona_name, "one");
    assert_eq!(sim.api_requests(), 1);
    // Within the TTL: no request, including for the unknown id (remembered as unknown).
    let again = cache.get_many(&[1, ROBIN, 999]).await;
    assert_eq!(again, got);
    assert_eq!(sim.api_requests(), 1);
    // A new id: only that one is asked for.
    sim.add_player(2, "two");
    let more = cache.get_many(&[1, 2]).await;
    assert_eq!(more[&2].persona_name, "two");
    assert_eq!(sim.api_requests(), 2);
    assert_eq!(*sim.state.player_batches.lock().unwrap(), vec![3, 1]);
}

#[tokio::test]
async fn expired_entries_are_refetched() {
    let sim = SteamSim::start().await;
    let cache = ProfileCache::new(Some(api(&sim, Some(KEY))), Duration::from_millis(50));
    assert_eq!(cache.get_many(&[ROBIN]).await[&ROBIN].persona_name, "Robin");
    sim.add_player(ROBIN, "Robin (renamed)");
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(
        cache.get_many(&[ROBIN]).await[&ROBIN].persona_name,
        "Robin (renamed)"
    );
    assert_eq!(sim.api_requests(), 2);
}

#[tokio::test]
async fn failures_fall_back_to_cached_and_back_off() {
    let sim = SteamSim::start().await;
    let cache = ProfileCache::new(Some(api(&sim, Some(KEY))), Duration::from_millis(10))
        .with_failure_backoff(Duration::from_millis(300));
    assert_eq!(cache.get_many(&[ROBIN]).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(20)).await; // Robin's entry is now stale

    sim.set_api_mode(ApiMode::Status(500));
    let got = cache.get_many(&[ROBIN, 5]).await;
    assert_eq!(got.len(), 1, "stale entry served when Steam fails");
    assert_eq!(got[&ROBIN].persona_name, "Robin");
    assert_eq!(sim.api_requests(), 2);

    // Backing off: further lookups do not reach the API.
    for _ in 0..5 {
        assert_eq!(cache.get_many(&[ROBIN, 5]).await.len(), 1);
    }
    assert_eq!(sim.api_requests(), 2);

    // After the backoff, with Steam back, lookups resume.
    sim.set_api_mode(ApiMode::Normal);
    sim.add_player(5, "five");
    tokio::time::sleep(Duration::from_millis(320)).await;
    let got = cache.get_many(&[ROBIN, 5]).await;
    assert_eq!(got[&5].persona_name, "five");
    assert_eq!(sim.api_requests(), 3);
}

#[tokio::test]
async fn failure_with_empty_cache_returns_empty() {
    let sim = SteamSim::start().await;
    sim.set_api_mode(ApiMode::Html);
    let cache = ProfileCache::new(Some(api(&sim, Some(KEY))), Duration::from_secs(60));
    assert!(cache.get_many(&[ROBIN]).await.is_empty());
}

#[tokio::test]
async fn large_lookups_are_batched() {
    let sim = SteamSim::start().await;
    let ids: Vec<u64> = (0..250).map(|i| 76561198000000000 + i).collect();
    for &id in &ids[..200] {
        sim.add_player(id, "p");
    }
    let cache = ProfileCache::new(Some(api(&sim, Some(KEY))), Duration::from_secs(60));
    assert_eq!(cache.get_many(&ids).await.len(), 200);
    assert_eq!(
        *sim.state.player_batches.lock().unwrap(),
        vec![100, 100, 50]
    );
    assert_eq!(sim.api_requests(), 3);
}

#[tokio::test]
async fn the_key_never_appears_in_any_error() {
    let sim = SteamSim::start().await;
    let modes = [
        ApiMode::Status(400),
        ApiMode::Status(403),
        ApiMode::Status(429),
        ApiMode::Status(500),
        ApiMode::Status(503),
        ApiMode::Html,
        ApiMode::TruncatedJson,
        ApiMode::Huge,
        ApiMode::Hang,
        ApiMode::Json(serde_json::json!({"response": {"players": [{"steamid": "x"}]}})),
    ];
    for mode in modes {
        sim.set_api_mode(mode.clone());
        let err = api(&sim, Some(KEY))
            .player_summaries(&[ROBIN])
            .await
            .unwrap_err();
        let mut all = format!("{err} {err:?}");
        let mut cur = std::error::Error::source(&err);
        while let Some(e) = cur {
            all.push_str(&e.to_string());
            cur = e.source();
        }
        assert!(!all.contains(KEY), "{mode:?}: {all}");
        assert!(all.contains("GetPlayerSummaries"), "{mode:?}: {all}");
    }
}
