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

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// A TCP stream, read with kernel receive stamps when they were enabled.
#[derive(Debug)]
pub struct StampedTcp {
    tcp: TcpStream,
    stamps: bool,
    /// µs since the Unix epoch at which the latest read's data reached the socket; 0 before the
    /// first stamped read.
    last_us: u64,
}

impl StampedTcp {
    /// A stream read as plain TCP, without stamps.
    pub fn plain(tcp: TcpStream) -> StampedTcp {
        StampedTcp { tcp, stamps: false, last_us: 0 }
    }

    /// A stream whose reads carry kernel receive stamps, when the kernel agrees to give them.
    pub fn with_kernel_stamps(tcp: TcpStream) -> StampedTcp {
        let stamps = enable_stamps(tcp.as_raw_fd()).is_ok();
        StampedTcp { tcp, stamps, last_us: 0 }
    }

    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }

    /// Whether reads are stamped by the kernel.
    pub fn kernel_stamps(&self) -> bool {
        self.stamps
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
        if !this.stamps {
            return Pin::new(&mut this.tcp).poll_read(cx, buf);
        }
        loop {
            ready!(this.tcp.poll_read_ready(cx))?;
            let fd = this.tcp.as_raw_fd();
            // SAFETY: recvmsg only writes into the unfilled part, and `assume_init` below covers
            // exactly the bytes it reported.
            let unfilled = unsafe { buf.unfilled_mut() };
            match this.tcp.try_io(Interest::READABLE, || recv_stamped(fd, unfilled)) {
                Ok((read, stamp)) => {
                    // SAFETY: the kernel wrote `read` bytes at the start of the unfilled part.
                    unsafe { buf.assume_init(read) };
                    buf.advance(read);
                    // A read without a stamp leaves none: never an older read's.
                    this.last_us = stamp.unwrap_or(0);
                    return Poll::Ready(Ok(()));
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncWrite for StampedTcp {
    #[inline]
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
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
        let mut stream = StampedTcp::with_kernel_stamps(client);
        assert!(stream.kernel_stamps(), "Linux gives software receive stamps");
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
