//! PROTOCOL.md §1 and §7 around the messages: `connection_established`, pings, the handshake
//! deadline, unknown paths, `/healthz` and `/metrics`.

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::case::{Case, Ctx, Failure};
use crate::probe::http;
use crate::protocol::{ServerMessage, parse_server_message};

const ESTABLISHED: &str = "On a valid token the server sends, as the first message: {\"type\": \"connection_established\", \
\"session_id\": \"s-7f3a…\", \"timestamp\": \"2024-03-20T10:00:00.000Z\"} (§2)";
const PING: &str = "The server answers WebSocket pings with pongs (§1)";
const DEADLINE: &str = "Handshake deadline: a TCP connection that has not completed the HTTP upgrade within 10 s \
(configurable) is dropped (slowloris defence). (§1)";
const NOT_FOUND: &str =
    "Anything other than `/v1/ws`, `/healthz`, `/metrics` and `POST /v1/events` (§4) answers HTTP 404. (§1)";
const HEALTHZ: &str = "`GET /healthz` → status 200 with body `ok` while the server accepts connections. (§7)";
const METRICS: &str = "`GET /metrics` → Prometheus text format with at least: open connections, subscriptions per topic, \
events published, events delivered, slow-consumer disconnects, auth failures, protocol errors. (§7)";
const NORMAL_CLOSE: &str = "RFC 6455: a close frame is answered with a close frame (§1: WebSocket RFC 6455)";

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("handshake.connection_established_fields", "handshake", ESTABLISHED, |cx| async move {
            let token = cx.token(false)?;
            let (conn, first) = cx.upgrade(&crate::probe::Presented::bearer(&token)).await?;
            conn.close().await;
            let expected =
                "connection_established with a non-empty string session_id and an RFC 3339 UTC timestamp";
            match first {
                Ok(m) => match parse_server_message(&m.text) {
                    Ok(ServerMessage::ConnectionEstablished { .. }) => Ok(()),
                    _ => Err(Failure::new("upgrade with a valid token", m.text.clone(), expected)),
                },
                Err(end) => Err(Failure::new("upgrade with a valid token", end.describe(), expected)),
            }
        }),
        Case::new("handshake.session_ids_differ", "handshake", ESTABLISHED, |cx| async move {
            let mut ids = Vec::new();
            for _ in 0..2 {
                let token = cx.token(false)?;
                let (conn, first) = cx.upgrade(&crate::probe::Presented::bearer(&token)).await?;
                conn.close().await;
                ids.push(first.map(|m| m.value["session_id"].clone()).unwrap_or_default());
            }
            if ids[0].is_string() && ids[0] != ids[1] {
                Ok(())
            } else {
                Err(Failure::new(
                    "two connections",
                    format!("session ids {ids:?}"),
                    "two different session ids",
                ))
            }
        }),
        Case::new("ping.pong_echoes_payload", "ping", PING, |cx| async move {
            let mut conn = cx.connect(false).await?;
            let pong = conn.ping(b"conform-ping", cx.answer_wait).await;
            conn.close().await;
            match pong {
                Some(payload) if payload == b"conform-ping" => Ok(()),
                other => Err(Failure::new(
                    "ping frame with payload \"conform-ping\"",
                    format!("{:?}", other.map(|p| String::from_utf8_lossy(&p).into_owned())),
                    "a pong with the same payload",
                )),
            }
        }),
        Case::new("ping.connection_still_answers_after_pings", "ping", PING, |cx| async move {
            let mut conn = cx.connect(false).await?;
            for _ in 0..3 {
                conn.ping(b"", cx.answer_wait).await;
            }
            let observation = conn.sync(cx.answer_wait).await;
            conn.close().await;
            super::case::check(&cx, "three pings", &observation, &crate::oracle::Expectation::nothing())
        }),
        Case::new("close.normal_close_is_answered", "handshake", NORMAL_CLOSE, |cx| async move {
            let mut conn = cx.connect(false).await?;
            conn.send_frames(&[crate::wire::OutFrame::close(1000)]).await;
            super::case::expect_close(&cx, &mut conn, "close frame 1000", &[Some(1000)], None).await
        }),
        Case::new("handshake.deadline_drops_idle_tcp", "handshake", DEADLINE, |cx| async move {
            let sent = "a TCP connection that sends nothing";
            let bound = cx.handshake_timeout + Duration::from_secs(2);
            let expected = format!(
                "the server drops it within the handshake deadline ({:?}) + 2 s",
                cx.handshake_timeout
            );
            let started = Instant::now();
            let mut stream = TcpStream::connect(&cx.target.authority)
                .await
                .map_err(|e| Failure::new(sent, e.to_string(), &expected))?;
            let mut buf = [0u8; 256];
            match tokio::time::timeout(bound, stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => Ok(()),
                Ok(Ok(n)) => {
                    Err(Failure::new(sent, format!("{n} bytes after {:?}", started.elapsed()), expected))
                }
                Err(_) => Err(Failure::new(sent, format!("still open after {bound:?}"), expected)),
            }
        })
        .background(),
        Case::new("http.unknown_path_is_404", "ops", NOT_FOUND, |cx| async move {
            let response = get(&cx, "/definitely-not-here").await?;
            if response.status == 404 {
                Ok(())
            } else {
                Err(Failure::new("GET /definitely-not-here", format!("HTTP {}", response.status), "HTTP 404"))
            }
        }),
        Case::new("http.healthz_ok", "ops", HEALTHZ, |cx| async move {
            let response = get(&cx, "/healthz").await?;
            if response.status == 200 && response.body.trim() == "ok" {
                Ok(())
            } else {
                Err(Failure::new(
                    "GET /healthz",
                    format!("HTTP {} {:?}", response.status, response.body),
                    "HTTP 200 `ok`",
                ))
            }
        }),
        Case::new("http.metrics_prometheus", "ops", METRICS, |cx| async move {
            let response = get(&cx, "/metrics").await?;
            let expected = "HTTP 200, Prometheus text whose samples name connections, subscriptions, published, delivered, \
                            slow consumers, auth failures and protocol errors";
            let samples: Vec<&str> =
                response.body.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).collect();
            let well_formed = !samples.is_empty()
                && samples.iter().all(|l| l.rsplit(' ').next().is_some_and(|v| v.parse::<f64>().is_ok()));
            let names: Vec<String> = samples
                .iter()
                .filter_map(|l| l.split(['{', ' ']).next())
                .map(str::to_ascii_lowercase)
                .collect();
            let missing: Vec<&str> = [
                ("connection", "open connections"),
                ("subscription", "subscriptions per topic"),
                ("publish", "events published"),
                ("deliver", "events delivered"),
                ("slow", "slow-consumer disconnects"),
                ("auth", "auth failures"),
                ("error", "protocol errors"),
            ]
            .into_iter()
            .filter(|(word, _)| !names.iter().any(|n| n.contains(word)))
            .map(|(_, what)| what)
            .collect();
            if response.status == 200 && well_formed && missing.is_empty() {
                Ok(())
            } else {
                Err(Failure::new(
                    "GET /metrics",
                    format!("HTTP {}; well-formed: {well_formed}; missing: {missing:?}", response.status),
                    expected,
                ))
            }
        }),
    ]
}

async fn get(cx: &Ctx, path: &str) -> Result<http::HttpResponse, Failure> {
    http::request(&cx.target, "GET", path, &[], "", cx.answer_wait)
        .await
        .map_err(|e| Failure::new(format!("GET {path}"), e.to_string(), "an HTTP response"))
}
