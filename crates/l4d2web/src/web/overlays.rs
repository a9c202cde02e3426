//! Overlay pages: list, create, edit, build/sync, delete, file browser.
//!
//! Access: a user sees their own overlays and the system ones; other
//! users' private overlays are 404 everywhere (also for administrators).
//! Editing, building and deleting need ownership, or admin rights for
//! system overlays (403 otherwise).

use askama::Template;
use axum::body::Body;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{render, AppError, AppState, Authed, Nav};
use crate::accounts::User;
use crate::auth::{self, Session};
use crate::jobs::Job;
use crate::overlays::files::{self, Entry, FileError};
use crate::overlays::{self, Kind, Overlay, OverlayError, OverlayInput};

/// Overlay forms carry a script of up to 1 MiB, URL-encoded up to ~3×.
const MAX_OVERLAY_FORM: usize = 4 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/overlays", get(list_page).post(create))
        .route("/overlays/{id}", get(detail_page).post(update))
        .route("/overlays/{id}/build", post(build))
        .route("/overlays/{id}/delete", post(delete))
        .route("/overlays/{id}/files", get(files_page))
        .route("/overlays/{id}/download", get(download))
}

/// Like [`super::Protected`] (session + CSRF token, then the urlencoded
/// form) but with room for a 1 MiB script. Every overlay POST takes it.
pub struct OverlayForm<T> {
    pub session: Session,
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for OverlayForm<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let (session, form) = super::read_protected_form(req, state, MAX_OVERLAY_FORM, || {
            AppError::BadRequest(format!(
                "the form is larger than {MAX_OVERLAY_FORM} bytes; scripts are limited to 1 MiB"
            ))
        })
        .await?;
        Ok(OverlayForm { session, form })
    }
}

async fn nav(state: &AppState, session: &Session) -> Result<Nav, AppError> {
    if session.flash.is_some() {
        auth::clear_flash(&state.pool, &session.id).await?;
    }
    Ok(Nav::for_session(session))
}

fn parse_id(id: &str) -> Result<i64, AppError> {
    id.parse().map_err(|_| AppError::NotFound)
}

async fn visible(state: &AppState, user: &User, id: &str) -> Result<Overlay, AppError> {
    overlays::find_visible(&state.pool, user, parse_id(id)?)
        .await?
        .ok_or(AppError::NotFound)
}

/// Visible and editable by `user`; a visible system overlay is 403 for
/// non-admins.
async fn editable(state: &AppState, user: &User, id: &str) -> Result<Overlay, AppError> {
    let o = visible(state, user, id).await?;
    if o.editable_by(user) {
        Ok(o)
    } else {
        // Visible but not editable: a system overlay and a non-admin.
        Err(AppError::Forbidden)
    }
}

/// The logged-in user of an [`OverlayForm`] session.
fn form_user(session: &Session) -> Result<User, AppError> {
    session.user.clone().ok_or(AppError::LoginRequired)
}

fn overlay_error(e: OverlayError) -> AppError {
    match e {
        OverlayError::NotFound => AppError::NotFound,
        OverlayError::Db(e) => e.into(),
        OverlayError::Io { .. } => AppError::Internal(anyhow::anyhow!("{e}")),
        other => AppError::BadRequest(other.to_string()),
    }
}

struct Row {
    overlay: Overlay,
    owner: String,
}

#[derive(Template)]
#[template(path = "overlays.html")]
struct ListPage {
    nav: Nav,
    csrf: String,
    rows: Vec<Row>,
    is_admin: bool,
    form: NewForm,
    error: Option<String>,
}

#[derive(Default, Deserialize)]
pub struct NewForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    script: String,
    #[serde(default)]
    refs: String,
    #[serde(default)]
    system: Option<String>,
}

async fn list_with(
    state: &AppState,
    session: &Session,
    user: &User,
    form: NewForm,
    error: Option<String>,
) -> Result<Response, AppError> {
    let rows = overlays::list_visible(&state.pool, user)
        .await?
        .into_iter()
        .map(|o| Row {
            owner: if o.is_system() {
                "system".into()
            } else {
                "you".into()
            },
            overlay: o,
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let page = ListPage {
        nav: nav(state, session).await?,
        csrf: session.csrf_token.clone(),
        rows,
        is_admin: user.is_admin,
        form,
        error,
    };
    Ok((status, render(&page)?).into_response())
}

async fn list_page(State(state): State<AppState>, a: Authed) -> Result<Response, AppError> {
    let form = NewForm {
        kind: "script".into(),
        ..NewForm::default()
    };
    list_with(&state, &a.session, &a.user, form, None).await
}

async fn create(
    State(state): State<AppState>,
    OverlayForm { session, form }: OverlayForm<NewForm>,
) -> Result<Response, AppError> {
    let user = form_user(&session)?;
    let kind = match Kind::parse(&form.kind) {
        Ok(k) => k,
        Err(e) => return Err(AppError::BadRequest(e.to_string())),
    };
    if form.system.is_some() && !user.is_admin {
        return Err(AppError::Forbidden);
    }
    let owner = if form.system.is_some() {
        None
    } else {
        Some(user.id)
    };
    let input = OverlayInput {
        name: form.name.clone(),
        description: form.description.clone(),
        script: Some(form.script.clone()),
        refs: Some(form.refs.clone()),
    };
    match overlays::create(&state.pool, &state.config.root, owner, kind, &input).await {
        Ok(o) => {
            auth::set_flash(
                &state.pool,
                &session.id,
                &format!("Overlay {} created.", o.name),
            )
            .await?;
            Ok(Redirect::to(&format!("/overlays/{}", o.id)).into_response())
        }
        Err(e @ (OverlayError::Invalid(_) | OverlayError::NameTaken(_))) => {
            list_with(&state, &session, &user, form, Some(e.to_string())).await
        }
        Err(e) => Err(overlay_error(e)),
    }
}

struct ItemRow {
    id: i64,
    title: String,
    size: String,
    time_updated: i64,
    cached: bool,
}

#[derive(Template)]
#[template(path = "overlay.html")]
struct DetailPage {
    nav: Nav,
    csrf: String,
    overlay: Overlay,
    can_edit: bool,
    owner: String,
    name: String,
    description: String,
    script: String,
    refs: String,
    items: Vec<ItemRow>,
    jobs: Vec<Job>,
    error: Option<String>,
}

async fn detail_with(
    state: &AppState,
    session: &Session,
    user: &User,
    overlay: Overlay,
    edited: Option<(EditForm, String)>,
) -> Result<Response, AppError> {
    let items: Vec<(i64, String, i64, i64)> = sqlx::query_as(
        "SELECT w.id, w.title, w.file_size, w.time_updated FROM overlay_workshop_items o
         JOIN workshop_items w ON w.id = o.item_id WHERE o.overlay_id = ? ORDER BY w.id",
    )
    .bind(overlay.id)
    .fetch_all(&state.pool)
    .await?;
    let items = items
        .into_iter()
        .map(|(id, title, size, time_updated)| ItemRow {
            cached: std::fs::metadata(overlays::workshop_cache_file(&state.config.root, id))
                .is_ok_and(|m| m.len() == size as u64),
            id,
            title,
            size: steam_api::human_size(size as u64),
            time_updated,
        })
        .collect();
    let jobs = overlays::recent_jobs(&state.pool, overlay.id).await?;
    let (name, description, script, refs, error, status) = match edited {
        Some((f, err)) => (
            f.name,
            f.description,
            f.script,
            f.refs,
            Some(err),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        None => (
            overlay.name.clone(),
            overlay.description.clone(),
            overlay.script.clone(),
            overlay.refs_text(),
            None,
            StatusCode::OK,
        ),
    };
    let page = DetailPage {
        nav: nav(state, session).await?,
        csrf: session.csrf_token.clone(),
        can_edit: overlay.editable_by(user),
        owner: if overlay.is_system() {
            "system overlay (usable by everyone, editable by administrators)".into()
        } else {
            "your private overlay".into()
        },
        overlay,
        name,
        description,
        script,
        refs,
        items,
        jobs,
        error,
    };
    Ok((status, render(&page)?).into_response())
}

async fn detail_page(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let overlay = visible(&state, &a.user, &id).await?;
    detail_with(&state, &a.session, &a.user, overlay, None).await
}

#[derive(Deserialize)]
pub struct EditForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    script: String,
    #[serde(default)]
    refs: String,
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OverlayForm { session, form }: OverlayForm<EditForm>,
) -> Result<Response, AppError> {
    let user = form_user(&session)?;
    let overlay = editable(&state, &user, &id).await?;
    let input = OverlayInput {
        name: form.name.clone(),
        description: form.description.clone(),
        script: Some(form.script.clone()),
        refs: Some(form.refs.clone()),
    };
    match overlays::update(&state.pool, &overlay, &input).await {
        Ok(o) => {
            let hint = if o.is_script() {
                "Build it to apply the script."
            } else {
                "Sync it to apply the item list."
            };
            auth::set_flash(
                &state.pool,
                &session.id,
                &format!("Overlay {} saved. {hint}", o.name),
            )
            .await?;
            Ok(Redirect::to(&format!("/overlays/{}", o.id)).into_response())
        }
        Err(e @ (OverlayError::Invalid(_) | OverlayError::NameTaken(_))) => {
            let msg = e.to_string();
            detail_with(&state, &session, &user, overlay, Some((form, msg))).await
        }
        Err(e) => Err(overlay_error(e)),
    }
}

#[derive(Deserialize)]
pub struct BuildForm {
    #[serde(default)]
    clean: Option<String>,
}

async fn build(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OverlayForm { session, form }: OverlayForm<BuildForm>,
) -> Result<Response, AppError> {
    let user = form_user(&session)?;
    let overlay = editable(&state, &user, &id).await?;
    let clean = form.clean.is_some_and(|v| v == "1" || v == "on");
    let job = overlays::enqueue_build(&state.jobs, &overlay, user.id, clean).await?;
    auth::set_flash(
        &state.pool,
        &session.id,
        &format!("Job #{job} queued for overlay {}.", overlay.name),
    )
    .await?;
    Ok(Redirect::to(&format!("/jobs/{job}")).into_response())
}

#[derive(Deserialize)]
pub struct Empty {}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OverlayForm { session, .. }: OverlayForm<Empty>,
) -> Result<Response, AppError> {
    let user = form_user(&session)?;
    let overlay = editable(&state, &user, &id).await?;
    overlays::delete(&state.pool, &state.config.root, &overlay, &user)
        .await
        .map_err(overlay_error)?;
    auth::set_flash(
        &state.pool,
        &session.id,
        &format!("Overlay {} deleted.", overlay.name),
    )
    .await?;
    Ok(Redirect::to("/overlays").into_response())
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

fn file_error(e: FileError) -> AppError {
    match e {
        FileError::NotFound(_) => AppError::NotFound,
        FileError::Io(p, err) => AppError::Internal(anyhow::anyhow!("reading {p:?}: {err}")),
        other => AppError::BadRequest(other.to_string()),
    }
}

async fn files_page(
    State(state): State<AppState>,
    a: Authed,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<Response, AppError> {
    let overlay = visible(&state, &a.user, &id).await?;
    let dir = overlays::overlay_dir(&state.config.root, overlay.id);
    let path = files::clean_path(&q.path).map_err(file_error)?;
    let listing = {
        let dir = dir.clone();
        let path = path.clone();
        tokio::task::spawn_blocking(move || files::list(&dir, &path))
            .await
            .map_err(|e| AppError::Internal(e.into()))?
            .map_err(file_error)?
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
        sqlx::query_scalar("SELECT item_id FROM overlay_workshop_items WHERE overlay_id = ?")
            .bind(overlay.id)
            .fetch_all(&state.pool)
            .await?
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
    .await
    .map_err(|e| AppError::Internal(e.into()))?
    .map_err(file_error)?;
    let disposition = content_disposition(&dl.name);
    let file = tokio::fs::File::from_std(dl.file);
    let stream = async_stream::stream! {
        use tokio::io::AsyncReadExt;
        let mut file = file;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => yield Ok::<_, std::io::Error>(axum::body::Bytes::copy_from_slice(&buf[..n])),
                Err(e) => { yield Err(e); break; }
            }
        }
    };
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
