//! Persona cache for the live player panel: names and avatars are nice to have, never worth an error.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::api::{PlayerSummary, SteamApi};

/// After a failed lookup, no request is sent for this long (a dead or rate-limiting API is not hammered).
pub const DEFAULT_FAILURE_BACKOFF: Duration = Duration::from_secs(60);
/// Above this many remembered ids, expired entries are dropped (keeps a long-running panel bounded).
const PRUNE_ABOVE: usize = 10_000;

/// TTL'd cache in front of `GetPlayerSummaries`. Failures fall back quietly to whatever is cached.
pub struct ProfileCache {
    api: Option<SteamApi>,
    ttl: Duration,
    failure_backoff: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `None` remembers that Steam does not know the id (bots, fake ids), so it is not asked again.
    entries: HashMap<u64, (Option<PlayerSummary>, Instant)>,
    backoff_until: Option<Instant>,
    /// One warning per failure streak, not one per panel refresh.
    warned: bool,
}

impl ProfileCache {
    /// `api` is `None` (or has no key) when `STEAM_WEB_API_KEY` is not configured: every lookup then
    /// returns an empty map without any request.
    pub fn new(api: Option<SteamApi>, ttl: Duration) -> Self {
        ProfileCache {
            api: api.filter(SteamApi::has_key),
            ttl,
            failure_backoff: DEFAULT_FAILURE_BACKOFF,
            state: Mutex::new(State::default()),
        }
    }

    /// Changes how long lookups pause after a failure.
    pub fn with_failure_backoff(mut self, backoff: Duration) -> Self {
        self.failure_backoff = backoff;
        self
    }

    /// Whether lookups can ever return anything (a key is configured).
    pub fn enabled(&self) -> bool {
        self.api.is_some()
    }

    /// Profiles for the given 64-bit Steam ids: fresh cache entries as they are, the rest fetched in
    /// batches of 100. On failure, returns what the cache has (stale entries included).
    pub async fn get_many(&self, ids: &[u64]) -> HashMap<u64, PlayerSummary> {
        let Some(api) = &self.api else {
            return HashMap::new();
        };
        let now = Instant::now();
        let mut missing = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let backing_off = {
            let state = self.lock();
            for &id in ids {
                if !seen.insert(id) {
                    continue;
                }
                match state.entries.get(&id) {
                    Some((_, at)) if now.duration_since(*at) < self.ttl => {}
                    _ => missing.push(id),
                }
            }
            state.backoff_until.is_some_and(|until| now < until)
        };
        if !missing.is_empty() && !backing_off {
            match api.player_summaries(&missing).await {
                Ok(found) => {
                    let at = Instant::now();
                    let mut state = self.lock();
                    state.warned = false;
                    state.backoff_until = None;
                    let mut found: HashMap<u64, PlayerSummary> =
                        found.into_iter().map(|p| (p.steam_id, p)).collect();
                    for id in missing {
                        state.entries.insert(id, (found.remove(&id), at));
                    }
                    if state.entries.len() > PRUNE_ABOVE {
                        let ttl = self.ttl;
                        state
                            .entries
                            .retain(|_, (_, t)| at.duration_since(*t) < ttl);
                    }
                }
                Err(e) => {
                    let mut state = self.lock();
                    state.backoff_until = Some(Instant::now() + self.failure_backoff);
                    if !state.warned {
                        state.warned = true;
                        tracing::warn!(error = %e, "Steam profile lookup failed; showing in-game names");
                    }
                }
            }
        }
        let state = self.lock();
        ids.iter()
            .filter_map(|id| state.entries.get(id))
            .filter_map(|(p, _)| p.clone())
            .map(|p| (p.steam_id, p))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the map inconsistent; keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
