//! The tail of the render pod's own log, kept in memory so it can be written to storage next
//! to the shard's manifest (`<shard prefix>/log.txt`), for failed attempts too: a pod's log
//! outlives the pod (docs/troubleshooting.md).

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

/// The most bytes of log kept (the tail).
pub const MAX_LOG_BYTES: usize = 64 * 1024;

/// A bounded buffer of the last [`MAX_LOG_BYTES`] bytes written, shared by every writer.
#[derive(Clone, Default)]
pub struct LogTail {
    bytes: Arc<Mutex<VecDeque<u8>>>,
}

impl LogTail {
    /// The tail so far, starting at a line boundary when it was cut.
    pub fn contents(&self) -> Vec<u8> {
        let bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let all: Vec<u8> = bytes.iter().copied().collect();
        if all.len() < MAX_LOG_BYTES {
            return all;
        }
        match all.iter().position(|b| *b == b'\n') {
            Some(newline) => all[newline + 1..].to_vec(),
            None => all,
        }
    }

    fn append(&self, data: &[u8]) {
        let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let data = &data[data.len().saturating_sub(MAX_LOG_BYTES)..];
        let held = bytes.len();
        let overflow = (held + data.len()).saturating_sub(MAX_LOG_BYTES);
        bytes.drain(..overflow.min(held));
        bytes.extend(data);
    }
}

/// Writes to stderr and into the tail.
pub struct TeeWriter {
    tail: LogTail,
}

impl Write for TeeWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.tail.append(data);
        std::io::stderr().write_all(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for LogTail {
    type Writer = TeeWriter;

    fn make_writer(&'a self) -> Self::Writer {
        TeeWriter { tail: self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_64_kib_from_a_line_start() {
        let tail = LogTail::default();
        let mut writer = tail.make_writer();
        for i in 0..10_000 {
            writeln!(writer, "line {i:05} of the render log").unwrap();
        }
        let text = String::from_utf8(tail.contents()).unwrap();
        assert!(text.len() <= MAX_LOG_BYTES);
        assert!(text.starts_with("line "), "{}", &text[..40]);
        assert!(text.ends_with("line 09999 of the render log\n"));
    }
}
