//! Shared support for flowlib's integration tests and benchmarks: locating the example
//! binaries, running them in throwaway directories, and reading what they stored.
//! (`gcs_xml_fake.py` and `az_create_container.py` beside this crate serve
//! `scripts/services.sh`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flowlib::{Datastore, Digest, Limits, OpenMode, ProgressMode, RunOptions};

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

/// Path of the example flow `name` of `examples/` (package `flowlib-examples`), building it
/// first if it is missing.
pub fn example(name: &str) -> PathBuf {
    built_example("flowlib-examples", name)
}

/// Path of the test fixture flow `name` of `tests/fixtures/` (e.g. `crashflow`, the flow the
/// crash tests kill), building it first if it is missing.
pub fn fixture(name: &str) -> PathBuf {
    built_example("flowlib-tests", name)
}

/// `cargo test` at the root (or of the owning package) builds every example before any test
/// runs; building a missing one here covers a narrower run (`cargo test -p flowlib-tests
/// --test integration`). Only existence is checked: a nested build of another feature set
/// would swap the binary that the outer `cargo test` built.
fn built_example(package: &str, name: &str) -> PathBuf {
    let path = target_dir().join("examples").join(name);
    if !path.exists() {
        let release = target_dir().ends_with("release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--quiet", "-p", package, "--example", name]);
        if release {
            cmd.arg("--release");
        }
        // the cloud tests run examples against S3/GCS/Azure: build them with the same backends
        let features: Vec<&str> = [
            (cfg!(feature = "aws"), "aws"),
            (cfg!(feature = "gcp"), "gcp"),
            (cfg!(feature = "azure"), "azure"),
            (cfg!(feature = "otel"), "otel"),
        ]
        .into_iter()
        .filter_map(|(on, f)| on.then_some(f))
        .collect();
        if !features.is_empty() {
            cmd.args(["--features", &features.join(",")]);
        }
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
        let status = cmd.status().expect("run cargo build");
        assert!(
            status.success(),
            "building example {name} of {package} failed"
        );
    }
    path
}

/// A temporary working directory for running flow binaries, with its own datastore and cache.
#[derive(Debug)]
pub struct Sandbox {
    dir: tempfile::TempDir,
    /// Every artifact is stored as an object (`FLOWLIB_INLINE_LIMIT=0`).
    objects_only: bool,
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
            objects_only: false,
        }
    }

    /// A fresh directory whose commands and handles store every artifact as an object
    /// under `blobs/` (`FLOWLIB_INLINE_LIMIT=0`), none inline in records: for tests that
    /// damage a stored object.
    pub fn objects_only() -> Self {
        Sandbox {
            objects_only: true,
            ..Sandbox::new()
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
        let mut c = flow_command(bin, self.path());
        c.env_remove("RUST_BACKTRACE");
        if self.objects_only {
            c.env(flowlib::INLINE_LIMIT_ENV, "0");
        }
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
        let mut b = flowlib::Datastore::builder(self.datastore().to_str().expect("utf-8 path"))
            .mode(flowlib::OpenMode::Existing);
        if self.objects_only {
            b = b.inline_limit(0);
        }
        b.open().expect("open the sandbox datastore")
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

/// A command running the flow binary `bin` in `dir`: the default datastore `dir/.flowlib`,
/// its own cache `dir/.cache`, and no `FLOWLIB_DATASTORE` or `FLOWLIB_TEST_HOLD` inherited.
pub fn flow_command(bin: &Path, dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.current_dir(dir)
        .env_remove("FLOWLIB_DATASTORE")
        .env_remove("FLOWLIB_TEST_HOLD")
        .env_remove(flowlib::INLINE_LIMIT_ENV)
        .env("FLOWLIB_CACHE_DIR", dir.join(".cache"));
    c
}

/// A new local datastore in a temporary directory (kept while the `TempDir` lives).
pub fn temp_store() -> (tempfile::TempDir, Datastore) {
    let dir = tempfile::tempdir().unwrap();
    let ds = Datastore::open(dir.path().join("ds").to_str().unwrap(), OpenMode::Create).unwrap();
    (dir, ds)
}

/// Options for an in-process run on `workers` threads, without progress output.
pub fn run_options(workers: usize) -> RunOptions {
    RunOptions::default()
        .with_limits(Limits::detect(Some(workers), None))
        .with_progress(ProgressMode::Quiet)
        .with_argv(vec!["test".into()])
}

/// Where the local datastore at `root` keeps the blob `digest`.
pub fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    root.join("blobs/sha256").join(&hex[..2]).join(&hex[2..])
}

/// The commit record of attempt `attempt` of task `task` (`"work/1"`, `"pick"`) of run
/// `run` of `flow` in the local datastore at `root`.
pub fn commit_path(root: &Path, flow: &str, run: &str, task: &str, attempt: u32) -> PathBuf {
    let (step, index) = match task.split_once('/') {
        Some((s, i)) => (s, i),
        None => (task, "_"),
    };
    root.join("flows")
        .join(flow)
        .join("runs")
        .join(run)
        .join("tasks")
        .join(step)
        .join(format!("{index}@{attempt}.commit.json"))
}

/// Where format 1 stores (and a cached task's own manifest) keep the manifest `digest`.
pub fn manifest_path(root: &Path, digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    root.join("manifests/sha256")
        .join(&hex[..2])
        .join(format!("{}.json", &hex[2..]))
}

/// The manifest the commit record at `commit` commits, as JSON: carried by the record
/// (format 2) or stored under `manifests/` (format 1).
pub fn committed_manifest(root: &Path, commit: &Path) -> serde_json::Value {
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(commit).unwrap()).unwrap();
    if let Some(m) = c.get("manifest_json") {
        return m.clone();
    }
    let digest: Digest = c["manifest"]["digest"].as_str().unwrap().parse().unwrap();
    serde_json::from_slice(&std::fs::read(manifest_path(root, &digest)).unwrap()).unwrap()
}

/// Change the manifest the commit record at `commit` carries with `edit`, leaving the
/// record's pin as it was: a damaged manifest, which readers must refuse.
pub fn damage_committed_manifest(commit: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(commit).unwrap()).unwrap();
    edit(&mut c["manifest_json"]);
    std::fs::write(commit, serde_json::to_vec(&c).unwrap()).unwrap();
}

/// Rewrite the commit record at `commit` as flowlib's store format 1 wrote it: version 1,
/// its manifest `manifest` (by default the one it carries) stored pretty-printed under
/// `manifests/` by digest, and the record pinning it. A carried manifest's inline blobs
/// become objects under `blobs/` (format 1 held none inline). Returns the manifest's digest.
pub fn write_format1_commit(
    root: &Path,
    commit: &Path,
    manifest: Option<&serde_json::Value>,
) -> Digest {
    let mut c: serde_json::Value = serde_json::from_slice(&std::fs::read(commit).unwrap()).unwrap();
    let m = match manifest {
        Some(m) => m.clone(),
        None => {
            // Format 1 held no blob inline: each becomes an object, as it then was.
            let mut m = committed_manifest(root, commit);
            if let Some(serde_json::Value::Object(inline)) =
                m.as_object_mut().unwrap().remove("inline")
            {
                use base64::Engine;
                for (digest, b64) in inline {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(b64.as_str().unwrap())
                        .unwrap();
                    let path = blob_path(root, &digest.parse().unwrap());
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(&path, bytes).unwrap();
                }
            }
            m
        }
    };
    let bytes = serde_json::to_vec_pretty(&m).unwrap();
    let digest = Digest::of(&bytes);
    let path = manifest_path(root, &digest);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let obj = c.as_object_mut().unwrap();
    obj.remove("manifest_json");
    obj.insert("version".into(), 1.into());
    obj.insert(
        "manifest".into(),
        serde_json::json!({ "digest": digest.to_string(), "size": bytes.len() }),
    );
    std::fs::write(commit, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    digest
}

/// Rewrite every commit record of the local datastore at `root` in format 1 and mark
/// the store format 1, as a store an older flowlib wrote. Returns how many were rewritten.
pub fn write_format1_store(root: &Path) -> usize {
    fn walk(root: &Path, dir: &Path, n: &mut usize) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, n);
            } else if p.to_string_lossy().ends_with(".commit.json") {
                let c: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                if c.get("manifest_json").is_some() {
                    write_format1_commit(root, &p, None);
                } else {
                    let mut c = c;
                    c["version"] = 1.into();
                    std::fs::write(&p, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
                }
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(root, &root.join("flows"), &mut n);
    let marker = root.join("datastore.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&marker).unwrap()).unwrap();
    m["version"] = 1.into();
    std::fs::write(&marker, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    n
}

/// Every file and directory under `dir` with the file contents (`None` for directories),
/// to prove that a command wrote nothing.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel, None);
                walk(root, &p, out);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `hello run` with `var=lots` in its environment fails with one line of error naming the
/// setting (bad settings from the environment, like bad CLI input, never panic).
pub fn assert_bad_env_is_one_line_of_error(var: &str) {
    let sb = Sandbox::new();
    let o = sb
        .cmd(&example("hello"))
        .args(["run", "-q"])
        .env(var, "lots")
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("error:") && lines[0].contains(&format!("{var}=`lots`")),
        "{err}"
    );
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
pub mod browser;
pub mod fault_proxy;
pub mod k8s;
