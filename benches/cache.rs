//! Benchmark: the cross-run cache and `Lazy<T>`.
//!
//! ```text
//! cargo bench -p flowlib-benches --bench cache -- [N] [MIB]   (default N = 10000, MIB = 32)
//! cargo bench -p flowlib-benches --bench cache -- codec
//! ```
//! 1. A foreach of N `#[cache]` tasks and a `#[cache]` join over them (start and end are
//!    not cached): the run without the cache, the first run with it
//!    (every task a miss: its key is computed and published), and the second run (every
//!    task a hit). Per task: (first − uncached) / N is the cost of a miss's key and
//!    publish; second / N the cost of a hit.
//! 2. A foreach of 1,000 tasks over a MIB-MiB shared dataset read by every task: as a
//!    plain field (decoded by each task) and as a `Lazy<T>` field (decoded once per
//!    process and shared).
//! 3. The codec: encoding a `Vec` of structs, a `BTreeMap` and a `HashMap` with flowlib's
//!    encoder (canonical hash collections, codec 3) against bincode's own (codec 2).

use std::time::{Duration, Instant};

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Wide {
    #[param(default = 10000u32, help = "foreach width")]
    n: u32,
    items: Vec<u32>,
    value: u64,
    total: u64,
}

#[flow]
impl Wide {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..self.n).collect();
        Ok(())
    }

    #[step(next = join)]
    #[cache]
    fn work(&mut self, item: &u32) -> Result<()> {
        self.value = u64::from(*item) * 3;
        Ok(())
    }

    #[step(join, next = end)]
    #[cache]
    fn join(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.total = inputs.iter().map(|i| i.value).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Shared {
    #[param(default = 256u32, help = "dataset size in MiB")]
    mib: u32,
    #[param(default = false, help = "read the Lazy copy")]
    lazy: bool,
    plain_data: Vec<f64>,
    lazy_data: Lazy<Vec<f64>>,
    items: Vec<u32>,
    partial: f64,
    total: f64,
}

#[flow]
impl Shared {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        let n = self.mib as usize * (1 << 20) / 8;
        let data: Vec<f64> = (0..n).map(|i| i as f64).collect();
        if self.lazy {
            self.lazy_data.set(data);
        } else {
            self.plain_data = data;
        }
        self.items = (0..1000).collect();
        Ok(())
    }

    #[step(next = join)]
    fn work(&mut self, item: &u32) -> Result<()> {
        let data: &[f64] = if self.lazy {
            &self.lazy_data
        } else {
            &self.plain_data
        };
        let i = *item as usize % data.len().max(1);
        self.partial = data[i];
        Ok(())
    }

    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.total = inputs.iter().map(|i| i.partial).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn store() -> (tempfile::TempDir, flowlib::Datastore) {
    let base =
        std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    let dir = tempfile::tempdir_in(base).unwrap();
    let url = dir.path().join("ds");
    let ds = flowlib::Datastore::open(url.to_str().unwrap(), flowlib::OpenMode::Create).unwrap();
    (dir, ds)
}

fn timed<F: Flow>(
    ds: &flowlib::Datastore,
    opts: &flowlib::RunOptions,
) -> (Duration, flowlib::RunSummary) {
    let t = Instant::now();
    let s = flowlib::run::<F>(ds, opts).unwrap();
    assert_eq!(s.status, flowlib::RunStatus::Succeeded, "{s:?}");
    (t.elapsed(), s)
}

#[derive(Serialize)]
struct Row {
    id: u64,
    score: f64,
    label: String,
    tags: Vec<u32>,
}

/// Best of 5, in ms.
fn best_ms(mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut n = 0;
    for _ in 0..5 {
        let t = Instant::now();
        n = f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    (best, n)
}

fn codec() {
    use std::collections::{BTreeMap, HashMap};
    let rows: Vec<Row> = (0..1_000_000u64)
        .map(|i| Row {
            id: i,
            score: i as f64 * 0.5,
            label: format!("row-{i}"),
            tags: vec![i as u32; (i % 4) as usize],
        })
        .collect();
    let bt: BTreeMap<String, u64> = (0..1_000_000u64).map(|i| (format!("k{i}"), i)).collect();
    let hm: HashMap<String, u64> = bt.clone().into_iter().collect();
    let cfg = bincode::config::standard();
    println!("codec: best of 5, encoding into memory (flowlib = codec 3, bincode = codec 2):");
    let (a, n) = best_ms(|| flowlib::encode_blob(&rows).unwrap().len());
    let (b, _) = best_ms(|| bincode::serde::encode_to_vec(&rows, cfg).unwrap().len());
    println!(
        "  Vec<Row> of 1,000,000 ({:.0} MB): flowlib {a:.1} ms, bincode {b:.1} ms",
        n as f64 / 1e6
    );
    let (a, n) = best_ms(|| flowlib::encode_blob(&bt).unwrap().len());
    let (b, _) = best_ms(|| bincode::serde::encode_to_vec(&bt, cfg).unwrap().len());
    println!(
        "  BTreeMap<String, u64> of 1,000,000 ({:.0} MB): flowlib {a:.1} ms, bincode {b:.1} ms",
        n as f64 / 1e6
    );
    let (a, n) = best_ms(|| flowlib::encode_blob(&hm).unwrap().len());
    let (b, _) = best_ms(|| bincode::serde::encode_to_vec(&hm, cfg).unwrap().len());
    println!(
        "  HashMap<String, u64> of 1,000,000 ({:.0} MB): flowlib {a:.1} ms (sorted: canonical), bincode {b:.1} ms (iteration order)",
        n as f64 / 1e6
    );
}

fn main() {
    if std::env::args().any(|a| a == "codec") {
        return codec();
    }
    let nums: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = nums.first().copied().unwrap_or(10_000);
    let mib = nums.get(1).copied().unwrap_or(32);

    let opts = flowlib::RunOptions::default().with_param("n", n.to_string());
    let (_d, ds) = store();
    let (uncached, _) = timed::<Wide>(&ds, &opts.clone().without_cache());
    let (_d2, ds2) = store();
    let (first, _) = timed::<Wide>(&ds2, &opts);
    let (second, s) = timed::<Wide>(&ds2, &opts);
    assert_eq!(s.tasks_cached as u32, n + 1);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(n);
    println!("foreach of {n} #[cache] tasks (whole run, start + join + end included):");
    println!(
        "  without the cache      {:8.1} ms  ({:.1} µs/task)",
        uncached.as_secs_f64() * 1e3,
        per(uncached)
    );
    println!(
        "  first run (all misses) {:8.1} ms  ({:.1} µs/task; key + publish ≈ {:.1} µs/task)",
        first.as_secs_f64() * 1e3,
        per(first),
        per(first.saturating_sub(uncached))
    );
    println!(
        "  second run (all hits)  {:8.1} ms  ({:.1} µs/task)",
        second.as_secs_f64() * 1e3,
        per(second)
    );

    println!("foreach of 1,000 tasks over a shared {mib} MiB dataset each task reads:");
    for lazy in [false, true] {
        let (_d, ds) = store();
        let o = flowlib::RunOptions::default()
            .with_param("mib", mib.to_string())
            .with_param("lazy", lazy.to_string());
        let (wall, _) = timed::<Shared>(&ds, &o);
        println!(
            "  {:<18} {:8.2} s",
            if lazy { "Lazy<Vec<f64>>" } else { "Vec<f64>" },
            wall.as_secs_f64()
        );
    }
}
