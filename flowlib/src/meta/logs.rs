//! Task logs: each attempt's stdout and stderr, stored in the datastore in numbered,
//! create-only chunks *while the task runs*, by the process that watches the task (the
//! driver for the processes executor, the job's wrapper on a batch engine). The task's own
//! process may die at any instant (a kill, a segfault, the out-of-memory killer): what it
//! wrote before is already in its watcher's hands and reaches the store.
//!
//! A chunk is written when [`CHUNK`] bytes are pending or [`FLUSH_EVERY`] after the first
//! pending byte, whichever comes first; the last chunk when the stream closes. Readers list
//! the stream's chunks and concatenate them in order, so `logs --follow` sees output a
//! fraction of a second after the task wrote it.

use std::collections::VecDeque;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{chain, Result};
use crate::meta::TaskRef;
use crate::store::{layout, Datastore};

/// The two streams of a task's output.
pub(crate) const STREAMS: [&str; 2] = ["stdout", "stderr"];

/// At most this many bytes wait in memory before a chunk is written.
pub(crate) const CHUNK: usize = 256 << 10;

/// Pending output is written at the latest this long after it arrived.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// Lines kept for a failure summary.
pub(crate) const TAIL_LINES: usize = 20;

/// The store prefix of attempt `task`'s logs.
pub(crate) fn prefix(flow: &str, task: &TaskRef) -> String {
    layout::logs(
        flow,
        &task.run,
        &task.step,
        &task.index.dir_name(),
        task.attempt,
    )
}

/// How a task's process ended, as its watcher saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExitRecord {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
    /// The memory limit was hit (cgroup OOM kill or the watchdog).
    #[serde(default)]
    pub out_of_memory: bool,
    /// The watcher killed it because its time ran out.
    #[serde(default)]
    pub timed_out: bool,
    /// One line saying how it ended.
    pub reason: String,
    /// Host it ran on.
    pub host: String,
    /// When it ended (RFC 3339).
    pub finished: String,
}

/// Write `record` next to the logs of `task` (best effort: it only explains a death).
pub(crate) fn write_exit(ds: &Datastore, flow: &str, task: &TaskRef, record: &ExitRecord) {
    let rel = layout::exit_record(&prefix(flow, task));
    if let Err(e) = ds.create_json(&rel, record) {
        eprintln!(
            "flowlib: warning: could not record how task {} attempt {} ended: {}",
            task.task_id(),
            task.attempt,
            chain(&e)
        );
    }
}

/// One stream of one attempt's log, being written.
#[derive(Debug)]
pub(crate) struct LogStream {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    ds: Datastore,
    prefix: String,
    stream: &'static str,
    seq: u64,
    pending: Vec<u8>,
    since: Option<Instant>,
    tail: VecDeque<String>,
    partial: Vec<u8>,
    warned: bool,
}

impl LogStream {
    /// A writer of `stream` under `prefix` (from [`prefix`]).
    pub(crate) fn new(ds: &Datastore, prefix: &str, stream: &'static str) -> LogStream {
        LogStream {
            inner: Mutex::new(Inner {
                ds: ds.clone(),
                prefix: prefix.to_string(),
                stream,
                seq: 0,
                pending: Vec::new(),
                since: None,
                tail: VecDeque::new(),
                partial: Vec::new(),
                warned: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add output; a chunk is written when enough is pending.
    pub(crate) fn append(&self, bytes: &[u8]) {
        let mut g = self.lock();
        g.keep_tail(bytes);
        g.pending.extend_from_slice(bytes);
        g.since.get_or_insert_with(Instant::now);
        if g.pending.len() >= CHUNK {
            g.flush();
        }
    }

    /// Write pending output if it has waited [`FLUSH_EVERY`].
    pub(crate) fn tick(&self) {
        let mut g = self.lock();
        if g.since.is_some_and(|t| t.elapsed() >= FLUSH_EVERY) {
            g.flush();
        }
    }

    /// Write everything pending now.
    pub(crate) fn flush(&self) {
        self.lock().flush();
    }

    /// Whether any chunk was written.
    pub(crate) fn written(&self) -> bool {
        self.lock().seq > 0
    }

    /// The last lines seen (at most [`TAIL_LINES`]), the unterminated last line included.
    pub(crate) fn tail(&self) -> Vec<String> {
        let g = self.lock();
        let mut out: Vec<String> = g.tail.iter().cloned().collect();
        if !g.partial.is_empty() {
            out.push(String::from_utf8_lossy(&g.partial).into_owned());
            if out.len() > TAIL_LINES {
                out.remove(0);
            }
        }
        out
    }
}

impl Inner {
    fn keep_tail(&mut self, mut bytes: &[u8]) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&bytes[..nl]);
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            self.tail.push_back(line);
            if self.tail.len() > TAIL_LINES {
                self.tail.pop_front();
            }
            bytes = &bytes[nl + 1..];
        }
        self.partial.extend_from_slice(bytes);
        if self.partial.len() > 4096 {
            let cut = self.partial.len() - 4096;
            self.partial.drain(..cut);
        }
    }

    fn flush(&mut self) {
        self.since = None;
        if self.pending.is_empty() {
            return;
        }
        let bytes = Bytes::from(std::mem::take(&mut self.pending));
        let rel = layout::log_chunk(&self.prefix, self.stream, self.seq);
        self.seq += 1;
        match self.ds.create(&rel, bytes) {
            Ok(_) => {}
            Err(e) if !self.warned => {
                self.warned = true;
                eprintln!(
                    "flowlib: warning: could not store task output at {}: {} (the task goes on)",
                    self.ds.path(&rel),
                    chain(&e)
                );
            }
            Err(_) => {}
        }
    }
}

/// The output of one attempt's process, captured into the store: a thread per stream reads
/// the pipe, and a ticker writes pending output every [`FLUSH_EVERY`].
#[derive(Debug)]
pub(crate) struct Capture {
    streams: Vec<Arc<LogStream>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    stop: Arc<(Mutex<bool>, Condvar)>,
    ticker: Option<std::thread::JoinHandle<()>>,
}

impl Capture {
    /// Capture `pipes` (stdout, stderr) of attempt `task`. Each line is also echoed to this
    /// process's own stream with `echo` in front when `echo` is given.
    pub(crate) fn start(
        ds: &Datastore,
        flow: &str,
        task: &TaskRef,
        pipes: [Option<Box<dyn Read + Send>>; 2],
        echo: Option<String>,
    ) -> Capture {
        let prefix = prefix(flow, task);
        let streams: Vec<Arc<LogStream>> = STREAMS
            .iter()
            .map(|s| Arc::new(LogStream::new(ds, &prefix, s)))
            .collect();
        let mut readers = Vec::new();
        for (i, pipe) in pipes.into_iter().enumerate() {
            let Some(mut pipe) = pipe else { continue };
            let stream = streams[i].clone();
            let echo = echo.clone();
            readers.push(
                std::thread::Builder::new()
                    .name("flowlib-log".into())
                    .spawn(move || {
                        let mut buf = vec![0u8; 64 << 10];
                        let mut partial: Vec<u8> = Vec::new();
                        loop {
                            match pipe.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    stream.append(&buf[..n]);
                                    if let Some(p) = &echo {
                                        partial.extend_from_slice(&buf[..n]);
                                        echo_lines(i, p, &mut partial, false);
                                    }
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                                Err(_) => break,
                            }
                        }
                        if let Some(p) = &echo {
                            echo_lines(i, p, &mut partial, true);
                        }
                        stream.flush();
                    })
                    .expect("spawn a log reader thread"),
            );
        }
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let ticker = {
            let (streams, stop) = (streams.clone(), stop.clone());
            std::thread::Builder::new()
                .name("flowlib-log-tick".into())
                .spawn(move || {
                    let (lock, cv) = &*stop;
                    let mut done = lock.lock().unwrap_or_else(|p| p.into_inner());
                    while !*done {
                        let (g, _) = cv
                            .wait_timeout(done, FLUSH_EVERY / 2)
                            .unwrap_or_else(|p| p.into_inner());
                        done = g;
                        for s in &streams {
                            s.tick();
                        }
                    }
                })
                .expect("spawn a log ticker thread")
        };
        Capture {
            streams,
            readers,
            stop,
            ticker: Some(ticker),
        }
    }

    /// Wait for both pipes to close (the process and its children are gone), write what is
    /// pending, and return the last lines of (stdout, stderr).
    pub(crate) fn finish(mut self) -> [Vec<String>; 2] {
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        self.stop_ticker();
        for s in &self.streams {
            s.flush();
        }
        [self.streams[0].tail(), self.streams[1].tail()]
    }

    fn stop_ticker(&mut self) {
        let (lock, cv) = &*self.stop;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop_ticker();
    }
}

/// Echo the complete lines of `pending` (all of it when `last`) to stdout (`stream` 0) or
/// stderr (1), `prefix` before each, in one write: lines of concurrent tasks never mix.
fn echo_lines(stream: usize, prefix: &str, pending: &mut Vec<u8>, last: bool) {
    use std::io::Write;
    let end = if last {
        pending.len()
    } else {
        match pending.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => return,
        }
    };
    if end == 0 {
        return;
    }
    let mut out = Vec::with_capacity(end + 32);
    for line in pending[..end].split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(line);
    }
    if out.last() != Some(&b'\n') {
        out.push(b'\n');
    }
    pending.drain(..end);
    let _ = if stream == 0 {
        std::io::stdout().lock().write_all(&out)
    } else {
        std::io::stderr().lock().write_all(&out)
    };
}

/// The chunks of `stream` of attempt `task` from number `from` on: (next number, bytes).
pub(crate) fn read_from(
    ds: &Datastore,
    flow: &str,
    task: &TaskRef,
    stream: &str,
    from: u64,
) -> Result<(u64, Vec<u8>)> {
    let prefix = prefix(flow, task);
    let dir = format!("{prefix}{stream}/");
    let mut chunks: Vec<(u64, String)> = ds
        .list(&dir)?
        .into_iter()
        .filter_map(|l| {
            let name = l.rel.rsplit('/').next()?;
            let seq: u64 = name.strip_suffix(".log")?.parse().ok()?;
            (seq >= from).then_some((seq, l.rel))
        })
        .collect();
    chunks.sort();
    let mut out = Vec::new();
    let mut next = from;
    for (seq, rel) in chunks {
        // Chunks are numbered without gaps; a missing one is still being written.
        if seq != next {
            break;
        }
        match ds.get_bytes(&rel)? {
            Some(b) => out.extend_from_slice(&b),
            None => break,
        }
        next = seq + 1;
    }
    Ok((next, out))
}

#[cfg(test)]
/// The last `n` lines of `stream` of attempt `task`.
pub(crate) fn tail(
    ds: &Datastore,
    flow: &str,
    task: &TaskRef,
    stream: &str,
    n: usize,
) -> Result<Vec<String>> {
    let (_, bytes) = read_from(ds, flow, task, stream, 0)?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::IndexPath;
    use crate::store::OpenMode;

    fn task() -> TaskRef {
        TaskRef {
            run: "r1".into(),
            step: "work".into(),
            index: IndexPath(vec![3]),
            attempt: 1,
        }
    }

    #[test]
    fn chunks_concatenate_in_order_and_tail_keeps_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Datastore::open(dir.path().to_str().unwrap(), OpenMode::Create).unwrap();
        let p = prefix("F", &task());
        let s = LogStream::new(&ds, &p, "stdout");
        for i in 0..30 {
            s.append(format!("line {i}\n").as_bytes());
            if i % 7 == 0 {
                s.flush();
            }
        }
        s.append(b"no newline");
        s.flush();
        let (next, bytes) = read_from(&ds, "F", &task(), "stdout", 0).unwrap();
        assert!(next >= 5, "several chunks were written: {next}");
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("line 0\nline 1\n"));
        assert!(text.ends_with("line 29\nno newline"));
        let t = s.tail();
        assert_eq!(t.len(), TAIL_LINES);
        assert_eq!(t.last().unwrap(), "no newline");
        assert_eq!(t[0], "line 11");
        let stored = tail(&ds, "F", &task(), "stdout", 2).unwrap();
        assert_eq!(stored, ["line 29", "no newline"]);
        // Reading on from a chunk number returns only what came after.
        let (n2, rest) = read_from(&ds, "F", &task(), "stdout", next).unwrap();
        assert_eq!((n2, rest.len()), (next, 0));
    }

    #[test]
    fn capture_stores_what_a_killed_process_printed() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Datastore::open(dir.path().to_str().unwrap(), OpenMode::Create).unwrap();
        let mut child = std::process::Command::new("sh")
            .args(["-c", "echo before; echo oops >&2; kill -9 $$; echo after"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        let cap = Capture::start(&ds, "F", &task(), [Some(out), Some(err)], None);
        let status = child.wait().unwrap();
        assert!(!status.success());
        let [o, e] = cap.finish();
        assert_eq!(o, ["before"]);
        assert_eq!(e, ["oops"]);
        assert_eq!(tail(&ds, "F", &task(), "stdout", 5).unwrap(), ["before"]);
        assert_eq!(tail(&ds, "F", &task(), "stderr", 5).unwrap(), ["oops"]);
    }
}
