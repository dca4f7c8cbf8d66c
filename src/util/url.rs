//! URL arithmetic the harness needs without a URL crate: the HTTP origin of a WebSocket URL.
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
}
