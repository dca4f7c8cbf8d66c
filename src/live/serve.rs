//! The live endpoint's HTTP/1 server: `GET /metrics`, `GET /events`, `GET /` on a listener the
//! caller bound, until its token is cancelled.
//!
//! It reads the run only through the snapshot channel. Each snapshot is rendered once (the SSE
//! payload, on this server's own task) and shared by every reader; a reader that does not read
//! makes hyper stop polling its stream, which then only skips snapshots. Connections and
//! event streams are bounded; beyond the bound a connection is closed at once and an extra
//! event stream gets 503.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::snapshot::LiveSnapshot;
use super::{exposition, page, payload};

/// At most this many connections at once (scrapers, pages, event streams).
pub const MAX_CONNECTIONS: usize = 256;
/// At most this many `/events` streams at once.
pub const MAX_EVENT_STREAMS: usize = 32;
/// How long a request head may take to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

type Body = UnsyncBoxBody<Bytes, Infallible>;

struct State {
    snapshots: watch::Receiver<Arc<LiveSnapshot>>,
    /// The latest SSE payload: rendered once per snapshot, read by every stream.
    payloads: watch::Receiver<Arc<str>>,
    streams: Arc<Semaphore>,
    cancel: CancellationToken,
}

/// Serves until `cancel`; then every event stream sends the latest payload it has not sent yet
/// (so a page sees the final snapshot when it was published before the cancel) and ends.
pub async fn serve(
    listener: TcpListener,
    snapshots: watch::Receiver<Arc<LiveSnapshot>>,
    cancel: CancellationToken,
) {
    let first: Arc<str> = payload::render(&snapshots.borrow()).into();
    let (payload_tx, payloads) = watch::channel(first);
    let renderer = tokio::spawn(render_payloads(snapshots.clone(), payload_tx, cancel.clone()));
    let state =
        Arc::new(State { snapshots, payloads, streams: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)), cancel });
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = state.cancel.cancelled() => break,
        };
        let socket = match accepted {
            Ok((socket, _)) => socket,
            Err(error) => {
                // Out of descriptors or a transient error: back off, never stop serving.
                debug!(%error, "live endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            drop(socket);
            continue;
        };
        let state = Arc::clone(&state);
        tracker.spawn(async move {
            let service_state = Arc::clone(&state);
            let service = service_fn(move |request| route(request, Arc::clone(&service_state)));
            let mut builder = http1::Builder::new();
            builder.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let connection = builder.serve_connection(TokioIo::new(socket), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result { debug!(%error, "live endpoint: connection ended"); }
                }
                () = state.cancel.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), connection).await;
                }
            }
            drop(permit);
        });
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    let _ = renderer.await;
}

/// Renders each new snapshot once into the shared payload; after the cancel, the latest one.
async fn render_payloads(
    mut snapshots: watch::Receiver<Arc<LiveSnapshot>>,
    payloads: watch::Sender<Arc<str>>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { break },
            () = cancel.cancelled() => break,
        }
        let snapshot = Arc::clone(&snapshots.borrow_and_update());
        payloads.send_replace(payload::render(&snapshot).into());
    }
    if snapshots.has_changed().unwrap_or(false) {
        let snapshot = Arc::clone(&snapshots.borrow_and_update());
        payloads.send_replace(payload::render(&snapshot).into());
    }
}

async fn route(request: Request<Incoming>, state: Arc<State>) -> Result<Response<Body>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => {
            let snapshot = Arc::clone(&state.snapshots.borrow());
            full(StatusCode::OK, exposition::CONTENT_TYPE, exposition::render(snapshot))
        }
        (&Method::GET, "/events") => events(&state),
        (&Method::GET, "/") => full(StatusCode::OK, "text/html; charset=utf-8", page::html().to_owned()),
        (&Method::GET, _) => {
            full(StatusCode::NOT_FOUND, "text/plain", "not found: try /, /metrics or /events\n".into())
        }
        _ => full(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n".into()),
    };
    Ok(response)
}

fn full(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    response
}

/// One server-sent-event stream: the current payload at once, then each new one.
fn events(state: &State) -> Response<Body> {
    let Ok(permit) = Arc::clone(&state.streams).try_acquire_owned() else {
        return full(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "too many live pages open\n".into());
    };
    let mut payloads = state.payloads.clone();
    payloads.mark_changed();
    let cancel = state.cancel.clone();
    let body = stream::unfold(Some((payloads, cancel, permit)), |open| async move {
        let (mut payloads, cancel, permit) = open?;
        let ended = tokio::select! {
            changed = payloads.changed() => changed.is_err(),
            () = cancel.cancelled() => true,
        };
        if ended {
            // The final snapshot is rendered after the cancel, and then the renderer drops its
            // sender: wait for that (a moment at most), then send the latest payload unless this
            // stream has sent it already, and end.
            let mut fresh = payloads.has_changed().unwrap_or(false);
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            while let Ok(Ok(())) = tokio::time::timeout_at(deadline, payloads.changed()).await {
                fresh = true;
            }
            if !fresh {
                return None;
            }
        }
        let data = Arc::clone(&payloads.borrow_and_update());
        let frame = Frame::data(Bytes::from(format!("data: {data}\n\n")));
        let next = if ended { None } else { Some((payloads, cancel, permit)) };
        Some((Ok::<_, Infallible>(frame), next))
    });
    let mut response = Response::new(StreamBody::new(body).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-cache"));
    response
}
