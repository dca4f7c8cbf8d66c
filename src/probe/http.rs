//! A minimal HTTP/1.1 client for the operations endpoints (`/healthz`, `/metrics`) and
//! `POST /v1/events`: one request per connection, `Connection: close`, bounded in time and size;
//! `https://` when the target is `wss://` (same host, port and TLS settings).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::conn::open_stream;
use super::target::Target;
use crate::wire::WireError;

/// Largest response body read, in bytes.
const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// An HTTP response: status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("HTTP request to {addr}: {cause}")]
    Io { addr: String, cause: std::io::Error },
    #[error("HTTP connection to {addr}: {cause}")]
    Connect { addr: String, cause: WireError },
    #[error("no HTTP response from {0} in time")]
    Timeout(String),
    #[error("the response from {0} is not HTTP")]
    NotHttp(String),
}

/// Sends one request to the target's host and port and reads the whole response.
pub async fn request(
    target: &Target,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    wait: Duration,
) -> Result<HttpResponse, HttpError> {
    let authority = target.authority.as_str();
    let io = |source| HttpError::Io { addr: authority.to_owned(), cause: source };
    let exchange = async {
        let mut stream = open_stream(target, wait)
            .await
            .map_err(|source| HttpError::Connect { addr: authority.to_owned(), cause: source })?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.map_err(io)?;
        stream.write_all(body.as_bytes()).await.map_err(io)?;
        let mut response = Vec::new();
        stream.take(MAX_RESPONSE_BYTES).read_to_end(&mut response).await.map_err(io)?;
        Ok::<_, HttpError>(response)
    };
    let response = tokio::time::timeout(wait, exchange)
        .await
        .map_err(|_| HttpError::Timeout(authority.to_owned()))??;
    parse_response(&response).ok_or_else(|| HttpError::NotHttp(authority.to_owned()))
}

/// Parses a `Connection: close` response; decodes a chunked body.
fn parse_response(bytes: &[u8]) -> Option<HttpResponse> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Some(HttpResponse { status, body })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { break };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// One sample of a Prometheus text exposition: the value of the first series named `name`.
pub fn metric_value(exposition: &str, name: &str) -> Option<f64> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split(['{', ' ']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_bodies() {
        let plain = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (200, "ok"));
        let chunked = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.body, "ok!!!");
        assert!(parse_response(b"garbage").is_none());
    }

    #[test]
    fn reads_a_metric_value() {
        let text = "# HELP a x\na_total 3\nb{topic=\"x\"} 4.5\n";
        assert_eq!(metric_value(text, "a_total"), Some(3.0));
        assert_eq!(metric_value(text, "b"), Some(4.5));
        assert_eq!(metric_value(text, "c"), None);
    }
}
