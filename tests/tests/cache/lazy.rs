//! `Lazy<T>` fields: loaded only when a step dereferences them, decoded once per process
//! for all the tasks that do, passed on by reference (no new blob) when untouched.

use std::sync::atomic::{AtomicUsize, Ordering};

use flowlib::prelude::*;
use flowlib::RunStatus;
use flowlib_testkit::{run_options, temp_store};

static DECODES: AtomicUsize = AtomicUsize::new(0);
static EAGER_DECODES: AtomicUsize = AtomicUsize::new(0);

/// A dataset that counts how often it is decoded.
#[derive(Serialize, Default, Clone, PartialEq, Debug)]
struct Dataset {
    rows: Vec<u64>,
}

#[derive(Deserialize)]
struct Raw {
    rows: Vec<u64>,
}

impl<'de> Deserialize<'de> for Dataset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODES.fetch_add(1, Ordering::SeqCst);
        Raw::deserialize(d).map(|r| Dataset { rows: r.rows })
    }
}

/// The same, counted apart: the plain field's copy.
#[derive(Serialize, Default, Clone, PartialEq, Debug)]
struct EagerDataset {
    rows: Vec<u64>,
}

impl<'de> Deserialize<'de> for EagerDataset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EAGER_DECODES.fetch_add(1, Ordering::SeqCst);
        Raw::deserialize(d).map(|r| EagerDataset { rows: r.rows })
    }
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Shards {
    lazy: Lazy<Dataset>,
    eager: EagerDataset,
    #[param(default = false, help = "read the eager copy instead")]
    use_eager: bool,
    shards: Vec<u64>,
    partial: u64,
    total: u64,
}

#[flow]
impl Shards {
    #[step(start, next = pass)]
    fn start(&mut self) -> Result<()> {
        let data = Dataset {
            rows: (0..10_000).collect(),
        };
        self.eager = EagerDataset {
            rows: data.rows.clone(),
        };
        self.lazy.set(data);
        self.shards = (0..50).collect();
        Ok(())
    }

    /// Touches neither dataset.
    #[step(next = score, foreach = shards)]
    fn pass(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = sum)]
    fn score(&mut self, shard: &u64) -> Result<()> {
        let rows = if self.use_eager {
            &self.eager.rows
        } else {
            &self.lazy.rows
        };
        let n = rows.len() as u64 / 50;
        self.partial = rows[(shard * n) as usize..((shard + 1) * n) as usize]
            .iter()
            .sum();
        Ok(())
    }

    #[step(join, next = end)]
    fn sum(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.total = inputs.iter().map(|i| i.partial).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn fifty_tasks_over_a_lazy_dataset_decode_it_once_and_pass_it_on_by_reference() {
    let _g = super::serial();
    let (dir, ds) = temp_store();
    DECODES.store(0, Ordering::SeqCst);
    EAGER_DECODES.store(0, Ordering::SeqCst);
    let s = flowlib::run::<Shards>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    let total: u64 = ds.artifact("Shards", &s.run_id, "sum", "total").unwrap();
    assert_eq!(total, (0..10_000u64).sum::<u64>());
    let lazy_decodes = DECODES.swap(0, Ordering::SeqCst);
    let eager_decodes = EAGER_DECODES.swap(0, Ordering::SeqCst);
    // Each score task names both fields, so each loads the plain one, and decodes it; the
    // lazy one is decoded once, on the first dereference, for all 50 tasks.
    assert_eq!(
        lazy_decodes, 1,
        "the lazy dataset was decoded {lazy_decodes} times"
    );
    assert!(
        eager_decodes >= 50,
        "the plain dataset was decoded {eager_decodes} times for 50 tasks"
    );

    // Every task that did not change it passed the very same blob on.
    let attempts = ds.task_attempts("Shards", &s.run_id).unwrap();
    let digests: std::collections::BTreeSet<_> = attempts
        .iter()
        .filter_map(|a| a.manifest.as_ref()?.artifacts.get("lazy").map(|b| b.digest))
        .collect();
    assert_eq!(digests.len(), 1, "{digests:?}");
    let blobs = flowlib_testkit::count_files(&dir.path().join("ds/blobs"));

    // Reading the plain copy instead: the lazy one is never loaded, not even once.
    let mut o = run_options(2);
    o.params = vec![("use_eager".into(), "true".into())];
    let s = flowlib::run::<Shards>(&ds, &o).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert_eq!(DECODES.swap(0, Ordering::SeqCst), 0);
    assert_eq!(
        flowlib_testkit::count_files(&dir.path().join("ds/blobs")),
        blobs + 1,
        "the second run stored only its new parameter value"
    );
}

#[test]
fn a_lazy_field_reads_like_its_plain_type_everywhere_else() {
    let _g = super::serial();
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Shards>(&ds, &run_options(2)).unwrap();
    // The client decodes a Lazy artifact as its value type, and the stored bytes are
    // exactly those of the plain field.
    let lazy: Dataset = ds.artifact("Shards", &s.run_id, "start", "lazy").unwrap();
    let eager: EagerDataset = ds.artifact("Shards", &s.run_id, "start", "eager").unwrap();
    assert_eq!(lazy.rows, eager.rows);
    let m = ds.successful_task("Shards", &s.run_id, "start").unwrap();
    let m = m.manifest.unwrap();
    assert_eq!(
        m.artifacts["lazy"], m.artifacts["eager"],
        "same bytes, same digest"
    );
    let v = flowlib::Lazy::new(lazy.clone());
    assert_eq!(*v, lazy);
    assert!(v.is_loaded());
    let mut v = v;
    v.get_mut().unwrap().rows.push(1);
    assert_eq!(v.rows.len(), 10_001);
}
