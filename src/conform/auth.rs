//! PROTOCOL.md §2, authentication: every invalid token form, where the token may come from, and
//! a connection that must not outlive its token.

use std::time::{Duration, Instant};

use super::case::{Case, Ctx, Failure, Needs, truncate};
use crate::probe::{Conn, End, Presented, Upgrade};
use crate::protocol::jwt::{self, Claims, MAX_TOKEN_BYTES};

const INVALID: &str = "On an invalid token the server completes the upgrade, sends exactly one message \
{\"type\":\"error\",\"code\":\"AUTH_ERROR\",\"message\":\"Invalid token\",\"timestamp\":…} and closes with code 1008. \
It never sends a connection_established or an event to such a connection. (§2)";
const VALID: &str = "On a valid token the server sends, as the first message: {\"type\": \"connection_established\", \
\"session_id\": …, \"timestamp\": …} (§2)";
const QUERY: &str = "*Extension:* `?access_token=<token>` on the URL is accepted too. When both are present the header wins. (§2)";
const EXPIRY: &str = "A connection does not outlive its token: when `exp` passes, the server sends \
{\"type\":\"error\",\"code\":\"AUTH_ERROR\",\"message\":\"Token expired\",…} and closes with 1008 within 1 s of the moment \
the token stopped being valid (its `exp` plus the server's leeway). (§2)";

/// Leeway a third-party server may take; tokens are made invalid by far more than this.
const LEEWAY_S: i64 = 5;

fn now() -> i64 {
    jwt::unix_now_s() as i64
}

fn hs256() -> &'static str {
    r#"{"alg":"HS256","typ":"JWT"}"#
}

fn claims(extra: &str) -> String {
    format!(r#"{{"sub":"conform","exp":{}{extra}}}"#, now() + 3600)
}

/// A case whose token is made by `make` (returning `None` when it cannot be made) and must be refused.
fn refused(name: &str, needs: Needs, make: fn(&Ctx) -> Option<String>) -> Case {
    Case::new(format!("auth.{name}"), "auth", INVALID, move |cx| async move {
        let token = make(&cx).ok_or_else(|| Failure::new("-", "-", "a secret to mint this token"))?;
        expect_auth_error(
            &cx,
            &Presented::bearer(&token),
            &format!("Authorization: Bearer {}", truncate(&token, 200)),
        )
        .await
    })
    .needs(needs)
}

/// Upgrades with `presented`; the server must answer AUTH_ERROR "Invalid token" and close 1008.
pub async fn expect_auth_error(cx: &Ctx, presented: &Presented, sent: &str) -> Result<(), Failure> {
    let expected = "exactly one `error` AUTH_ERROR \"Invalid token\" with a timestamp, then close 1008";
    let mut conn = match Conn::open(&cx.target, presented, cx.answer_wait).await {
        Ok(Upgrade::Switched(conn)) => conn,
        Ok(Upgrade::Refused(response)) if response.status == 401 => {
            return Err(Failure::new(
                sent,
                "HTTP 401",
                format!("{expected}: refused the upgrade with HTTP 401 instead of AUTH_ERROR"),
            ));
        }
        Ok(Upgrade::Refused(response)) => {
            return Err(Failure::new(sent, format!("HTTP {}", response.status), expected));
        }
        Err(error) => return Err(Failure::new(sent, error.to_string(), expected)),
    };
    let (seen, end) = conn.read_until_closed(cx.answer_wait).await;
    let received =
        format!("{}[{}]", seen.iter().map(|r| format!("{}\n", r.text)).collect::<String>(), end.describe());
    let ok = seen.len() == 1
        && seen[0].is_error("AUTH_ERROR")
        && seen[0].violation.is_none()
        && seen[0].value["message"] == "Invalid token"
        && end == End::Closed(Some(1008));
    if ok { Ok(()) } else { Err(Failure::new(sent, received, expected)) }
}

/// Upgrades with `presented`; the first message must be a valid `connection_established`.
async fn expect_accepted(cx: &Ctx, presented: &Presented, sent: &str) -> Result<(), Failure> {
    let expected =
        "a valid `connection_established` (session_id, RFC 3339 UTC timestamp) as the first message";
    let (conn, first) = cx.upgrade(presented).await.map_err(|f| Failure { sent: sent.into(), ..f })?;
    let result = match first {
        Ok(message)
            if message.kind.as_deref() == Some("connection_established") && message.violation.is_none() =>
        {
            Ok(())
        }
        Ok(message) => Err(Failure::new(sent, message.text, expected)),
        Err(end) => Err(Failure::new(sent, end.describe(), expected)),
    };
    conn.close().await;
    result
}

pub fn cases() -> Vec<Case> {
    vec![
        Case::new("auth.valid_header_token", "auth", VALID, |cx| async move {
            let token = cx.token(false)?;
            expect_accepted(&cx, &Presented::bearer(&token), "Authorization: Bearer <valid token>").await
        }),
        Case::new("auth.missing_token", "auth", INVALID, |cx| async move {
            expect_auth_error(&cx, &Presented::none(), "upgrade without a token").await
        }),
        refused("garbage_token", Needs::Token, |_| Some("not-a-jwt".into())),
        refused("two_part_token", Needs::Token, |_| Some("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0".into())),
        refused("bad_base64_token", Needs::Token, |_| Some("!!!.???.***".into())),
        refused("bad_signature", Needs::Token, |_| {
            Some(jwt::mint(b"not-the-target-secret-0123456789", &Claims::for_subject("conform", 3600, false)))
        }),
        refused("alg_none_unsigned", Needs::Token, |_| {
            Some(jwt::mint_raw(r#"{"alg":"none","typ":"JWT"}"#, &claims(""), None))
        }),
        refused("alg_none_uppercase_unsigned", Needs::Token, |_| {
            Some(jwt::mint_raw(r#"{"alg":"NONE","typ":"JWT"}"#, &claims(""), None))
        }),
        refused("alg_none_with_valid_hs256_signature", Needs::Secret, |cx| {
            cx.creds.mint_raw(r#"{"alg":"none","typ":"JWT"}"#, &claims(""))
        }),
        refused("hs256_header_empty_signature", Needs::Token, |_| Some(jwt::mint_raw(hs256(), &claims(""), None))),
        refused("alg_hs512_header", Needs::Secret, |cx| cx.creds.mint_raw(r#"{"alg":"HS512","typ":"JWT"}"#, &claims(""))),
        refused("expired", Needs::Secret, |cx| {
            cx.creds.mint_raw(hs256(), &format!(r#"{{"sub":"conform","exp":{}}}"#, now() - 60 * LEEWAY_S))
        }),
        refused("not_yet_valid", Needs::Secret, |cx| {
            cx.creds.mint_raw(hs256(), &claims(&format!(r#","nbf":{}"#, now() + 60 * LEEWAY_S)))
        }),
        refused("no_sub", Needs::Secret, |cx| cx.creds.mint_raw(hs256(), &format!(r#"{{"exp":{}}}"#, now() + 3600))),
        refused("sub_not_a_string", Needs::Secret, |cx| {
            cx.creds.mint_raw(hs256(), &format!(r#"{{"sub":7,"exp":{}}}"#, now() + 3600))
        }),
        refused("no_exp", Needs::Secret, |cx| cx.creds.mint_raw(hs256(), r#"{"sub":"conform"}"#)),
        refused("oversize_token", Needs::Secret, |cx| {
            let padding = "x".repeat(MAX_TOKEN_BYTES);
            cx.creds.mint_raw(hs256(), &claims(&format!(r#","pad":"{padding}""#)))
        }),
        refused("claims_not_json", Needs::Secret, |cx| cx.creds.mint_raw(hs256(), "not json")),
        Case::new("auth.bearer_scheme_missing", "auth", INVALID, |cx| async move {
            let token = cx.token(false)?;
            let presented = Presented { authorization: Some(token), ..Presented::default() };
            expect_auth_error(&cx, &presented, "Authorization: <valid token without the Bearer scheme>").await
        }),
        Case::new("auth.query_token", "auth", QUERY, |cx| async move {
            let token = cx.token(false)?;
            expect_accepted(&cx, &Presented::query(&token), "GET /v1/ws?access_token=<valid token>").await
        })
        .extension(),
        Case::new("auth.header_wins_over_query_invalid_header", "auth", QUERY, |cx| async move {
            let token = cx.token(false)?;
            let presented = Presented { query_token: Some(token), ..Presented::bearer("not-a-jwt") };
            expect_auth_error(&cx, &presented, "Authorization: Bearer not-a-jwt and ?access_token=<valid token>").await
        })
        .extension(),
        Case::new("auth.header_wins_over_query_valid_header", "auth", QUERY, |cx| async move {
            let token = cx.token(false)?;
            let presented = Presented { query_token: Some("not-a-jwt".into()), ..Presented::bearer(&token) };
            expect_accepted(&cx, &presented, "Authorization: Bearer <valid token> and ?access_token=not-a-jwt").await
        })
        .extension(),
        Case::new("auth.token_expiry_mid_connection", "auth", EXPIRY, |cx| async move {
            let lifetime_s = 2;
            let exp = now() + lifetime_s;
            let token = cx
                .creds
                .mint(&Claims { sub: Some("conform".into()), exp: Some(exp), ..Claims::default() })
                .ok_or_else(|| Failure::new("-", "-", "a secret"))?;
            let sent = format!("a valid token whose exp is {lifetime_s} s away, then nothing");
            let expected = "`error` AUTH_ERROR \"Token expired\", then close 1008, within 1 s of exp (+ up to 5 s leeway)";
            let started = Instant::now();
            let (mut conn, first) = cx.upgrade(&Presented::bearer(&token)).await?;
            if !first.as_ref().is_ok_and(crate::probe::conn::is_established) {
                return Err(Failure::new(&sent, format!("{first:?}"), "connection_established first"));
            }
            let budget = Duration::from_secs((lifetime_s + LEEWAY_S + 2) as u64);
            let (seen, end) = conn.read_until_closed(budget).await;
            let took = started.elapsed();
            let received = format!(
                "{}[{} after {:.1}s]",
                seen.iter().map(|r| format!("{}\n", r.text)).collect::<String>(),
                end.describe(),
                took.as_secs_f64()
            );
            let error_ok = seen.iter().filter(|r| !r.is_event()).count() == 1
                && seen.iter().any(|r| r.is_error("AUTH_ERROR") && r.value["message"] == "Token expired" && r.violation.is_none());
            let early = (jwt::unix_now_s() as i64) < exp;
            if error_ok && end == End::Closed(Some(1008)) && !early { Ok(()) } else { Err(Failure::new(sent, received, expected)) }
        })
        .needs(Needs::Secret)
        .background(),
    ]
}
