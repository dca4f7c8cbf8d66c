//! One checked connection to a target: the upgrade with a chosen way of presenting the token,
//! sending exact frames, and reading everything the server answers as an [`Observation`].
//!
//! Answers are delimited with a *sentinel*: after the input, the connection sends a subscribe
//! to an unknown topic with a unique `id`. PROTOCOL.md requires exactly one `error` answer to it,
//! with the `id` echoed, on an open connection, and nothing to change; everything read before
//! it is the input's answer. So one round trip tells what the input earned, that nothing more
//! came, and that the connection is still open.
//!
//! **Every connection keeps reading while it is open.** A reader task per connection reads the
//! socket all the time, answers the server's pings at once and hands every other frame to the
//! holder through a bounded inbox; so a connection held between steps (a canary, a fuzz
//! executor's kept connection, a conformance case's second client) is never closed for
//! unanswered pings (§1), however long the holder does something else. Only a case that plays a
//! client that stops reading asks for it ([`Conn::stop_reading`]); a holder that leaves
//! [`INBOX_FRAMES`] frames unread is such a client too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinHandle;

use super::target::Target;
use crate::protocol::data::raw_str_lossy;
use crate::protocol::json_scan;
use crate::protocol::server_message::has_lone_surrogates;
use crate::protocol::{ServerMessage, ViolationKind, parse_server_message};
use crate::tls::{ClientStream, StampedTcp};
use crate::wire::{
    self, FrameReader, FrameWriter, InFrame, OutFrame, RawSocket, Read, UpgradeResponse, WireError, opcode,
};

/// Frames the reader task holds for the holder before it stops reading (the server's own
/// per-connection queue bound, §5.5).
pub const INBOX_FRAMES: usize = 4096;

/// How the token is presented on the upgrade request.
#[derive(Debug, Clone, Default)]
pub struct Presented {
    /// The whole `Authorization` header value, when one is sent.
    pub authorization: Option<String>,
    /// `access_token` query parameter (percent-encoded here).
    pub query_token: Option<String>,
    /// More headers, as given.
    pub extra_headers: Vec<(String, String)>,
}

impl Presented {
    pub fn none() -> Presented {
        Presented::default()
    }

    pub fn bearer(token: &str) -> Presented {
        Presented { authorization: Some(format!("Bearer {token}")), ..Presented::default() }
    }

    pub fn query(token: &str) -> Presented {
        Presented { query_token: Some(token.to_owned()), ..Presented::default() }
    }
}

/// A server message as read, summarised for oracles and reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The text (lossy when it was not UTF-8).
    pub text: String,
    pub value: Value,
    /// `type`, when the message had a string one.
    pub kind: Option<String>,
    pub code: Option<String>,
    pub id: Option<String>,
    /// Why the message is not valid per PROTOCOL.md, if it is not.
    pub violation: Option<String>,
    pub violation_kind: Option<ViolationKind>,
    /// The text has a string escape that decodes to no Unicode scalar value (valid by RFC
    /// 8259's grammar; worth a note, not a failure).
    pub lone_surrogates: bool,
}

impl Received {
    pub fn from_text(text: String) -> Received {
        let violation = parse_server_message(&text).err();
        // Judged by RFC 8259's grammar: a lone surrogate escape (an echo of a client's own
        // implementation-defined input) reads as U+FFFD, here as in `parse_server_message`.
        let lone_surrogates = has_lone_surrogates(&text);
        let value: Value =
            serde_json::from_str(&json_scan::replace_lone_surrogates(&text)).unwrap_or(Value::Null);
        // Read the top-level fields from the raw members, so a number serde_json cannot hold
        // (1e400 in an event's data) does not hide what the message is.
        let view = crate::protocol::ObjectView::parse(&text).ok();
        let field = |name: &str| {
            view.as_ref().and_then(|v| v.get(name)).and_then(raw_str_lossy).map(|s| s.into_owned())
        };
        let (kind, code, id) = (field("type"), field("code"), field("id"));
        drop(view);
        Received {
            kind,
            code,
            id,
            lone_surrogates,
            violation_kind: violation.as_ref().map(|v| v.kind),
            violation: violation.map(|v| v.to_string()),
            value,
            text,
        }
    }

    fn binary(payload: &[u8]) -> Received {
        Received {
            text: format!("<binary frame of {} bytes>", payload.len()),
            value: Value::Null,
            kind: None,
            code: None,
            id: None,
            violation: Some("the server sent a binary frame".into()),
            lone_surrogates: false,
            violation_kind: Some(ViolationKind::BinaryFrame),
        }
    }

    pub fn is_event(&self) -> bool {
        self.kind.as_deref() == Some("event")
    }

    pub fn is_error(&self, code: &str) -> bool {
        self.kind.as_deref() == Some("error") && self.code.as_deref() == Some(code)
    }
}

/// How a connection stood at the end of an observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Open, and the sentinel (if one was sent) was answered.
    Open,
    /// The server closed: its close code, or `None` when it closed without a close frame (1006).
    Closed(Option<u16>),
    /// Nothing more came within the answer bound and the connection did not close.
    Silent,
}

impl End {
    pub fn describe(self) -> String {
        match self {
            End::Open => "connection open".into(),
            End::Closed(Some(code)) => format!("closed with {code}"),
            End::Closed(None) => "closed without a close frame (1006)".into(),
            End::Silent => "no answer within the bound (hang)".into(),
        }
    }
}

/// Everything the server sent in answer to one input.
#[derive(Debug, Clone)]
pub struct Observation {
    /// Messages other than events, in order.
    pub answers: Vec<Received>,
    pub events: Vec<Received>,
    /// The sentinel's own answer, when a sentinel was sent and answered.
    pub sentinel: Option<Received>,
    pub end: End,
    pub elapsed: Duration,
}

impl Observation {
    /// The answers, one per line, for reports.
    pub fn describe(&self) -> String {
        let mut lines: Vec<String> = self.answers.iter().map(|r| r.text.clone()).collect();
        if !self.events.is_empty() {
            lines.push(format!("({} event(s))", self.events.len()));
        }
        lines.push(format!("[{}]", self.end.describe()));
        lines.join("\n")
    }
}

/// A raw, checked connection.
pub struct Conn {
    writer: Arc<Mutex<Writer>>,
    /// Every frame but pings, then `Eof` when the stream ended.
    inbox: mpsc::Receiver<Inbound>,
    /// `true` while the reader task must not read (a client that stops reading).
    hold: watch::Sender<bool>,
    reader: JoinHandle<()>,
    /// Set once the server closed; later reads return at once.
    pub closed: Option<Option<u16>>,
    next_sentinel: u64,
    /// Partial text of a fragmented server message.
    partial: Option<Vec<u8>>,
}

/// The writing side, shared by the holder and the reader task (which answers pings).
struct Writer {
    frames: FrameWriter<WriteHalf<ClientStream>>,
    /// A close frame went out: the reader does not answer the server's close with another.
    close_sent: bool,
}

impl Writer {
    async fn send(&mut self, frame: &OutFrame) -> Result<(), WireError> {
        self.close_sent |= frame.opcode == opcode::CLOSE;
        self.frames.send(frame).await
    }
}

/// What the reader task hands the holder.
enum Inbound {
    Frame(InFrame),
    /// The server closed the TCP connection, or reading it failed.
    Eof,
}

/// The result of an upgrade attempt.
pub enum Upgrade {
    /// `101 Switching Protocols`.
    Switched(Conn),
    /// Any other status.
    Refused(UpgradeResponse),
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Conn {
    /// Opens a connection to the target (TCP, and TLS for `wss://`) and sends the upgrade request.
    pub async fn open(target: &Target, presented: &Presented, wait: Duration) -> Result<Upgrade, WireError> {
        let request = upgrade_request(target, presented);
        let stream = open_stream(target, wait).await?;
        let (sock, response) = RawSocket::upgrade(stream, request.as_bytes(), wait).await?;
        Ok(Conn::after_upgrade(sock, response))
    }

    /// Wraps a socket whose upgrade response has been read, and starts reading it.
    pub fn after_upgrade(sock: RawSocket<ClientStream>, response: UpgradeResponse) -> Upgrade {
        if response.status != 101 {
            return Upgrade::Refused(response);
        }
        let (read, write) = sock.split();
        let writer = Arc::new(Mutex::new(Writer { frames: write, close_sent: false }));
        let (tx, inbox) = mpsc::channel(INBOX_FRAMES);
        let (hold, held) = watch::channel(false);
        let reader = tokio::spawn(read_loop(read, Arc::clone(&writer), tx, held));
        Upgrade::Switched(Conn { writer, inbox, hold, reader, closed: None, next_sentinel: 0, partial: None })
    }

    /// Sends frames as given, one after another (a pong may go between them, as RFC 6455 §5.4
    /// allows); `false` when a write failed. A failed write does not end the observation: the
    /// server may have answered before it closed (a 1009 close arrives while a large message
    /// over TLS is still being written), so the next read finds out how it closed.
    pub async fn send_frames(&mut self, frames: &[OutFrame]) -> bool {
        for frame in frames {
            if self.writer.lock().await.send(frame).await.is_err() {
                return false;
            }
        }
        true
    }

    pub async fn send_text(&mut self, text: &str) -> bool {
        self.send_frames(&[OutFrame::text(text)]).await
    }

    /// Sends raw bytes in one write; `false` when the write failed (see [`Conn::send_frames`]).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> bool {
        self.writer.lock().await.frames.send_bytes(bytes).await.is_ok()
    }

    /// Stops reading the socket, as a client that does not read (§5.5): what the server sends
    /// stays in the kernel's buffers, and its pings go unanswered. The next read resumes.
    pub fn stop_reading(&mut self) {
        self.hold.send_replace(true);
    }

    /// The next frame within `deadline`: `None` when nothing came in time.
    async fn next_frame(&mut self, deadline: tokio::time::Instant) -> Option<Inbound> {
        self.hold.send_if_modified(|held| std::mem::replace(held, false));
        // A reader task that is gone (aborted or panicked) is a connection that ended.
        tokio::time::timeout_at(deadline, self.inbox.recv())
            .await
            .ok()
            .map(|frame| frame.unwrap_or(Inbound::Eof))
    }

    /// The next message within `wait`: `Ok(message)`, or `Err(end)` when the connection closed
    /// or nothing came.
    pub async fn next_message(&mut self, wait: Duration) -> Result<Received, End> {
        if let Some(code) = self.closed {
            return Err(End::Closed(code));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = match self.next_frame(deadline).await {
                Some(Inbound::Frame(frame)) => frame,
                None => return Err(End::Silent),
                Some(Inbound::Eof) => {
                    self.closed = Some(None);
                    return Err(End::Closed(None));
                }
            };
            match frame.opcode {
                // The reader task answered it (and echoed a close before handing it over).
                opcode::PING | opcode::PONG => {}
                opcode::CLOSE => {
                    let code = frame.close_code();
                    self.closed = Some(code);
                    return Err(End::Closed(code));
                }
                opcode::TEXT | opcode::CONTINUATION => {
                    let mut bytes = match (frame.opcode, self.partial.take()) {
                        (opcode::CONTINUATION, Some(mut partial)) => {
                            partial.extend_from_slice(&frame.payload);
                            partial
                        }
                        _ => frame.payload,
                    };
                    if !frame.fin {
                        self.partial = Some(std::mem::take(&mut bytes));
                        continue;
                    }
                    return Ok(Received::from_text(String::from_utf8_lossy(&bytes).into_owned()));
                }
                _ => return Ok(Received::binary(&frame.payload)),
            }
        }
    }

    /// Reads until the server closes (or `wait` passes); messages read meanwhile are returned.
    pub async fn read_until_closed(&mut self, wait: Duration) -> (Vec<Received>, End) {
        let deadline = Instant::now() + wait;
        let mut seen = Vec::new();
        loop {
            match self.next_message(deadline.saturating_duration_since(Instant::now())).await {
                Ok(message) => seen.push(message),
                Err(end) => return (seen, end),
            }
        }
    }

    /// Reads for `window` and returns whatever came (connection state in `End`).
    pub async fn collect_for(&mut self, window: Duration) -> (Vec<Received>, End) {
        let deadline = Instant::now() + window;
        let mut seen = Vec::new();
        loop {
            match self.next_message(deadline.saturating_duration_since(Instant::now())).await {
                Ok(message) => seen.push(message),
                Err(End::Silent) => return (seen, End::Open),
                Err(end) => return (seen, end),
            }
        }
    }

    /// A fresh sentinel: (its text, the token its answer carries).
    fn sentinel(&mut self) -> (String, String) {
        self.next_sentinel += 1;
        let token = format!("zz-sync-{}", self.next_sentinel);
        (format!(r#"{{"type":"subscribe","topics":["{token}"],"id":"{token}"}}"#), token)
    }

    /// Sends `frames`, then a sentinel, and reads the answer to both within `wait`.
    pub async fn exchange(&mut self, frames: &[OutFrame], wait: Duration) -> Observation {
        let started = Instant::now();
        let (sentinel, token) = self.sentinel();
        let mut bytes = Vec::new();
        for frame in frames.iter().chain(std::iter::once(&OutFrame::text(sentinel))) {
            bytes.extend_from_slice(&frame.encode(rand::random()));
        }
        self.send_raw(&bytes).await;
        self.read_to_sentinel(&token, started, wait).await
    }

    /// Sends a sentinel alone and reads up to its answer: what was pending, and whether the
    /// connection is still open and answering.
    pub async fn sync(&mut self, wait: Duration) -> Observation {
        self.exchange(&[], wait).await
    }

    async fn read_to_sentinel(&mut self, token: &str, started: Instant, wait: Duration) -> Observation {
        let deadline = started + wait;
        let (mut answers, mut events) = (Vec::new(), Vec::new());
        loop {
            match self.next_message(deadline.saturating_duration_since(Instant::now())).await {
                Ok(message) if is_sentinel_answer(&message, token) => {
                    return Observation {
                        answers,
                        events,
                        sentinel: Some(message),
                        end: End::Open,
                        elapsed: started.elapsed(),
                    };
                }
                Ok(message) if message.is_event() => events.push(message),
                Ok(message) => answers.push(message),
                Err(end) => {
                    return Observation { answers, events, sentinel: None, end, elapsed: started.elapsed() };
                }
            }
        }
    }

    /// Sends a normal close (1000) and waits briefly for the server's close.
    pub async fn close(mut self) {
        if self.closed.is_none() && self.writer.lock().await.send(&OutFrame::close(1000)).await.is_ok() {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
            while let Some(Inbound::Frame(frame)) = self.next_frame(deadline).await {
                if frame.opcode == opcode::CLOSE {
                    break;
                }
            }
        }
    }

    /// Sends a ping with `payload` and returns the payload of the pong that answers it (other
    /// frames read meanwhile are dropped).
    pub async fn ping(&mut self, payload: &[u8], wait: Duration) -> Option<Vec<u8>> {
        self.writer.lock().await.send(&OutFrame::new(opcode::PING, payload.to_vec())).await.ok()?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match self.next_frame(deadline).await? {
                Inbound::Frame(f) if f.opcode == opcode::PONG => return Some(f.payload),
                Inbound::Frame(f) if f.opcode == opcode::CLOSE => {
                    self.closed = Some(f.close_code());
                    return None;
                }
                Inbound::Frame(_) => continue,
                Inbound::Eof => {
                    self.closed = Some(None);
                    return None;
                }
            }
        }
    }
}

/// The reader task of one connection: reads every frame as it arrives, answers pings with
/// pongs and a close with a close, and hands the rest to the holder; ends with the stream, when
/// the holder is gone, or when the connection is dropped (aborted).
async fn read_loop(
    mut read: FrameReader<ReadHalf<ClientStream>>,
    writer: Arc<Mutex<Writer>>,
    inbox: mpsc::Sender<Inbound>,
    mut held: watch::Receiver<bool>,
) {
    loop {
        if held.wait_for(|held| !*held).await.is_err() {
            return;
        }
        let frame = match read.read().await {
            Ok(Read::Frame(frame)) => frame,
            Ok(Read::Eof | Read::TimedOut) | Err(_) => {
                let _ = inbox.send(Inbound::Eof).await;
                return;
            }
        };
        match frame.opcode {
            opcode::PING => {
                let _ = writer.lock().await.send(&OutFrame::new(opcode::PONG, frame.payload)).await;
                continue;
            }
            opcode::CLOSE => {
                let mut writer = writer.lock().await;
                if !writer.close_sent {
                    let _ = writer.send(&OutFrame::close(frame.close_code().unwrap_or(1000))).await;
                }
                drop(writer);
                let _ = inbox.send(Inbound::Frame(frame)).await;
                return;
            }
            _ => {}
        }
        if inbox.send(Inbound::Frame(frame)).await.is_err() {
            return;
        }
    }
}

/// Whether `message` answers the sentinel `token`: an error with its id, or (for a server that
/// does not echo ids) an error whose text names the token.
fn is_sentinel_answer(message: &Received, token: &str) -> bool {
    message.kind.as_deref() == Some("error")
        && (message.id.as_deref() == Some(token)
            || (message.id.is_none()
                && message.value.get("message").and_then(Value::as_str).is_some_and(|m| m.contains(token))))
}

/// A byte stream to the target: TCP, and TLS for `wss://`, within `wait` each.
pub async fn open_stream(target: &Target, wait: Duration) -> Result<ClientStream, WireError> {
    let tcp = tokio::time::timeout(wait, TcpStream::connect(&target.authority))
        .await
        .map_err(|_| WireError::Timeout(wait))?
        .map_err(|source| WireError::Connect { addr: target.authority.clone(), cause: source })?;
    let _ = tcp.set_nodelay(true);
    secure(tcp, target, wait).await
}

/// Opens one connection (TCP, and the TLS handshake for `wss://`) before any case runs, so an
/// unreachable target or a TLS failure stops the run as what it is (exit 3) instead of
/// failing every case.
pub async fn preflight(target: &Target, wait: Duration) -> Result<(), PreflightError> {
    match open_stream(target, wait).await {
        Ok(_) => Ok(()),
        Err(WireError::Tls(source)) => Err(PreflightError::Tls(source)),
        Err(other) => Err(PreflightError::Unreachable(other)),
    }
}

/// Why [`preflight`] failed.
#[derive(Debug)]
pub enum PreflightError {
    Unreachable(WireError),
    Tls(crate::tls::TlsError),
}

/// Runs the target's TLS handshake on a connected socket (nothing for `ws://`).
pub async fn secure(tcp: TcpStream, target: &Target, wait: Duration) -> Result<ClientStream, WireError> {
    match &target.tls {
        None => Ok(ClientStream::from(tcp)),
        Some((tls, name)) => {
            let (stream, _) = tls.handshake(StampedTcp::plain(tcp), name, wait).await?;
            Ok(ClientStream::from(stream))
        }
    }
}

/// The upgrade request for `presented`.
pub fn upgrade_request(target: &Target, presented: &Presented) -> String {
    let query = presented
        .query_token
        .as_deref()
        .map(|t| form_urlencoded::Serializer::new(String::new()).append_pair("access_token", t).finish());
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(value) = &presented.authorization {
        headers.push(("Authorization", value));
    }
    for (name, value) in &presented.extra_headers {
        headers.push((name, value));
    }
    wire::upgrade_request(&target.authority, &target.request_path(query.as_deref()), &headers)
}

/// Whether the message is a valid `connection_established`.
pub fn is_established(message: &Received) -> bool {
    matches!(parse_server_message(&message.text), Ok(ServerMessage::ConnectionEstablished { .. }))
}
