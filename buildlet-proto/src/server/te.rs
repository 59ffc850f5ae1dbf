//! Lets hyper send the `Process-State` trailer to Go clients.
//!
//! hyper 1 writes response trailers only when the *request* said `TE: trailers`; Go's HTTP
//! client never does, yet reads trailers (the exit status of `/exec` travels only there).
//! This reader sits between the socket and hyper and adds `TE: trailers` to every request
//! head. To find every head on a keep-alive connection it follows each request's framing
//! (`Content-Length`, or chunked with its trailer section); body bytes pass through
//! without copying. A head it cannot parse is passed on untouched, and so is everything
//! after it, so hyper still produces its own error for malformed input.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const MAX_HEAD: usize = 64 * 1024;
const MAX_LINE: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkCrlf(u8),
    ChunkTrailers,
    Passthrough,
}

/// The request side of a connection, with `TE: trailers` added to each head.
#[derive(Debug)]
pub(crate) struct TrailersAllowed<IO> {
    inner: IO,
    state: State,
    /// Bytes read from `inner` and not yet classified.
    input: BytesMut,
    /// Bytes ready for hyper.
    output: BytesMut,
    eof: bool,
}

impl<IO> TrailersAllowed<IO> {
    /// Wraps `inner`; `already_read` holds bytes read from it before (the first head).
    pub(crate) fn new(already_read: &[u8], inner: IO) -> Self {
        TrailersAllowed {
            inner,
            state: State::Head,
            input: BytesMut::from(already_read),
            output: BytesMut::new(),
            eof: false,
        }
    }

    /// Moves as much of `input` as the current state can classify into `output`.
    /// Returns false when more input is needed.
    fn step(&mut self) -> bool {
        match self.state {
            State::Passthrough => {
                if self.input.is_empty() {
                    return false;
                }
                let all = self.input.split();
                self.output.extend_from_slice(&all);
                true
            }
            State::Fixed(0) => {
                self.state = State::Head;
                true
            }
            State::Fixed(n) | State::ChunkData(n) => {
                if self.input.is_empty() {
                    return false;
                }
                let k = (n as usize).min(self.input.len());
                let part = self.input.split_to(k);
                self.output.extend_from_slice(&part);
                let left = n - k as u64;
                self.state = match self.state {
                    State::Fixed(_) => State::Fixed(left),
                    _ if left == 0 => State::ChunkCrlf(2),
                    _ => State::ChunkData(left),
                };
                true
            }
            State::ChunkCrlf(k) => {
                if self.input.is_empty() {
                    return false;
                }
                let take = (k as usize).min(self.input.len());
                let part = self.input.split_to(take);
                self.output.extend_from_slice(&part);
                let left = k - take as u8;
                self.state = if left == 0 {
                    State::ChunkSize
                } else {
                    State::ChunkCrlf(left)
                };
                true
            }
            State::ChunkSize | State::ChunkTrailers => {
                let Some(i) = self.input.iter().position(|&b| b == b'\n') else {
                    if self.input.len() > MAX_LINE {
                        self.state = State::Passthrough;
                        return true;
                    }
                    return false;
                };
                let line = self.input.split_to(i + 1);
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                self.state = if self.state == State::ChunkTrailers {
                    if text.is_empty() {
                        State::Head
                    } else {
                        State::ChunkTrailers
                    }
                } else {
                    let hex = text.split(|&b| b == b';').next().unwrap_or(b"");
                    match std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
                    {
                        Some(0) => State::ChunkTrailers,
                        Some(n) => State::ChunkData(n),
                        None => State::Passthrough,
                    }
                };
                self.output.extend_from_slice(&line);
                true
            }
            State::Head => self.head(),
        }
    }

    fn head(&mut self) -> bool {
        // Blank lines between requests are allowed; pass them on.
        while self.input.starts_with(b"\r\n") || self.input.starts_with(b"\n") {
            let n = if self.input[0] == b'\r' { 2 } else { 1 };
            let part = self.input.split_to(n);
            self.output.extend_from_slice(&part);
        }
        if self.input.is_empty() {
            return false;
        }
        let mut headers = [httparse::EMPTY_HEADER; 100];
        let mut req = httparse::Request::new(&mut headers);
        let n = match req.parse(&self.input) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if self.input.len() <= MAX_HEAD => return false,
            _ => {
                self.state = State::Passthrough;
                return true;
            }
        };
        let mut next = State::Fixed(0);
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("transfer-encoding")
                && h.value
                    .split(|&b| b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"))
            {
                next = State::ChunkSize;
            } else if h.name.eq_ignore_ascii_case("content-length") && next != State::ChunkSize {
                match std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                {
                    Some(len) => next = State::Fixed(len),
                    None => next = State::Passthrough,
                }
            }
        }
        let head = self.input.split_to(n);
        let end = if head.ends_with(b"\r\n\r\n") {
            n - 2
        } else {
            n - 1
        };
        self.output.extend_from_slice(&head[..end]);
        self.output.extend_from_slice(b"TE: trailers\r\n");
        self.output.extend_from_slice(&head[end..]);
        self.state = next;
        true
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for TrailersAllowed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.output.is_empty() {
                let n = this.output.len().min(buf.remaining());
                buf.put_slice(&this.output[..n]);
                this.output.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.step() {
                continue;
            }
            if this.eof {
                // Unclassified leftovers at EOF go through as they are.
                let rest = this.input.split();
                if rest.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.output.extend_from_slice(&rest);
                continue;
            }
            // Body bytes: read straight into hyper's buffer, no copy through `input`.
            if let State::Fixed(n) | State::ChunkData(n) = this.state
                && this.input.is_empty()
                && n > 0
            {
                let limit = (n as usize).min(buf.remaining());
                let mut sub = ReadBuf::new(buf.initialize_unfilled_to(limit));
                match Pin::new(&mut this.inner).poll_read(cx, &mut sub) {
                    Poll::Ready(Ok(())) => {
                        let k = sub.filled().len();
                        // The bytes were read in place, into initialized memory.
                        buf.advance(k);
                        if k == 0 {
                            this.eof = true;
                            return Poll::Ready(Ok(()));
                        }
                        let left = n - k as u64;
                        this.state = match this.state {
                            State::Fixed(_) => State::Fixed(left),
                            _ if left == 0 => State::ChunkCrlf(2),
                            _ => State::ChunkData(left),
                        };
                        return Poll::Ready(Ok(()));
                    }
                    other => return other,
                }
            }
            if let State::Passthrough = this.state
                && this.input.is_empty()
            {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut tmp = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut tmp);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    if rb.filled().is_empty() {
                        this.eof = true;
                    } else {
                        this.input.extend_from_slice(rb.filled());
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for TrailersAllowed<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::AsyncReadExt;

    async fn rewrite(input: &[u8], cut: usize) -> Vec<u8> {
        let (first, rest) = input.split_at(cut.min(input.len()));
        let mut r = TrailersAllowed::new(first, rest);
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn every_head_gets_te_trailers() {
        let input = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n\
PUT /write HTTP/1.1\r\nContent-Length: 5\r\n\r\nHEAD \
POST /exec HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
GET /ls HTTP/1.1\r\n\r\n";
        let want = b"GET /status HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n\
PUT /write HTTP/1.1\r\nContent-Length: 5\r\nTE: trailers\r\n\r\nHEAD \
POST /exec HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
GET /ls HTTP/1.1\r\nTE: trailers\r\n\r\n";
        for cut in 0..input.len() {
            assert_eq!(rewrite(input, cut).await, want.to_vec(), "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn malformed_input_passes_through() {
        let input = b"NOT HTTP AT ALL\x00\r\n\r\nmore";
        assert_eq!(rewrite(input, 3).await, input.to_vec());
    }

    proptest! {
        #[test]
        fn body_bytes_are_never_altered(body in prop::collection::vec(any::<u8>(), 0..2000), cut in 0usize..2100) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut input = format!("PUT /w HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
            input.extend_from_slice(&body);
            let out = rt.block_on(rewrite(&input, cut));
            prop_assert!(out.ends_with(&body));
            prop_assert_eq!(out.len(), input.len() + "TE: trailers\r\n".len());
        }

        #[test]
        fn arbitrary_input_never_panics(data in prop::collection::vec(any::<u8>(), 0..500), cut in 0usize..500) {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let _ = rt.block_on(rewrite(&data, cut));
        }
    }
}
