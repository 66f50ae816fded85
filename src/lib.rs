//! Shared support for flowlib's integration tests and benchmarks: locating the example
//! binaries, running them in throwaway directories, and reading what they stored.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The directory holding cargo's build output for this profile (`target/debug`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test binary> or target/<profile>/<bench binary>
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path of the example binary `name`, building it first if it is missing.
pub fn example(name: &str) -> PathBuf {
    let path = target_dir().join("examples").join(name);
    if !path.exists() {
        let release = target_dir().ends_with("release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "--example", name]);
        if release {
            cmd.arg("--release");
        }
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building example {name} failed");
    }
    path
}

/// A temporary working directory for running flow binaries, with its own datastore and cache.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// A fresh, empty directory.
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The default datastore of commands run here (`./.flowlib`).
    pub fn datastore(&self) -> PathBuf {
        self.path().join(".flowlib")
    }

    /// A command running `bin` in this directory, with a clean flowlib environment.
    pub fn cmd(&self, bin: &Path) -> Command {
        let mut c = Command::new(bin);
        c.current_dir(self.path())
            .env_remove("FLOWLIB_DATASTORE")
            .env("FLOWLIB_CACHE_DIR", self.path().join(".cache"))
            .env_remove("RUST_BACKTRACE");
        c
    }

    /// Run example `name` with `args` and return its output.
    pub fn run(&self, name: &str, args: &[&str]) -> Output {
        self.cmd(&example(name))
            .args(args)
            .output()
            .expect("spawn example")
    }

    /// Open the default datastore of this directory.
    pub fn open(&self) -> flowlib::Datastore {
        flowlib::Datastore::open(
            self.datastore().to_str().expect("utf-8 path"),
            flowlib::OpenMode::Existing,
        )
        .expect("open the sandbox datastore")
    }

    /// Number of blob files in the default datastore.
    pub fn blob_count(&self) -> usize {
        count_files(&self.datastore().join("blobs"))
    }
}

/// Files under `dir`, recursively (0 if it does not exist).
pub fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_files(&p)
            } else {
                1
            }
        })
        .sum()
}

/// stdout and stderr as text, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `n` incompressible bytes from an xorshift generator (fast, deterministic per seed).
pub fn pseudo_random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(n + 8);
    let mut x = seed | 1;
    while data.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(n);
    data
}

/// Peak resident set size of this process, in bytes (Linux `ru_maxrss`).
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage only writes into the struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u.ru_maxrss as u64 * 1024
    }
}
pub mod fault_proxy;
