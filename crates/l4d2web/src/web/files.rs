//! The overlay file browser and downloads. Paths are resolved by the kernel
//! beneath the overlay's directory (see `overlays::files`).

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio_util::io::ReaderStream;

use super::error::AppError;
use super::extract::Authed;
use super::overlays::visible;
use super::page::{nav, render, Nav};
use super::routes::Routes;
use super::state::AppState;
use crate::overlays::files::{self, Entry};
use crate::overlays::{self, workshop, Overlay};

/// Bytes read per chunk of a download.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

pub fn routes() -> Routes {
    Routes::default()
        .get("/overlays/{id}/files", files_page)
        .get("/overlays/{id}/download", download)
}

#[derive(Deserialize)]
pub struct PathQuery {
    #[serde(default)]
    path: String,
}

struct Crumb {
    name: String,
    /// Query-escaped path for links.
    href: String,
}

struct FileRow {
    entry: Entry,
    href: String,
}

#[derive(Template)]
#[template(path = "overlay_files.html")]
struct FilesPage {
    nav: Nav,
    overlay: Overlay,
    path: String,
    crumbs: Vec<Crumb>,
    entries: Vec<FileRow>,
    parent: Option<String>,
    truncated: bool,
}

async fn files_page(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Response, AppError> {
    let overlay = visible(&state, &a.user, &id).await?;
    let dir = overlays::overlay_dir(&state.config.root, overlay.id);
    let path = files::clean_path(&q.path)?;
    let listing = {
        let dir = dir.clone();
        let path = path.clone();
        tokio::task::spawn_blocking(move || files::list(&dir, &path)).await??
    };
    let mut crumbs = Vec::new();
    let mut acc = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(part);
        crumbs.push(Crumb {
            name: part.to_string(),
            href: query_escape(&acc),
        });
    }
    let parent = (!path.is_empty())
        .then(|| query_escape(path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")));
    let page = FilesPage {
        nav: nav(&state, &a.session).await?,
        truncated: listing.len() >= files::MAX_ENTRIES,
        overlay,
        path,
        crumbs,
        parent,
        entries: listing
            .into_iter()
            .map(|entry| FileRow {
                href: query_escape(&entry.path),
                entry,
            })
            .collect(),
    };
    Ok(render(&page)?.into_response())
}

/// Streams one regular file. The only symlink served is a workshop
/// overlay's addon link that points exactly at the cache file of one of
/// its own items.
async fn download(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Response, AppError> {
    let overlay = visible(&state, &a.user, &id).await?;
    let root = state.config.root.clone();
    let dir = overlays::overlay_dir(&root, overlay.id);
    let items: Vec<i64> = if overlay.is_workshop() {
        workshop::items(&state.pool, overlay.id)
            .await?
            .into_iter()
            .map(|i| i.id)
            .collect()
    } else {
        Vec::new()
    };
    let rel = q.path.clone();
    let dl = tokio::task::spawn_blocking(move || {
        files::open_download(&dir, &rel, |rel, text| {
            let name = rel.strip_prefix("left4dead2/addons/")?;
            let item: i64 = name.strip_suffix(".vpk")?.parse().ok()?;
            if !items.contains(&item) || format!("{item}.vpk") != name {
                return None;
            }
            let cache_file = overlays::workshop_cache_file(&root, item);
            (text == cache_file)
                .then(|| (root.join("workshop_cache"), format!("{item}.vpk").into()))
        })
    })
    .await??;
    let disposition = content_disposition(&dl.name);
    let file = tokio::fs::File::from_std(dl.file);
    let stream = ReaderStream::with_capacity(file, DOWNLOAD_CHUNK);
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(dl.size));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// `attachment; filename="<ascii>"; filename*=UTF-8''<percent-encoded>`.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != ';' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Query string value for links (the path parameter).
pub fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_are_safe() {
        let d = content_disposition("a \"b\";c\nd.cfg");
        assert!(
            d.starts_with("attachment; filename=\"a__b__c_d.cfg\""),
            "{d}"
        );
        assert!(!d.contains('\n'));
        assert_eq!(query_escape("a b/c&d"), "a%20b/c%26d");
    }
}
