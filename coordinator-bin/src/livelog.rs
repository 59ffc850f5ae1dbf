//! Build logs that can be read while they are written.
//!
//! An append-only buffer capped at 2 MiB (upstream's limit; overflow is cut with a note);
//! readers start at offset 0 and wait for more until the log is closed.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tokio::sync::watch;

/// Most bytes a log keeps.
pub const MAX_LOG: usize = 2 << 20;

const TRUNCATED: &[u8] = b"\n\n... log truncated ...\n";

/// One live log.
#[derive(Debug)]
pub struct LiveLog {
    buf: Mutex<Vec<u8>>,
    /// Length written so far, and whether the log is closed.
    progress: watch::Sender<(usize, bool)>,
}

impl Default for LiveLog {
    fn default() -> Self {
        LiveLog {
            buf: Mutex::new(Vec::new()),
            progress: watch::channel((0, false)).0,
        }
    }
}

impl LiveLog {
    /// A new, empty, open log.
    pub fn new() -> Arc<LiveLog> {
        Arc::new(LiveLog::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.buf.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends bytes (ignored once closed or full).
    pub fn write(&self, data: &[u8]) {
        let mut buf = self.lock();
        if self.progress.borrow().1 || buf.len() >= MAX_LOG + TRUNCATED.len() {
            return;
        }
        let room = MAX_LOG.saturating_sub(buf.len());
        if data.len() > room {
            buf.extend_from_slice(&data[..room]);
            buf.extend_from_slice(TRUNCATED);
        } else {
            buf.extend_from_slice(data);
        }
        let len = buf.len();
        self.progress.send_replace((len, false));
    }

    /// Appends a line.
    pub fn line(&self, text: &str) {
        self.write(format!("{text}\n").as_bytes());
    }

    /// Closes the log: readers get the rest and end.
    pub fn close(&self) {
        let len = self.lock().len();
        self.progress.send_replace((len, true));
    }

    /// Everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().clone()
    }

    /// The bytes after `offset`, waiting for some if there are none yet; `None` once the
    /// log is closed and fully read.
    pub async fn read_from(&self, offset: usize) -> Option<Vec<u8>> {
        let mut rx = self.progress.subscribe();
        loop {
            let (len, closed) = *rx.borrow_and_update();
            if len > offset {
                let buf = self.lock();
                let end = buf.len().min(offset + 64 * 1024);
                return Some(buf[offset..end].to_vec());
            }
            if closed {
                return None;
            }
            if rx.changed().await.is_err() {
                return None;
            }
        }
    }
}

/// An [`AsyncWrite`] into a live log, for a buildlet's exec output.
#[derive(Debug, Clone)]
pub struct LogWriter(pub Arc<LiveLog>);

impl AsyncWrite for LogWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.0.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readers_follow_until_closed() {
        let log = LiveLog::new();
        log.line("one");
        let reader = {
            let log = log.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(chunk) = log.read_from(got.len()).await {
                    got.extend(chunk);
                }
                got
            })
        };
        tokio::task::yield_now().await;
        log.line("two");
        log.close();
        log.line("ignored");
        assert_eq!(reader.await.unwrap(), b"one\ntwo\n");
    }

    #[test]
    fn capped_at_two_mebibytes() {
        let log = LiveLog::new();
        log.write(&vec![b'x'; MAX_LOG - 1]);
        log.write(b"abc");
        log.write(b"more");
        let c = log.contents();
        assert_eq!(c.len(), MAX_LOG + TRUNCATED.len());
        assert!(c.ends_with(TRUNCATED));
    }
}
