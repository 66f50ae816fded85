//! One task attempt in a child process: `<exe> step --spec <digest>`, in a process group of
//! its own, its stdout and stderr captured into the store (`meta::logs`), optionally under a
//! memory limit, and how it ended decoded into one line (exit code, signal by name, out of
//! memory, timed out).
//!
//! The processes executor watches its children from the driver; a batch job's wrapper
//! (`<exe> task-exec`) watches the one child of its job the same way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::exec::limit::{MemoryLimit, MemoryMode};
use crate::flow::graph::format_bytes;
use crate::meta::logs::{Capture, ExitRecord};
use crate::meta::{hostname, now_rfc3339, TaskRef};
use crate::store::{Datastore, Digest, DATASTORE_ENV};
use crate::task::CAPTURED_ENV;

/// How to start one task process.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// The flow executable.
    pub(crate) exe: PathBuf,
    /// The datastore URL the child opens.
    pub(crate) datastore: String,
    /// The stored task spec.
    pub(crate) spec: Digest,
    /// The attempt (for log paths and messages).
    pub(crate) task: TaskRef,
    /// The flow's name.
    pub(crate) flow: &'static str,
    /// Memory limit in bytes, if the step asks for one.
    pub(crate) memory: Option<u64>,
    /// Echo the child's lines to this process's stdout/stderr, each with this prefix.
    pub(crate) echo: Option<String>,
}

/// A running task process.
#[derive(Debug)]
pub(crate) struct TaskProcess {
    pid: i32,
    /// Set once the child is reaped: a kill after that could hit a reused pid.
    reaped: Arc<Mutex<bool>>,
    timed_out: Arc<std::sync::atomic::AtomicBool>,
    watchdog_hit: Arc<std::sync::atomic::AtomicBool>,
}

/// How a task process ended.
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    pub(crate) record: ExitRecord,
    /// Its last stderr lines (or stdout when stderr was empty).
    pub(crate) tail: Vec<String>,
}

impl Ended {
    /// The reason, with the last lines of output when there are any.
    pub(crate) fn message(&self) -> String {
        let mut m = self.record.reason.clone();
        if !self.tail.is_empty() {
            m.push_str("; last output:\n");
            for l in &self.tail {
                m.push_str("  | ");
                m.push_str(l);
                m.push('\n');
            }
            m.pop();
        }
        m
    }
}

impl TaskProcess {
    /// Start the process and a thread that watches it; `done` is called with how it ended
    /// once it has exited and its output is stored.
    pub(crate) fn spawn(
        ds: &Datastore,
        l: Launch,
        done: impl FnOnce(Ended) + Send + 'static,
    ) -> Result<TaskProcess> {
        let mut cmd = Command::new(&l.exe);
        cmd.arg("step")
            .arg("--spec")
            .arg(l.spec.to_string())
            .env(DATASTORE_ENV, &l.datastore)
            .env(CAPTURED_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let limit = l.memory.map(MemoryLimit::new).transpose()?;
        prepare_child(&mut cmd, limit.as_ref());
        let mut child = cmd.spawn().map_err(|e| {
            Error::invalid(format!(
                "cannot start task {} attempt {}: {}: {e}",
                l.task.task_id(),
                l.task.attempt,
                l.exe.display()
            ))
        })?;
        let pid = child.id() as i32;
        let pipes: [Option<Box<dyn std::io::Read + Send>>; 2] = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ];
        let capture = Capture::start(ds, l.flow, &l.task, pipes, l.echo.clone());
        let p = TaskProcess {
            pid,
            reaped: Arc::new(Mutex::new(false)),
            timed_out: Arc::default(),
            watchdog_hit: Arc::default(),
        };
        if let Some(lim) = &limit {
            if lim.mode() == MemoryMode::Watchdog {
                spawn_watchdog(pid, lim.bytes(), p.reaped.clone(), p.watchdog_hit.clone());
            }
        }
        let (reaped, timed_out, watchdog) = (
            p.reaped.clone(),
            p.timed_out.clone(),
            p.watchdog_hit.clone(),
        );
        std::thread::Builder::new()
            .name("flowlib-child".into())
            .spawn(move || {
                let status = wait_child(&mut child, pid, &reaped);
                // Whatever the task left behind in its process group goes with it, so its
                // pipes close and its output is complete.
                kill_group(pid, &reaped, true);
                let tails = capture.finish();
                let oom = limit.as_ref().is_some_and(|m| m.hit())
                    || watchdog.load(std::sync::atomic::Ordering::SeqCst);
                let record = decode(
                    status,
                    oom,
                    timed_out.load(std::sync::atomic::Ordering::SeqCst),
                    l.memory,
                );
                drop(limit);
                let [out, err] = tails;
                let tail = merge_tails(out, err);
                done(Ended { record, tail });
            })
            .map_err(|e| Error::internal(format!("cannot start a watcher thread: {e}")))?;
        Ok(p)
    }

    /// Kill the process (and its process group) because its time ran out.
    pub(crate) fn kill_timed_out(&self) {
        self.timed_out
            .store(true, std::sync::atomic::Ordering::SeqCst);
        kill_group(self.pid, &self.reaped, false);
    }

    /// Kill the process (and its process group): the run is cancelled.
    pub(crate) fn kill(&self) {
        kill_group(self.pid, &self.reaped, false);
    }
}

/// The child runs in a process group of its own (a Ctrl-C at the terminal reaches the
/// driver, which cancels its children deliberately), joins its memory cgroup before it
/// runs any task code, and gets the address-space rlimit when no cgroup is available.
fn prepare_child(cmd: &mut Command, limit: Option<&MemoryLimit>) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    if let Some(lim) = limit {
        let hook = lim.pre_exec_hook();
        // SAFETY: the hook only makes async-signal-safe system calls (open, write, close,
        // setrlimit) on data prepared before the fork; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || hook.run());
        }
    }
}

/// Wait for the child to exit without reaping it, mark it reaped under the lock (so no
/// kill can reach a reused pid), then reap it.
fn wait_child(
    child: &mut Child,
    pid: i32,
    reaped: &Mutex<bool>,
) -> Option<std::process::ExitStatus> {
    loop {
        // SAFETY: waitid with WNOWAIT only observes the child's state; `info` is a plain
        // C struct the kernel fills in.
        let r = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    let mut g = reaped.lock().unwrap_or_else(|p| p.into_inner());
    let status = child.wait().ok();
    *g = true;
    status
}

/// SIGKILL the process group of `pid` unless the child was already reaped (`after_reap`:
/// the leader is gone, kill what remains of its group).
fn kill_group(pid: i32, reaped: &Mutex<bool>, after_reap: bool) {
    let g = reaped.lock().unwrap_or_else(|p| p.into_inner());
    if *g && !after_reap {
        return;
    }
    // SAFETY: kill has no memory-safety preconditions. The group id is the child's pid
    // (process_group(0)); while the child is not reaped its pid cannot be reused, and after
    // it is reaped the group lives on only while a member of it does.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        if !*g {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// The last lines of both streams, each marked with its stream, at most
/// `meta::logs::TAIL_LINES` in all (stderr's share first: it usually says why).
fn merge_tails(out: Vec<String>, err: Vec<String>) -> Vec<String> {
    let max = crate::meta::logs::TAIL_LINES;
    let err_n = err.len().min(max.saturating_sub(out.len().min(max / 2)));
    let out_n = out.len().min(max - err_n);
    let mut v: Vec<String> = out[out.len() - out_n..]
        .iter()
        .map(|l| format!("stdout: {l}"))
        .collect();
    v.extend(
        err[err.len() - err_n..]
            .iter()
            .map(|l| format!("stderr: {l}")),
    );
    v
}

/// Without a cgroup: kill the child when its resident memory passes the limit.
fn spawn_watchdog(
    pid: i32,
    limit: u64,
    reaped: Arc<Mutex<bool>>,
    hit: Arc<std::sync::atomic::AtomicBool>,
) {
    let _ = std::thread::Builder::new()
        .name("flowlib-memwatch".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(50));
            if *reaped.lock().unwrap_or_else(|p| p.into_inner()) {
                return;
            }
            let Some(rss) = crate::exec::limit::group_rss(pid) else {
                continue;
            };
            if rss > limit {
                hit.store(true, std::sync::atomic::Ordering::SeqCst);
                kill_group(pid, &reaped, false);
                return;
            }
        });
}

/// Decode how a process ended.
pub(crate) fn decode(
    status: Option<std::process::ExitStatus>,
    oom: bool,
    timed_out: bool,
    memory: Option<u64>,
) -> ExitRecord {
    use std::os::unix::process::ExitStatusExt;
    let code = status.and_then(|s| s.code());
    let signal = status.and_then(|s| s.signal());
    let reason = if oom {
        format!(
            "out of memory: the task went over its memory limit of {} (#[resources(memory)]) and was killed",
            memory.map(format_bytes).unwrap_or_else(|| "?".into())
        )
    } else if timed_out {
        "timed out: the task process was killed at its #[timeout]".to_string()
    } else {
        describe_status(code, signal)
    };
    ExitRecord {
        code,
        signal,
        out_of_memory: oom,
        timed_out,
        reason,
        host: hostname(),
        finished: now_rfc3339(),
    }
}

/// `exited with code 3`, `killed by signal 11 (SIGSEGV: segmentation fault)`.
pub(crate) fn describe_status(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(0), _) => "the task process exited with code 0 without recording its result".into(),
        (Some(c), _) => format!("the task process exited with code {c}"),
        (None, Some(s)) => format!(
            "the task process was killed by signal {s} ({})",
            signal_name(s)
        ),
        (None, None) => "the task process ended in an unknown way".into(),
    }
}

/// A signal's name and what it usually means.
pub(crate) fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGSEGV => "SIGSEGV: segmentation fault",
        libc::SIGABRT => "SIGABRT: aborted, e.g. a failed allocation or a panic while panicking",
        libc::SIGBUS => "SIGBUS: bus error",
        libc::SIGILL => "SIGILL: illegal instruction",
        libc::SIGFPE => "SIGFPE: arithmetic exception",
        libc::SIGKILL => "SIGKILL: killed, e.g. by the out-of-memory killer or an operator",
        libc::SIGTERM => "SIGTERM: terminated",
        libc::SIGINT => "SIGINT: interrupted",
        libc::SIGHUP => "SIGHUP: hang-up",
        libc::SIGPIPE => "SIGPIPE: broken pipe",
        libc::SIGXCPU => "SIGXCPU: CPU time limit",
        _ => "signal",
    }
}

/// The executable the remote side must run: this one.
pub(crate) fn current_exe() -> Result<PathBuf> {
    std::env::current_exe()
        .map_err(|e| Error::invalid(format!("cannot find this program's executable: {e}")))
}

/// Whether `p` exists and is executable.
pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What `task-exec` does in a batch job: run the task of the stored spec `digest` in a
/// watched child of this same binary, and wait for it. How it ended is written next to the
/// attempt's logs when it left no commit record.
pub(crate) fn watch_spec<F: crate::flow::Flow>(ds: &Datastore, digest: Digest) -> Result<Ended> {
    let spec = crate::task::TaskSpec::load(ds, &digest)?;
    if spec.flow != F::NAME {
        return Err(Error::invalid(format!(
            "task spec {digest} is for flow {}, not {}",
            spec.flow,
            F::NAME
        )));
    }
    let launch = Launch {
        exe: current_exe()?,
        datastore: ds.url().to_string(),
        spec: digest,
        task: spec.task.clone(),
        flow: F::NAME,
        memory: None,
        echo: Some(String::new()),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    TaskProcess::spawn(ds, launch, move |e| {
        let _ = tx.send(e);
    })?;
    let ended = rx
        .recv()
        .map_err(|_| Error::internal("the task watcher stopped without a result"))?;
    let committed = crate::meta::commit::read_commit(ds, F::NAME, &spec.task)
        .ok()
        .flatten()
        .is_some();
    if !committed {
        crate::meta::logs::write_exit(ds, F::NAME, &spec.task, &ended.record);
    }
    Ok(ended)
}
