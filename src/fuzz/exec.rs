//! Runs one fuzz case against a target and judges it with the oracles: the model's answer for
//! the message (code, `id` echo, timestamp, open or closed with which code), a bounded answer
//! time, the same answer whatever the framing, every server message valid, and for sequences
//! who must receive which event. Also reduces what came back to a normalized form for the
//! differential mode, and notes what was covered.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{Value, json};

use super::case::{Framing, FuzzCase, Step, TokenMutation};
use crate::oracle::upgrade::{UpgradeAnswer, judge_accepted, judge_refused};
use crate::oracle::{
    Answer, Expectation, Mismatch, Oracle, expect_message, expect_strict, is_ambiguous, judge,
};
use crate::probe::conn::is_established;
use crate::probe::{Conn, Credentials, End, Observation, Presented, Received, Target, Upgrade};
use crate::protocol::jwt::{self, Claims};
use crate::protocol::{ClientMessage, Filters, ObjectView, Topic, parse_client_message};

/// What running one case showed.
#[derive(Debug, Clone, Default)]
pub struct Ran {
    pub mismatch: Option<Mismatch>,
    /// The answers with timestamps, session ids and counts dropped, for the differential mode.
    pub normal: Vec<String>,
    /// Implementation-defined input: not compared in the differential mode.
    pub ambiguous: bool,
    /// Covered: `sent:<type>`, `answer:<type>`, `code:<CODE>`, `close:<code>`.
    pub covered: BTreeSet<String>,
    /// The case closed or lost a connection (worth a liveness probe).
    pub disruptive: bool,
    /// Notes that are not failures (`lone_surrogate_escape`), each once per case.
    pub notes: BTreeSet<&'static str>,
}

/// Runs cases on connections it keeps open between cases where the oracle allows.
pub struct Executor {
    pub target: Target,
    pub creds: Credentials,
    pub extensions: bool,
    pub answer: Duration,
    pub max_message_bytes: usize,
    plain: Option<Conn>,
    scoped: Option<Conn>,
    nonce: String,
    sequences: u64,
}

impl Executor {
    pub fn new(
        target: Target,
        creds: Credentials,
        extensions: bool,
        answer: Duration,
        max_message_bytes: usize,
        nonce: String,
    ) -> Executor {
        Executor {
            target,
            creds,
            extensions,
            answer,
            max_message_bytes,
            plain: None,
            scoped: None,
            nonce,
            sequences: 0,
        }
    }

    /// Drops the kept connections (after a server restart, or to start clean).
    pub async fn reset(&mut self) {
        for conn in [self.plain.take(), self.scoped.take()].into_iter().flatten() {
            conn.close().await;
        }
    }

    async fn connect(&self, publish: bool) -> Result<Conn, Mismatch> {
        let token = self
            .creds
            .token("fuzz", publish)
            .ok_or_else(|| Mismatch::new(Oracle::LivenessLost, "no token"))?;
        open_established(&self.target, &Presented::bearer(&token), self.answer).await
    }

    pub async fn run(&mut self, case: &FuzzCase) -> Ran {
        let mut ran = Ran::default();
        let result = match case {
            FuzzCase::Message { payload, binary, framing, publish_scope } => {
                self.message(payload, *binary, framing, *publish_scope, &mut ran).await
            }
            FuzzCase::Frames { frames, expect_close } => self.frames(frames, *expect_close, &mut ran).await,
            FuzzCase::Handshake { token } => self.handshake(token, &mut ran).await,
            FuzzCase::Sequence { steps } => self.sequence(steps, &mut ran).await,
        };
        ran.mismatch = result.err();
        ran
    }

    async fn message(
        &mut self,
        payload: &[u8],
        binary: bool,
        framing: &Framing,
        scoped: bool,
        ran: &mut Ran,
    ) -> Result<(), Mismatch> {
        let scoped = scoped && self.creds.token("fuzz", true).is_some();
        let expected = expect_message(payload, binary, scoped, self.max_message_bytes);
        ran.ambiguous = !binary && std::str::from_utf8(payload).is_ok_and(is_ambiguous);
        ran.covered.insert(format!("sent:{}", sent_type(payload, binary)));
        let slot = if scoped { &mut self.scoped } else { &mut self.plain };
        let mut conn = match slot.take() {
            Some(conn) if conn.closed.is_none() => conn,
            _ => self_connect(&self.target, &self.creds, scoped, self.answer).await?,
        };
        let closes = expected.may_close();
        let mut whole = None;
        if *framing != Framing::Whole && !closes {
            let obs = conn.exchange(&Framing::Whole.frames(payload, binary), self.answer).await;
            note(ran, &obs);
            judge(&expected, &obs, self.extensions).map_err(|m| with_expected(m, &expected))?;
            whole = Some(normalize(&obs));
        }
        let obs = conn.exchange(&framing.frames(payload, binary), self.answer).await;
        note(ran, &obs);
        ran.normal = normalize(&obs);
        let verdict = judge(&expected, &obs, self.extensions).map_err(|m| with_expected(m, &expected));
        if obs.end == End::Open {
            *(if scoped { &mut self.scoped } else { &mut self.plain }) = Some(conn);
        } else {
            ran.disruptive = !closes;
        }
        verdict?;
        if let Some(whole) = whole
            && whole != ran.normal
        {
            return Err(Mismatch::new(
                Oracle::Difference,
                format!("sent whole: {whole:?}; sent as {framing:?}: {:?}", ran.normal),
            ));
        }
        Ok(())
    }

    async fn frames(
        &mut self,
        frames: &[super::case::FrameSpec],
        code: u16,
        ran: &mut Ran,
    ) -> Result<(), Mismatch> {
        ran.covered.insert("sent:raw_frames".into());
        let mut conn = self.connect(false).await?;
        let out: Vec<_> = frames.iter().map(|f| f.to_frame()).collect();
        conn.send_frames(&out).await;
        let (seen, end) = conn.read_until_closed(self.answer).await;
        let obs =
            Observation { answers: seen, events: Vec::new(), sentinel: None, end, elapsed: self.answer };
        note(ran, &obs);
        ran.normal = normalize(&obs);
        let expected = Expectation::close(code);
        judge(&expected, &obs, self.extensions).map_err(|m| with_expected(m, &expected))
    }

    async fn handshake(&mut self, mutation: &TokenMutation, ran: &mut Ran) -> Result<(), Mismatch> {
        ran.covered.insert("sent:upgrade".into());
        let presented = present(mutation, &self.creds)
            .ok_or_else(|| Mismatch::new(Oracle::LivenessLost, "cannot make the token"))?;
        let mut conn = match Conn::open(&self.target, &presented, self.answer).await {
            Ok(Upgrade::Switched(conn)) => conn,
            Ok(Upgrade::Refused(r)) => {
                ran.normal = vec![format!("http:{}", r.status)];
                return Err(Mismatch::new(
                    Oracle::WrongAnswer,
                    format!(
                        "the upgrade was refused with HTTP {} (AUTH_ERROR over the WebSocket is required)",
                        r.status
                    ),
                ));
            }
            Err(e) => return Err(Mismatch::new(Oracle::LivenessLost, format!("upgrade failed: {e}"))),
        };
        let about = |m: Mismatch| Mismatch { detail: format!("token {mutation:?}: {}", m.detail), ..m };
        if mutation.expected() == UpgradeAnswer::Established {
            let first = conn.next_message(self.answer).await;
            ran.normal = vec![match &first {
                Ok(m) => m.kind.clone().unwrap_or_default(),
                Err(end) => format!("{end:?}"),
            }];
            conn.close().await;
            return judge_accepted(&first).map_err(about);
        }
        // An invalid token must not get past the first message: judge that at once.
        let first = conn.next_message(self.answer).await;
        if let Ok(m) = &first
            && (is_established(m) || m.is_event())
        {
            conn.close().await;
            return judge_refused(std::slice::from_ref(m), End::Open).map_err(about);
        }
        let (mut seen, end) = match first {
            Ok(m) => {
                let (rest, end) = conn.read_until_closed(self.answer).await;
                (std::iter::once(m).chain(rest).collect::<Vec<_>>(), end)
            }
            Err(end) => (Vec::new(), end),
        };
        seen.retain(|m| !m.text.is_empty());
        let obs = Observation {
            answers: seen.clone(),
            events: Vec::new(),
            sentinel: None,
            end,
            elapsed: self.answer,
        };
        note(ran, &obs);
        ran.normal = normalize(&obs);
        judge_refused(&seen, end).map_err(about)
    }

    async fn sequence(&mut self, steps: &[Step], ran: &mut Ran) -> Result<(), Mismatch> {
        ran.covered.insert("sent:sequence".into());
        self.sequences += 1;
        let marker = format!("fz-{}-{}", self.nonce, self.sequences);
        let mut publisher = self.connect(true).await?;
        let mut conns: Vec<Conn> = Vec::new();
        for _ in 0..3 {
            conns.push(self.connect(false).await?);
        }
        let mut subs: Vec<HashMap<Topic, Filters>> = vec![HashMap::new(); 3];
        let (mut expected, mut got): (Vec<Vec<u64>>, Vec<Vec<u64>>) =
            (vec![Vec::new(); 3], vec![Vec::new(); 3]);
        let pick = |obs: &[Received], got: &mut Vec<u64>| {
            got.extend(
                obs.iter()
                    .filter(|r| r.is_event() && r.value["data"]["fz"] == marker.as_str())
                    .filter_map(|r| r.value["data"]["seq"].as_u64()),
            )
        };
        let mut seq = 0u64;
        for step in steps {
            match step {
                Step::Subscribe { conn, text } => {
                    let c = usize::from(conn.saturating_sub(1)).min(2);
                    let obs =
                        conns[c].exchange(&[crate::wire::OutFrame::text(text.as_str())], self.answer).await;
                    pick(&obs.events, &mut got[c]);
                    let want = expect_strict(text, false);
                    judge(&want, &obs, self.extensions).map_err(|m| with_expected(m, &want))?;
                    if let Ok(ClientMessage::Subscribe(s)) = parse_client_message(text, false) {
                        for topic in s.topics {
                            subs[c].insert(topic, s.filters.clone());
                        }
                    }
                }
                Step::Unsubscribe { conn, topics } => {
                    let c = usize::from(conn.saturating_sub(1)).min(2);
                    let text = json!({"type": "unsubscribe", "topics": topics, "id": "u"}).to_string();
                    let obs =
                        conns[c].exchange(&[crate::wire::OutFrame::text(text.as_str())], self.answer).await;
                    pick(&obs.events, &mut got[c]);
                    let want = expect_strict(&text, false);
                    judge(&want, &obs, self.extensions).map_err(|m| with_expected(m, &want))?;
                    for topic in topics.iter().filter_map(|t| Topic::from_name(t)) {
                        subs[c].remove(&topic);
                    }
                }
                Step::Reconnect { conn } => {
                    let c = usize::from(conn.saturating_sub(1)).min(2);
                    let obs = conns[c].sync(self.answer).await;
                    pick(&obs.events, &mut got[c]);
                    let fresh = self.connect(false).await?;
                    std::mem::replace(&mut conns[c], fresh).close().await;
                    subs[c].clear();
                }
                Step::Publish { topic, severity, status, device } => {
                    seq += 1;
                    let data = sequence_event(topic, severity, status, device, &marker, seq);
                    let text = json!({"type": "publish", "topic": topic, "event": event_kind(topic), "data": data, "id": "p"}).to_string();
                    let obs =
                        publisher.exchange(&[crate::wire::OutFrame::text(text.as_str())], self.answer).await;
                    let want = Expectation::one(Answer::PublishAck { id: "p".into(), delivered: None });
                    judge(&want, &obs, self.extensions).map_err(|m| with_expected(m, &want))?;
                    let data_text = data.to_string();
                    let view = ObjectView::parse(&data_text).unwrap_or_default();
                    for (c, held) in subs.iter().enumerate() {
                        if Topic::from_name(topic)
                            .and_then(|t| held.get(&t))
                            .is_some_and(|f| f.admits_data(&view))
                        {
                            expected[c].push(seq);
                        }
                    }
                }
            }
        }
        for (c, conn) in conns.iter_mut().enumerate() {
            let obs = conn.sync(self.answer).await;
            pick(&obs.events, &mut got[c]);
            let deadline = std::time::Instant::now() + self.answer;
            while got[c].len() < expected[c].len() && std::time::Instant::now() < deadline {
                let (more, end) = conn.collect_for(Duration::from_millis(50)).await;
                pick(&more, &mut got[c]);
                if end != End::Open {
                    break;
                }
            }
        }
        for conn in conns {
            conn.close().await;
        }
        publisher.close().await;
        ran.normal = got.iter().map(|g| format!("{g:?}")).collect();
        for c in 0..3 {
            if got[c] != expected[c] {
                return Err(Mismatch::new(
                    Oracle::Delivery,
                    format!(
                        "connection {}: events {:?} arrived, {:?} were due (exactly once, in order, per its subscriptions and filters)",
                        c + 1,
                        got[c],
                        expected[c]
                    ),
                ));
            }
        }
        Ok(())
    }
}

async fn self_connect(
    target: &Target,
    creds: &Credentials,
    publish: bool,
    wait: Duration,
) -> Result<Conn, Mismatch> {
    let token =
        creds.token("fuzz", publish).ok_or_else(|| Mismatch::new(Oracle::LivenessLost, "no token"))?;
    open_established(target, &Presented::bearer(&token), wait).await
}

/// Opens a connection that must get `connection_established`.
pub async fn open_established(
    target: &Target,
    presented: &Presented,
    wait: Duration,
) -> Result<Conn, Mismatch> {
    match Conn::open(target, presented, wait).await {
        Ok(Upgrade::Switched(mut conn)) => match conn.next_message(wait).await {
            Ok(m) if is_established(&m) => Ok(conn),
            other => Err(Mismatch::new(
                Oracle::LivenessLost,
                format!("a valid token did not get connection_established: {other:?}"),
            )),
        },
        Ok(Upgrade::Refused(r)) => {
            Err(Mismatch::new(Oracle::LivenessLost, format!("upgrade refused with HTTP {}", r.status)))
        }
        Err(e) => Err(Mismatch::new(Oracle::LivenessLost, format!("cannot connect: {e}"))),
    }
}

fn event_kind(topic: &str) -> &'static str {
    match topic {
        "devices" => "device_update",
        "alerts" => "alert_created",
        _ => "system_status",
    }
}

fn sequence_event(topic: &str, severity: &str, status: &str, device: &str, marker: &str, seq: u64) -> Value {
    match topic {
        "devices" => {
            json!({"id": device, "status": status, "last_seen": "2024-03-20T10:00:00Z", "severity": severity, "fz": marker, "seq": seq})
        }
        "alerts" => {
            json!({"id": "a", "title": "t", "severity": severity, "device_id": device, "fz": marker, "seq": seq})
        }
        _ => {
            json!({"status": "healthy", "metrics": {"cpu_usage": 1, "memory_usage": 2}, "fz": marker, "seq": seq})
        }
    }
}

/// How a token mutation is presented; `None` when the credentials cannot make it.
pub fn present(mutation: &TokenMutation, creds: &Credentials) -> Option<Presented> {
    let valid = || creds.token("fuzz", false);
    let now = jwt::unix_now_s() as i64;
    let hs = r#"{"alg":"HS256","typ":"JWT"}"#;
    let claims = format!(r#"{{"sub":"fuzz","exp":{}}}"#, now + 3600);
    let bearer = |t: String| Some(Presented::bearer(&t));
    match mutation {
        TokenMutation::Valid => bearer(valid()?),
        TokenMutation::ValidInQuery => Some(Presented::query(&valid()?)),
        TokenMutation::Missing => Some(Presented::none()),
        TokenMutation::Garbage(g) => bearer(g.clone()),
        TokenMutation::Truncated(n) => {
            let t = valid()?;
            bearer(t[..t.len().saturating_sub((*n).max(1))].to_owned())
        }
        TokenMutation::FlippedSignature(i) => {
            let mut t = valid()?.into_bytes();
            let sig_start = t.iter().rposition(|&b| b == b'.')? + 1;
            let sig_len = t.len() - sig_start;
            let at = sig_start + i % sig_len.saturating_sub(1).max(1);
            t[at] = if t[at] == b'A' { b'B' } else { b'A' };
            bearer(String::from_utf8(t).ok()?)
        }
        TokenMutation::AlgNone => bearer(jwt::mint_raw(r#"{"alg":"none","typ":"JWT"}"#, &claims, None)),
        TokenMutation::AlgNoneSigned => bearer(creds.mint_raw(r#"{"alg":"none","typ":"JWT"}"#, &claims)?),
        TokenMutation::Expired => {
            bearer(creds.mint_raw(hs, &format!(r#"{{"sub":"fuzz","exp":{}}}"#, now - 300))?)
        }
        TokenMutation::NotYetValid => bearer(
            creds.mint_raw(hs, &format!(r#"{{"sub":"fuzz","exp":{},"nbf":{}}}"#, now + 3600, now + 300))?,
        ),
        TokenMutation::NoSub => bearer(creds.mint_raw(hs, &format!(r#"{{"exp":{}}}"#, now + 3600))?),
        TokenMutation::NoExp => bearer(creds.mint_raw(hs, r#"{"sub":"fuzz"}"#)?),
        TokenMutation::Oversize => {
            bearer(creds.mint(&Claims {
                scope: Some("x".repeat(9000)),
                ..Claims::for_subject("fuzz", 3600, false)
            })?)
        }
        TokenMutation::NotBearer => Some(Presented { authorization: Some(valid()?), ..Presented::default() }),
        TokenMutation::BadHeaderGoodQuery => {
            Some(Presented { query_token: Some(valid()?), ..Presented::bearer("x.y.z") })
        }
        TokenMutation::GoodHeaderBadQuery => {
            Some(Presented { query_token: Some("x.y.z".into()), ..Presented::bearer(&valid()?) })
        }
    }
}

fn with_expected(mut m: Mismatch, expected: &Expectation) -> Mismatch {
    m.detail = format!("{}; expected {}", m.detail, expected.explain());
    m
}

fn sent_type(payload: &[u8], binary: bool) -> String {
    if binary {
        return "binary".into();
    }
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(map)) => match map.get("type") {
            Some(Value::String(t)) if ["subscribe", "unsubscribe", "publish"].contains(&t.as_str()) => {
                t.clone()
            }
            Some(_) => "unknown_type".into(),
            None => "no_type".into(),
        },
        Ok(_) => "not_an_object".into(),
        Err(_) if std::str::from_utf8(payload).is_err() => "invalid_utf8".into(),
        Err(_) => "not_json".into(),
    }
}

fn note(ran: &mut Ran, obs: &Observation) {
    if obs.answers.iter().chain(&obs.events).chain(&obs.sentinel).any(|r| r.lone_surrogates) {
        ran.notes.insert("lone_surrogate_escape");
    }
    for r in obs.answers.iter().chain(&obs.events) {
        ran.covered.insert(format!("answer:{}", r.kind.as_deref().unwrap_or("?")));
        if let Some(code) = &r.code {
            ran.covered.insert(format!("code:{code}"));
        }
    }
    if let End::Closed(code) = obs.end {
        ran.covered.insert(format!("close:{}", code.map_or("1006".into(), |c| c.to_string())));
    }
}

/// The answers without what legitimately differs between servers (timestamps, session ids, counts).
pub fn normalize(obs: &Observation) -> Vec<String> {
    let mut out: Vec<String> = obs
        .answers
        .iter()
        .map(|r| {
            let topics = r.value.get("topics").map(|t| t.to_string()).unwrap_or_default();
            format!(
                "{}|{}|{}|{}",
                r.kind.as_deref().unwrap_or("?"),
                r.code.as_deref().unwrap_or(""),
                r.id.as_deref().unwrap_or(""),
                topics
            )
        })
        .collect();
    out.push(match obs.end {
        End::Open => "open".into(),
        End::Closed(code) => format!("closed:{code:?}"),
        End::Silent => "silent".into(),
    });
    out
}

impl Executor {
    /// The liveness probe: a fresh client connects, subscribes and (with the publish extension)
    /// receives an event published for it.
    pub async fn probe(&mut self, tag: &str) -> Result<(), Mismatch> {
        let lost = |what: String| Mismatch::new(Oracle::LivenessLost, what);
        let mut client = self
            .connect(false)
            .await
            .map_err(|m| lost(format!("a fresh client could not connect: {}", m.detail)))?;
        let device = format!("probe-{}-{tag}", self.nonce);
        let subscribe = json!({"type": "subscribe", "topics": ["alerts"], "filters": {"device_id": [device]}, "id": "probe"}).to_string();
        let obs = client.exchange(&[crate::wire::OutFrame::text(subscribe.as_str())], self.answer).await;
        if !obs.answers.iter().any(|a| a.kind.as_deref() == Some("subscription_confirmed")) {
            client.close().await;
            return Err(lost(format!("a fresh client's subscribe got {}", obs.describe())));
        }
        if self.extensions && self.creds.token("fuzz", true).is_some() {
            let mut publisher = self
                .connect(true)
                .await
                .map_err(|m| lost(format!("a fresh publisher could not connect: {}", m.detail)))?;
            let data = json!({"id": "probe", "title": "probe", "severity": "low", "device_id": device});
            let text = json!({"type": "publish", "topic": "alerts", "event": "alert_created", "data": data})
                .to_string();
            publisher.send_text(&text).await;
            publisher.close().await;
            let deadline = std::time::Instant::now() + self.answer;
            loop {
                match client.next_message(deadline.saturating_duration_since(std::time::Instant::now())).await
                {
                    Ok(m) if m.is_event() && m.value["data"]["device_id"] == device.as_str() => break,
                    Ok(_) => {}
                    Err(end) => {
                        return Err(lost(format!(
                            "a fresh subscriber did not receive the probe event: {}",
                            end.describe()
                        )));
                    }
                }
            }
        }
        client.close().await;
        Ok(())
    }
}
