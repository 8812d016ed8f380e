//! guestd's own log volume, bounded: its stderr is the host's `bundle/init.log`, which nothing rotates,
//! so log lines go through a byte budget, then one "log budget exhausted" line, then nowhere. (Sandbox
//! processes cannot write there: guestd is non-dumpable, so `/proc/1/fd/2` does not open for them.)

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;

/// Bytes of log guestd writes in its life.
pub const LOG_BUDGET_BYTES: u64 = 8 * 1024 * 1024;

/// The line written once the budget is spent.
pub const EXHAUSTED_LINE: &[u8] = b"nullspace-guestd: log budget exhausted; further log lines are dropped\n";

/// A [`MakeWriter`] handing out writers to `W` that share one byte budget.
#[derive(Clone)]
pub struct BudgetedLog<W> {
    target: W,
    remaining: Arc<AtomicU64>,
}

impl<W> BudgetedLog<W> {
    /// Logs to `target` until `budget` bytes are written.
    pub fn new(target: W, budget: u64) -> Self {
        Self { target, remaining: Arc::new(AtomicU64::new(budget)) }
    }
}

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for BudgetedLog<W> {
    type Writer = BudgetedWriter<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        BudgetedWriter { inner: self.target.make_writer(), remaining: self.remaining.clone() }
    }
}

/// One writer of a [`BudgetedLog`]; each `write` is one formatted log line (tracing's fmt layer
/// writes a line in one call), kept whole or dropped whole.
pub struct BudgetedWriter<W> {
    inner: W,
    remaining: Arc<AtomicU64>,
}

impl<W: Write> Write for BudgetedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let size = buf.len() as u64;
        let taken = self.remaining.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            // u64::MAX marks "exhausted and said so".
            (left != u64::MAX).then(|| left.checked_sub(size).unwrap_or(u64::MAX))
        });
        match taken {
            Ok(left) if left >= size => self.inner.write_all(buf)?,
            // This line did not fit: it is the one that says so.
            Ok(_) => self.inner.write_all(EXHAUSTED_LINE)?,
            Err(_) => {}
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Sink {
        type Writer = Sink;
        fn make_writer(&'a self) -> Sink {
            self.clone()
        }
    }

    #[test]
    fn lines_pass_until_the_budget_then_one_notice_then_nothing() {
        let sink = Sink::default();
        let log = BudgetedLog::new(sink.clone(), 10);
        for line in [&b"12345\n"[..], b"abc\n", b"this one is too long\n", b"x\n", b"y\n"] {
            let mut writer = log.make_writer();
            assert_eq!(writer.write(line).unwrap(), line.len(), "callers never see an error");
        }
        let written = sink.0.lock().unwrap().clone();
        let mut expected = b"12345\nabc\n".to_vec();
        expected.extend_from_slice(EXHAUSTED_LINE);
        assert_eq!(written, expected);
    }
}
