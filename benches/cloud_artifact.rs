//! Benchmark: a large `Vec<u8>` artifact through S3 (moto on loopback) versus the local
//! store, and the local read cache on a second read.
//!
//! ```text
//! eval "$(scripts/services.sh env)"      # after scripts/services.sh start
//! cargo bench --features cloud --bench cloud_artifact -- [MiB]     (default 1024)
//! ```
//! Each phase runs in its own child process (`<bench> flow ...`) so its peak RSS is its own:
//! the write (the `start` task: encode, hash, multipart upload), a cold read (the `consume`
//! task through `step`, cache off), a read that fills the local cache, and a read served by it.

use std::process::Command;
use std::time::Instant;

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Cloudy {
    #[param(default = 1024u64, help = "artifact size in MiB")]
    mib: u64,
    data: Vec<u8>,
    checksum: u64,
}

#[flow]
impl Cloudy {
    #[step(start, next = consume)]
    fn start(&mut self) -> Result<()> {
        self.data =
            flowlib_testkit::pseudo_random_bytes((self.mib << 20) as usize, 0x2545_F491_4F6C_DD1D);
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

struct Phase {
    wall: f64,
    peak: f64,
}

fn child(args: &[&str], env: &[(&str, &str)]) -> Phase {
    let exe = std::env::current_exe().unwrap();
    let t = Instant::now();
    let out = Command::new(exe)
        .arg("flow")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let wall = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("PEAK_RSS "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    Phase { wall, peak }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("flow") {
        let code = flowlib::main_with_args::<Cloudy, _>(args[1..].iter().cloned());
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
    let size = (mib << 20) as f64;
    let base = std::env::var("FLOWLIB_TEST_S3")
        .expect("FLOWLIB_TEST_S3: start scripts/services.sh and eval its env");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let s3 = format!("{base}/bench-{nanos}");
    let local_dir =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let local = local_dir.path().join("ds").to_str().unwrap().to_string();
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = cache_dir.path().to_str().unwrap().to_string();
    let mib_s = mib.to_string();

    println!("artifact: {mib} MiB Vec<u8>; S3 = moto on loopback; each phase a separate process");
    println!("| store | phase | wall | throughput | peak RSS / artifact |");
    println!("|---|---|---|---|---|");
    for (name, url) in [("local", local.as_str()), ("S3", s3.as_str())] {
        let off = [("FLOWLIB_CACHE", "off")];
        let w = child(&["--datastore", url, "run", "-q", "--mib", &mib_s], &off);
        let ds = flowlib::Datastore::builder(url)
            .cache(flowlib::CacheConfig::disabled())
            .open()
            .unwrap();
        let run = ds.latest_run("Cloudy").unwrap().unwrap();
        let t = ds
            .successful_task("Cloudy", &run, "start")
            .unwrap()
            .manifest
            .unwrap()
            .timings;
        println!(
            "| {name} | write (start task's store phase) | {:.2} s | {:.2} GB/s | {:.2}x (whole run: write + read + end) |",
            t.store_ms / 1000.0,
            size / (t.store_ms / 1000.0) / 1e9,
            w.peak / size
        );
        let mut attempt = 1;
        let mut read = |label: &str, env: &[(&str, &str)]| {
            let a = attempt.to_string();
            attempt += 1;
            let p = child(
                &[
                    "--datastore",
                    url,
                    "step",
                    "consume",
                    "--run",
                    &run,
                    "--attempt",
                    &a,
                ],
                env,
            );
            let load = ds
                .task_attempts("Cloudy", &run)
                .unwrap()
                .into_iter()
                .find(|x| x.step == "consume" && x.source.attempt.to_string() == a)
                .and_then(|x| x.manifest)
                .unwrap()
                .timings
                .load_ms;
            println!(
                "| {name} | {label} | {:.2} s (process {:.2} s) | {:.2} GB/s | {:.2}x |",
                load / 1000.0,
                p.wall,
                size / (load / 1000.0) / 1e9,
                p.peak / size
            );
        };
        read("read, cache off", &off);
        if name == "S3" {
            let env = [
                ("FLOWLIB_CACHE_DIR", cache.as_str()),
                ("FLOWLIB_CACHE_MAX", "100GiB"),
            ];
            read("read, filling the local cache", &env);
            read("read, served by the local cache", &env);
        }
    }
}
