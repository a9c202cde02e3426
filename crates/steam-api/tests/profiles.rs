//! `player_summaries` and `ProfileCache` against the recorded `GetPlayerSummaries` response.

mod common;

use std::time::Duration;

use common::*;
use steam_api::{ProfileCache, SteamApi, SteamError};

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
    assert_eq!(p.profile_url, "http://steamcommunity.com/id/robinwalker/");
    assert_eq!(
        p.avatar_url,
        "https://steamcdn-a.akamaihd.net/steamcommunity/public/images/avatars/f1/f1dd60a188883caf82d0cbfccfe6aba0af1732d4_medium.jpg"
    );
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
