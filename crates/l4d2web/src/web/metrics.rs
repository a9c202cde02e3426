//! `GET /metrics` for Prometheus: on the main listener only with
//! `LEFT4ME_METRICS_TOKEN` as a bearer token (404 when no token is set), on
//! the separate `LEFT4ME_METRICS_BIND` listener without one. What is
//! exported is `crate::metrics`'s.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::AppError;
use super::routes::Routes;
use super::state::AppState;
use crate::metrics::{self, Sources};

pub fn routes() -> Routes {
    Routes::default().get("/metrics", with_token)
}

/// Only `/metrics`; every other path is a plain 404.
pub fn listener_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

async fn with_token(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = state.config.metrics_token.as_deref() else {
        return AppError::NotFound.into_response();
    };
    if !bearer_matches(&headers, token) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
            "a valid bearer token is required\n",
        )
            .into_response();
    }
    scrape(State(state)).await
}

/// Whether the request carries `Authorization: Bearer <token>`. Compared as
/// SHA-256 digests in constant time, so neither the token's content nor its
/// length shows in how long a refusal takes.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
    else {
        return false;
    };
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(token.as_bytes());
    given.ct_eq(&expected).into()
}

async fn scrape(State(state): State<AppState>) -> Response {
    let sources = Sources {
        pool: &state.pool,
        jobs: &state.jobs,
        host: &state.host,
        live: &state.live,
        sse_viewers: state.sse_viewers.load(Ordering::Relaxed) as u64,
    };
    match metrics::render(sources).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics scrape failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "metrics unavailable\n").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let token = "metrics-token-0123456789abcdef0123456789";
        let with = |value: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            bearer_matches(&h, token)
        };
        assert!(with(&format!("Bearer {token}")));
        assert!(with(&format!("bearer {token}")));
        assert!(!bearer_matches(&HeaderMap::new(), token));
        assert!(!with(token));
        assert!(!with(&format!("Basic {token}")));
        assert!(!with(&format!("Bearer {token}x")));
        assert!(!with(&format!("Bearer {}", &token[1..])));
        assert!(!with("Bearer "));
    }
}
