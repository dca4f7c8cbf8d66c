//! PROTOCOL.md §2: authentication.

use openframe_harness::protocol::jwt;
use serde_json::json;

use crate::common::{Client, TestServer};

#[tokio::test]
async fn auth_valid_header_token_gets_connection_established_first() {
    let server = TestServer::spawn().await;
    let mut client = Client::connect(&server.url(), Some(&server.token(false))).await;
    let hello = client.recv().await;
    assert_eq!(hello["type"], "connection_established");
    assert!(hello["session_id"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(hello["timestamp"].is_string());
}

#[tokio::test]
async fn auth_rejects_alg_none_with_auth_error_then_1008() {
    let server = TestServer::spawn().await;
    let exp = jwt::unix_now_s() as i64 + 3600;
    let token =
        jwt::mint_raw(r#"{"alg":"none","typ":"JWT"}"#, &format!(r#"{{"sub":"u","exp":{exp}}}"#), None);
    let mut client = Client::connect(&server.url(), Some(&token)).await;
    let error = client.recv().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "AUTH_ERROR");
    assert_eq!(error["message"], "Invalid token");
    assert!(error["timestamp"].is_string());
    assert_eq!(client.closed_with().await, Some(1008));
}

#[tokio::test]
async fn auth_missing_token_gets_auth_error_then_1008_and_no_events() {
    let server = TestServer::spawn().await;
    let mut client = Client::connect(&server.url(), None).await;
    assert_eq!(client.recv().await["code"], "AUTH_ERROR");
    assert_eq!(client.closed_with().await, Some(1008));
    let _ = json!({});
}
