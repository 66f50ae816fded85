//! Benchmark: a foreach of N trivial tasks on the thread executor with the local store.
//!
//! ```text
//! cargo bench -p flowlib-benches --bench foreach -- [N] [--value-bytes B] [--select]
//! ```
//! (default N = 10000; 100000 for the big join). With `--value-bytes B`, each item also
//! stores a `Vec<u8>` of B bytes: with `FLOWLIB_INLINE_LIMIT` it measures what holding
//! values of that size inline costs against storing them as objects. With `--select`, the
//! join loads only `doubled` of each input (`Inputs::select`, as Metaflow's `inp.doubled`
//! loads only that artifact) instead of each input's whole state.
//! Prints the join task's phase times, the wall time of the whole run, the amortized time per task, and the process's
//! user and system CPU time; the peak RSS of the process when the run returns (the driver,
//! its executor threads and the join task; before the client reads anything) and the size of
//! the join's manifest. The datastore goes in `$BENCH_DIR` (default: the system temp
//! directory): per task the run creates one small file, the commit record, which carries
//! the manifest and the small values inline (two with `FLOWLIB_INLINE_LIMIT=0`: the value's
//! blob too), so the filesystem's file-creation cost shows in the result.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// The system allocator, counting the bytes live now and at most: what the run really
/// holds, apart from what the allocator keeps after it was freed (RSS stays at its peak).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The heap live when the join's step body began: what the run holds for its join.
static AT_JOIN: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to `System` unchanged; only the counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new > l.size() {
                let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Fanout {
    #[param(default = 10_000u32, help = "number of foreach tasks")]
    n: u32,
    #[param(default = 0u64, help = "bytes of each item's extra value")]
    value_bytes: u64,
    #[param(default = false, help = "the join loads only `doubled` of each input")]
    select: bool,
    items: Vec<u32>,
    doubled: u64,
    value: Vec<u8>,
    total: u64,
}

#[flow]
impl Fanout {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..self.n).collect();
        Ok(())
    }

    #[step(next = gather)]
    fn work(&mut self, item: &u32) -> Result<()> {
        self.doubled = u64::from(*item) * 2;
        if self.value_bytes > 0 {
            // Distinct per item, as a model's per-item output would be.
            let mut v = vec![0u8; self.value_bytes as usize];
            v[..4].copy_from_slice(&item.to_le_bytes());
            self.value = v;
        }
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        AT_JOIN.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
        self.total = match self.select {
            true => inputs.select(&["doubled"])?.iter().map(|i| i.doubled).sum(),
            false => inputs.iter().map(|i| i.doubled).sum(),
        };
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value_at = args.iter().position(|a| a == "--value-bytes");
    let value_bytes: u64 = value_at
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(0);
    let n: u32 = args
        .iter()
        .enumerate()
        .filter(|(i, _)| value_at.is_none_or(|v| *i != v + 1))
        .find_map(|(_, a)| a.parse().ok())
        .unwrap_or(10_000);
    let dir = match std::env::var("BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) => tempfile::tempdir(),
    }
    .expect("temp dir");
    let ds = flowlib::Datastore::open(
        dir.path().join("ds").to_str().unwrap(),
        flowlib::OpenMode::Create,
    )
    .unwrap();
    let opts = flowlib::RunOptions::default()
        .with_param("n", n.to_string())
        .with_param("value_bytes", value_bytes.to_string())
        .with_param("select", args.iter().any(|a| a == "--select").to_string());
    let t0 = Instant::now();
    let summary = flowlib::run::<Fanout>(&ds, &opts).expect("run starts");
    let wall = t0.elapsed();
    let driver_peak_kib = peak_rss_kib();
    let driver_now_kib = rss_kib();
    let (peak_heap, live_heap) = (PEAK.load(Ordering::Relaxed), LIVE.load(Ordering::Relaxed));
    assert_eq!(summary.status, flowlib::RunStatus::Succeeded, "{summary:?}");
    let run = flowlib::Run::<Fanout>::open(&ds, &summary.run_id).unwrap();
    let gather = run.task("gather").unwrap();
    let total: u64 = gather.artifact("total").unwrap();
    let t = &gather.manifest().timings;
    println!(
        "join over {n} inputs: load {:.1} ms, step {:.1} ms, store {:.1} ms",
        t.load_ms, t.step_ms, t.store_ms
    );
    assert_eq!(total, (0..u64::from(n)).map(|i| i * 2).sum::<u64>());
    let manifest_bytes = gather.attempt().manifest_ref.map_or(0, |r| r.size);
    println!(
        "run peak RSS (VmHWM when the run returned): {driver_peak_kib} KiB, {driver_now_kib} KiB resident then; heap live at most {} KiB, {} KiB when the join began, {} KiB at the end; join manifest: {manifest_bytes} bytes",
        peak_heap >> 10,
        AT_JOIN.load(Ordering::Relaxed) >> 10,
        live_heap >> 10
    );
    let tasks = summary.tasks_ok;
    // SAFETY: getrusage only writes into the struct we pass.
    let (user, sys) = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
        (t(u.ru_utime), t(u.ru_stime))
    };
    println!(
        "foreach n={n}: {tasks} tasks in {:.3} s on {} workers = {:.1} µs per task amortized (CPU: user {user:.2} s, system {sys:.2} s; datastore in {})",
        wall.as_secs_f64(),
        flowlib::cpu_count(),
        wall.as_secs_f64() * 1e6 / tasks as f64,
        dir.path().parent().map(|p| p.display().to_string()).unwrap_or_default()
    );
    // What a user's client does next: open the run and read one task, then list it all.
    let t1 = Instant::now();
    let run = flowlib::Run::<Fanout>::open(&ds, &summary.run_id).unwrap();
    let again: u64 = run.task("gather").unwrap().artifact("total").unwrap();
    let alone = t1.elapsed();
    assert_eq!(again, total);
    let t2 = Instant::now();
    let listed = run.attempts().unwrap().len();
    println!(
        "client: open the run and read one artifact of one task {:.1} ms; list its {listed} attempts {:.1} ms",
        alone.as_secs_f64() * 1e3,
        t2.elapsed().as_secs_f64() * 1e3
    );
}

/// The process's peak resident set size so far (`VmHWM`), in KiB; 0 where `/proc` has none.
fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// The process's resident set size now (`VmRSS`), in KiB.
fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
