//! URL arithmetic the harness needs without a URL crate: the HTTP origin of a WebSocket URL, and
//! a `HOST:PORT` to listen on.
//! Must not know the API's paths beyond what the caller passes.

/// `ws://host:port/v1/ws` → `http://host:port` (wss → https).
pub fn derive_http_url(ws_url: &str) -> Option<String> {
    let (scheme, rest) = ws_url.split_once("://")?;
    let http_scheme = match scheme {
        "ws" => "http",
        "wss" => "https",
        _ => return None,
    };
    let authority = rest.split(['/', '?']).next().filter(|a| !a.is_empty())?;
    Some(format!("{http_scheme}://{authority}"))
}

/// `HOST:PORT` with an IP address, or `localhost:PORT` (taken as 127.0.0.1).
pub fn parse_socket_addr(text: &str) -> Option<std::net::SocketAddr> {
    match text.strip_prefix("localhost:") {
        Some(port) => port.parse::<u16>().ok().map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], port))),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_derive_from_ws_urls() {
        assert_eq!(derive_http_url("ws://127.0.0.1:8080/v1/ws").as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(
            derive_http_url("wss://api.openframe.io/v1/ws").as_deref(),
            Some("https://api.openframe.io")
        );
        assert_eq!(derive_http_url("http://x/v1/ws"), None);
    }

    #[test]
    fn socket_addresses_are_ip_or_localhost_with_a_port() {
        assert_eq!(parse_socket_addr("127.0.0.1:0"), Some(([127, 0, 0, 1], 0).into()));
        assert_eq!(parse_socket_addr("localhost:9100"), Some(([127, 0, 0, 1], 9100).into()));
        assert_eq!(parse_socket_addr("[::1]:80").map(|a| a.port()), Some(80));
        for bad in ["", "127.0.0.1", "nowhere:80", "localhost:x", "1.2.3.4:99999"] {
            assert_eq!(parse_socket_addr(bad), None, "{bad}");
        }
    }
}
