//! The HTTP server loop: axum's router served by hyper's HTTP/1.1
//! connection builder, because `axum::serve` cannot set a header-read
//! timeout and a client that never finishes its request line would
//! otherwise hold a connection (and a file descriptor) forever.
//!
//! Event streams take a lean path of their own ([`serve_event_stream`]):
//! hyper keeps an 8 KiB read buffer and an 8 KiB header buffer for as long
//! as a connection lives, which for an idle live viewer is most of its
//! cost. A request that asks for `text/event-stream`, arrived whole in its
//! first packet and has no body is parsed here (httparse, as in hyper),
//! answered by the same router, and its response written straight to the
//! socket, chunked, with `Connection: close`. Everything else goes to
//! hyper untouched (the head is only peeked at).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{self, header, HeaderValue, Request, Response, Version};
use axum::Router;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

/// How long a client may take to send a request's headers. hyper also
/// starts this timer when a kept-alive connection goes idle, so it is the
/// idle keep-alive timeout as well. A streaming response (SSE) is not
/// affected: the timer runs only while a request head is awaited.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest request head the event-stream path looks at; longer ones
/// go to hyper.
const PEEK_LIMIT: usize = 4096;
/// Headers the event-stream path parses at most (browsers send ~15).
const MAX_HEADERS: usize = 48;
/// Bytes of ready events gathered into one write.
const WRITE_BATCH: usize = 64 * 1024;

/// Serves `app` on `listener` until `shutdown` fires, then stops
/// accepting, lets every connection finish its current response (idle
/// ones close at once; SSE streams end on the same token) and returns.
/// Handlers see the peer address as `ConnectInfo<SocketAddr>`.
pub async fn serve(listener: TcpListener, app: Router, shutdown: CancellationToken) {
    let mut make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let streams = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            // The client gave up before we accepted; nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Typically EMFILE: retrying at once would spin.
                tracing::error!(error = %e, "cannot accept connections; retrying in 1 s");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        // Infallible: axum's connect-info make-service cannot fail.
        let service = match make_service.call(peer).await {
            Ok(service) => service,
            Err(never) => match never {},
        };
        let http = http.clone();
        let watcher = graceful.watcher();
        streams.spawn(async move {
            let head =
                match tokio::time::timeout(HEADER_READ_TIMEOUT, event_stream_head(&stream)).await {
                    Ok(head) => head,
                    Err(_) => return, // no request head in time
                };
            if let Some(head) = head {
                if let Err(e) = serve_event_stream(stream, head, service).await {
                    tracing::debug!(%peer, error = %e, "event stream ended with an error");
                }
                return;
            }
            let conn =
                http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(e) = watcher.watch(conn).await {
                // Header timeouts and clients going away end up here.
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    streams.close();
    streams.wait().await;
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// A request head for the event-stream path, peeked, not yet read.
struct EventStreamHead {
    /// Bytes of the head on the socket.
    len: usize,
    request: Request<Body>,
}

/// Waits for the first bytes and, if they hold a whole request head that
/// asks for an event stream and carries no body, parses it. `None`: the
/// connection is hyper's.
async fn event_stream_head(stream: &TcpStream) -> Option<EventStreamHead> {
    let mut buf = vec![0u8; PEEK_LIMIT];
    let n = stream.peek(&mut buf).await.ok()?;
    parse_event_stream_head(&buf[..n])
}

fn parse_event_stream_head(bytes: &[u8]) -> Option<EventStreamHead> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = parsed.parse(bytes).ok()? else {
        return None;
    };
    if parsed.method != Some("GET") {
        return None;
    }
    let wants_events = parsed.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("accept")
            && std::str::from_utf8(h.value).is_ok_and(|v| v.contains("text/event-stream"))
    });
    let has_body = parsed.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
    });
    if !wants_events || has_body {
        return None;
    }
    let mut request = Request::builder()
        .method(http::Method::GET)
        .uri(parsed.path?)
        .version(match parsed.version? {
            0 => Version::HTTP_10,
            _ => Version::HTTP_11,
        });
    for h in parsed.headers.iter() {
        request = request.header(h.name, h.value);
    }
    Some(EventStreamHead {
        len,
        request: request.body(Body::empty()).ok()?,
    })
}

/// Answers one event-stream request on `stream` and closes it: the
/// router's response head, then its body as HTTP/1.1 chunks (HTTP/1.0:
/// until the close), ending early when the client goes away.
async fn serve_event_stream<S>(
    mut stream: TcpStream,
    head: EventStreamHead,
    mut service: S,
) -> std::io::Result<()>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    // Consume exactly the head that was peeked at.
    let mut consumed = vec![0u8; head.len];
    stream.read_exact(&mut consumed).await?;
    drop(consumed);
    let chunked = head.request.version() != Version::HTTP_10;
    if let Err(never) = std::future::poll_fn(|cx| service.poll_ready(cx)).await {
        match never {}
    }
    let response = match service.call(head.request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let (mut parts, mut body) = response.into_parts();
    parts
        .headers
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    parts.headers.remove(header::CONTENT_LENGTH);
    if chunked {
        parts.headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    let mut out = format!(
        "{:?} {} {}\r\n",
        if chunked {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        },
        parts.status.as_str(),
        parts.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in &parts.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    stream.write_all(&out).await?;
    drop(out);
    let (mut reader, mut writer) = stream.split();
    // A client that closes (or sends anything: it has nothing to send)
    // ends the stream; without this an idle viewer's departure would only
    // be noticed at the next keep-alive write.
    let mut probe = [0u8; 1];
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            _ = reader.read(&mut probe) => return Ok(()),
        };
        let Some(frame) = frame else { break };
        // What is ready now goes out in one write (a catch-up of many
        // lines is one packet, not one per line).
        let mut out = Vec::new();
        let mut next = Some(frame);
        let mut ended = false;
        while let Some(frame) = next.take() {
            if let Ok(data) = frame.map_err(std::io::Error::other)?.into_data() {
                if chunked && !data.is_empty() {
                    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    out.extend_from_slice(&data);
                    out.extend_from_slice(b"\r\n");
                } else {
                    out.extend_from_slice(&data);
                }
            }
            if out.len() < WRITE_BATCH {
                match body.frame().now_or_never() {
                    Some(Some(frame)) => next = Some(frame),
                    Some(None) => ended = true,
                    None => {}
                }
            }
        }
        writer.write_all(&out).await?;
        if ended {
            break;
        }
    }
    if chunked {
        writer.write_all(b"0\r\n\r\n").await?;
    }
    writer.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_bodiless_event_stream_gets_take_the_lean_path() {
        let get = |extra: &str| {
            format!("GET /jobs/1/stream HTTP/1.1\r\nHost: x\r\n{extra}\r\n").into_bytes()
        };
        let head = parse_event_stream_head(&get("Accept: text/event-stream\r\n")).unwrap();
        assert_eq!(head.request.uri().path(), "/jobs/1/stream");
        assert_eq!(head.request.headers()["host"], "x");
        assert_eq!(head.len, get("Accept: text/event-stream\r\n").len());
        // Not asked for, a body, incomplete, another method: hyper's.
        assert!(parse_event_stream_head(&get("")).is_none());
        assert!(parse_event_stream_head(&get(
            "Accept: text/event-stream\r\nContent-Length: 4\r\n"
        ))
        .is_none());
        assert!(
            parse_event_stream_head(b"GET /x HTTP/1.1\r\nAccept: text/event-stream\r\n").is_none()
        );
        assert!(parse_event_stream_head(
            b"POST /x HTTP/1.1\r\nAccept: text/event-stream\r\nContent-Length: 0\r\n\r\n"
        )
        .is_none());
        assert!(parse_event_stream_head(b"\x16\x03\x01garbage").is_none());
        let many = "X-A: b\r\n".repeat(MAX_HEADERS + 1);
        assert!(
            parse_event_stream_head(&get(&format!("Accept: text/event-stream\r\n{many}")))
                .is_none()
        );
    }
}
