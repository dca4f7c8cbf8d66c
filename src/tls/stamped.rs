//! [`StampedTcp`]: a client's TCP stream that keeps, for its latest read, the moment the kernel
//! queued the data to the socket (`SO_TIMESTAMPNS`, a software receive stamp), so a frame read
//! late by a busy event loop is still timed when it arrived.
//!
//! Reads go through `recvmsg`, which returns the stamp as ancillary data; for TCP it is the stamp
//! of the last segment the read consumed, so every frame a read completes gets the time its last
//! byte arrived. It is written by hand because no maintained crate wraps a tokio `TcpStream` this
//! way (socket2 and nix offer the raw calls, which this module makes directly through libc, as
//! the rest of the crate does). Where the option is refused (not Linux, an old kernel) the stream
//! reads as plain TCP and [`StampedTcp::kernel_stamps`] says so; the caller decides what the
//! report calls its timestamps. This module never interprets data and knows nothing of clocks
//! beyond the Unix epoch.

use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream, read with kernel receive stamps when they were enabled.
#[derive(Debug)]
pub struct StampedTcp {
    socket: Socket,
    /// µs since the Unix epoch at which the latest read's data reached the socket; 0 before the
    /// first stamped read.
    last_us: u64,
}

/// How the socket is driven. A stamped socket is registered with the runtime as a bare
/// descriptor (`AsyncFd`), the only way to read it with `recvmsg` and still clear its readiness
/// after a short read, as tokio's own `TcpStream` does: without that, every frame would cost a
/// second `recvmsg` that only says "nothing more" (measured: issue 16 §2).
#[derive(Debug)]
enum Socket {
    Plain(TcpStream),
    Stamped(AsyncFd<std::net::TcpStream>),
}

impl StampedTcp {
    /// A stream read as plain TCP, without stamps.
    pub fn plain(tcp: TcpStream) -> StampedTcp {
        StampedTcp { socket: Socket::Plain(tcp), last_us: 0 }
    }

    /// A stream whose reads carry kernel receive stamps, when the kernel agrees to give them
    /// (else a plain one). Must be called within a tokio runtime.
    pub fn with_kernel_stamps(tcp: TcpStream) -> io::Result<StampedTcp> {
        if enable_stamps(tcp.as_raw_fd()).is_err() {
            return Ok(StampedTcp::plain(tcp));
        }
        // SAFETY: a std TcpStream owns its descriptor for as long as it lives, and the AsyncFd
        // owns the stream: the descriptor stays open and the same until the AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register(tcp.into_std()?) }.map_err(|e| e.into_parts().1)?;
        Ok(StampedTcp { socket: Socket::Stamped(fd), last_us: 0 })
    }

    /// Whether reads are stamped by the kernel.
    pub fn kernel_stamps(&self) -> bool {
        matches!(self.socket, Socket::Stamped(_))
    }

    /// When the data of the latest read reached the socket (µs since the Unix epoch), if the
    /// kernel stamped it.
    pub fn last_read_us(&self) -> Option<u64> {
        (self.last_us != 0).then_some(self.last_us)
    }
}

fn enable_stamps(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor and a pointer to an int of the length given.
    let result = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Room for one `SCM_TIMESTAMPNS` control message (a `timespec`), aligned for `cmsghdr`.
type Control = [u64; 8];

/// One `recvmsg` into `buf`: the bytes read, and the kernel's stamp in µs when it gave one.
fn recv_stamped(fd: RawFd, buf: &mut [MaybeUninit<u8>]) -> io::Result<(usize, Option<u64>)> {
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut control: Control = [0; 8];
    // SAFETY: zeroed msghdr is a valid "no name, no flags" header; the pointers set below stay
    // valid for the call.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = std::mem::size_of::<Control>() as _;
    // SAFETY: `header` points at a live iovec over `buf` and at `control`, both of the lengths given.
    let read = unsafe { libc::recvmsg(fd, &mut header, libc::MSG_DONTWAIT) };
    if read < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel wrote into `control`, within
    // `msg_controllen`, with the libc macros made for it.
    unsafe {
        let mut message = libc::CMSG_FIRSTHDR(&header);
        while !message.is_null() {
            if (*message).cmsg_level == libc::SOL_SOCKET && (*message).cmsg_type == libc::SCM_TIMESTAMPNS {
                let time = std::ptr::read_unaligned(libc::CMSG_DATA(message).cast::<libc::timespec>());
                stamp = Some(time.tv_sec as u64 * 1_000_000 + time.tv_nsec as u64 / 1_000);
            }
            message = libc::CMSG_NXTHDR(&header, message);
        }
    }
    Ok((read as usize, stamp))
}

impl AsyncRead for StampedTcp {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let fd = match &mut this.socket {
            Socket::Plain(tcp) => return Pin::new(tcp).poll_read(cx, buf),
            Socket::Stamped(fd) => fd,
        };
        loop {
            let mut ready = ready!(fd.poll_read_ready(cx))?;
            // SAFETY: recvmsg only writes into the unfilled part, and `assume_init` below covers
            // exactly the bytes it reported.
            let unfilled = unsafe { buf.unfilled_mut() };
            let room = unfilled.len();
            match ready.try_io(|socket| recv_stamped(socket.as_raw_fd(), unfilled)) {
                Ok(Ok((read, stamp))) => {
                    // A short read emptied the socket: wait for the next edge instead of asking
                    // again (what tokio's TcpStream does; its readiness ticks make this race-free).
                    if read > 0 && read < room {
                        ready.clear_ready();
                    }
                    // SAFETY: the kernel wrote `read` bytes at the start of the unfilled part.
                    unsafe { buf.assume_init(read) };
                    buf.advance(read);
                    // A read without a stamp leaves none: never an older read's.
                    this.last_us = stamp.unwrap_or(0);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(error)) => return Poll::Ready(Err(error)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for StampedTcp {
    #[inline]
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().socket {
            Socket::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Socket::Stamped(fd) => poll_write_with(fd, cx, |mut socket| socket.write(buf)),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().socket {
            Socket::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Socket::Stamped(fd) => poll_write_with(fd, cx, |mut socket| socket.write_vectored(bufs)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.socket {
            Socket::Plain(tcp) => tcp.is_write_vectored(),
            Socket::Stamped(_) => true,
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            // TCP buffers nothing in user space.
            Socket::Stamped(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().socket {
            Socket::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Socket::Stamped(fd) => Poll::Ready(fd.get_ref().shutdown(Shutdown::Write)),
        }
    }
}

/// One write on a stamped socket, once the runtime says it is writable.
fn poll_write_with(
    fd: &AsyncFd<std::net::TcpStream>,
    cx: &mut Context<'_>,
    mut write: impl FnMut(&std::net::TcpStream) -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        let mut ready = ready!(fd.poll_write_ready(cx))?;
        if let Ok(written) = ready.try_io(|socket| write(socket.get_ref())) {
            return Poll::Ready(written);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn unix_now_us() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
    }

    #[tokio::test]
    async fn a_late_read_still_gets_the_moment_the_data_arrived() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let mut stream = StampedTcp::with_kernel_stamps(client).unwrap();
        assert!(stream.kernel_stamps(), "Linux gives software receive stamps");
        // The first socket of a process to ask for stamps turns receive stamping on in the
        // kernel through deferred work: data arriving within that moment is not stamped. (A run
        // connects its clients seconds before the first event.)
        tokio::time::sleep(Duration::from_millis(50)).await;
        let sent_us = unix_now_us();
        server.write_all(b"hello").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut buf = [0u8; 16];
        let read = stream.read(&mut buf).await.unwrap();
        let read_us = unix_now_us();
        assert_eq!(&buf[..read], b"hello");
        let stamp = stream.last_read_us().expect("the read was stamped");
        assert!(stamp >= sent_us && stamp < sent_us + 20_000, "stamp {}µs after the send", stamp - sent_us);
        assert!(read_us - stamp >= 190_000, "the read came {}µs after the stamp", read_us - stamp);
    }

    #[tokio::test]
    async fn after_a_short_read_the_next_data_still_wakes_the_reader() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let mut stream = StampedTcp::with_kernel_stamps(client).unwrap();
        let mut buf = [0u8; 64];
        for round in 0..20u8 {
            let reader = async {
                let read = stream.read(&mut buf).await.unwrap();
                (read, buf[0])
            };
            let writer = async {
                tokio::time::sleep(Duration::from_millis(2)).await;
                server.write_all(&[round]).await.unwrap();
            };
            let ((read, first), ()) =
                tokio::time::timeout(Duration::from_secs(2), async { tokio::join!(reader, writer) })
                    .await
                    .expect("a read whose readiness was cleared wakes on the next data");
            assert_eq!((read, first), (1, round));
        }
        // Writes and shutdown go through the same descriptor.
        stream.write_all(b"ping").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut echoed = Vec::new();
        server.read_to_end(&mut echoed).await.unwrap();
        assert_eq!(echoed, b"ping");
    }

    #[tokio::test]
    async fn without_stamps_it_reads_as_plain_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let mut stream = StampedTcp::plain(client);
        server.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(stream.read(&mut buf).await.unwrap(), 1);
        assert_eq!(stream.last_read_us(), None);
    }
}
