//! `SteamApi` + `resolve` against a local server answering with recorded Steam responses.

use std::time::Duration;

use steam_api::{resolve, ProblemKind, SteamApi, SteamError, MAX_COLLECTION_DEPTH};
use test_support::steam::*;

fn api(sim: &SteamSim) -> SteamApi {
    SteamApi::new(
        &sim.base_url(),
        Some(KEY.to_string()),
        Duration::from_secs(5),
    )
    .unwrap()
}

fn problems(err: SteamError) -> Vec<(u64, ProblemKind)> {
    match err {
        SteamError::Unusable(p) => p.into_iter().map(|p| (p.id, p.reason)).collect(),
        other => panic!("expected Unusable, got {other:?}"),
    }
}

#[tokio::test]
async fn real_item_details_are_parsed() {
    let sim = SteamSim::start().await;
    let details = api(&sim)
        .published_file_details(&[REAL_L4D2_ITEM])
        .await
        .unwrap();
    assert_eq!(details.len(), 1);
    let d = &details[0];
    assert_eq!(d.id, REAL_L4D2_ITEM);
    assert_eq!(d.result, 1);
    assert_eq!(d.title, "usada pekora safe room loading music");
    assert_eq!(d.filename, "myl4d2addons/pekoraloadingmusic.vpk");
    assert_eq!(d.consumer_app_id, Some(550));
    assert_eq!(d.creator_app_id, Some(563));
    assert_eq!(d.time_updated, 1740856166);
    assert_eq!(d.file_size, 40_000);
    // The request is the documented form, without the key (this endpoint does not need it).
    let forms = sim.state.detail_forms.lock().unwrap().clone();
    assert_eq!(
        forms[0],
        vec![
            ("itemcount".to_string(), "1".to_string()),
            (
                "publishedfileids[0]".to_string(),
                REAL_L4D2_ITEM.to_string()
            )
        ]
    );
}

#[tokio::test]
async fn real_space_engineers_record_parses_with_numeric_size() {
    let sim = SteamSim::start().await;
    let d = api(&sim)
        .published_file_details(&[REAL_SE_ITEM])
        .await
        .unwrap();
    assert_eq!(d[0].file_size, 13985574);
    assert_eq!(d[0].consumer_app_id, Some(244850));
}

#[tokio::test]
async fn resolves_single_item_with_cache_name() {
    let sim = SteamSim::start().await;
    let items = resolve(&api(&sim), &[REAL_L4D2_ITEM]).await.unwrap();
    assert_eq!(items.len(), 1);
    let it = &items[0];
    assert_eq!(it.id, REAL_L4D2_ITEM);
    assert_eq!(it.file_name, "3434972877.vpk");
    assert_eq!(it.original_file_name, "myl4d2addons/pekoraloadingmusic.vpk");
    assert_eq!(it.file_url, sim.file_url(REAL_L4D2_ITEM));
    assert_eq!(it.file_size, 40_000);
    assert_eq!(it.time_updated, 1740856166);
}

#[tokio::test]
async fn resolves_collection_in_order_and_deduplicates() {
    let sim = SteamSim::start().await;
    sim.add_item(5001, "Standalone", 100, 1);
    // Item 3400000102 is listed by the user before the collection that also contains it.
    let items = resolve(&api(&sim), &[5001, 3400000102, REAL_COLLECTION, 5001])
        .await
        .unwrap();
    let ids: Vec<u64> = items.iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![5001, 3400000102, REAL_L4D2_ITEM, 3400000103]);
    // One collection request for all refs at once, one details request for all items.
    assert_eq!(sim.state.collection_forms.lock().unwrap().len(), 1);
    assert_eq!(sim.state.detail_forms.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn collection_children_follow_sortorder() {
    let sim = SteamSim::start().await;
    sim.add_item(6001, "a", 10, 1);
    sim.add_item(6002, "b", 10, 1);
    sim.state.collections.lock().unwrap().insert(
        6000,
        serde_json::json!({"publishedfileid": "6000", "result": 1, "children": [
            {"publishedfileid": "6002", "sortorder": 2, "filetype": 0},
            {"publishedfileid": "6001", "sortorder": 1, "filetype": 0}
        ]}),
    );
    let ids: Vec<u64> = resolve(&api(&sim), &[6000])
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, vec![6001, 6002]);
}

#[tokio::test]
async fn nested_collections_expand_depth_first() {
    let sim = SteamSim::start().await;
    sim.add_item(7001, "outer first", 10, 1);
    sim.add_item(7002, "inner", 10, 1);
    sim.add_item(7003, "outer last", 10, 1);
    sim.add_collection(7100, &[(7002, 0), (REAL_L4D2_ITEM, 0)]);
    sim.add_collection(7000, &[(7001, 0), (7100, 2), (7003, 0)]);
    let ids: Vec<u64> = resolve(&api(&sim), &[7000])
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, vec![7001, 7002, REAL_L4D2_ITEM, 7003]);
}

#[tokio::test]
async fn collection_cycle_terminates() {
    let sim = SteamSim::start().await;
    sim.add_item(8001, "x", 10, 1);
    sim.add_collection(8100, &[(8001, 0), (8200, 2)]);
    sim.add_collection(8200, &[(8100, 2), (REAL_L4D2_ITEM, 0)]);
    let ids: Vec<u64> = resolve(&api(&sim), &[8100])
        .await
        .unwrap()
        .iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, vec![8001, REAL_L4D2_ITEM]);
    assert_eq!(sim.state.collection_forms.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn nesting_deeper_than_limit_is_refused() {
    let sim = SteamSim::start().await;
    let depth = MAX_COLLECTION_DEPTH as u64 + 2;
    for level in 0..depth {
        sim.add_collection(9000 + level, &[(9000 + level + 1, 2)]);
    }
    let err = resolve(&api(&sim), &[9000]).await.unwrap_err();
    let msg = err.to_string();
    let p = problems(err);
    assert!(matches!(p[0].1, ProblemKind::NestedTooDeep { .. }), "{p:?}");
    assert!(msg.contains("nested deeper than 8"), "{msg}");
}

#[tokio::test]
async fn real_not_a_collection_answer_means_plain_item() {
    let sim = SteamSim::start().await;
    // The recorded answer Steam gives GetCollectionDetails for a plain item id.
    let rec = fixture("collection_details_not_a_collection.json");
    let entry = rec["response"]["collectiondetails"][0].clone();
    sim.state
        .collections
        .lock()
        .unwrap()
        .insert(REAL_NOT_A_COLLECTION, entry);
    sim.add_item(REAL_NOT_A_COLLECTION, "plain item", 10, 1);
    let cols = api(&sim)
        .collection_details(&[REAL_NOT_A_COLLECTION])
        .await
        .unwrap();
    assert_eq!(cols[0].result, 9);
    assert_eq!(cols[0].children, None);
    let items = resolve(&api(&sim), &[REAL_NOT_A_COLLECTION]).await.unwrap();
    assert_eq!(items[0].id, REAL_NOT_A_COLLECTION);
}

#[tokio::test]
async fn unknown_ids_are_named_with_result_9() {
    let sim = SteamSim::start().await;
    let err = resolve(&api(&sim), &[REAL_L4D2_ITEM, 111, 222])
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        problems(err),
        vec![
            (111, ProblemKind::Unavailable { result: 9 }),
            (222, ProblemKind::Unavailable { result: 9 })
        ]
    );
    assert!(msg.contains("2 workshop items cannot be used"), "{msg}");
    assert!(
        msg.contains("workshop item 111 is unavailable (Steam result 9"),
        "{msg}"
    );
    assert!(msg.contains("222"), "{msg}");
}

#[tokio::test]
async fn wrong_app_is_refused_with_the_real_space_engineers_record() {
    let sim = SteamSim::start().await;
    let err = resolve(&api(&sim), &[REAL_SE_ITEM]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "workshop item 294534489 is for app 244850, not Left 4 Dead 2 (550)"
    );
    assert_eq!(
        problems(err),
        vec![(
            REAL_SE_ITEM,
            ProblemKind::WrongApp {
                app_id: Some(244850)
            }
        )]
    );
}

#[tokio::test]
async fn missing_file_url_bad_scheme_and_zero_size_are_refused() {
    let sim = SteamSim::start().await;
    sim.add_item(4001, "steampipe only", 10, 1);
    sim.set_item_field(4001, "file_url", serde_json::json!(""));
    sim.add_item(4002, "ftp", 10, 1);
    sim.set_item_field(4002, "file_url", serde_json::json!("file:///etc/passwd"));
    sim.add_item(4003, "empty", 10, 1);
    sim.set_item_field(4003, "file_size", serde_json::json!("0"));
    let err = resolve(&api(&sim), &[4001, 4002, 4003]).await.unwrap_err();
    let msg = err.to_string();
    assert_eq!(
        problems(err),
        vec![
            (4001, ProblemKind::NoFileUrl),
            (
                4002,
                ProblemKind::BadFileUrl {
                    url: "file:///etc/passwd".into()
                }
            ),
            (4003, ProblemKind::EmptyFile),
        ]
    );
    assert!(
        msg.contains("workshop item 4001 has no direct download"),
        "{msg}"
    );
}

#[tokio::test]
async fn item_absent_from_answer_is_named() {
    let sim = SteamSim::start().await;
    // An envelope that lists nothing at all (what Steam sends when the request as a whole fails).
    sim.set_api_mode(ApiMode::Json(
        serde_json::json!({"response": {"result": 1, "resultcount": 0}}),
    ));
    let err = resolve(&api(&sim), &[REAL_L4D2_ITEM]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "workshop item 3434972877 is missing from Steam's answer"
    );
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_a_clear_error() {
    let sim = SteamSim::start().await;
    sim.set_api_mode(ApiMode::Json(serde_json::json!({"response": {"publishedfiledetails": [{"publishedfileid": "abc", "result": 1}]}})));
    let err = api(&sim).published_file_details(&[1]).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "response from ISteamRemoteStorage/GetPublishedFileDetails/v1 is not the expected JSON"
        ),
        "{msg}"
    );
    assert!(msg.contains("\"abc\" is not an unsigned integer"), "{msg}");
}

#[tokio::test]
async fn more_than_100_items_are_batched() {
    let sim = SteamSim::start().await;
    let ids: Vec<u64> = (1..=150).map(|i| 10_000 + i).collect();
    for &id in &ids {
        sim.add_item(id, "bulk", 10, 1);
    }
    let items = resolve(&api(&sim), &ids).await.unwrap();
    assert_eq!(items.len(), 150);
    let forms = sim.state.detail_forms.lock().unwrap().clone();
    assert_eq!(forms.len(), 2);
    assert_eq!(forms[0][0], ("itemcount".into(), "100".into()));
    assert_eq!(forms[1][0], ("itemcount".into(), "50".into()));
    assert_eq!(sim.state.collection_forms.lock().unwrap().len(), 2);
}

async fn api_error(mode: ApiMode) -> String {
    let sim = SteamSim::start().await;
    sim.set_api_mode(mode);
    let api = SteamApi::new(
        &sim.base_url(),
        Some(KEY.into()),
        Duration::from_millis(500),
    )
    .unwrap();
    let err = resolve(&api, &[REAL_L4D2_ITEM]).await.unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains(KEY), "key leaked: {msg}");
    assert!(
        !format!("{err:?}").contains(KEY),
        "key leaked in Debug: {err:?}"
    );
    msg
}

#[tokio::test]
async fn http_500_is_a_clear_error() {
    let msg = api_error(ApiMode::Status(500)).await;
    assert_eq!(
        msg,
        "ISteamRemoteStorage/GetCollectionDetails/v1 answered HTTP 500: Steam server error; try again later"
    );
}

#[tokio::test]
async fn http_429_says_rate_limited() {
    let msg = api_error(ApiMode::Status(429)).await;
    assert!(msg.contains("HTTP 429: rate limited by Steam"), "{msg}");
}

#[tokio::test]
async fn http_403_points_at_the_key() {
    let msg = api_error(ApiMode::Status(403)).await;
    assert!(msg.contains("HTTP 403"), "{msg}");
    assert!(msg.contains("check STEAM_WEB_API_KEY"), "{msg}");
}

#[tokio::test]
async fn html_body_is_a_clear_error() {
    let msg = api_error(ApiMode::Html).await;
    assert!(
        msg.contains("GetCollectionDetails/v1 is not the expected JSON: the body looks like HTML"),
        "{msg}"
    );
}

#[tokio::test]
async fn truncated_json_is_a_clear_error() {
    let msg = api_error(ApiMode::TruncatedJson).await;
    assert!(msg.contains("the JSON is truncated"), "{msg}");
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let msg = api_error(ApiMode::Huge).await;
    assert!(msg.contains("larger than 8388608 bytes"), "{msg}");
}

#[tokio::test]
async fn server_that_never_answers_times_out() {
    let msg = api_error(ApiMode::Hang).await;
    assert_eq!(
        msg,
        "request to ISteamRemoteStorage/GetCollectionDetails/v1 timed out"
    );
}

#[tokio::test]
async fn connection_refused_is_a_clear_error() {
    // Bind and drop to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let api = SteamApi::new(
        &format!("http://127.0.0.1:{port}"),
        Some(KEY.into()),
        Duration::from_secs(2),
    )
    .unwrap();
    let err = api.player_summaries(&[ROBIN]).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, steam_api::SteamError::Unreachable { .. }),
        "a refused connection is its own kind: {err:?}"
    );
    assert!(
        msg.starts_with("cannot reach ISteamUser/GetPlayerSummaries/v2")
            && msg.contains("Connection refused"),
        "{msg}"
    );
    // The full error chain, as anyhow would print it, must not carry the key either.
    let mut chain = format!("{err:?}");
    let mut cur: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = cur {
        chain.push_str(&e.to_string());
        cur = e.source();
    }
    assert!(!chain.contains(KEY), "key leaked: {chain}");
}

#[tokio::test]
async fn bad_base_urls_are_refused() {
    for bad in ["", "not a url", "ftp://api.steampowered.com", "file:///tmp"] {
        let err = SteamApi::new(bad, None, Duration::from_secs(1)).unwrap_err();
        assert!(
            err.to_string().starts_with("Steam API configuration"),
            "{bad}: {err}"
        );
    }
    let api = SteamApi::new(
        "https://api.steampowered.com/",
        Some("k".into()),
        Duration::from_secs(1),
    )
    .unwrap();
    assert!(!format!("{api:?}").contains("\"k\""));
}
