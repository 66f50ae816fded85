//! Small artifacts held inline in their task's commit record: at most the datastore's
//! inline limit (1 KiB by default) each, still addressed and verified by SHA-256. A task
//! whose values are all small is one object; every reader (the typed and untyped
//! clients, joins, `Lazy` fields, resume, the cache) reads them from the record; `verify`
//! checks them there and `gc` has no object to keep for them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use flowlib::client::untyped::Run;
use flowlib::prelude::*;
use flowlib::{Datastore, OpenMode, ResumeOptions, RunStatus};
use flowlib_testkit::{blob_path, commit_path, count_files, run_options};
use serde_json::Value;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Tiny {
    #[param(default = 4u32)]
    n: u32,
    /// Length of item 0's `edge` (item 1's is one more).
    #[param(default = 0u64)]
    edge_len: u64,
    items: Vec<u32>,
    label: Lazy<String>,
    square: u64,
    edge: Vec<u8>,
    total: u64,
    labels: Vec<String>,
}

#[flow]
impl Tiny {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..self.n).collect();
        self.label = Lazy::new(format!("tiny of {}", self.n));
        Ok(())
    }

    #[step(next = gather)]
    fn work(&mut self, item: &u32) -> Result<()> {
        self.square = u64::from(*item) * u64::from(*item);
        let len = match item {
            0 => self.edge_len as usize,
            1 => self.edge_len as usize + 1,
            _ => 3,
        };
        self.edge = vec![*item as u8; len];
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.total = inputs.iter().map(|i| i.square).sum();
        // `label` passed through every item unread: a `Lazy` input held inline.
        self.labels = inputs
            .iter()
            .map(|i| i.label.get().unwrap().clone())
            .collect();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

/// The length of a `Vec<u8>` whose encoded blob is exactly `bytes` long.
fn vec_len_encoding_to(bytes: usize) -> u64 {
    (0..bytes as u64)
        .rev()
        .find(|&l| flowlib::encode_blob(&vec![0u8; l as usize]).unwrap().len() == bytes)
        .expect("some length encodes to the limit")
}

fn store(limit: Option<usize>) -> (tempfile::TempDir, PathBuf, Datastore) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ds");
    let mut b = Datastore::builder(root.to_str().unwrap()).mode(OpenMode::Create);
    if let Some(n) = limit {
        b = b.inline_limit(n);
    }
    let ds = b.open().unwrap();
    (dir, root, ds)
}

fn run(ds: &Datastore) -> String {
    let edge = vec_len_encoding_to(1024);
    let opts = run_options(2).with_param("edge_len", edge.to_string());
    let s = flowlib::run::<Tiny>(ds, &opts).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded);
    s.run_id
}

fn manifest(ds: &Datastore, run: &str, task: &str) -> flowlib::TaskManifest {
    ds.successful_task("Tiny", run, task)
        .unwrap()
        .manifest
        .unwrap()
}

/// The distinct digests of a run's initial state (defaults and parameters): objects.
fn initial_objects(ds: &Datastore, run: &str) -> usize {
    let info = ds.run_info("Tiny", run).unwrap();
    let digests: std::collections::BTreeSet<_> =
        info.record.initial.values().map(|b| b.digest).collect();
    digests.len()
}

#[test]
fn small_values_live_in_the_record_and_every_reader_reads_them() {
    let (_d, root, ds) = store(None);
    assert_eq!(ds.inline_limit(), 1024);
    let id = run(&ds);
    // The only blob objects: the initial state, and item 1's `edge`, one byte over.
    let w0 = manifest(&ds, &id, "work/0");
    let w1 = manifest(&ds, &id, "work/1");
    let (e0, e1) = (w0.artifacts["edge"], w1.artifacts["edge"]);
    assert_eq!((e0.size, e1.size), (1024, 1025));
    assert!(w0.inline.contains_key(&e0.digest), "at the limit: inline");
    assert!(!w1.inline.contains_key(&e1.digest), "over it: an object");
    assert!(blob_path(&root, &e1.digest).is_file());
    assert!(!blob_path(&root, &e0.digest).exists());
    assert_eq!(
        count_files(&root.join("blobs")),
        initial_objects(&ds, &id) + 1,
        "every other value is held inline"
    );
    // Every inline entry names an artifact of the task, by its digest.
    for (d, bytes) in &w0.inline {
        let b = w0.artifacts.values().find(|b| b.digest == *d).unwrap();
        assert_eq!(bytes.len() as u64, b.size);
        assert_eq!(flowlib::Digest::of(bytes), *d);
    }
    // The typed client, the untyped one, the join and the `Lazy` pass-through.
    let square: u64 = ds.artifact("Tiny", &id, "work/3", "square").unwrap();
    assert_eq!(square, 9);
    let total: u64 = ds.artifact("Tiny", &id, "end", "total").unwrap();
    assert_eq!(total, 1 + 4 + 9);
    let labels: Vec<String> = ds.artifact("Tiny", &id, "end", "labels").unwrap();
    assert_eq!(labels, vec!["tiny of 4".to_string(); 4]);
    let r = Run::open(&ds, "Tiny", &id).unwrap();
    let task = r.task("work/0").unwrap();
    let edge = task.artifact("edge").unwrap();
    assert!(edge.is_inline());
    let len = edge.decode::<Vec<u8>>().unwrap().len() as u64;
    assert_eq!(len, vec_len_encoding_to(1024));
    assert!(!r
        .task("work/1")
        .unwrap()
        .artifact("edge")
        .unwrap()
        .is_inline());

    // verify checks the inline bytes in place; gc with no grace keeps everything a read
    // needs (the inline values have no object to keep).
    let report = flowlib::verify(&ds, None, None).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.inline > 0, "{report:?}");
    let g = flowlib::gc(&ds, false, Duration::ZERO).unwrap();
    assert!(g.deleted.is_empty(), "{:?}", g.deleted);
    let fresh = Datastore::open(ds.url(), OpenMode::Existing).unwrap();
    let total: u64 = fresh.artifact("Tiny", &id, "end", "total").unwrap();
    assert_eq!(total, 14);

    // Resume re-runs from `gather`: the reused items' inline values feed the join again.
    let ropts = ResumeOptions::default()
        .with_origin(id.clone())
        .with_step("gather");
    let edge = vec_len_encoding_to(1024);
    let opts = run_options(2).with_param("edge_len", edge.to_string());
    let s = flowlib::resume::<Tiny>(&fresh, &opts, &ropts).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded);
    let labels: Vec<String> = fresh.artifact("Tiny", &s.run_id, "end", "labels").unwrap();
    assert_eq!(labels.len(), 4);
    let total: u64 = fresh.artifact("Tiny", &s.run_id, "end", "total").unwrap();
    assert_eq!(total, 14);
}

/// Rewrite the inline bytes of `digest` in the commit record at `path` with `edit`, and
/// pin the changed manifest again: a record consistent in itself whose inline bytes are
/// not the blob's (what a bug or a hand edit could leave).
fn damage_inline_and_repin(path: &Path, digest: &flowlib::Digest, edit: impl FnOnce(&mut Vec<u8>)) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut c: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let key = digest.to_string();
    let slot = &mut c["manifest_json"]["inline"][&key];
    let mut bytes = b64.decode(slot.as_str().unwrap()).unwrap();
    edit(&mut bytes);
    *slot = Value::String(b64.encode(&bytes));
    let m = serde_json::to_string(&c["manifest_json"]).unwrap();
    c["manifest"] = serde_json::json!({
        "digest": flowlib::Digest::of(m.as_bytes()).to_string(),
        "size": m.len(),
    });
    std::fs::write(path, serde_json::to_vec(&c).unwrap()).unwrap();
}

#[test]
fn inline_bytes_that_do_not_hash_to_their_digest_are_refused_and_reported() {
    let (_d, root, ds) = store(None);
    let id = run(&ds);
    let square = manifest(&ds, &id, "work/2").artifacts["square"];
    let path = commit_path(&root, "Tiny", &id, "work/2", 0);
    damage_inline_and_repin(&path, &square.digest, |b| {
        let last = b.len() - 1;
        b[last] ^= 1;
    });
    let fresh = Datastore::open(ds.url(), OpenMode::Existing).unwrap();
    let err = fresh
        .artifact::<u64>("Tiny", &id, "work/2", "square")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("held inline") && err.contains("corrupted"),
        "{err}"
    );
    assert!(err.contains(&square.digest.to_string()), "{err}");
    assert!(err.contains("`square`") && err.contains("work/2"), "{err}");
    let report = flowlib::verify(&fresh, None, None).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    match &report.problems[0] {
        flowlib::Problem::Blob {
            digest,
            problem,
            places,
        } => {
            assert_eq!(*digest, square.digest);
            assert!(problem.contains("held inline"), "{problem}");
            assert!(
                places
                    .iter()
                    .any(|p| p.task.starts_with("work/2") && p.artifact == "square"),
                "{places:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A damaged length is caught as well.
    damage_inline_and_repin(&path, &square.digest, |b| b.push(0));
    let err = fresh
        .artifact::<u64>("Tiny", &id, "work/2", "square")
        .unwrap_err()
        .to_string();
    assert!(err.contains("held inline"), "{err}");
}

#[test]
fn an_inline_limit_of_zero_stores_every_value_as_an_object() {
    let (_d, root, ds) = store(Some(0));
    let id = run(&ds);
    for t in ["start", "work/0", "work/3", "gather", "end"] {
        assert!(manifest(&ds, &id, t).inline.is_empty(), "{t}");
    }
    let m = manifest(&ds, &id, "work/3");
    assert!(blob_path(&root, &m.artifacts["square"].digest).is_file());
    let total: u64 = ds.artifact("Tiny", &id, "end", "total").unwrap();
    assert_eq!(total, 14);
    // A handle with the default limit reads that store, and its runs inline again.
    let other = Datastore::open(ds.url(), OpenMode::Existing).unwrap();
    let again = run(&other);
    assert!(!manifest(&other, &again, "work/3").inline.is_empty());
    assert!(flowlib::verify(&other, None, None).unwrap().is_ok());

    let too_big = Datastore::builder(ds.url())
        .inline_limit(flowlib::MAX_INLINE_LIMIT + 1)
        .open()
        .unwrap_err()
        .to_string();
    assert!(too_big.contains("above the maximum"), "{too_big}");
}

#[test]
fn a_bad_inline_limit_in_the_environment_is_one_line_of_error() {
    flowlib_testkit::assert_bad_env_is_one_line_of_error(flowlib::INLINE_LIMIT_ENV);
}
