//! Workshop references (items and collections) → the list of downloadable L4D2 items.

use std::collections::{HashMap, HashSet};

use url::Url;

use crate::api::{SteamApi, FILETYPE_COLLECTION};
use crate::error::{ItemProblem, ProblemKind, SteamError};

/// Left 4 Dead 2's Steam app id (the game; the dedicated server is 222860).
pub const L4D2_APP_ID: u64 = 550;
/// Collections may contain collections; deeper nesting than this is refused (real ones use 1–2).
pub const MAX_COLLECTION_DEPTH: usize = 8;

/// One downloadable workshop item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkshopItem {
    pub id: u64,
    pub title: String,
    /// The cache file name, always `<id>.vpk`, whatever the uploader called it.
    pub file_name: String,
    /// The uploader's original file name (informational only; never used as a path).
    pub original_file_name: String,
    pub file_url: String,
    pub file_size: u64,
    pub time_updated: i64,
}

/// Expands collections (nested ones too, up to [`MAX_COLLECTION_DEPTH`], cycles skipped) and fetches
/// the details of every item. Items come out in a stable order — `refs` order, collection members in
/// their collection's order — without duplicates. Any unusable item (unavailable, another game, no
/// direct download) fails the whole call with [`SteamError::Unusable`] listing every problem.
pub async fn resolve(api: &SteamApi, refs: &[u64]) -> Result<Vec<WorkshopItem>, SteamError> {
    // Phase 1: learn the members of every collection, one batched request per nesting level.
    let mut members: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut asked: HashSet<u64> = HashSet::new();
    let mut level: Vec<u64> = dedup(refs.iter().copied());
    let mut problems = Vec::new();
    let mut depth = 0;
    while !level.is_empty() {
        if depth >= MAX_COLLECTION_DEPTH {
            problems.extend(level.iter().map(|&id| ItemProblem {
                id,
                reason: ProblemKind::NestedTooDeep {
                    depth: MAX_COLLECTION_DEPTH,
                },
            }));
            break;
        }
        asked.extend(level.iter().copied());
        let mut next = Vec::new();
        for details in api.collection_details(&level).await? {
            // result != 1 is what Steam says for a plain item id; it is then looked up as an item.
            let Some(mut children) = details.children.filter(|_| details.result == 1) else {
                continue;
            };
            children.sort_by_key(|c| c.sortorder); // stable: equal sortorders keep Steam's order
            for child in &children {
                if child.filetype == FILETYPE_COLLECTION && !asked.contains(&child.id) {
                    next.push(child.id);
                }
            }
            members.insert(details.id, children.iter().map(|c| c.id).collect());
        }
        level = dedup(next.into_iter());
        depth += 1;
    }
    if !problems.is_empty() {
        return Err(SteamError::Unusable(problems));
    }

    // Phase 2: flatten depth-first in the order the user and the collections gave.
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    let mut on_path = HashSet::new();
    for &id in refs {
        flatten(id, &members, &mut seen, &mut on_path, &mut order);
    }

    // Phase 3: the details of every item, validated.
    let details = api.published_file_details(&order).await?;
    let by_id: HashMap<u64, _> = details.into_iter().map(|d| (d.id, d)).collect();
    let mut items = Vec::with_capacity(order.len());
    for id in order {
        let Some(d) = by_id.get(&id) else {
            problems.push(ItemProblem {
                id,
                reason: ProblemKind::NotInResponse,
            });
            continue;
        };
        let reason = if d.result != 1 {
            Some(ProblemKind::Unavailable { result: d.result })
        } else if d.consumer_app_id != Some(L4D2_APP_ID) {
            Some(ProblemKind::WrongApp {
                app_id: d.consumer_app_id,
            })
        } else if d.file_url.trim().is_empty() {
            Some(ProblemKind::NoFileUrl)
        } else if !is_http_url(&d.file_url) {
            Some(ProblemKind::BadFileUrl {
                url: d.file_url.chars().take(200).collect(),
            })
        } else if d.file_size == 0 {
            Some(ProblemKind::EmptyFile)
        } else {
            None
        };
        if let Some(reason) = reason {
            problems.push(ItemProblem { id, reason });
            continue;
        }
        items.push(WorkshopItem {
            id,
            title: d.title.clone(),
            file_name: format!("{id}.vpk"),
            original_file_name: d.filename.clone(),
            file_url: d.file_url.trim().to_string(),
            file_size: d.file_size,
            time_updated: d.time_updated,
        });
    }
    if problems.is_empty() {
        Ok(items)
    } else {
        Err(SteamError::Unusable(problems))
    }
}

fn flatten(
    id: u64,
    members: &HashMap<u64, Vec<u64>>,
    seen: &mut HashSet<u64>,
    on_path: &mut HashSet<u64>,
    order: &mut Vec<u64>,
) {
    match members.get(&id) {
        Some(children) => {
            // A collection that (indirectly) contains itself: its members are already being listed.
            if !on_path.insert(id) {
                tracing::debug!(collection = id, "workshop collection cycle skipped");
                return;
            }
            for &child in children {
                flatten(child, members, seen, on_path, order);
            }
            on_path.remove(&id);
        }
        None => {
            if seen.insert(id) {
                order.push(id);
            }
        }
    }
}

fn dedup(ids: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut seen = HashSet::new();
    ids.filter(|id| seen.insert(*id)).collect()
}

pub(crate) fn is_http_url(s: &str) -> bool {
    Url::parse(s.trim())
        .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .unwrap_or(false)
}
