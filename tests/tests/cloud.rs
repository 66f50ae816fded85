//! The same flows and datastore guarantees against real protocol servers: S3 (moto),
//! Azure Blob (Azurite) and Google Cloud Storage — the last one a FAKE of the GCS XML API
//! written for these tests (`tests/support/gcs_xml_fake.py`), since no published emulator
//! speaks the API object_store's GCS client uses.
//!
//! `scripts/test-all.sh` starts the servers and exports `FLOWLIB_TEST_S3`,
//! `FLOWLIB_TEST_GCS`, `FLOWLIB_TEST_AZURE` plus object_store's own variables; these tests
//! are compiled with the `cloud` feature (`cargo test -p flowlib-tests --features cloud`).
#![cfg(feature = "cloud")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use flowlib::prelude::*;
use flowlib::{
    AttemptStatus, CacheConfig, Datastore, OpenMode, ResumeOptions, RunStatus, TaskOutcome,
};
use flowlib_testkit::fault_proxy::{Action, FaultProxy, Faults};
use flowlib_testkit::{run_options, text, Sandbox};
use futures::StreamExt;
use object_store::ObjectStoreExt;

/// A fresh location on backend `env` (e.g. `FLOWLIB_TEST_S3`), unique to this test.
fn location(env: &str, test: &str) -> String {
    let base = std::env::var(env).unwrap_or_else(|_| {
        panic!("{env} is not set: start the test servers with scripts/test-all.sh (or scripts/services.sh start and eval \"$(scripts/services.sh env)\")")
    });
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}/{test}-{nanos}", base.trim_end_matches('/'))
}

fn open(url: &str) -> Datastore {
    Datastore::builder(url)
        .cache(CacheConfig::disabled())
        .open()
        .unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Object paths under `prefix` of the datastore's store.
fn list(ds: &Datastore, prefix: &str) -> Vec<object_store::ObjectMeta> {
    let store = ds.object_store().clone();
    let root = ds.url().splitn(4, '/').nth(3).unwrap_or("").to_string();
    let full = object_store::path::Path::from(format!("{root}/{prefix}"));
    rt().block_on(async move {
        store
            .list(Some(&full))
            .map(|r| r.unwrap())
            .collect::<Vec<_>>()
            .await
    })
}

// ---------------------------------------------------------------------------------------

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Race {
    items: Vec<u32>,
    value: u64,
    payload: Vec<u8>,
    total: u64,
}

#[flow]
impl Race {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..6).collect();
        Ok(())
    }

    #[step(next = gather)]
    fn work(&mut self, item: &u32) -> Result<()> {
        self.value = u64::from(*item) * 10;
        Ok(())
    }

    #[step(join, next = big)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.total = inputs.iter().map(|i| i.value).sum();
        Ok(())
    }

    #[step(next = end)]
    fn big(&mut self) -> Result<()> {
        // Large enough for a multipart upload in several parts.
        self.payload = (0..20u32 << 20).map(|i| (i ^ (i >> 9)) as u8).collect();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

static JOIN_BROKEN: AtomicBool = AtomicBool::new(false);

/// Fails its join while `JOIN_BROKEN` is set.
#[derive(FlowState, Default, Serialize, Deserialize)]
struct Fragile {
    items: Vec<u32>,
    value: u64,
    total: u64,
}

#[flow]
impl Fragile {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..6).collect();
        Ok(())
    }

    #[step(next = gather)]
    fn work(&mut self, item: &u32) -> Result<()> {
        self.value = u64::from(*item) * 10;
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        if JOIN_BROKEN.load(Ordering::SeqCst) {
            return Err("the join is broken".into());
        }
        self.total = inputs.iter().map(|i| i.value).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn expected_payload() -> Vec<u8> {
    (0..20u32 << 20).map(|i| (i ^ (i >> 9)) as u8).collect()
}

fn examples_run_and_read_back(env: &str) {
    let url = location(env, "examples");
    let sb = Sandbox::new();
    let out = sb.run("train", &["run", "-q", "--datastore", &url]);
    assert!(out.status.success(), "{}", text(&out));
    let ds = open(&url);
    let run = ds.latest_run("Train").unwrap().unwrap();
    let best: Option<(f64, f64, (f64, f64))> = ds.artifact("Train", &run, "pick", "best").unwrap();
    assert_eq!(best.unwrap().0, 0.5);
    assert!(!sb.datastore().exists(), "nothing was written locally");
    let blobs = list(&ds, "blobs/").len();
    // Same code, same parameters: no new blob.
    let out = sb.run("train", &["run", "-q", "--datastore", &url]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        list(&ds, "blobs/").len(),
        blobs,
        "identical artifacts are stored once"
    );
    assert_eq!(ds.run_ids("Train").unwrap().len(), 2);
    // The CLI reads it back through the same URL.
    let out = sb.run(
        "train",
        &["dump", "latest/fit/0", "score", "--datastore", &url],
    );
    assert!(out.status.success(), "{}", text(&out));
    let score: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let stored: f64 = ds.artifact("Train", &run, "fit/0", "score").unwrap();
    assert_eq!(score, stored);
    let out = sb.run(
        "hello",
        &["run", "-q", "--name", "cloud", "--datastore", &url],
    );
    assert!(out.status.success(), "{}", text(&out));
    let run = ds.latest_run("Hello").unwrap().unwrap();
    let shout: String = ds.artifact("Hello", &run, "end", "shout").unwrap();
    assert_eq!(shout, "HELLO, CLOUD!");
}

fn commit_race_has_exactly_one_winner(env: &str) {
    let url = location(env, "race");
    let ds = open(&url);
    let s = flowlib::run::<Race>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    // Eight writers commit the same attempt of the same task at once.
    let outcomes: Vec<TaskOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let ds = open(&url);
                let run = s.run_id.clone();
                scope.spawn(move || flowlib::run_task::<Race>(&ds, &run, "work/3", 5).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners = outcomes
        .iter()
        .filter(|o| **o == TaskOutcome::Committed)
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == TaskOutcome::AlreadyCommitted)
            .count(),
        7
    );
    let a = ds
        .task_attempts("Race", &s.run_id)
        .unwrap()
        .into_iter()
        .find(|a| a.task_id() == "work/3" && a.source.attempt == 5)
        .unwrap();
    assert_eq!(a.status, AttemptStatus::Ok);
    let value: u64 = ds.artifact("Race", &s.run_id, "work/3", "value").unwrap();
    assert_eq!(value, 30);
}

fn large_artifacts_stream_and_corruption_is_detected(env: &str) {
    let url = location(env, "large");
    let ds = open(&url);
    let s = flowlib::run::<Race>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    let payload: Vec<u8> = ds.artifact("Race", &s.run_id, "end", "payload").unwrap();
    assert!(payload == expected_payload());
    let total: u64 = ds.artifact("Race", &s.run_id, "end", "total").unwrap();
    assert_eq!(total, 150);
    assert_eq!(flowlib::verify(&ds, None, None).unwrap().problems.len(), 0);

    // Damage the big blob in the bucket: reads refuse it, verify reports it.
    let blob = ds
        .successful_task("Race", &s.run_id, "big")
        .unwrap()
        .manifest
        .unwrap()
        .artifacts["payload"];
    let hex = blob.digest.hex();
    let root = url.splitn(4, '/').nth(3).unwrap_or("").to_string();
    let path =
        object_store::path::Path::from(format!("{root}/blobs/sha256/{}/{}", &hex[..2], &hex[2..]));
    let store = ds.object_store().clone();
    let mut bytes = rt()
        .block_on(async { store.get(&path).await.unwrap().bytes().await.unwrap() })
        .to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    rt().block_on(async { store.put(&path, bytes.into()).await.unwrap() });
    let fresh = open(&url);
    let err = fresh
        .artifact::<Vec<u8>>("Race", &s.run_id, "end", "payload")
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupted") && err.contains(&hex), "{err}");
    assert!(!flowlib::verify(&fresh, None, None).unwrap().is_ok());
}

fn read_cache_serves_second_read_and_heals(env: &str) {
    let url = location(env, "cache");
    let ds = open(&url);
    let s = flowlib::run::<Race>(&ds, &run_options(2)).unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let cached = || flowlib_testkit::count_files(cache_dir.path());
    let with_cache = Datastore::builder(&url)
        .mode(OpenMode::Existing)
        .cache(CacheConfig::at(cache_dir.path(), 1 << 30))
        .open()
        .unwrap();
    let payload: Vec<u8> = with_cache
        .artifact("Race", &s.run_id, "end", "payload")
        .unwrap();
    assert!(payload == expected_payload());
    let total: u64 = with_cache
        .artifact("Race", &s.run_id, "end", "total")
        .unwrap();
    assert_eq!(total, 150);
    // The small `total` is held inline in its task's commit record: only the large
    // blob is an object, and only it goes to the read cache.
    assert_eq!(cached(), 1, "the large blob is cached");
    // A second handle (another process) reads from the cache: make the bucket copy
    // unreachable by damaging it, and the cached value still comes back.
    let blob = ds
        .successful_task("Race", &s.run_id, "big")
        .unwrap()
        .manifest
        .unwrap()
        .artifacts["payload"];
    let hex = blob.digest.hex();
    let cache_file = cache_dir.path().join(&hex[..2]).join(&hex[2..]);
    assert!(cache_file.exists());
    let again = Datastore::builder(&url)
        .mode(OpenMode::Existing)
        .cache(CacheConfig::at(cache_dir.path(), 1 << 30))
        .open()
        .unwrap();
    let root = url.splitn(4, '/').nth(3).unwrap_or("").to_string();
    let path =
        object_store::path::Path::from(format!("{root}/blobs/sha256/{}/{}", &hex[..2], &hex[2..]));
    let store = ds.object_store().clone();
    let original = rt().block_on(async { store.get(&path).await.unwrap().bytes().await.unwrap() });
    rt().block_on(async { store.delete(&path).await.unwrap() });
    let from_cache: Vec<u8> = again.artifact("Race", &s.run_id, "end", "payload").unwrap();
    assert!(
        from_cache == expected_payload(),
        "served from the local cache"
    );
    // A damaged cache entry is dropped and re-fetched from the store.
    rt().block_on(async { store.put(&path, original.into()).await.unwrap() });
    let mut bytes = std::fs::read(&cache_file).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&cache_file, bytes).unwrap();
    let third = Datastore::builder(&url)
        .mode(OpenMode::Existing)
        .cache(CacheConfig::at(cache_dir.path(), 1 << 30))
        .open()
        .unwrap();
    let healed: Vec<u8> = third.artifact("Race", &s.run_id, "end", "payload").unwrap();
    assert!(healed == expected_payload());
    assert_eq!(
        flowlib::Digest::of(&std::fs::read(&cache_file).unwrap()),
        blob.digest,
        "the cache entry was repaired"
    );
    // The switch users have: FLOWLIB_CACHE=off keeps the cache directory empty; without
    // it, the same command fills it. (`best` is small: stored as an object here, not
    // inline in its record, so that reading it reads a blob.)
    let sb = Sandbox::objects_only();
    let train = flowlib_testkit::example("train");
    let out = sb
        .cmd(&train)
        .args(["run", "-q", "--datastore", &url])
        .env("FLOWLIB_CACHE", "off")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let blobs = sb.path().join(".cache").join("blobs");
    let dump = ["dump", "latest/pick", "best", "--datastore", &url];
    let out = sb
        .cmd(&train)
        .args(dump)
        .env("FLOWLIB_CACHE", "off")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        flowlib_testkit::count_files(&blobs),
        0,
        "FLOWLIB_CACHE=off caches nothing"
    );
    let out = sb.cmd(&train).args(dump).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        flowlib_testkit::count_files(&blobs) > 0,
        "by default, reads are cached"
    );
}

fn resume_reuses_committed_tasks(env: &str) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let url = location(env, "resume");
    let ds = open(&url);
    JOIN_BROKEN.store(true, Ordering::SeqCst);
    let first = flowlib::run::<Fragile>(&ds, &run_options(2)).unwrap();
    JOIN_BROKEN.store(false, Ordering::SeqCst);
    assert_eq!(first.status, RunStatus::Failed);
    let second =
        flowlib::resume::<Fragile>(&ds, &run_options(2), &ResumeOptions::default()).unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(second.tasks_reused, 7);
    assert_eq!(second.tasks_ok, 2);
    let total: u64 = ds
        .artifact("Fragile", &second.run_id, "end", "total")
        .unwrap();
    assert_eq!(total, 150);
}

macro_rules! backend_tests {
    ($module:ident, $env:literal) => {
        mod $module {
            #[test]
            fn examples_run_and_read_back() {
                super::examples_run_and_read_back($env);
            }

            #[test]
            fn commit_race_has_exactly_one_winner() {
                super::commit_race_has_exactly_one_winner($env);
            }

            #[test]
            fn large_artifacts_stream_and_corruption_is_detected() {
                super::large_artifacts_stream_and_corruption_is_detected($env);
            }

            #[test]
            fn read_cache_serves_second_read_and_heals() {
                super::read_cache_serves_second_read_and_heals($env);
            }

            #[test]
            fn resume_reuses_committed_tasks() {
                super::resume_reuses_committed_tasks($env);
            }
        }
    };
}

backend_tests!(s3, "FLOWLIB_TEST_S3");
backend_tests!(azure, "FLOWLIB_TEST_AZURE");
// Against our fake of the GCS XML API (see the module docs).
backend_tests!(gcs_fake, "FLOWLIB_TEST_GCS");

#[test]
fn a_url_without_bucket_is_a_clear_error() {
    for url in ["s3://", "gs:///x", "az://"] {
        let err = Datastore::open(url, OpenMode::Create)
            .unwrap_err()
            .to_string();
        assert!(err.contains("names no bucket"), "{url}: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// Transient faults between the client and S3: a proxy on loopback resets connections,
// answers 503 and cuts responses short at random.

fn s3_upstream() -> std::net::SocketAddr {
    let endpoint = std::env::var("AWS_ENDPOINT").expect("AWS_ENDPOINT (scripts/services.sh env)");
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .unwrap()
        .next()
        .unwrap()
}

fn through(proxy: &FaultProxy, url: &str) -> Datastore {
    Datastore::builder(url)
        .option("aws_endpoint", proxy.url())
        .cache(CacheConfig::disabled())
        .open()
        .unwrap()
}

#[test]
fn s3_flow_completes_through_resets_503s_and_cut_responses() {
    let proxy = FaultProxy::start(
        s3_upstream(),
        // A run makes ~45 requests (one object per task, two requests per new blob), and
        // the proxy draws one number per request from its seeded generator, so these rates
        // inject well over ten faults.
        Faults {
            reset: 0.12,
            status_503: 0.12,
            truncate_response: 0.08,
            seed: 20261128,
        },
    )
    .unwrap();
    let url = location("FLOWLIB_TEST_S3", "faults");
    let ds = through(&proxy, &url);
    let s = flowlib::run::<Race>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    let stats = proxy.stats();
    let faults = stats.resets + stats.injected_503 + stats.truncated;
    assert!(faults >= 10, "faults were injected: {stats:?}");
    // Correct results, read back without faults, and no half-written task believed.
    proxy.set_faults(Faults::none());
    let clean = through(&proxy, &url);
    let total: u64 = clean.artifact("Race", &s.run_id, "end", "total").unwrap();
    assert_eq!(total, 150);
    let payload: Vec<u8> = clean.artifact("Race", &s.run_id, "end", "payload").unwrap();
    assert!(payload == expected_payload());
    let attempts = clean.task_attempts("Race", &s.run_id).unwrap();
    assert!(
        attempts.iter().all(|a| a.status == AttemptStatus::Ok),
        "{attempts:?}"
    );
    assert_eq!(attempts.len(), 10, "one committed attempt per task");
    assert_eq!(
        flowlib::verify(&clean, None, None).unwrap().problems.len(),
        0
    );
    eprintln!(
        "faults injected: {} resets, {} 503s, {} cut responses over {} requests",
        stats.resets, stats.injected_503, stats.truncated, stats.requests
    );
}

/// Regression (#8.9): a large read whose responses are cut mid-body more often than
/// object_store's own retry budget (10) still completes: flowlib resumes from the byte it
/// reached with a range request, and the whole digest is still verified.
#[test]
fn a_large_read_cut_mid_body_resumes_from_the_byte_reached() {
    let proxy = FaultProxy::start(s3_upstream(), Faults::none()).unwrap();
    let url = location("FLOWLIB_TEST_S3", "cut-read");
    let s = flowlib::run::<Race>(&through(&proxy, &url), &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded);
    let ds = through(&proxy, &url);
    let run = flowlib::Run::<Race>::open(&ds, &s.run_id).unwrap();
    let end = run.task("end").unwrap();
    let hex = end.blob("payload").unwrap().digest.hex();
    proxy.clear_log();
    proxy.script([Action::Truncate; 12]);
    let payload: Vec<u8> = end.artifact("payload").unwrap();
    assert!(
        payload == expected_payload(),
        "the bytes read back are the payload"
    );
    let stats = proxy.stats();
    assert_eq!(stats.truncated, 12, "{:?}", proxy.requests());
    assert_eq!(
        stats.count("GET", &hex[2..]),
        13,
        "12 cut reads, then one that completes: {:?}",
        proxy.requests()
    );
}

#[test]
fn reading_one_artifact_does_not_download_its_siblings() {
    let proxy = FaultProxy::start(s3_upstream(), Faults::none()).unwrap();
    let url = location("FLOWLIB_TEST_S3", "siblings");
    let s = flowlib::run::<Race>(&through(&proxy, &url), &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded);
    proxy.clear_log();
    let ds = through(&proxy, &url);
    let total: u64 = ds.artifact("Race", &s.run_id, "end", "total").unwrap();
    assert_eq!(total, 150);
    // `total` is small: its bytes are in the task's commit record, so no blob is read,
    // and the 20 MiB payload above all not.
    let blob_gets = proxy.stats().count("GET", "/blobs/");
    assert_eq!(
        blob_gets,
        0,
        "only records are read, not the 20 MiB payload: {:?}",
        proxy.requests()
    );
    let payload: Vec<u8> = ds.artifact("Race", &s.run_id, "end", "payload").unwrap();
    assert!(payload == expected_payload());
    assert_eq!(
        proxy.stats().count("GET", "/blobs/"),
        1,
        "the payload, once"
    );
}
