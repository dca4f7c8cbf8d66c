//! Cluster mode: holds a client's Close frame back from the WebSocket layer until the connection
//! has received every event it is still owed.
//!
//! A client that closes right after an event was acknowledged to a publisher on another process
//! is owed that event (§5 rule 1: the subscription holds until the server processes the close).
//! In one process the event is in the connection's queue before the ack is sent; in a cluster it
//! may still be on its way from the broker. tungstenite answers a Close as soon as it reads it and
//! sends nothing after, so the Close must not be read too early: this reader sits between the
//! socket and tungstenite, follows the client's frame boundaries (a header, then its payload
//! length) and stops at the first byte of a Close frame. The connection then passes a broker
//! barrier (everything Redis had handed out before the Close arrived has reached the hub), writes
//! what its queue holds, and [`CloseHold::release`]s the frame. RFC 6455 §5.5.1 lets a server
//! finish sending before it answers a Close.
//!
//! Bytes are never changed or dropped, only delayed; a malformed frame passes through for
//! tungstenite to judge. Writes pass through untouched.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

/// The connection task's side of a [`CloseGate`].
#[derive(Debug, Default)]
pub struct CloseHold {
    /// Only a session's client can be owed events; a Close that answers the server's own (auth
    /// refusal, shutdown, slow consumer) or comes before the session passes at once.
    armed: AtomicBool,
    held: AtomicBool,
    released: AtomicBool,
    seen: Notify,
    reader: Mutex<Option<Waker>>,
}

impl CloseHold {
    /// Resolves once a Close frame from the client is being held (and never if it is released).
    pub async fn close_arrived(&self) {
        loop {
            let notified = self.seen.notified();
            if self.held.load(Ordering::Acquire) && !self.released.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }

    /// From now on a client's Close is held back (the session has started).
    pub fn arm(&self) {
        self.armed.store(true, Ordering::Release);
    }

    /// Lets the Close frame (and everything after it) through; also before the server sends its
    /// own Close, whose answer must not wait.
    pub fn release(&self) {
        self.released.store(true, Ordering::Release);
        if let Some(waker) = self.reader.lock().take() {
            waker.wake();
        }
    }

    pub fn is_released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }
}

/// Where the scan is in the client's frames.
#[derive(Debug, Default, Clone)]
struct FrameScan {
    header: [u8; 14],
    header_len: usize,
    payload_left: u64,
}

const CLOSE_OPCODE: u8 = 0x8;

impl FrameScan {
    /// Follows `bytes`; the offset at which a Close frame begins, if one begins in them. The scan
    /// stops there (the frame's bytes are not consumed).
    fn find_close(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut at = 0;
        while at < bytes.len() {
            if self.payload_left > 0 {
                let skip = (bytes.len() - at).min(usize::try_from(self.payload_left).unwrap_or(usize::MAX));
                at += skip;
                self.payload_left -= skip as u64;
                continue;
            }
            if self.header_len == 0 && bytes[at] & 0x0f == CLOSE_OPCODE {
                return Some(at);
            }
            self.header[self.header_len] = bytes[at];
            self.header_len += 1;
            at += 1;
            if let Some(payload) = self.complete_header() {
                self.header_len = 0;
                self.payload_left = payload;
            }
        }
        None
    }

    /// The payload length once the header is complete.
    fn complete_header(&self) -> Option<u64> {
        if self.header_len < 2 {
            return None;
        }
        let masked = self.header[1] & 0x80 != 0;
        let (length_bytes, short) = match self.header[1] & 0x7f {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        let needed = 2 + length_bytes + if masked { 4 } else { 0 };
        if self.header_len < needed {
            return None;
        }
        Some(short.unwrap_or_else(|| {
            self.header[2..2 + length_bytes].iter().fold(0u64, |n, b| (n << 8) | u64::from(*b))
        }))
    }
}

/// A stream that delays a client's Close frame until its [`CloseHold`] releases it.
#[derive(Debug)]
pub struct CloseGate<S> {
    inner: S,
    /// Bytes read from `inner` and not yet handed on; `pending[..pass]` may be handed on now.
    pending: Vec<u8>,
    pass: usize,
    scan: FrameScan,
    hold: Arc<CloseHold>,
}

impl<S> CloseGate<S> {
    /// Wraps `inner`; `leftover` are bytes the HTTP layer already read past the upgrade request.
    pub fn new(inner: S, leftover: Vec<u8>) -> (CloseGate<S>, Arc<CloseHold>) {
        let hold = Arc::new(CloseHold::default());
        let mut gate = CloseGate {
            inner,
            pending: Vec::new(),
            pass: 0,
            scan: FrameScan::default(),
            hold: Arc::clone(&hold),
        };
        gate.take_in(&leftover);
        (gate, hold)
    }

    /// Appends bytes read from the socket and decides how many of them may pass.
    fn take_in(&mut self, bytes: &[u8]) {
        let before = self.pending.len();
        self.pending.extend_from_slice(bytes);
        if self.hold.held.load(Ordering::Acquire) {
            return;
        }
        match self.scan.find_close(&self.pending[before..]) {
            Some(_) if !self.hold.armed.load(Ordering::Acquire) => {
                // Not a session's client: nothing is owed, let it and the rest pass for good.
                self.hold.release();
                self.pass = self.pending.len();
            }
            Some(offset) => {
                self.pass = before + offset;
                self.hold.held.store(true, Ordering::Release);
                self.hold.seen.notify_waiters();
            }
            None => self.pass = self.pending.len(),
        }
    }

    /// Hands on what may pass; `false` when nothing could be.
    fn hand_on(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.hold.is_released() {
            self.pass = self.pending.len();
        }
        let n = self.pass.min(buf.remaining());
        if n == 0 {
            return false;
        }
        buf.put_slice(&self.pending[..n]);
        self.pending.drain(..n);
        self.pass -= n;
        true
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CloseGate<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.hand_on(buf) {
            return Poll::Ready(Ok(()));
        }
        if this.hold.held.load(Ordering::Acquire) && !this.hold.is_released() {
            // Held: read nothing more until released (the client has nothing to say after a Close).
            *this.hold.reader.lock() = Some(cx.waker().clone());
            // A release between the check and the registration must not be missed.
            if !this.hold.is_released() {
                return Poll::Pending;
            }
            this.hand_on(buf);
            return Poll::Ready(Ok(()));
        }
        let mut chunk = [0u8; 4096];
        let mut read = ReadBuf::new(&mut chunk);
        match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Ok(())),
            Poll::Ready(Ok(())) => {
                this.take_in(read.filled());
                if this.hand_on(buf) {
                    Poll::Ready(Ok(()))
                } else {
                    // A Close begins right here: come back through the held path.
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CloseGate<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A masked client frame: FIN + `opcode`, `payload` (mask 0: the bytes stay readable).
    fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn the_scan_finds_a_close_after_frames_of_every_length_form_split_anywhere() {
        // A payload full of bytes that look like Close opcodes must not fool it.
        let mut stream = frame(0x1, &[0x88; 5]);
        stream.extend(frame(0x2, &[0x88; 300]));
        stream.extend(frame(0x9, b""));
        stream.extend(frame(0x1, &vec![0x88; 70_000]));
        let close_at = stream.len();
        stream.extend(frame(CLOSE_OPCODE, &[0x03, 0xe8]));
        for split in [1, 2, 3, 7, 100, 4096, stream.len()] {
            let mut scan = FrameScan::default();
            let mut found = None;
            for (i, chunk) in stream.chunks(split).enumerate() {
                if let Some(offset) = scan.find_close(chunk) {
                    found = Some(i * split + offset);
                    break;
                }
            }
            assert_eq!(found, Some(close_at), "split {split}");
        }
    }

    #[tokio::test]
    async fn an_unarmed_gate_holds_nothing() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (mut gate, hold) = CloseGate::new(server, Vec::new());
        let sent = frame(CLOSE_OPCODE, &[0x03, 0xe8]);
        client.write_all(&sent).await.unwrap();
        let mut got = vec![0u8; sent.len()];
        gate.read_exact(&mut got).await.unwrap();
        assert_eq!(got, sent);
        assert!(hold.is_released());
    }

    #[tokio::test]
    async fn a_close_is_held_until_released_and_nothing_is_lost_or_changed() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut sent = frame(0x1, b"hello");
        sent.extend(frame(CLOSE_OPCODE, &[0x03, 0xe8]));
        let (mut gate, hold) = CloseGate::new(server, sent[..3].to_vec());
        hold.arm();
        let mut client = client;
        client.write_all(&sent[3..]).await.unwrap();
        let text_len = frame(0x1, b"hello").len();
        let mut got = vec![0u8; text_len];
        gate.read_exact(&mut got).await.unwrap();
        assert_eq!(got, sent[..text_len]);
        tokio::time::timeout(std::time::Duration::from_secs(1), hold.close_arrived()).await.unwrap();
        let mut one = [0u8; 1];
        let early = tokio::time::timeout(std::time::Duration::from_millis(100), gate.read(&mut one)).await;
        assert!(early.is_err(), "the close came through before the release");
        hold.release();
        let mut rest = vec![0u8; sent.len() - text_len];
        gate.read_exact(&mut rest).await.unwrap();
        assert_eq!(rest, sent[text_len..]);
    }
}
