//! `steam-api`: left4me's only door to Steam's servers.
//!
//! - [`SteamApi`]: the three Web API calls we use (`GetPublishedFileDetails`, `GetCollectionDetails`,
//!   `GetPlayerSummaries`) with timeouts, response size limits and errors that never contain the API key.
//! - [`parse_workshop_ref`] and [`resolve`]: from what a user pastes to a validated, ordered, de-duplicated
//!   list of Left 4 Dead 2 workshop items (collections expanded, nested ones too).
//! - [`WorkshopCache`]: the shared download cache `workshop_cache/<id>.vpk`, atomic and size-checked.
//! - [`ProfileCache`]: persona names and avatars for the live player panel, cached, failing quietly.
//! - [`urls`]: which profile and avatar URLs may be rendered (`https` on Steam's hosts only); the
//!   avatar host list is also the web app's CSP `img-src`.
//!
//! The base URL is configurable; tests serve recorded real Steam responses from a local HTTP server.

mod api;
mod cache;
mod error;
mod json;
mod parse;
mod profiles;
mod resolve;
pub mod urls;

pub use api::{
    CollectionChild, CollectionDetails, PlayerSummary, PublishedFile, SteamApi, BATCH_SIZE,
    DEFAULT_BASE_URL, FILETYPE_COLLECTION, MAX_RESPONSE_BYTES,
};
pub use cache::{human_size, SyncReport, WorkshopCache, DEFAULT_STALL_TIMEOUT};
pub use error::{ItemProblem, ProblemKind, SteamError};
pub use parse::parse_workshop_ref;
pub use profiles::{ProfileCache, DEFAULT_FAILURE_BACKOFF};
pub use resolve::{resolve, WorkshopItem, L4D2_APP_ID, MAX_COLLECTION_DEPTH};
