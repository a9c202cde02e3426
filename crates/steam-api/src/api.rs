//! The Steam Web API client: three endpoints, strict limits, errors that never carry the key.

use std::time::Duration;

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use url::Url;

use crate::error::SteamError;
use crate::json::{flex_i64, flex_opt_u64, flex_u64};

/// Where the real Steam Web API lives.
pub const DEFAULT_BASE_URL: &str = "https://api.steampowered.com";
/// API responses larger than this are refused (a full 100-item details answer is well under 1 MiB).
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Ids per request. Steam documents 100 for `GetPlayerSummaries` and the others accept as many.
pub const BATCH_SIZE: usize = 100;

const EP_DETAILS: &str = "ISteamRemoteStorage/GetPublishedFileDetails/v1";
const EP_COLLECTIONS: &str = "ISteamRemoteStorage/GetCollectionDetails/v1";
const EP_PLAYERS: &str = "ISteamUser/GetPlayerSummaries/v2";

/// A Steam Web API client. Cheap to clone (the HTTP connection pool is shared).
#[derive(Clone)]
pub struct SteamApi {
    http: reqwest::Client,
    base: Url,
    api_key: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for SteamApi {
    // Hand-written so the key can never end up in a `{:?}` log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SteamApi")
            .field("base", &self.base.as_str())
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// One entry of `GetPublishedFileDetails`. Fields Steam leaves out for unavailable items default to empty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PublishedFile {
    #[serde(rename = "publishedfileid", deserialize_with = "flex_u64")]
    pub id: u64,
    #[serde(deserialize_with = "flex_i64")]
    pub result: i64,
    #[serde(default)]
    pub title: String,
    /// The uploader's original file name, e.g. `myl4d2addons/pekoraloadingmusic.vpk`.
    #[serde(default)]
    pub filename: String,
    #[serde(default)]
    pub file_url: String,
    #[serde(default, deserialize_with = "flex_u64")]
    pub file_size: u64,
    #[serde(default, deserialize_with = "flex_opt_u64")]
    pub consumer_app_id: Option<u64>,
    #[serde(default, deserialize_with = "flex_opt_u64")]
    pub creator_app_id: Option<u64>,
    #[serde(default, deserialize_with = "flex_i64")]
    pub time_updated: i64,
}

/// One entry of `GetCollectionDetails`. `children` is `None` when Steam sent none (a plain item, or
/// an unavailable collection).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CollectionDetails {
    #[serde(rename = "publishedfileid", deserialize_with = "flex_u64")]
    pub id: u64,
    #[serde(deserialize_with = "flex_i64")]
    pub result: i64,
    #[serde(default)]
    pub children: Option<Vec<CollectionChild>>,
}

/// A member of a collection, in Steam's words.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CollectionChild {
    #[serde(rename = "publishedfileid", deserialize_with = "flex_u64")]
    pub id: u64,
    #[serde(default, deserialize_with = "flex_i64")]
    pub sortorder: i64,
    /// `EWorkshopFileType`: 0 = a normal item, 2 = a collection.
    #[serde(default, deserialize_with = "flex_i64")]
    pub filetype: i64,
}

/// `EWorkshopFileType::Collection`.
pub const FILETYPE_COLLECTION: i64 = 2;

/// What the live player panel needs of a Steam profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerSummary {
    pub steam_id: u64,
    pub persona_name: String,
    /// `avatarmedium` (64×64), if Steam sent one that passes
    /// [`crate::urls::avatar_url`] (`https` on Steam's avatar hosts).
    pub avatar_url: Option<String>,
    /// `profileurl`, if it passes [`crate::urls::profile_url`] (`https` on
    /// steamcommunity.com, a profile path).
    pub profile_url: Option<String>,
}

#[derive(Deserialize)]
struct RawPlayer {
    #[serde(deserialize_with = "flex_u64")]
    steamid: u64,
    #[serde(default)]
    personaname: String,
    #[serde(default)]
    avatarmedium: String,
    #[serde(default)]
    profileurl: String,
}

#[derive(Deserialize)]
struct Envelope<T> {
    response: T,
}

#[derive(Deserialize)]
struct DetailsBody {
    // Steam omits the array when the whole request failed; an empty list then reads as "nothing known".
    #[serde(default)]
    publishedfiledetails: Vec<PublishedFile>,
}

#[derive(Deserialize)]
struct CollectionsBody {
    #[serde(default)]
    collectiondetails: Vec<CollectionDetails>,
}

#[derive(Deserialize)]
struct PlayersBody {
    #[serde(default)]
    players: Vec<RawPlayer>,
}

impl SteamApi {
    /// `base_url` is normally [`DEFAULT_BASE_URL`]; tests point it at a local server. `timeout` bounds
    /// each whole request (connect, send, and reading the answer).
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        timeout: Duration,
    ) -> Result<Self, SteamError> {
        let trimmed = base_url.trim().trim_end_matches('/');
        let base = Url::parse(&format!("{trimmed}/"))
            .map_err(|e| SteamError::Config(format!("invalid API base URL {base_url:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(SteamError::Config(format!(
                "API base URL {base_url:?} must be an http(s) URL with a host"
            )));
        }
        let api_key = api_key
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty());
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .user_agent(concat!("left4me/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SteamError::Config(format!("cannot build HTTP client: {e}")))?;
        Ok(SteamApi {
            http,
            base,
            api_key,
            timeout,
        })
    }

    /// Whether a Web API key is configured (persona lookups need one).
    pub fn has_key(&self) -> bool {
        self.api_key.is_some()
    }

    fn endpoint_url(&self, endpoint: &'static str) -> Result<Url, SteamError> {
        self.base
            .join(&format!("{endpoint}/"))
            .map_err(|e| SteamError::Config(format!("cannot build URL for {endpoint}: {e}")))
    }

    /// POST `{base}/ISteamRemoteStorage/GetPublishedFileDetails/v1/`, in batches of [`BATCH_SIZE`].
    /// Returns Steam's entries as they are (check `result` yourself, or use [`crate::resolve`]).
    pub async fn published_file_details(
        &self,
        ids: &[u64],
    ) -> Result<Vec<PublishedFile>, SteamError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_SIZE) {
            let form = id_form("itemcount", chunk);
            let body: Envelope<DetailsBody> = self.post_form(EP_DETAILS, &form).await?;
            out.extend(body.response.publishedfiledetails);
        }
        Ok(out)
    }

    /// POST `{base}/ISteamRemoteStorage/GetCollectionDetails/v1/`, in batches of [`BATCH_SIZE`].
    pub async fn collection_details(
        &self,
        ids: &[u64],
    ) -> Result<Vec<CollectionDetails>, SteamError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_SIZE) {
            let form = id_form("collectioncount", chunk);
            let body: Envelope<CollectionsBody> = self.post_form(EP_COLLECTIONS, &form).await?;
            out.extend(body.response.collectiondetails);
        }
        Ok(out)
    }

    /// GET `{base}/ISteamUser/GetPlayerSummaries/v2/?key=..&steamids=a,b`, at most 100 ids per request.
    /// Ids Steam does not know are simply absent from the result. Needs the key.
    pub async fn player_summaries(
        &self,
        steam_ids: &[u64],
    ) -> Result<Vec<PlayerSummary>, SteamError> {
        let Some(key) = &self.api_key else {
            return Err(SteamError::MissingKey {
                endpoint: EP_PLAYERS,
            });
        };
        let mut out = Vec::with_capacity(steam_ids.len());
        for chunk in steam_ids.chunks(BATCH_SIZE) {
            let mut url = self.endpoint_url(EP_PLAYERS)?;
            let ids = chunk
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            url.query_pairs_mut()
                .append_pair("key", key)
                .append_pair("steamids", &ids);
            let request = self.http.get(url).timeout(self.timeout);
            let body: Envelope<PlayersBody> = self.send(EP_PLAYERS, request).await?;
            out.extend(body.response.players.into_iter().map(|p| {
                let avatar_url = crate::urls::avatar_url(&p.avatarmedium);
                let profile_url = crate::urls::profile_url(&p.profileurl);
                if (avatar_url.is_none() && !p.avatarmedium.is_empty())
                    || (profile_url.is_none() && !p.profileurl.is_empty())
                {
                    // Not worth a warning per refresh; the panel shows a placeholder.
                    tracing::debug!(
                        steam_id = p.steamid,
                        "dropped a profile or avatar URL that is not https on Steam's hosts"
                    );
                }
                PlayerSummary {
                    steam_id: p.steamid,
                    persona_name: p.personaname,
                    avatar_url,
                    profile_url,
                }
            }));
        }
        Ok(out)
    }

    async fn post_form<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        form: &[(String, String)],
    ) -> Result<T, SteamError> {
        let url = self.endpoint_url(endpoint)?;
        let request = self.http.post(url).form(form).timeout(self.timeout);
        self.send(endpoint, request).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, SteamError> {
        let response = request
            .send()
            .await
            .map_err(|e| SteamError::from_reqwest(endpoint, e))?;
        let status = response.status();
        if !status.is_success() {
            tracing::debug!(endpoint, status = status.as_u16(), "Steam API error status");
            return Err(SteamError::status(endpoint, status));
        }
        if let Some(len) = response.content_length() {
            if len > MAX_RESPONSE_BYTES as u64 {
                return Err(SteamError::ResponseTooLarge {
                    endpoint,
                    limit: MAX_RESPONSE_BYTES,
                });
            }
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| SteamError::from_reqwest(endpoint, e))?;
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(SteamError::ResponseTooLarge {
                    endpoint,
                    limit: MAX_RESPONSE_BYTES,
                });
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| SteamError::BadResponse {
            endpoint,
            reason: describe_bad_body(&body, &e),
        })
    }
}

fn id_form(count_field: &str, ids: &[u64]) -> Vec<(String, String)> {
    let mut form = Vec::with_capacity(ids.len() + 1);
    form.push((count_field.to_string(), ids.len().to_string()));
    for (i, id) in ids.iter().enumerate() {
        form.push((format!("publishedfileids[{i}]"), id.to_string()));
    }
    form
}

/// A short reason for an unparseable body, without echoing the body (it is not ours to log).
fn describe_bad_body(body: &[u8], err: &serde_json::Error) -> String {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => "the body is empty".to_string(),
        Some(b'<') => format!("the body looks like HTML, not JSON ({} bytes)", body.len()),
        Some(_) if err.is_eof() => format!("the JSON is truncated ({} bytes): {err}", body.len()),
        Some(_) => err.to_string(),
    }
}
