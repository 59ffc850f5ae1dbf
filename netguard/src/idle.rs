//! A request body with an idle timeout.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// A body that fails with `TimedOut` when `idle` passes without a frame: a client that
/// stops sending half-way cannot hold its handler (and what it holds) forever.
#[derive(Debug)]
pub struct IdleBody<B> {
    inner: B,
    idle: Duration,
    /// Who is silent, for the error: "the client", "the URL".
    from: &'static str,
    timer: Pin<Box<Sleep>>,
}

impl<B> IdleBody<B> {
    /// Wraps `inner`, a body sent by `from` ("the client"); the clock starts now and
    /// restarts with every frame.
    pub fn new(inner: B, idle: Duration, from: &'static str) -> IdleBody<B> {
        IdleBody {
            inner,
            idle,
            from,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            let deadline = Instant::now() + this.idle;
            this.timer.as_mut().reset(deadline);
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        ready!(this.timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no data from {} for {:?}", this.from, this.idle),
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
