//! What a conformance case is, the context it runs in, and the checks cases share.
//!
//! A case is a name, the PROTOCOL.md rule it checks (quoted, for failure reports), what it
//! needs (mintable tokens, a publish token, an extension) and an async function that returns
//! `Ok` or a [`Failure`] saying what was sent, what came back and what was expected.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::oracle::{Expectation, judge};
use crate::probe::conn::is_established;
use crate::probe::{Conn, Credentials, End, Observation, Presented, Received, Target, Upgrade};
use crate::protocol::ErrorCode;

/// Why a case did not hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub sent: String,
    pub received: String,
    pub expected: String,
}

impl Failure {
    pub fn new(sent: impl Into<String>, received: impl Into<String>, expected: impl Into<String>) -> Failure {
        Failure { sent: sent.into(), received: received.into(), expected: expected.into() }
    }
}

/// How a case ended when it ran.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseResult {
    Pass,
    Fail(Failure),
    /// Found at run time that it cannot be judged (e.g. the target lacks a prerequisite).
    Skip(String),
}

impl From<Result<(), Failure>> for CaseResult {
    fn from(result: Result<(), Failure>) -> CaseResult {
        match result {
            Ok(()) => CaseResult::Pass,
            Err(failure) => CaseResult::Fail(failure),
        }
    }
}

/// What a case needs from the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A valid token without special claims.
    Token,
    /// The secret, to mint expired, unsigned or otherwise special tokens.
    Secret,
    /// A token with the `publish` scope (publishing is an extension).
    Publish,
}

pub type CaseFn = Arc<dyn Fn(Arc<Ctx>) -> BoxFuture<'static, CaseResult> + Send + Sync>;

/// One named conformance case.
#[derive(Clone)]
pub struct Case {
    pub name: String,
    pub area: &'static str,
    /// The rule, quoted from PROTOCOL.md.
    pub rule: &'static str,
    /// Checks an *extension* of PROTOCOL.md; skipped under `--no-extensions`.
    pub extension: bool,
    pub needs: Needs,
    /// Waits on timers: runs alongside the others instead of in sequence.
    pub background: bool,
    pub run: CaseFn,
}

impl Case {
    pub fn new<F, Fut>(name: impl Into<String>, area: &'static str, rule: &'static str, f: F) -> Case
    where
        F: Fn(Arc<Ctx>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Failure>> + Send + 'static,
    {
        let f = Arc::new(f);
        Case {
            name: name.into(),
            area,
            rule,
            extension: false,
            needs: Needs::Token,
            background: false,
            run: Arc::new(move |cx| {
                let fut = f(cx);
                Box::pin(async move { CaseResult::from(fut.await) })
            }),
        }
    }

    pub fn extension(mut self) -> Case {
        self.extension = true;
        self
    }

    pub fn needs(mut self, needs: Needs) -> Case {
        self.needs = needs;
        if needs == Needs::Publish {
            self.extension = true;
        }
        self
    }

    pub fn background(mut self) -> Case {
        self.background = true;
        self
    }
}

/// Everything a case may use.
pub struct Ctx {
    pub target: Target,
    pub creds: Credentials,
    /// Whether extensions are checked (`--no-extensions` turns this off).
    pub extensions: bool,
    /// How long an answer that must come may take.
    pub answer_wait: Duration,
    /// How long to listen to be sure nothing more comes.
    pub quiet: Duration,
    /// The target's handshake deadline (slowloris defence).
    pub handshake_timeout: Duration,
    pub max_message_bytes: usize,
    /// Unique per run, so a case's events can be told from anyone else's.
    pub nonce: String,
}

impl Ctx {
    /// A valid token (subject `conform`), with the publish scope when asked.
    pub fn token(&self, publish: bool) -> Result<String, Failure> {
        self.creds
            .token("conform", publish)
            .ok_or_else(|| Failure::new("-", "-", "a token with the publish scope in the token file"))
    }

    /// A fresh connection past `connection_established`.
    pub async fn connect(&self, publish: bool) -> Result<Conn, Failure> {
        let presented = Presented::bearer(&self.token(publish)?);
        let (conn, first) = self.upgrade(&presented).await?;
        match first {
            Ok(message) if is_established(&message) => Ok(conn),
            Ok(message) => Err(Failure::new(
                "upgrade with a valid token",
                message.text,
                "connection_established as the first message",
            )),
            Err(end) => Err(Failure::new(
                "upgrade with a valid token",
                end.describe(),
                "connection_established as the first message",
            )),
        }
    }

    /// Upgrades with `presented` and reads the first message.
    pub async fn upgrade(&self, presented: &Presented) -> Result<(Conn, Result<Received, End>), Failure> {
        match Conn::open(&self.target, presented, self.answer_wait).await {
            Ok(Upgrade::Switched(mut conn)) => {
                let first = conn.next_message(self.answer_wait).await;
                Ok((conn, first))
            }
            Ok(Upgrade::Refused(response)) => Err(Failure::new(
                "WebSocket upgrade",
                format!("HTTP {}", response.status),
                "101 Switching Protocols",
            )),
            Err(error) => {
                Err(Failure::new("WebSocket upgrade", error.to_string(), "101 Switching Protocols"))
            }
        }
    }

    /// A unique marker for events of one case.
    pub fn marker(&self, case: &str) -> String {
        format!("{case}-{}", self.nonce)
    }
}

/// Sends `text` as one text message and judges the answer against `want`.
pub async fn send_expect(
    cx: &Ctx,
    conn: &mut Conn,
    text: &str,
    want: Expectation,
) -> Result<Observation, Failure> {
    let observation = conn.exchange(&[crate::wire::OutFrame::text(text)], cx.answer_wait).await;
    check(cx, text, &observation, &want)?;
    Ok(observation)
}

/// Judges one observation against `want` with the one oracle ([`crate::oracle::judge`]). Under
/// `--no-extensions` an extension code only has to be some `error`, and an unsubscribe
/// confirmation may be absent.
pub fn check(cx: &Ctx, sent: &str, obs: &Observation, want: &Expectation) -> Result<(), Failure> {
    judge(want, obs, cx.extensions).map_err(|mismatch| {
        Failure::new(truncate(sent, 600), obs.describe(), format!("{} ({})", want.explain(), mismatch.detail))
    })
}

/// Reads until the server closes and checks the close code (and that nothing but `errors`
/// with `allowed_error` came first). `None` as code accepts a close without a close frame too.
pub async fn expect_close(
    cx: &Ctx,
    conn: &mut Conn,
    sent: &str,
    codes: &[Option<u16>],
    allowed_error: Option<ErrorCode>,
) -> Result<(), Failure> {
    let (seen, end) = conn.read_until_closed(cx.answer_wait).await;
    let expected = format!(
        "the connection closed with {}{}",
        codes
            .iter()
            .map(|c| c.map_or("no close frame".to_string(), |c| c.to_string()))
            .collect::<Vec<_>>()
            .join(" or "),
        allowed_error.map(|c| format!(" (at most an `error` {c} before)")).unwrap_or_default()
    );
    let received =
        format!("{}[{}]", seen.iter().map(|r| format!("{}\n", r.text)).collect::<String>(), end.describe());
    let closed_ok = matches!(end, End::Closed(code) if codes.contains(&code));
    let messages_ok = seen
        .iter()
        .all(|r| allowed_error.is_some_and(|code| r.is_error(code.as_str()) && r.violation.is_none()));
    if closed_ok && messages_ok { Ok(()) } else { Err(Failure::new(truncate(sent, 600), received, expected)) }
}

/// Text shortened for reports.
pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}… ({} bytes in all)", &text[..at], text.len()),
        None => text.to_owned(),
    }
}
