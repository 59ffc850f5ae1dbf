//! Snapshots: a builder's tree after its `make` steps, kept as a `.tar.gz` keyed by
//! (builder, revision), as upstream's snapshot bucket kept them. A later build of the same
//! key, the build's test helpers, and sub-repo builds start from it instead of building.
//!
//! [`SnapshotStore`] is the seam: [`dir::DirSnapshots`] (content-addressed files in the
//! data directory, bounded in size, oldest evicted first) is the embedded default; an
//! object store can stand behind the same trait at scale.

pub mod dir;

use async_trait::async_trait;
use std::future::Future;

use tokio::io::AsyncRead;

pub use dir::DirSnapshots;

/// A snapshot's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapshotKey {
    /// The builder that made it.
    pub builder: String,
    /// The revision it was built at.
    pub rev: String,
}

impl SnapshotKey {
    /// The key of `builder` at `rev`.
    pub fn new(builder: &str, rev: &str) -> SnapshotKey {
        SnapshotKey {
            builder: builder.to_owned(),
            rev: rev.to_owned(),
        }
    }
}

impl std::fmt::Display for SnapshotKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.builder, self.rev)
    }
}

/// A snapshot store's failure.
#[derive(Debug, thiserror::Error)]
#[error("snapshot store: {0}")]
pub struct SnapshotError(pub String);

/// A stream of a snapshot's bytes.
pub type SnapshotReader = Box<dyn AsyncRead + Send + Unpin>;

/// Where snapshots are kept.
#[async_trait]
pub trait SnapshotStore: Send + Sync + std::fmt::Debug {
    /// Whether a snapshot of `key` exists.
    async fn exists(&self, key: &SnapshotKey) -> Result<bool, SnapshotError>;

    /// The snapshot of `key` and its size, if it exists.
    async fn open(&self, key: &SnapshotKey)
    -> Result<Option<(SnapshotReader, u64)>, SnapshotError>;

    /// Stores `data` (read to its end) as the snapshot of `key`, replacing any; returns
    /// its size. Nothing is stored if reading fails.
    async fn put(&self, key: &SnapshotKey, data: SnapshotReader) -> Result<u64, SnapshotError>;
}

/// A pipe from a producer (a buildlet's `/tgz`) to [`SnapshotStore::put`] whose end is
/// an end only when the producer confirms it finished: a producer that failed halfway
/// makes the reader fail, so no store keeps half a snapshot as a whole one.
pub fn confirmed_pipe() -> (tokio::io::DuplexStream, SnapshotReader, Confirm) {
    let (writer, reader) = tokio::io::duplex(256 << 10);
    let (tx, rx) = tokio::sync::oneshot::channel();
    (
        writer,
        Box::new(ConfirmedReader {
            inner: reader,
            done: rx,
        }),
        Confirm(tx),
    )
}

/// Tells a [`confirmed_pipe`]'s reader whether its producer finished; dropped unsent, it
/// says "failed".
#[derive(Debug)]
pub struct Confirm(tokio::sync::oneshot::Sender<bool>);

impl Confirm {
    /// The producer's verdict.
    pub fn finished(self, ok: bool) {
        let _ = self.0.send(ok);
    }
}

struct ConfirmedReader {
    inner: tokio::io::DuplexStream,
    done: tokio::sync::oneshot::Receiver<bool>,
}

impl AsyncRead for ConfirmedReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                // The writer is gone: an end only if the producer says it finished.
                match std::pin::Pin::new(&mut self.done).poll(cx) {
                    Poll::Ready(Ok(true)) => Poll::Ready(Ok(())),
                    Poll::Ready(_) => Poll::Ready(Err(std::io::Error::other(
                        "the snapshot's source failed before its end",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod pipe_tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn an_unconfirmed_end_is_an_error() {
        for ok in [true, false] {
            let (mut w, mut r, confirm) = confirmed_pipe();
            let produce = async move {
                w.write_all(b"part").await.unwrap();
                drop(w);
                confirm.finished(ok);
            };
            let mut out = Vec::new();
            let (_, read) = tokio::join!(produce, r.read_to_end(&mut out));
            assert_eq!(read.is_ok(), ok, "confirmed: {ok}");
            assert_eq!(out, b"part");
        }
    }
}
