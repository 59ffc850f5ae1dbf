//! Build logs that can be read while they are written.
//!
//! Command output is kept up to [`MAX_LOG`] bytes: the first half as it comes, and then
//! the *last* half, since the end of a failing build (the test that failed, the verdict)
//! matters most. The runner's own lines (`$ step`, `step failed: …`, the verdict) are
//! always kept, in order: before one is written, the tail kept so far is flushed after a
//! note saying how much was left out. Readers start at offset 0 and wait for more until
//! the log is closed.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use tokio::sync::watch;

/// Most bytes of command output a log keeps (the runner's own lines come on top).
pub const MAX_LOG: usize = 2 << 20;

/// The output kept from the start.
const HEAD: usize = MAX_LOG / 2;
/// The output kept from the end, at most, between two runner lines.
const TAIL: usize = MAX_LOG / 2;

/// One live log.
#[derive(Debug)]
pub struct LiveLog {
    state: Mutex<State>,
    /// Length written so far, and whether the log is closed.
    progress: watch::Sender<(usize, bool)>,
}

#[derive(Debug, Default)]
struct State {
    /// What readers see.
    buf: Vec<u8>,
    /// Output past the head, newest last, at most [`TAIL`] bytes.
    tail: VecDeque<u8>,
    /// Output bytes dropped from the front of `tail`.
    omitted: u64,
}

impl State {
    /// Appends the kept tail to `buf`, after a note on what was left out.
    fn flush_tail(&mut self) {
        if self.omitted > 0 {
            let note = format!(
                "\n... {} bytes of output left out; the last {} follow ...\n",
                self.omitted,
                self.tail.len()
            );
            self.buf.extend_from_slice(note.as_bytes());
            self.omitted = 0;
        }
        self.buf.extend(self.tail.drain(..));
    }
}

impl Default for LiveLog {
    fn default() -> Self {
        LiveLog {
            state: Mutex::new(State::default()),
            progress: watch::channel((0, false)).0,
        }
    }
}

impl LiveLog {
    /// A new, empty, open log.
    pub fn new() -> Arc<LiveLog> {
        Arc::new(LiveLog::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn published(&self, st: &State) {
        self.progress.send_replace((st.buf.len(), false));
    }

    /// Appends command output (ignored once closed): the head while there is room, then
    /// a bounded tail.
    pub fn write(&self, mut data: &[u8]) {
        if self.progress.borrow().1 {
            return;
        }
        let mut st = self.lock();
        let in_head = st.tail.is_empty() && st.omitted == 0;
        if in_head {
            let room = HEAD.saturating_sub(st.buf.len());
            let now = data.len().min(room);
            st.buf.extend_from_slice(&data[..now]);
            data = &data[now..];
        }
        if !data.is_empty() {
            if data.len() >= TAIL {
                st.omitted += (st.tail.len() + data.len() - TAIL) as u64;
                st.tail.clear();
                data = &data[data.len() - TAIL..];
            }
            let over = (st.tail.len() + data.len()).saturating_sub(TAIL);
            st.tail.drain(..over);
            st.omitted += over as u64;
            st.tail.extend(data);
        }
        self.published(&st);
    }

    /// Appends one of the runner's own lines, which is always kept (after the tail of
    /// the output before it).
    pub fn line(&self, text: &str) {
        if self.progress.borrow().1 {
            return;
        }
        let mut st = self.lock();
        st.flush_tail();
        st.buf.extend_from_slice(text.as_bytes());
        st.buf.push(b'\n');
        self.published(&st);
    }

    /// Closes the log: the kept tail is appended, readers get the rest and end.
    pub fn close(&self) {
        let mut st = self.lock();
        st.flush_tail();
        self.progress.send_replace((st.buf.len(), true));
    }

    /// Everything readers can see so far.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().buf.clone()
    }

    /// The bytes after `offset`, waiting for some if there are none yet; `None` once the
    /// log is closed and fully read.
    pub async fn read_from(&self, offset: usize) -> Option<Vec<u8>> {
        let mut rx = self.progress.subscribe();
        loop {
            let (len, closed) = *rx.borrow_and_update();
            if len > offset {
                let st = self.lock();
                let end = st.buf.len().min(offset + 64 * 1024);
                return Some(st.buf[offset..end].to_vec());
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
    fn a_long_log_keeps_its_head_its_tail_and_every_runner_line() {
        let log = LiveLog::new();
        log.line("$ ./all.bash");
        log.write(b"FIRST OUTPUT\n");
        for i in 0..120_000 {
            log.write(format!("ok  \tpkg/number{i:06}\t0.1s\n").as_bytes());
        }
        log.write(b"--- FAIL: TestTheLastOne\n");
        log.line("step failed: exit status 1");
        log.write(b"cleanup output\n");
        log.line("Build failed.");
        log.close();
        let text = String::from_utf8(log.contents()).unwrap();
        assert!(
            text.starts_with("$ ./all.bash\nFIRST OUTPUT\n"),
            "{:.80}",
            text
        );
        assert!(text.contains("bytes of output left out"));
        assert!(text.contains("--- FAIL: TestTheLastOne\nstep failed: exit status 1\n"));
        assert!(text.ends_with("cleanup output\nBuild failed.\n"));
        assert!(text.len() <= MAX_LOG + 4096, "{} bytes", text.len());
    }

    #[test]
    fn one_huge_write_keeps_its_end() {
        let log = LiveLog::new();
        let mut big = vec![b'a'; 3 * MAX_LOG];
        big.extend_from_slice(b"THE END\n");
        log.write(&big);
        log.close();
        let c = log.contents();
        assert!(c.ends_with(b"THE END\n"));
        assert!(c.len() <= MAX_LOG + 200);
    }
}
