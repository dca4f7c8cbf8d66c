//! PROTOCOL.md §2: authentication. Every invalid token form gets the upgrade, exactly one
//! `AUTH_ERROR` "Invalid token" and close 1008; expiry closes a live connection within 1 s.

use futures_util::StreamExt;
use openframe_harness::protocol::close;
use openframe_harness::protocol::jwt::{self, Claims, MAX_TOKEN_BYTES};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{ANSWER, Client, TestServer, checked};

fn now_s() -> i64 {
    jwt::unix_now_s() as i64
}

/// Asserts the §2 rejection: the first and only message is `AUTH_ERROR` "Invalid token" (valid
/// per the protocol core), and the next frame is a close with 1008.
async fn assert_rejected(mut client: Client, what: &str) {
    let text = client.recv_text(ANSWER).await.unwrap_or_else(|| panic!("{what}: no message"));
    checked(&text);
    let error: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(error["type"], "error", "{what}: {error}");
    assert_eq!(error["code"], "AUTH_ERROR", "{what}: {error}");
    assert_eq!(error["message"], "Invalid token", "{what}: {error}");
    let next = tokio::time::timeout(ANSWER, client.ws.next()).await.expect("closed in time");
    match next {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), close::POLICY_VIOLATION, "{what}")
        }
        other => panic!("{what}: expected a close frame with 1008 after the AUTH_ERROR, got {other:?}"),
    }
}

async fn assert_header_token_rejected(server: &TestServer, token: &str, what: &str) {
    assert_rejected(Client::connect(&server.url(), Some(token)).await, what).await;
}

async fn assert_accepted(mut client: Client, what: &str) {
    let hello = client.recv_checked().await;
    assert_eq!(hello["type"], "connection_established", "{what}: {hello}");
}

#[tokio::test]
async fn auth_valid_header_token_gets_connection_established_first() {
    let server = TestServer::spawn().await;
    let mut client = Client::connect(&server.url(), Some(&server.token(false))).await;
    let hello = client.recv_checked().await;
    assert_eq!(hello["type"], "connection_established");
    assert!(hello["session_id"].as_str().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn auth_bearer_scheme_is_case_insensitive() {
    let server = TestServer::spawn().await;
    let header = format!("bearer {}", server.token(false));
    assert_accepted(server.connect_with("/v1/ws", &[("Authorization", &header)]).await, "bearer").await;
}

#[tokio::test]
async fn auth_missing_token_gets_auth_error_then_1008() {
    let server = TestServer::spawn().await;
    assert_rejected(Client::connect(&server.url(), None).await, "no token").await;
    assert_rejected(server.connect_with("/v1/ws", &[("Authorization", "Bearer ")]).await, "empty bearer")
        .await;
    assert_rejected(server.connect_with("/v1/ws?access_token=", &[]).await, "empty query token").await;
}

#[tokio::test]
async fn auth_rejects_tokens_that_are_not_three_base64url_parts() {
    let server = TestServer::spawn().await;
    let valid = server.token(false);
    let two_parts = valid.rsplit_once('.').unwrap().0.to_owned();
    let padded = format!("{valid}=");
    for token in ["abc", "a.b", "a.b.c.d", "!!.??.**", two_parts.as_str(), &format!("{valid}.x"), &padded] {
        assert_header_token_rejected(&server, token, token).await;
    }
    let not_json = format!("{}.{}", "bm90LWpzb24", valid.split_once('.').unwrap().1);
    assert_header_token_rejected(&server, &not_json, "header not JSON").await;
}

#[tokio::test]
async fn auth_rejects_a_bad_signature() {
    let server = TestServer::spawn().await;
    let other_secret = jwt::mint(b"not-the-secret", &Claims::for_subject("u", 3600, false));
    assert_header_token_rejected(&server, &other_secret, "signed with another secret").await;
    // Claims swapped for ones with the publish scope, signature kept.
    let honest = server.token(false);
    let forged = server.token(true);
    let (header, rest) = honest.split_once('.').unwrap();
    let signature = rest.split_once('.').unwrap().1;
    let forged_claims = forged.split('.').nth(1).unwrap();
    assert_header_token_rejected(
        &server,
        &format!("{header}.{forged_claims}.{signature}"),
        "tampered claims",
    )
    .await;
}

#[tokio::test]
async fn auth_rejects_alg_none_with_auth_error_then_1008() {
    let server = TestServer::spawn().await;
    let claims = format!(r#"{{"sub":"u","exp":{}}}"#, now_s() + 3600);
    let token = jwt::mint_raw(r#"{"alg":"none","typ":"JWT"}"#, &claims, None);
    assert_header_token_rejected(&server, &token, "alg none, unsigned").await;
}

#[tokio::test]
async fn auth_rejects_hs_none_confusion_and_every_alg_but_hs256() {
    let server = TestServer::spawn().await;
    let secret = server.secret();
    let claims = format!(r#"{{"sub":"u","exp":{}}}"#, now_s() + 3600);
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"HS512"}"#,
        r#"{"alg":"RS256"}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"typ":"JWT"}"#,
    ] {
        // Signed with the server's own secret (HMAC-SHA256) but labelled otherwise.
        let token = jwt::mint_raw(header, &claims, Some(&secret));
        assert_header_token_rejected(&server, &token, header).await;
    }
}

#[tokio::test]
async fn auth_rejects_an_expired_token() {
    let server = TestServer::spawn().await;
    let long_ago = server.token_from_claims(&format!(r#"{{"sub":"u","exp":{}}}"#, now_s() - 60));
    assert_header_token_rejected(&server, &long_ago, "exp a minute ago").await;
    // The reference server allows no leeway: exp ≤ now is expired.
    let now = server.token_from_claims(&format!(r#"{{"sub":"u","exp":{}}}"#, now_s()));
    assert_header_token_rejected(&server, &now, "exp now").await;
}

#[tokio::test]
async fn auth_rejects_a_token_whose_nbf_is_in_the_future() {
    let server = TestServer::spawn().await;
    let t = now_s();
    let future = server.token_from_claims(&format!(r#"{{"sub":"u","exp":{},"nbf":{}}}"#, t + 3600, t + 60));
    assert_header_token_rejected(&server, &future, "nbf in a minute").await;
    let past = server.token_from_claims(&format!(r#"{{"sub":"u","exp":{},"nbf":{}}}"#, t + 3600, t - 60));
    assert_accepted(Client::connect(&server.url(), Some(&past)).await, "nbf a minute ago").await;
}

#[tokio::test]
async fn auth_rejects_a_token_without_sub_or_exp() {
    let server = TestServer::spawn().await;
    let exp = now_s() + 3600;
    for claims in [
        format!(r#"{{"exp":{exp}}}"#),
        format!(r#"{{"sub":42,"exp":{exp}}}"#),
        r#"{"sub":"u"}"#.to_owned(),
        format!(r#"{{"sub":"u","exp":"{exp}"}}"#),
        r#"{"sub":"u","exp":null,"scope":"publish"}"#.to_owned(),
    ] {
        assert_header_token_rejected(&server, &server.token_from_claims(&claims), &claims).await;
    }
}

/// A token signed with the server's secret whose length is as close to `len` as padding allows.
fn token_of_len(server: &TestServer, len: usize) -> String {
    let exp = now_s() + 3600;
    let mut best = String::new();
    // base64url makes 4 characters of every 3 bytes; start a little below the target.
    for pad in (len * 3 / 4).saturating_sub(100)..len {
        let token =
            server.token_from_claims(&format!(r#"{{"sub":"u","exp":{exp},"pad":"{}"}}"#, "x".repeat(pad)));
        if token.len() > len {
            break;
        }
        best = token;
    }
    best
}

#[tokio::test]
async fn auth_rejects_a_token_longer_than_8_kib_and_accepts_one_of_8_kib() {
    let server = TestServer::spawn().await;
    let at_limit = token_of_len(&server, MAX_TOKEN_BYTES);
    assert!(at_limit.len() >= MAX_TOKEN_BYTES - 2, "{}", at_limit.len());
    assert_accepted(Client::connect(&server.url(), Some(&at_limit)).await, "8 KiB").await;
    let over = token_of_len(&server, MAX_TOKEN_BYTES + 3);
    assert!(over.len() > MAX_TOKEN_BYTES);
    assert_header_token_rejected(&server, &over, "over 8 KiB").await;
}

#[tokio::test]
async fn auth_query_token_is_accepted() {
    let server = TestServer::spawn().await;
    let path = format!("/v1/ws?access_token={}", server.token(false));
    assert_accepted(server.connect_with(&path, &[]).await, "query token").await;
    let path = format!("/v1/ws?x=1&access_token={}&y=2", server.token(false));
    assert_accepted(server.connect_with(&path, &[]).await, "query token among others").await;
    assert_rejected(server.connect_with("/v1/ws?access_token=a.b.c", &[]).await, "bad query token").await;
}

#[tokio::test]
async fn auth_header_wins_over_the_query_token() {
    let server = TestServer::spawn().await;
    let good = server.token(false);
    let good_header = format!("Bearer {good}");
    let with_bad_query =
        server.connect_with("/v1/ws?access_token=bad.bad.bad", &[("Authorization", &good_header)]).await;
    assert_accepted(with_bad_query, "good header, bad query").await;
    let path = format!("/v1/ws?access_token={good}");
    let bad_header = server.connect_with(&path, &[("Authorization", "Bearer bad.bad.bad")]).await;
    assert_rejected(bad_header, "bad header, good query").await;
    let basic = server.connect_with(&path, &[("Authorization", "Basic dXNlcjpwYXNz")]).await;
    assert_rejected(basic, "non-bearer header, good query").await;
}

#[tokio::test]
async fn auth_token_expiry_mid_connection_sends_token_expired_then_1008_within_1_s() {
    let server = TestServer::spawn().await;
    let exp = now_s() + 2;
    let token = server.token_from_claims(&format!(r#"{{"sub":"u","exp":{exp}}}"#));
    let mut client = Client::connect(&server.url(), Some(&token)).await;
    assert_eq!(client.recv().await["type"], "connection_established");
    client.subscribe_to(&["alerts"], serde_json::Value::Null).await;
    let text = client.recv_text(std::time::Duration::from_secs(4)).await.expect("an error before the close");
    let at = jwt::unix_now_s();
    checked(&text);
    let error: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (error["code"].as_str(), error["message"].as_str()),
        (Some("AUTH_ERROR"), Some("Token expired"))
    );
    assert!(at >= exp as f64 - 0.05, "expired early: {at} < exp {exp}");
    assert!(at <= exp as f64 + 1.0, "expired late: {at} > exp {exp} + 1 s");
    assert_eq!(client.closed_with().await, Some(close::POLICY_VIOLATION));
    assert!(jwt::unix_now_s() <= exp as f64 + 1.0, "the close came more than 1 s after exp");
}

#[tokio::test]
async fn auth_rejected_connection_gets_no_event() {
    let server = TestServer::spawn().await;
    let mut publisher = server.publisher().await;
    let mut rejected = Client::connect(&server.url(), Some("a.b.c")).await;
    // Whatever it sends, it gets nothing but its AUTH_ERROR and the close.
    rejected.send(json!({"type": "subscribe", "topics": ["alerts"]})).await;
    assert_eq!(publisher.publish("alerts", crate::common::alert("high", json!({})), "p").await, 0);
    let first = rejected.recv().await;
    assert_eq!(first["code"], "AUTH_ERROR");
    assert_eq!(rejected.closed_with().await, Some(close::POLICY_VIOLATION));
}

#[tokio::test]
async fn auth_rejects_a_token_far_longer_than_8_kib_over_the_websocket() {
    let server = TestServer::spawn().await;
    let huge = token_of_len(&server, 40 * 1024);
    assert!(huge.len() > 39 * 1024);
    assert_header_token_rejected(&server, &huge, "40 KiB token").await;
    let path = format!("/v1/ws?access_token={huge}");
    assert_rejected(server.connect_with(&path, &[]).await, "40 KiB query token").await;
}
