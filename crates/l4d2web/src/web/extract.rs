//! Extractors: who is asking (session, user, administrator, client
//! address) and the checked form of a state-changing request (CSRF token,
//! body limit, urlencoded body).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use ipnet::IpNet;
use serde::de::DeserializeOwned;

use super::error::AppError;
use super::state::AppState;
use crate::accounts::User;
use crate::auth::{self, Session, SESSION_COOKIE};
use crate::db::now_unix;
use crate::servers::blueprints;

/// Largest accepted request body of an ordinary form.
pub const MAX_BODY: usize = 16 * 1024;
/// Largest accepted body of a form carrying a blueprint (server.cfg and
/// launch args), so that every blueprint within its own limits fits: URL
/// encoding can triple each byte, and browsers send server.cfg's line ends
/// as CRLF, which counts twice before the blueprint stores LF.
pub const MAX_BLUEPRINT_BODY: usize = 6 * blueprints::MAX_CONFIG_BYTES
    + 3 * blueprints::MAX_ARGS * (blueprints::MAX_ARG_LEN + 1)
    + MAX_BODY;
/// Overlay forms carry a script of up to 1 MiB, URL-encoded up to ~3×.
pub const MAX_OVERLAY_BODY: usize = 4 * 1024 * 1024;

/// The body limit of a [`Protected`] form on `path`, and the error for a
/// larger one: blueprint forms carry server.cfg, overlay forms a script;
/// every other form is small.
fn form_limit(path: &str) -> (usize, String) {
    let one_thing = |prefix: &str| match path.strip_prefix(prefix) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('/').is_some_and(|id| !id.contains('/')),
        None => false,
    };
    if one_thing("/blueprints") {
        (
            MAX_BLUEPRINT_BODY,
            format!(
                " (a blueprint's server.cfg may have at most {} bytes)",
                blueprints::MAX_CONFIG_BYTES
            ),
        )
    } else if path.starts_with("/overlays") {
        (
            MAX_OVERLAY_BODY,
            " (an overlay's script may have at most 1 MiB)".to_string(),
        )
    } else {
        (MAX_BODY, String::new())
    }
}

/// The session cookie carrying `token` (empty and `max_age` 0: removal).
pub fn session_cookie(token: String, secure: bool, max_age: i64) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(time::Duration::seconds(max_age))
        .build()
}

pub(super) fn session_token(headers: &HeaderMap) -> Option<String> {
    CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_string())
}

/// The session of the request, if any (anonymous or logged in).
pub struct MaybeSession(pub Option<Session>);

impl FromRequestParts<AppState> for MaybeSession {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        if let Some(s) = parts.extensions.get::<Session>() {
            return Ok(MaybeSession(Some(s.clone())));
        }
        let Some(token) = session_token(&parts.headers) else {
            return Ok(MaybeSession(None));
        };
        let session = auth::load_session(&state.pool, &state.config.secret_key, &token).await?;
        if let Some(s) = &session {
            parts.extensions.insert(s.clone());
        }
        Ok(MaybeSession(session))
    }
}

/// A logged-in user. GET requests without login are redirected to /login.
pub struct Authed {
    pub session: Session,
    pub user: User,
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let MaybeSession(s) = MaybeSession::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        match s {
            Some(session) => match session.user.clone() {
                Some(user) => Ok(Authed { session, user }),
                None => Err(unauthenticated(&parts.method)),
            },
            None => Err(unauthenticated(&parts.method)),
        }
    }
}

fn unauthenticated(method: &Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        Redirect::to("/login").into_response()
    } else {
        AppError::LoginRequired.into_response()
    }
}

/// A logged-in administrator (403 for other users).
pub struct Admin(pub Authed);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let a = Authed::from_request_parts(parts, state).await?;
        if a.user.is_admin {
            Ok(Admin(a))
        } else {
            Err(AppError::Forbidden.into_response())
        }
    }
}

/// A state-changing form submission: requires a session whose CSRF token
/// matches the `csrf_token` field or the `X-CSRF-Token` header, then parses
/// the urlencoded body into `T`. Every POST handler but the login takes
/// this, so a forgotten CSRF check does not compile.
pub struct Protected<T> {
    pub session: Session,
    pub form: T,
}

impl<T> Protected<T> {
    /// The logged-in user of the session (forms of anonymous sessions are
    /// refused).
    pub fn user(&self) -> Result<&User, AppError> {
        self.session.user.as_ref().ok_or(AppError::LoginRequired)
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for Protected<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let (limit, hint) = form_limit(req.uri().path());
        let mut raw = RawForm::read(req, limit, hint).await?;
        let MaybeSession(session) = MaybeSession::from_request_parts(&mut raw.parts, state).await?;
        let Some(session) = session else {
            return Err(AppError::Csrf);
        };
        if !auth::tokens_match(&session.csrf_token, &raw.token) {
            return Err(AppError::Csrf);
        }
        Ok(Protected {
            session,
            form: raw.parse()?,
        })
    }
}

/// The login form's submission. There is no session before a login, so
/// instead of [`Protected`]'s session token the CSRF token (field
/// `csrf_token` or header `X-CSRF-Token`) must be a login token signed with
/// SECRET_KEY, unexpired, and equal to the one in the session cookie
/// ([`auth::issue_login_token`]). The login handler takes this, so it cannot
/// skip the check either.
pub struct LoginSubmission<T> {
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for LoginSubmission<T> {
    type Rejection = AppError;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let raw = RawForm::read(req, MAX_BODY, String::new()).await?;
        let cookie = session_token(&raw.parts.headers).unwrap_or_default();
        if !auth::tokens_match(&cookie, &raw.token)
            || !auth::login_token_valid(&state.config.secret_key, &raw.token, now_unix())
        {
            return Err(AppError::Csrf);
        }
        Ok(LoginSubmission { form: raw.parse()? })
    }
}

/// A form body read up to a limit, with the CSRF token it carries (the
/// `X-CSRF-Token` header wins over the `csrf_token` field), not yet checked.
struct RawForm {
    parts: Parts,
    token: String,
    bytes: axum::body::Bytes,
}

impl RawForm {
    async fn read(req: Request, limit: usize, hint: String) -> Result<RawForm, AppError> {
        let (parts, body) = req.into_parts();
        let header_token = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| AppError::TooLarge { limit, hint })?;
        let token = header_token
            .or_else(|| form_field(&bytes, "csrf_token"))
            .unwrap_or_default();
        Ok(RawForm {
            parts,
            token,
            bytes,
        })
    }

    /// The urlencoded body as `T` (call only after the token was checked).
    fn parse<T: DeserializeOwned>(&self) -> Result<T, AppError> {
        if let Some(ct) = self.parts.headers.get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            if !self.bytes.is_empty() && !ct.starts_with("application/x-www-form-urlencoded") {
                return Err(AppError::BadRequest(format!(
                    "unsupported content type {ct:?}: send an HTML form (application/x-www-form-urlencoded)"
                )));
            }
        }
        serde_urlencoded::from_bytes(&self.bytes)
            .map_err(|e| AppError::BadRequest(format!("malformed form: {e}")))
    }
}

fn form_field(bytes: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// The client's address (see [`client_ip`]).
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("no peer address")))?;
        Ok(ClientIp(client_ip(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// The client's address: the TCP peer, or — only when the peer is a trusted
/// proxy — the rightmost X-Forwarded-For entry that is not itself a trusted
/// proxy (entries further left are client-controlled and ignored).
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer_ip = peer.ip().to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer_ip) {
        return peer_ip;
    }
    let mut entries: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer_ip;
        };
        entries.extend(text.split(',').map(str::trim));
    }
    for entry in entries.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(ip) if is_trusted(&ip.to_canonical()) => continue,
            Ok(ip) => return ip.to_canonical(),
            Err(_) => return peer_ip,
        }
    }
    peer_ip
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn xff_only_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let other: SocketAddr = "10.9.9.9:5000".parse().unwrap();
        let h = headers("6.6.6.6, 1.2.3.4");
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_ip(other, &h, &trusted),
            "10.9.9.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(proxy, &headers("garbage"), &trusted), proxy.ip());
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy.ip());
        assert_eq!(
            client_ip(proxy, &headers("1.2.3.4, 127.0.0.1"), &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn form_limits_by_route() {
        assert_eq!(form_limit("/blueprints").0, MAX_BLUEPRINT_BODY);
        assert_eq!(form_limit("/blueprints/4").0, MAX_BLUEPRINT_BODY);
        assert_eq!(form_limit("/blueprints/4/stack").0, MAX_BODY);
        assert_eq!(form_limit("/overlays/4").0, MAX_OVERLAY_BODY);
        assert_eq!(form_limit("/servers/4/start").0, MAX_BODY);
    }
}
