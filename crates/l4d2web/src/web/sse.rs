//! The one server-sent-events loop: a [`Feed`] says what to send next, this
//! sends it, keeps the connection alive and ends it on shutdown.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::state::AppState;

/// What one viewer is sent.
pub trait Feed: Send + 'static {
    /// The next events, in order; `None` ends the stream.
    fn next(&mut self) -> impl Future<Output = Option<Vec<Event>>> + Send;
}

/// How often an idle stream sends a comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The response streaming `feed` until it ends or the panel shuts down.
pub fn stream<F: Feed>(
    feed: F,
    shutdown: CancellationToken,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = futures_util::stream::unfold(
        (feed, shutdown, VecDeque::new()),
        |(mut feed, shutdown, mut queued)| async move {
            loop {
                if let Some(event) = queued.pop_front() {
                    return Some((Ok(event), (feed, shutdown, queued)));
                }
                let batch = tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    batch = feed.next() => batch?,
                };
                queued.extend(batch);
            }
        },
    );
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

/// Middleware: every event-stream response counts as one viewer in
/// [`AppState::sse_viewers`] until its body is dropped (the client left,
/// the stream ended or the panel shut down), whichever path served it.
pub async fn count_viewers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let is_stream = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !is_stream {
        return res;
    }
    let viewer = Viewer::enter(state.sse_viewers.clone());
    res.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _held = &viewer;
            chunk
        }))
    })
}

/// One open event stream; leaves the count when dropped.
struct Viewer(Arc<AtomicUsize>);

impl Viewer {
    fn enter(count: Arc<AtomicUsize>) -> Viewer {
        count.fetch_add(1, Ordering::Relaxed);
        Viewer(count)
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An event `name` carrying rendered HTML (the htmx SSE extension swaps it
/// in). Multi-line HTML is fine: each line becomes a `data:` line, which
/// the browser joins with newlines again.
pub fn html<T: Template>(name: &str, fragment: &T) -> Event {
    let html = fragment
        .render()
        .unwrap_or_else(|e| format!("<p class=\"error\">render failed: {e}</p>"));
    Event::default().event(name).data(html)
}
