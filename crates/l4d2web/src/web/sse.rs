//! The one server-sent-events loop: a [`Feed`] says what to send next, this
//! sends it, keeps the connection alive and ends it on shutdown.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use askama::Template;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio_util::sync::CancellationToken;

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

/// An event `name` carrying rendered HTML (the htmx SSE extension swaps it
/// in). Multi-line HTML is fine: each line becomes a `data:` line, which
/// the browser joins with newlines again.
pub fn html<T: Template>(name: &str, fragment: &T) -> Event {
    let html = fragment
        .render()
        .unwrap_or_else(|e| format!("<p class=\"error\">render failed: {e}</p>"));
    Event::default().event(name).data(html)
}
