//! The HTTP side of the server: one accepted socket served by hyper until it upgrades to a
//! WebSocket or the handshake deadline passes; routing of `/v1/ws`, `/healthz`, `/metrics`,
//! `POST /v1/events`, and 404 for anything else (PROTOCOL.md §1, §4, §7).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::debug;

use super::Shared;
use super::auth::{authenticate, bearer, presented_token};
use super::cluster::close_gate::CloseGate;
use super::cluster::{AckTo, BROKER_TIMEOUT};
use super::connection::{self, Admission};
use super::metrics::{Gauges, ServerMetrics};
use crate::protocol::client::parse_publish_body;
use crate::protocol::server_message::event_json;
use crate::protocol::timestamp;
use crate::util::process;

type Body = Full<Bytes>;

/// Largest request head (request line and headers) read before the upgrade. Well above the
/// 8 KiB token limit, so that an over-long token still gets the upgrade and its `AUTH_ERROR`
/// (§2) instead of an HTTP 431; hyper's buffer only grows to this for requests that need it.
const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;

/// Serves one accepted connection. Everything before the upgrade must finish within the
/// handshake deadline (slowloris defence, §1); the WebSocket session then runs in its own task.
pub async fn serve_connection<S>(io: S, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let deadline = Instant::now() + shared.config.handshake_timeout;
    serve_connection_until(io, shared, deadline).await;
}

/// [`serve_connection`] with the deadline already running (a TLS handshake used part of it).
pub async fn serve_connection_until<S>(io: S, shared: Arc<Shared>, deadline: Instant)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service_state = Arc::clone(&shared);
    let service = service_fn(move |request| route::<S>(request, Arc::clone(&service_state)));
    let connection = http1::Builder::new()
        .max_buf_size(MAX_REQUEST_HEAD_BYTES)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::select! {
        result = tokio::time::timeout_at(deadline, connection) => {
            if let Ok(Err(error)) = result {
                debug!(%error, "http connection ended with an error");
            }
        }
        _ = shared.shutdown.cancelled() => {}
    }
}

async fn route<S>(request: Request<Incoming>, shared: Arc<Shared>) -> Result<Response<Body>, Infallible>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let response = match (request.method(), request.uri().path()) {
        (&Method::GET, "/v1/ws") => upgrade::<S>(request, shared),
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok"),
        (&Method::GET, "/metrics") => metrics(&shared),
        (&Method::POST, "/v1/events") => publish(request, &shared).await,
        _ => text(StatusCode::NOT_FOUND, "not found"),
    };
    Ok(response)
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain"));
    response
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    response
}

fn metrics(shared: &Shared) -> Response<Body> {
    let gauges = Gauges {
        subscriptions: shared.hub.subscription_counts(),
        rss_bytes: process::rss_bytes(),
        cpu_s: process::cpu_time().as_secs_f64(),
    };
    let mut response = Response::new(Full::new(Bytes::from(shared.metrics.render(&gauges))));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(prometheus_client::encoding::prometheus_text::CONTENT_TYPE),
    );
    response
}

/// Completes a WebSocket upgrade. The token is judged now; a bad one still gets the upgrade and
/// then its `AUTH_ERROR` over the WebSocket (§2).
fn upgrade<S>(mut request: Request<Incoming>, shared: Arc<Shared>) -> Response<Body>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let headers = request.headers();
    let header_has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().unwrap_or_default().split(',').any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    };
    let is_upgrade = header_has(header::UPGRADE, "websocket") && header_has(header::CONNECTION, "upgrade");
    let version_ok = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).filter(|_| is_upgrade && version_ok) else {
        let mut response = text(StatusCode::UPGRADE_REQUIRED, "a WebSocket upgrade (version 13) is required");
        response.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, header::HeaderValue::from_static("13"));
        return response;
    };
    if shared.shutdown.is_cancelled() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "server shutting down");
    }
    let accept_key = derive_accept_key(key.as_bytes());
    let token = presented_token(headers, request.uri().query());
    let (admission, place) =
        match authenticate(token.as_deref(), &shared.config.jwt_secret, &shared.config.faults.protocol) {
            Err(error) => (Admission::BadToken(error), None),
            Ok(token) => match Place::take(&shared) {
                Some(place) => (Admission::Accepted(token), Some(place)),
                None => (Admission::AtLimit, None),
            },
        };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let session_state = Arc::clone(&shared);
    shared.tracker.spawn(async move {
        // Held until the connection ends, however it ends (a failed upgrade included).
        let _place = place;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => return debug!(%error, "upgrade failed"),
        };
        let Some((stream, leftover)) = into_stream::<S>(upgraded) else {
            return debug!("upgraded stream of an unexpected type");
        };
        if session_state.cluster.is_some() {
            // A client's Close waits until what it is owed has come from the broker. Boxed: a
            // connection over a CloseGate is a larger future, and inline it would size every
            // connection's task, cluster or not.
            Box::pin(async move {
                let (gate, hold) = CloseGate::new(stream, leftover);
                let ws = connection::accept(gate, Vec::new(), &session_state).await;
                connection::run(ws, admission, session_state, Some(hold)).await;
            })
            .await;
        } else {
            let ws = connection::accept(stream, leftover, &session_state).await;
            connection::run(ws, admission, session_state, None).await;
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, header::HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, header::HeaderValue::from_static("Upgrade"));
    if let Ok(value) = header::HeaderValue::from_str(&accept_key) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    response
}

/// The socket of an upgraded connection and the bytes hyper read past the request. hyper's
/// `read_buf` is a view of its whole read buffer (8 KiB): copied out and dropped here, it is
/// not kept alive for the life of the connection by a `Parts` that lives as long as the task.
fn into_stream<S>(upgraded: hyper::upgrade::Upgraded) -> Option<(S, Vec<u8>)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let hyper::upgrade::Parts { io, read_buf, .. } = upgraded.downcast::<TokioIo<S>>().ok()?;
    Some((io.into_inner(), read_buf.to_vec()))
}

/// One of the server's `max_connections` places, given back on drop.
struct Place(Arc<Shared>);

impl Place {
    fn take(shared: &Arc<Shared>) -> Option<Place> {
        shared.try_admit_connection().then(|| Place(Arc::clone(shared)))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.release_connection();
    }
}

/// `POST /v1/events` (§4, *extension*): 401 bad token, 403 no scope, 400 invalid body, else 202.
async fn publish(request: Request<Incoming>, shared: &Shared) -> Response<Body> {
    let token = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer);
    let verified = match authenticate(token, &shared.config.jwt_secret, &shared.config.faults.protocol) {
        Ok(verified) => verified,
        Err(error) => return json(StatusCode::UNAUTHORIZED, error_body(&error.to_string())),
    };
    if !verified.may_publish {
        return json(
            StatusCode::FORBIDDEN,
            error_body("publishing requires a token with the `publish` scope"),
        );
    }
    let limit = shared.config.max_message_bytes;
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                error_body("body larger than the message size limit"),
            );
        }
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return json(StatusCode::BAD_REQUEST, error_body("body is not UTF-8"));
    };
    match parse_publish_body(text) {
        Ok(event) if shared.cluster.is_some() => {
            let frame = event_json(event.topic, event.data_json.get(), &timestamp::now_rfc3339());
            publish_through_broker(shared, &frame).await
        }
        Ok(event) => {
            let frame = event_json(event.topic, event.data_json.get(), &timestamp::now_rfc3339());
            let delivered = shared.hub.publish(event.topic, &event.data, frame.into());
            ServerMetrics::inc(&shared.metrics.http_publishes);
            json(StatusCode::ACCEPTED, format!(r#"{{"delivered":{delivered}}}"#))
        }
        Err(rejection) => {
            ServerMetrics::inc(&shared.metrics.protocol_errors);
            json(StatusCode::BAD_REQUEST, error_body(&rejection.message))
        }
    }
}

/// Cluster mode: sends the event to every process and answers 202 when it came back here, with
/// the deliveries this process queued; 503 when the broker failed (the server is then stopping).
async fn publish_through_broker(shared: &Shared, frame: &str) -> Response<Body> {
    let Some(link) = shared.cluster.as_deref() else {
        return json(StatusCode::SERVICE_UNAVAILABLE, error_body("no broker"));
    };
    let unavailable =
        || json(StatusCode::SERVICE_UNAVAILABLE, error_body("the broker failed; the server is stopping"));
    let (answer, delivered) = oneshot::channel();
    let sent = tokio::time::timeout(BROKER_TIMEOUT, link.publish(frame, Some(AckTo::Http(answer)))).await;
    if !matches!(sent, Ok(Ok(()))) {
        return unavailable();
    }
    ServerMetrics::inc(&shared.metrics.events_published);
    ServerMetrics::inc(&shared.metrics.http_publishes);
    match tokio::time::timeout(BROKER_TIMEOUT, delivered).await {
        Ok(Ok(delivered)) => json(StatusCode::ACCEPTED, format!(r#"{{"delivered":{delivered}}}"#)),
        _ => unavailable(),
    }
}

fn error_body(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}
