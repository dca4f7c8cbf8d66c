//! [`ClientStream`]: a client's byte stream, plain TCP or TLS over TCP, as one concrete type,
//! over a [`StampedTcp`] (kernel receive stamps when the runner asked for them).
//!
//! It is the `S` of `WebSocketStream<S>` and of the raw probe socket. An enum rather than a
//! `Box<dyn AsyncRead + AsyncWrite>`: a plain run pays one predictable branch per I/O call and
//! no allocation or virtual call; the TLS state is boxed so a plain stream stays small.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::stamped::StampedTcp;

/// Plain TCP, or TLS over TCP.
#[derive(Debug)]
pub enum ClientStream {
    Plain(StampedTcp),
    Tls(Box<TlsStream<StampedTcp>>),
}

impl ClientStream {
    fn stamped(&self) -> &StampedTcp {
        match self {
            ClientStream::Plain(tcp) => tcp,
            ClientStream::Tls(tls) => tls.get_ref().0,
        }
    }

    /// When the latest read's data reached the socket, by the kernel's stamp (µs since the Unix
    /// epoch); `None` without kernel stamps.
    pub fn last_read_us(&self) -> Option<u64> {
        self.stamped().last_read_us()
    }

    /// Whether the kernel stamps this stream's reads.
    pub fn kernel_stamps(&self) -> bool {
        self.stamped().kernel_stamps()
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, ClientStream::Tls(_))
    }
}

impl From<TcpStream> for ClientStream {
    fn from(tcp: TcpStream) -> ClientStream {
        ClientStream::Plain(StampedTcp::plain(tcp))
    }
}

impl From<StampedTcp> for ClientStream {
    fn from(tcp: StampedTcp) -> ClientStream {
        ClientStream::Plain(tcp)
    }
}

impl From<TlsStream<StampedTcp>> for ClientStream {
    fn from(tls: TlsStream<StampedTcp>) -> ClientStream {
        ClientStream::Tls(Box::new(tls))
    }
}

impl AsyncRead for ClientStream {
    #[inline]
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    #[inline]
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.is_write_vectored(),
            ClientStream::Tls(s) => s.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
