//! Memory limits for task processes: a memory cgroup per task when this process may create
//! one (cgroup v2 `memory.max`, or v1 `memory.limit_in_bytes`), detected at run time; else
//! an address-space rlimit backstop plus a watchdog that kills the task's process group
//! when its resident memory passes the limit. `check` shows which one applies.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// How a memory limit is enforced on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemoryMode {
    /// A cgroup v2 per task (`memory.max`): the kernel kills the task at the limit.
    CgroupV2,
    /// A cgroup v1 per task (`memory.limit_in_bytes`).
    CgroupV1,
    /// No writable cgroup: resident memory polled every 50 ms, plus `RLIMIT_AS` at 4× the
    /// limit as a backstop.
    Watchdog,
}

impl MemoryMode {
    /// How `check` describes it.
    pub(crate) fn describe(self) -> String {
        match (self, cgroup_base()) {
            (MemoryMode::CgroupV2, Some((_, p))) => {
                format!("cgroup v2 per task under {}", p.display())
            }
            (MemoryMode::CgroupV1, Some((_, p))) => {
                format!("cgroup v1 per task under {}", p.display())
            }
            _ => "no writable memory cgroup: resident-memory watchdog (50 ms) plus an address-space rlimit".into(),
        }
    }
}

/// The mode this process can use (detected once).
pub(crate) fn memory_mode() -> MemoryMode {
    match cgroup_base() {
        Some((MemoryMode::CgroupV2, _)) => MemoryMode::CgroupV2,
        Some((MemoryMode::CgroupV1, _)) => MemoryMode::CgroupV1,
        _ => MemoryMode::Watchdog,
    }
}

/// The cgroup directory task cgroups are created in, and its version. `FLOWLIB_CGROUP=off`
/// forces the watchdog.
fn cgroup_base() -> Option<(MemoryMode, PathBuf)> {
    static BASE: OnceLock<Option<(MemoryMode, PathBuf)>> = OnceLock::new();
    BASE.get_or_init(|| {
        if std::env::var("FLOWLIB_CGROUP").is_ok_and(|v| v == "off") {
            return None;
        }
        let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        // v1 memory controller first (a hybrid host has both), then the v2 hierarchy.
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
            if ctrl.split(',').any(|c| c == "memory") {
                let dir = Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/'));
                if probe(&dir, "memory.limit_in_bytes") {
                    return Some((MemoryMode::CgroupV1, dir));
                }
            }
        }
        for line in text.lines() {
            if let Some(path) = line.strip_prefix("0::") {
                for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
                    let dir = Path::new(root).join(path.trim_start_matches('/'));
                    let controllers = std::fs::read_to_string(dir.join("cgroup.subtree_control"))
                        .unwrap_or_default();
                    if controllers.split_whitespace().any(|c| c == "memory")
                        && probe(&dir, "memory.max")
                    {
                        return Some((MemoryMode::CgroupV2, dir));
                    }
                }
            }
        }
        None
    })
    .clone()
}

/// Whether a child cgroup can be made in `dir` with a writable `file`.
fn probe(dir: &Path, file: &str) -> bool {
    let test = dir.join(format!("flowlib-probe-{}", std::process::id()));
    let ok = std::fs::create_dir(&test).is_ok()
        && std::fs::OpenOptions::new()
            .write(true)
            .open(test.join(file))
            .is_ok();
    let _ = std::fs::remove_dir(&test);
    ok
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// One task's memory limit; its cgroup is removed when it is dropped.
#[derive(Debug)]
pub(crate) struct MemoryLimit {
    bytes: u64,
    mode: MemoryMode,
    dir: Option<PathBuf>,
}

/// What the child does between fork and exec: join its cgroup, or set its rlimit.
#[derive(Debug)]
pub(crate) struct PreExec {
    procs: Option<CString>,
    rlimit_as: Option<u64>,
}

impl PreExec {
    /// Run in the child. Only async-signal-safe calls on prepared data.
    pub(crate) fn run(&self) -> std::io::Result<()> {
        if let Some(path) = &self.procs {
            // SAFETY: `path` is a valid C string; the buffer is on the stack.
            unsafe {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let mut buf = [0u8; 16];
                let mut n = libc::getpid() as u32;
                let mut i = buf.len();
                loop {
                    i -= 1;
                    buf[i] = b'0' + (n % 10) as u8;
                    n /= 10;
                    if n == 0 {
                        break;
                    }
                }
                let len = buf.len() - i;
                let w = libc::write(fd, buf[i..].as_ptr().cast(), len);
                libc::close(fd);
                if w < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        if let Some(bytes) = self.rlimit_as {
            let lim = libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            };
            // SAFETY: setrlimit with a valid struct.
            if unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

impl MemoryLimit {
    /// A limit of `bytes` for one task process, by the best mode available.
    pub(crate) fn new(bytes: u64) -> Result<MemoryLimit> {
        let Some((mode, base)) = cgroup_base() else {
            return Ok(MemoryLimit {
                bytes,
                mode: MemoryMode::Watchdog,
                dir: None,
            });
        };
        let dir = base.join(format!(
            "flowlib-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let fail = |what: &str, e: std::io::Error| {
            Error::invalid(format!(
                "cannot set a memory limit: {what} {}: {e}",
                dir.display()
            ))
        };
        std::fs::create_dir(&dir).map_err(|e| fail("create", e))?;
        let file = match mode {
            MemoryMode::CgroupV2 => "memory.max",
            _ => "memory.limit_in_bytes",
        };
        std::fs::write(dir.join(file), bytes.to_string()).map_err(|e| fail("write", e))?;
        if mode == MemoryMode::CgroupV2 {
            // No swap beyond the limit, when the kernel offers the knob.
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
        } else {
            let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), bytes.to_string());
        }
        Ok(MemoryLimit {
            bytes,
            mode,
            dir: Some(dir),
        })
    }

    /// The limit in bytes.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How it is enforced.
    pub(crate) fn mode(&self) -> MemoryMode {
        self.mode
    }

    /// What the child runs before exec.
    pub(crate) fn pre_exec_hook(&self) -> PreExec {
        match &self.dir {
            Some(d) => PreExec {
                procs: CString::new(d.join("cgroup.procs").to_string_lossy().as_bytes()).ok(),
                rlimit_as: None,
            },
            None => PreExec {
                procs: None,
                rlimit_as: Some(self.bytes.saturating_mul(4).max(1 << 30)),
            },
        }
    }

    /// Whether the kernel killed something in the cgroup for memory.
    pub(crate) fn hit(&self) -> bool {
        let Some(d) = &self.dir else { return false };
        let (file, key) = match self.mode {
            MemoryMode::CgroupV2 => ("memory.events", "oom_kill"),
            _ => ("memory.oom_control", "oom_kill"),
        };
        let counted = std::fs::read_to_string(d.join(file))
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    let (k, v) = l.split_once(' ')?;
                    (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
                })
            })
            .unwrap_or(0);
        if counted > 0 {
            return true;
        }
        // Older v1 kernels lack `oom_kill`: the limit was reached and the task was killed.
        self.mode == MemoryMode::CgroupV1
            && std::fs::read_to_string(d.join("memory.failcnt"))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
            && std::fs::read_to_string(d.join("memory.max_usage_in_bytes"))
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .is_some_and(|m| m + (1 << 20) >= self.bytes)
    }
}

impl Drop for MemoryLimit {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            // The task's processes are gone; the kernel may need a moment to let go.
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// Resident memory of the process group led by `pid`, in bytes (the sum over its members).
pub(crate) fn group_rss(pid: i32) -> Option<u64> {
    let page = {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        if p > 0 {
            p as u64
        } else {
            4096
        }
    };
    let mut total = 0u64;
    let mut found = false;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = e.file_name();
        let Some(p) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the command name (which may contain spaces) in parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // f[0] = state, f[2] = pgrp, f[21] = rss (pages)
        if f.get(2).and_then(|g| g.parse::<i32>().ok()) != Some(pid) {
            continue;
        }
        found = true;
        total += f.get(21).and_then(|r| r.parse::<u64>().ok()).unwrap_or(0) * page;
    }
    found.then_some(total)
}
