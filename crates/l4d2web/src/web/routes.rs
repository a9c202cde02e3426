//! A router that remembers what it routes: the same table builds the
//! axum router and lets tests walk every route (every POST must refuse a
//! request without a CSRF token; every server route must enforce the
//! right it declares for each role).
//!
//! A server route (`/servers/{id}/…`) declares the [`Right`] it needs; the
//! route carries it to the [`super::on_server::OnServer`] extractor, which
//! answers 404 to a visitor without a role on the server and 403 to one
//! whose role is too low, before the handler runs.
//!
//! An API route (`/api/v1/…`) is token-authenticated: it takes no CSRF
//! token and refuses cookie sessions (see [`super::api`]).

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Router};

use super::state::AppState;
use crate::servers::access::Right;

/// One route: method, path, and for a server route the right it needs.
#[derive(Debug, Clone)]
pub struct RouteInfo {
    pub method: Method,
    pub path: &'static str,
    pub right: Option<Right>,
    /// Token-authenticated (`/api/v1/…`): no CSRF, no cookie sessions.
    pub api: bool,
}

pub struct Routes {
    router: Router<AppState>,
    table: Vec<RouteInfo>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }
}

impl Routes {
    fn add(
        mut self,
        method: Method,
        path: &'static str,
        right: Option<Right>,
        route: MethodRouter<AppState>,
    ) -> Self {
        let route = match right {
            Some(r) => route.layer(Extension(r)),
            None => route,
        };
        self.router = self.router.route(path, route);
        self.table.push(RouteInfo {
            method,
            path,
            right,
            api: path.starts_with("/api/"),
        });
        self
    }

    pub fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::GET, path, None, get(handler))
    }

    pub fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::POST, path, None, post(handler))
    }

    /// A GET on one server (`{id}`), needing `right` there.
    pub fn server_get<H, T>(self, path: &'static str, right: Right, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        debug_assert!(path.starts_with("/servers/{id}"));
        self.add(Method::GET, path, Some(right), get(handler))
    }

    /// A POST on one server (`{id}`), needing `right` there.
    pub fn server_post<H, T>(self, path: &'static str, right: Right, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        debug_assert!(path.starts_with("/servers/{id}"));
        self.add(Method::POST, path, Some(right), post(handler))
    }

    /// A GET of the HTTP API (`/api/v1/…`).
    pub fn api_get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        debug_assert!(path.starts_with("/api/v1/"));
        self.add(Method::GET, path, None, get(handler))
    }

    /// A POST of the HTTP API (`/api/v1/…`).
    pub fn api_post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        debug_assert!(path.starts_with("/api/v1/"));
        self.add(Method::POST, path, None, post(handler))
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<RouteInfo>) {
        (self.router, self.table)
    }
}
