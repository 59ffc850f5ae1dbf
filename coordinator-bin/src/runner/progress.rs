//! Progress of a long transfer, reported in the build log as it is read.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use crate::logs::live::LiveLog;

/// How often a transfer reports progress.
pub(super) const PROGRESS_STEP: usize = 16 << 20;

/// A reader that writes `… N MB sent` into a log every [`PROGRESS_STEP`] bytes.
pub(super) struct Progress<R> {
    inner: R,
    log: Arc<LiveLog>,
    sent: usize,
    next_report: usize,
}

impl<R> Progress<R> {
    pub(super) fn new(inner: R, log: Arc<LiveLog>) -> Self {
        Progress {
            inner,
            log,
            sent: 0,
            next_report: PROGRESS_STEP,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Progress<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let me = &mut *self;
        me.sent += buf.filled().len() - before;
        if me.sent >= me.next_report {
            me.log
                .line(&format!("  … {:.0} MB sent", me.sent as f64 / 1e6));
            me.next_report += PROGRESS_STEP;
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_pushes_report_progress() {
        let log = LiveLog::new();
        let total = 40 << 20;
        let mut reader = Progress::new(std::io::Cursor::new(vec![0u8; total]), log.clone());
        let copied = tokio::io::copy(&mut reader, &mut tokio::io::sink())
            .await
            .unwrap();
        assert_eq!(copied as usize, total);
        let text = String::from_utf8(log.contents()).unwrap();
        assert_eq!(text.matches(" MB sent").count(), 2, "{text}");
        assert!(text.contains("… 17 MB sent"), "{text}");
    }
}
