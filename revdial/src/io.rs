//! Stream wrappers: [`Rewind`] replays bytes that were read ahead of a stream's data, and
//! [`RevConn`] is the type-erased stream that `Dialer::dial` and `Listener::accept` return.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::control::{self, Frame, Message};

/// A stream whose first reads return `prefix`, then the inner stream's bytes. Used after
/// parsing an HTTP head, so bytes that arrived with the head are never lost.
#[derive(Debug)]
pub struct Rewind<IO> {
    prefix: Bytes,
    inner: IO,
}

impl<IO> Rewind<IO> {
    /// Wraps `inner`, replaying `prefix` first.
    pub fn new(prefix: Bytes, inner: IO) -> Self {
        Rewind { prefix, inner }
    }

    /// The inner stream (any unread prefix is lost).
    pub fn into_inner(self) -> IO {
        self.inner
    }

    /// The inner stream, by reference.
    pub fn get_ref(&self) -> &IO {
        &self.inner
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Any bidirectional byte stream that can move between tasks.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// One revdial connection: on the public side a stream to the buildlet (from
/// `Dialer::dial`), on the private side a stream from the public server (from
/// `Listener::accept`). Each is its own TCP/TLS connection; closing one affects nothing else.
pub struct RevConn(Pin<Box<dyn Io>>);

impl RevConn {
    /// Erases the stream's type.
    pub fn new<IO: Io>(io: IO) -> RevConn {
        RevConn(Box::pin(io))
    }
}

impl fmt::Debug for RevConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RevConn")
    }
}

impl AsyncRead for RevConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_read(cx, buf)
    }
}

impl AsyncWrite for RevConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.as_mut().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.0.as_mut().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.as_mut().poll_shutdown(cx)
    }
}

/// Reads control messages until `closed` is cancelled, the peer ends the stream or errs,
/// a line exceeds [`control::MAX_LINE`], or a line is not a valid message (both sides of
/// the protocol close on all of these). `who` names the side in logs.
pub(crate) async fn read_control<R: AsyncRead + Unpin>(
    rd: &mut R,
    closed: &CancellationToken,
    who: &str,
    idle: Option<std::time::Duration>,
    mut on_message: impl FnMut(Message),
) {
    let mut buf = BytesMut::with_capacity(control::MAX_LINE);
    loop {
        match control::check_line(&buf) {
            Frame::Line(n) => {
                let line = buf.split_to(n);
                match control::decode(&line) {
                    Ok(m) => on_message(m),
                    Err(e) => {
                        tracing::debug!("revdial.{who} read {e}");
                        return;
                    }
                }
                continue;
            }
            Frame::TooLong => {
                tracing::debug!(
                    "revdial.{who}: control line over {} bytes",
                    control::MAX_LINE
                );
                return;
            }
            Frame::Incomplete => {}
        }
        let quiet = async {
            match idle {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let read = tokio::select! {
            _ = closed.cancelled() => return,
            r = rd.read_buf(&mut buf) => r,
            _ = quiet => {
                tracing::warn!("revdial.{who}: nothing from the peer for {idle:?}; closing");
                return;
            }
        };
        if !matches!(read, Ok(n) if n > 0) {
            return;
        }
    }
}
