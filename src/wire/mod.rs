//! Raw RFC 6455 on any byte stream (plain TCP, or TLS from `crate::tls`): an HTTP upgrade
//! written by hand and frames built bit by bit.
//!
//! Well-behaved client libraries refuse to send unmasked frames, reserved bits, invalid UTF-8
//! or broken fragmentation; the conformance suite and the fuzzer must send exactly those, and
//! must see exactly what the server answers (including a close without a close frame). This
//! module is that client. It is not used on the load path.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Frame opcodes (RFC 6455 §5.2).
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// A frame to send, exactly as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutFrame {
    pub fin: bool,
    /// RSV1..3 as the low three bits (RSV1 = 0b100).
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl OutFrame {
    /// A final, masked frame: what a correct client sends.
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> OutFrame {
        OutFrame { fin: true, rsv: 0, opcode, masked: true, payload: payload.into() }
    }

    pub fn text(payload: impl Into<Vec<u8>>) -> OutFrame {
        OutFrame::new(opcode::TEXT, payload)
    }

    /// A close frame with `code` and no reason.
    pub fn close(code: u16) -> OutFrame {
        OutFrame::new(opcode::CLOSE, code.to_be_bytes().to_vec())
    }

    /// The frame's bytes on the wire, masked with `mask` when `masked`.
    pub fn encode(&self, mask: [u8; 4]) -> Vec<u8> {
        let len = self.payload.len();
        let mut out = Vec::with_capacity(len + 14);
        out.push((u8::from(self.fin) << 7) | ((self.rsv & 0b111) << 4) | (self.opcode & 0x0F));
        let mask_bit = if self.masked { 0x80 } else { 0 };
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else if len <= usize::from(u16::MAX) {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        if self.masked {
            out.extend_from_slice(&mask);
            out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        } else {
            out.extend_from_slice(&self.payload);
        }
        out
    }
}

/// A frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl InFrame {
    /// For a close frame, its status code (`None` when it carried none).
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == opcode::CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    pub fn text(&self) -> Option<&str> {
        (self.opcode == opcode::TEXT).then(|| std::str::from_utf8(&self.payload).ok()).flatten()
    }
}

/// What reading from the server produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Frame(InFrame),
    /// The server closed the TCP connection (after or without a close frame).
    Eof,
    /// Nothing within the time allowed.
    TimedOut,
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connecting to {addr}: {cause}")]
    Connect { addr: String, cause: std::io::Error },
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server's upgrade response is not HTTP: {0:?}")]
    BadResponse(String),
    #[error("no upgrade response within {0:?}")]
    Timeout(Duration),
    #[error("the server sent a malformed frame")]
    BadFrame,
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// The server's answer to the upgrade request.
#[derive(Debug, Clone)]
pub struct UpgradeResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
}

impl UpgradeResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A raw WebSocket connection over any byte stream.
pub struct RawSocket<S = TcpStream> {
    stream: S,
    buffer: Vec<u8>,
    mask_seed: u32,
}

/// The upgrade request line and headers for `path_and_query` (e.g. `/v1/ws?access_token=…`).
pub fn upgrade_request(host: &str, path_and_query: &str, extra_headers: &[(&str, &str)]) -> String {
    let key = STANDARD.encode(rand::random::<[u8; 16]>());
    let mut request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in extra_headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request
}

impl RawSocket<TcpStream> {
    /// Connects to `addr` (host:port) and performs the upgrade with `request` bytes.
    pub async fn connect(
        addr: &str,
        request: &[u8],
        wait: Duration,
    ) -> Result<(Self, UpgradeResponse), WireError> {
        let stream = timeout(wait, TcpStream::connect(addr))
            .await
            .map_err(|_| WireError::Timeout(wait))?
            .map_err(|source| WireError::Connect { addr: addr.to_owned(), cause: source })?;
        let _ = stream.set_nodelay(true);
        RawSocket::upgrade(stream, request, wait).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> RawSocket<S> {
    /// Sends `request` on `stream` and reads the HTTP response head.
    pub async fn upgrade(
        stream: S,
        request: &[u8],
        wait: Duration,
    ) -> Result<(Self, UpgradeResponse), WireError> {
        let mut socket = RawSocket { stream, buffer: Vec::new(), mask_seed: rand::random() };
        socket.stream.write_all(request).await?;
        let response =
            timeout(wait, socket.read_response_head()).await.map_err(|_| WireError::Timeout(wait))??;
        Ok((socket, response))
    }

    async fn read_response_head(&mut self) -> Result<UpgradeResponse, WireError> {
        let end = loop {
            if let Some(at) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            if self.buffer.len() > 64 * 1024 || self.fill().await? == 0 {
                return Err(WireError::BadResponse(String::from_utf8_lossy(&self.buffer).into_owned()));
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
        self.buffer.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| WireError::BadResponse(status_line.to_owned()))?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Ok(UpgradeResponse { status, headers })
    }

    async fn fill(&mut self) -> Result<usize, WireError> {
        fill(&mut self.stream, &mut self.buffer).await
    }

    pub async fn send(&mut self, frame: &OutFrame) -> Result<(), WireError> {
        let mask = next_mask(&mut self.mask_seed);
        self.send_bytes(&frame.encode(mask)).await
    }

    /// Writes raw bytes: a frame split at an arbitrary point, or garbage.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        write_flushed(&mut self.stream, bytes).await
    }

    /// Reads one frame, waiting at most `wait`.
    pub async fn read(&mut self, wait: Duration) -> Result<Read, WireError> {
        match timeout(wait, read_frame(&mut self.stream, &mut self.buffer)).await {
            Ok(result) => result,
            Err(_) => Ok(Read::TimedOut),
        }
    }

    /// Splits the socket into a reading and a writing side, so one task can keep reading
    /// (and answering pings) while another writes; bytes already read stay with the reader.
    pub fn split(self) -> (FrameReader<ReadHalf<S>>, FrameWriter<WriteHalf<S>>) {
        let (read, write) = tokio::io::split(self.stream);
        (
            FrameReader { stream: read, buffer: self.buffer },
            FrameWriter { stream: write, mask_seed: self.mask_seed },
        )
    }

    /// Reads frames until a text frame, answering nothing; pings and pongs are skipped.
    pub async fn read_text(&mut self, wait: Duration) -> Result<Option<String>, WireError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await? {
                Read::Frame(f) if f.opcode == opcode::TEXT => {
                    return Ok(Some(String::from_utf8_lossy(&f.payload).into_owned()));
                }
                Read::Frame(f) if matches!(f.opcode, opcode::PING | opcode::PONG) => continue,
                _ => return Ok(None),
            }
        }
    }

    /// Reads until the server's close frame or EOF; the close code, if a close frame came.
    pub async fn read_close(&mut self, wait: Duration) -> Result<Option<u16>, WireError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.read(left).await? {
                Read::Frame(f) if f.opcode == opcode::CLOSE => return Ok(f.close_code()),
                Read::Frame(_) => continue,
                Read::Eof | Read::TimedOut => return Ok(None),
            }
        }
    }

    pub fn into_inner(self) -> S {
        self.stream
    }
}

/// The reading side of a split [`RawSocket`].
pub struct FrameReader<R> {
    stream: R,
    buffer: Vec<u8>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// The next frame the server sent (no time bound: the caller decides how long it waits).
    /// Cancel-safe: bytes read so far stay in the buffer.
    pub async fn read(&mut self) -> Result<Read, WireError> {
        read_frame(&mut self.stream, &mut self.buffer).await
    }
}

/// The writing side of a split [`RawSocket`]: frames masked as a client's, or raw bytes.
pub struct FrameWriter<W> {
    stream: W,
    mask_seed: u32,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub async fn send(&mut self, frame: &OutFrame) -> Result<(), WireError> {
        let mask = next_mask(&mut self.mask_seed);
        self.send_bytes(&frame.encode(mask)).await
    }

    /// Writes raw bytes: a frame split at an arbitrary point, or garbage.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        write_flushed(&mut self.stream, bytes).await
    }
}

async fn fill<R: AsyncRead + Unpin>(stream: &mut R, buffer: &mut Vec<u8>) -> Result<usize, WireError> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n)
}

async fn read_frame<R: AsyncRead + Unpin>(stream: &mut R, buffer: &mut Vec<u8>) -> Result<Read, WireError> {
    loop {
        if let Some((frame, used)) = parse_frame(buffer)? {
            buffer.drain(..used);
            return Ok(Read::Frame(frame));
        }
        match fill(stream, buffer).await {
            Ok(0) => return Ok(Read::Eof),
            Ok(_) => {}
            Err(WireError::Io(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(Read::Eof);
            }
            Err(e) => return Err(e),
        }
    }
}

async fn write_flushed<W: AsyncWrite + Unpin>(stream: &mut W, bytes: &[u8]) -> Result<(), WireError> {
    stream.write_all(bytes).await?;
    stream.flush().await?;
    Ok(())
}

fn next_mask(seed: &mut u32) -> [u8; 4] {
    *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
    seed.to_be_bytes()
}

/// Parses one server frame from the front of `buf`; `None` when more bytes are needed.
pub fn parse_frame(buf: &[u8]) -> Result<Option<(InFrame, usize)>, WireError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let fin = buf[0] & 0x80 != 0;
    let opcode = buf[0] & 0x0F;
    let masked = buf[1] & 0x80 != 0;
    let (len, mut at) = match buf[1] & 0x7F {
        126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(be), 10)
        }
        126 | 127 => return Ok(None),
        n => (u64::from(n), 2),
    };
    let len = usize::try_from(len).map_err(|_| WireError::BadFrame)?;
    let mask = if masked {
        if buf.len() < at + 4 {
            return Ok(None);
        }
        at += 4;
        Some([buf[at - 4], buf[at - 3], buf[at - 2], buf[at - 1]])
    } else {
        None
    };
    if buf.len() < at + len {
        return Ok(None);
    }
    let mut payload = buf[at..at + len].to_vec();
    if let Some(mask) = mask {
        payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= mask[i % 4]);
    }
    Ok(Some((InFrame { fin, opcode, payload }, at + len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmasked_frames_round_trip_through_the_parser() {
        for len in [0usize, 5, 125, 126, 65_535, 65_536] {
            let frame =
                OutFrame { fin: true, rsv: 0, opcode: opcode::BINARY, masked: false, payload: vec![7; len] };
            let bytes = frame.encode([0; 4]);
            let (parsed, used) = parse_frame(&bytes).unwrap().unwrap();
            assert_eq!(used, bytes.len());
            assert_eq!(parsed.payload.len(), len);
            assert!(parse_frame(&bytes[..bytes.len() - 1]).unwrap().is_none() || len == 0);
        }
    }

    #[test]
    fn masking_is_applied_and_reversible() {
        let frame = OutFrame::text("hello");
        let bytes = frame.encode([1, 2, 3, 4]);
        assert_eq!(bytes[1] & 0x80, 0x80);
        let (parsed, _) = parse_frame(&bytes).unwrap().unwrap();
        assert_eq!(parsed.text(), Some("hello"));
    }

    #[test]
    fn reserved_bits_and_fin_are_written_as_given() {
        let frame = OutFrame { fin: false, rsv: 0b100, opcode: opcode::TEXT, masked: true, payload: vec![] };
        assert_eq!(frame.encode([0; 4])[0], 0b0100_0001);
    }
}
