//! Benchmark: requests and objects per task on S3 (moto on loopback), counted by the
//! fault proxy of `flowlib-testkit` (with no faults), with their cost at S3's list prices.
//!
//! ```text
//! eval "$(scripts/services.sh env)"      # after scripts/services.sh start
//! cargo bench -p flowlib-benches --features aws --bench s3_requests -- [N]   (default 200)
//! ```
//! A foreach of N tasks, each storing one small field, then a join and an end step: the
//! run, then a resume from the join (which reuses the N + 1 tasks before it). Requests are
//! grouped by method and by the store prefix they touch (`blobs/`, `manifests/`, a run's
//! `tasks/`, ...), and given per foreach task.

use std::collections::BTreeMap;

use flowlib::prelude::*;
use flowlib_testkit::fault_proxy::{FaultProxy, Faults, RequestRecord};

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Requests {
    #[param(default = 200u32, help = "number of foreach tasks")]
    n: u32,
    items: Vec<u32>,
    doubled: u64,
    total: u64,
}

#[flow]
impl Requests {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..self.n).collect();
        Ok(())
    }

    #[step(next = gather)]
    fn work(&mut self, item: &u32) -> Result<()> {
        self.doubled = u64::from(*item) * 2;
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.total = inputs.iter().map(|i| i.doubled).sum::<u64>();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

/// S3 Standard list prices (us-east-1), USD per 1,000 requests.
const PUT_LIST_PER_1000: f64 = 0.005;
const GET_HEAD_PER_1000: f64 = 0.0004;

/// The store prefix a request touches: `blobs`, `manifests`, `tasks`, `run.json`, ...
fn class(r: &RequestRecord, root: &str) -> String {
    let target = r.target.split('?').next().unwrap_or("");
    let query = r.target.split_once('?').map_or("", |(_, q)| q);
    if let Some(p) = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("prefix="))
        .map(|p| p.replace("%2F", "/"))
    {
        let rel = p.strip_prefix(root).unwrap_or(&p).trim_start_matches('/');
        return format!("list {}", group(rel));
    }
    let rel = target.split_once(root).map_or(target, |(_, r)| r);
    group(rel.trim_start_matches('/'))
}

fn group(rel: &str) -> String {
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.as_slice() {
        ["flows", _, "runs", _, kind, ..] => format!("runs/<run>/{kind}"),
        [first, ..] if !first.is_empty() => first.to_string(),
        _ => "(root)".into(),
    }
}

struct Tally {
    by: BTreeMap<(String, String), u64>,
}

impl Tally {
    fn of(log: &[RequestRecord], root: &str) -> Tally {
        let mut by = BTreeMap::new();
        for r in log {
            *by.entry((r.method.clone(), class(r, root))).or_default() += 1;
        }
        Tally { by }
    }

    fn print(&self, title: &str, n: u32) {
        let n = f64::from(n);
        println!("\n{title}");
        println!("| method | prefix | requests | per foreach task |");
        println!("|---|---|---|---|");
        let (mut put, mut get) = (0u64, 0u64);
        for ((m, c), k) in &self.by {
            println!("| {m} | {c} | {k} | {:.2} |", *k as f64 / n);
            match m.as_str() {
                "GET" | "HEAD" if !c.starts_with("list") => get += k,
                _ => put += k,
            }
        }
        let cost =
            put as f64 / 1000.0 * PUT_LIST_PER_1000 + get as f64 / 1000.0 * GET_HEAD_PER_1000;
        println!(
            "total: {} requests = {:.2} per task ({put} PUT/POST/LIST-class, {get} GET/HEAD); ${:.5} per 1,000 tasks at list prices",
            put + get,
            (put + get) as f64 / n,
            cost / n * 1000.0
        );
    }
}

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let endpoint = std::env::var("AWS_ENDPOINT")
        .expect("AWS_ENDPOINT: start scripts/services.sh and eval its env");
    let base = std::env::var("FLOWLIB_TEST_S3").expect("FLOWLIB_TEST_S3");
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(
        endpoint.trim_start_matches("http://").trim_end_matches('/'),
    )
    .unwrap()
    .next()
    .unwrap();
    let proxy = FaultProxy::start(upstream, Faults::none()).unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let root = format!("bench-requests-{nanos}");
    let url = format!("{base}/{root}");
    let ds = flowlib::Datastore::builder(&url)
        .option("aws_endpoint", proxy.url())
        .cache(flowlib::CacheConfig::disabled())
        .open()
        .unwrap();
    let opts = flowlib::RunOptions::default()
        .with_param("n", n.to_string())
        .with_progress(flowlib::ProgressMode::Quiet);
    proxy.clear_log();
    let s = flowlib::run::<Requests>(&ds, &opts).expect("run");
    assert_eq!(s.status, flowlib::RunStatus::Succeeded);
    let run = Tally::of(&proxy.stats().log, &root);
    proxy.clear_log();
    let resumed = flowlib::resume::<Requests>(
        &ds,
        &opts,
        &flowlib::ResumeOptions::default().with_step("gather"),
    )
    .expect("resume");
    assert_eq!(resumed.status, flowlib::RunStatus::Succeeded);
    let resume = Tally::of(&proxy.stats().log, &root);
    println!("foreach of {n} tasks (+ start, join, end) on S3 (moto) through the counting proxy");
    run.print("run", n);
    resume.print("resume from the join (reuses start and every work task)", n);
}
