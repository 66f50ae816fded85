//! Benchmark: a 1 GiB `Vec<u8>` artifact written in one step and read in the next.
//!
//! ```text
//! cargo bench --bench large_artifact -- [MiB]       (default 1024)
//! ```
//! Reports the write phase (encode + SHA-256 + store) of the producing task, the same
//! write again in a second run (the value exists: hashed, not written), the read
//! phase (load + verify + decode) of the consuming task, both as throughput, next to
//! `sha256sum` on the same bytes, and the process's peak RSS relative to the artifact.
//! The consuming step runs through `<bench> step` in a child process so the read really
//! comes from the store and its peak RSS is measured on its own.

use std::process::Command;
use std::time::Instant;

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Blob {
    #[param(default = 1024u64, help = "artifact size in MiB")]
    mib: u64,
    data: Vec<u8>,
    checksum: u64,
}

#[flow]
impl Blob {
    #[step(start, next = consume)]
    fn start(&mut self) -> Result<()> {
        self.data =
            flowlib_testkit::pseudo_random_bytes((self.mib << 20) as usize, 0x9E37_79B9_7F4A_7C15);
        Ok(())
    }

    #[step(next = end)]
    fn consume(&mut self) -> Result<()> {
        self.checksum = self.data.iter().step_by(4096).map(|&b| u64::from(b)).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn rss() -> f64 {
    flowlib_testkit::peak_rss_bytes() as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("flow") {
        // Child mode: the flow's own CLI (used for `step`), then report our peak RSS.
        let code = flowlib::main_with_args::<Blob, _>(args[1..].iter().cloned());
        eprintln!("PEAK_RSS {}", flowlib_testkit::peak_rss_bytes());
        std::process::exit(if code == std::process::ExitCode::SUCCESS {
            0
        } else {
            1
        });
    }
    let mib: u64 = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);
    let bytes = (mib << 20) as f64;
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
        .expect("temp dir");
    let ds_path = dir.path().join("ds");
    let ds =
        flowlib::Datastore::open(ds_path.to_str().unwrap(), flowlib::OpenMode::Create).unwrap();

    // The whole flow: `start` writes the artifact (its store phase is the write), `consume`
    // reads it back from the store in this process (its load phase is the read).
    let opts = flowlib::RunOptions::default().with_param("mib", mib.to_string());
    let t0 = Instant::now();
    let summary = flowlib::run::<Blob>(&ds, &opts).expect("run");
    let total = t0.elapsed().as_secs_f64();
    assert_eq!(summary.status, flowlib::RunStatus::Succeeded);
    let run = flowlib::Run::<Blob>::open(&ds, &summary.run_id).unwrap();
    let w = run.task("start").unwrap().manifest().timings.clone();
    let r = run.task("consume").unwrap().manifest().timings.clone();
    let in_process_peak = rss();

    // The same bytes again, in a second run: the value exists, so storing it should cost
    // no more than hashing it (it is hashed first and not written).
    let again = flowlib::run::<Blob>(&ds, &opts).expect("second run");
    let again_run = flowlib::Run::<Blob>::open(&ds, &again.run_id).unwrap();
    let w2 = again_run.task("start").unwrap().manifest().timings.clone();

    // The consuming task again, alone in a child process, reading from the store.
    let exe = std::env::current_exe().unwrap();
    let t1 = Instant::now();
    let out = Command::new(&exe)
        .args([
            "flow",
            "--datastore",
            ds_path.to_str().unwrap(),
            "step",
            "consume",
            "--run",
            &summary.run_id,
            "--attempt",
            "1",
        ])
        .output()
        .expect("child");
    let child_wall = t1.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let child_peak: f64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("PEAK_RSS "))
        .and_then(|v| v.trim().parse().ok())
        .expect("child peak");
    let run = flowlib::Run::<Blob>::open(&ds, &summary.run_id).unwrap();
    let child = run
        .attempts()
        .unwrap()
        .iter()
        .find(|a| a.step == "consume" && a.source.attempt == 1)
        .and_then(|a| a.manifest.clone())
        .expect("child attempt");

    // Baselines on the same bytes (the stored blob file): coreutils `sha256sum`, and SHA-256
    // in process with the hasher flowlib uses (ring), which takes the CPU's SHA instructions
    // when present (this machine's sha256sum does not).
    let blob = run.task("start").unwrap().manifest().artifacts["data"];
    let hex = blob.digest.hex();
    let blob_file = ds_path.join("blobs/sha256").join(&hex[..2]).join(&hex[2..]);
    let file_bytes = std::fs::read(&blob_file).unwrap();
    let t3 = Instant::now();
    let inproc = flowlib::Digest::of(&file_bytes);
    let inproc_s = t3.elapsed().as_secs_f64();
    assert_eq!(inproc, blob.digest);
    drop(file_bytes);
    let t2 = Instant::now();
    let sha = Command::new("sha256sum")
        .arg(&blob_file)
        .output()
        .expect("sha256sum");
    let sha_s = t2.elapsed().as_secs_f64();
    assert!(
        String::from_utf8_lossy(&sha.stdout).starts_with(&hex),
        "sha256sum agrees with the address"
    );

    let gbps = |ms: f64| bytes / (ms / 1000.0) / 1e9;
    println!("artifact: {mib} MiB Vec<u8> ({:.3} GB)", bytes / 1e9);
    println!(
        "sha256sum on the blob:          {:.2} s  = {:.2} GB/s",
        sha_s,
        bytes / sha_s / 1e9
    );
    println!(
        "SHA-256 in process (sha2):      {:.2} s  = {:.2} GB/s",
        inproc_s,
        bytes / inproc_s / 1e9
    );
    println!(
        "write (start task store phase): {:.2} s  = {:.2} GB/s  ({:.0}% of sha256sum)",
        w.store_ms / 1000.0,
        gbps(w.store_ms),
        100.0 * gbps(w.store_ms) / (bytes / sha_s / 1e9)
    );
    println!(
        "re-store, same bytes (2nd run): {:.2} s  ({:.2}x SHA-256 in process)",
        w2.store_ms / 1000.0,
        w2.store_ms / 1000.0 / inproc_s
    );
    println!(
        "read, in-process run:           {:.2} s  = {:.2} GB/s  ({:.0}% of sha256sum)",
        r.load_ms / 1000.0,
        gbps(r.load_ms),
        100.0 * gbps(r.load_ms) / (bytes / sha_s / 1e9)
    );
    println!(
        "read, `step consume` child:     {:.2} s  = {:.2} GB/s  ({:.0}% of sha256sum); child wall {:.2} s",
        child.timings.load_ms / 1000.0,
        gbps(child.timings.load_ms),
        100.0 * gbps(child.timings.load_ms) / (bytes / sha_s / 1e9),
        child_wall
    );
    println!("whole 3-step run: {total:.2} s (mostly generating the bytes in `start`)");
    println!(
        "peak RSS: run (write + read in one process) {:.2} GiB = {:.2}x the artifact; reading child {:.2} GiB = {:.2}x",
        in_process_peak / (1u64 << 30) as f64,
        in_process_peak / bytes,
        child_peak / (1u64 << 30) as f64,
        child_peak / bytes
    );
}
