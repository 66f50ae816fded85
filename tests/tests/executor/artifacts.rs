//! Artifacts: large ones stream through the store; steps load only the fields they name.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use flowlib::prelude::*;
use flowlib::{Run, RunStatus};
use flowlib_testkit::{run_options, temp_store};

// ---------------------------------------------------------------------------------------
// Large artifacts stream through the store and come back intact.

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Big {
    bytes: Vec<u8>,
    floats: Vec<f32>,
    words: Vec<String>,
    check: u64,
}

#[flow]
impl Big {
    #[step(start, next = read)]
    fn start(&mut self) -> Result<()> {
        self.bytes = (0..20_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        self.floats = (0..3_000_000).map(|i| i as f32 * 0.25).collect();
        self.words = (0..400_000).map(|i| format!("word-{i}")).collect();
        Ok(())
    }

    #[step(next = end)]
    fn read(&mut self) -> Result<()> {
        self.check = self.bytes.iter().map(|&b| u64::from(b)).sum::<u64>()
            + self.floats.iter().map(|&f| f as u64).sum::<u64>()
            + self.words.len() as u64;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn large_artifacts_round_trip_through_the_store() {
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Big>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    let run = Run::<Big>::open(&ds, &s.run_id).unwrap();
    let state = run.step("end").unwrap().state().unwrap();
    let expected: Vec<u8> = (0..20_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    assert!(state.bytes == expected);
    assert_eq!(state.floats.len(), 3_000_000);
    assert_eq!(state.floats[2_999_999], 2_999_999.0 * 0.25);
    assert_eq!(state.words[399_999], "word-399999");
    let m = run.task("read").unwrap().manifest().clone();
    let start = run.task("start").unwrap().manifest().clone();
    // `read` did not change the big fields: same blobs, nothing rewritten.
    assert_eq!(m.artifacts["bytes"], start.artifacts["bytes"]);
    assert!(m.artifacts["bytes"].size > 20_000_000);
    let expected_check = expected.iter().map(|&b| u64::from(b)).sum::<u64>()
        + (0..3_000_000)
            .map(|i| (i as f32 * 0.25) as u64)
            .sum::<u64>()
        + 400_000;
    assert_eq!(state.check, expected_check);
}

// ---------------------------------------------------------------------------------------
// A step loads only the fields it can touch; join inputs share the split's fields.

static DECODES: AtomicUsize = AtomicUsize::new(0);
static DECODES_LOCK: Mutex<()> = Mutex::new(());

/// Counts how often it is decoded.
#[derive(Clone, Default, Serialize, PartialEq, Debug)]
struct Counted(Vec<u32>);

impl<'de> serde::Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        DECODES.fetch_add(1, Ordering::SeqCst);
        Vec::<u32>::deserialize(d).map(Counted)
    }
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Lazy {
    big: Counted,
    items: Vec<u32>,
    small: u32,
    seen: usize,
}

#[flow]
impl Lazy {
    #[step(start, next = untouched)]
    fn start(&mut self) -> Result<()> {
        self.big = Counted((0..1000).collect());
        self.items = (0..5).collect();
        Ok(())
    }

    /// Never names `big`: it is neither decoded nor stored again.
    #[step(next = helper)]
    fn untouched(&mut self) -> Result<()> {
        self.small = 7;
        Ok(())
    }

    /// Calls a method on `self`: every field is loaded.
    #[step(next = fan, foreach = items)]
    fn helper(&mut self) -> Result<()> {
        self.seen = self.count_big();
        Ok(())
    }

    #[step(next = gather)]
    fn fan(&mut self, item: &u32) -> Result<()> {
        self.small = *item;
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.seen = inputs.iter().map(|i| i.big.0.len()).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

impl Lazy {
    fn count_big(&self) -> usize {
        self.big.0.len()
    }
}

#[test]
fn steps_load_only_the_fields_they_name_and_joins_share_split_fields() {
    let _g = DECODES_LOCK.lock().unwrap();
    let graph = <Lazy as Flow>::graph();
    assert_eq!(
        graph.step("untouched").unwrap().uses.as_deref(),
        Some(&["small"][..])
    );
    assert_eq!(
        graph.step("helper").unwrap().uses,
        None,
        "a method call on self may touch anything"
    );
    let (_d, ds) = temp_store();
    DECODES.store(0, Ordering::SeqCst);
    let s = flowlib::run::<Lazy>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    // `start` names `big` (it assigns it), so it loads the default first; `helper` decodes
    // it once; the join decodes it once (its split state) and clones it into each of its 5
    // inputs. `untouched`, the 5 `fan` tasks and `end` never decode it.
    assert_eq!(DECODES.load(Ordering::SeqCst), 3);
    let run = Run::<Lazy>::open(&ds, &s.run_id).unwrap();
    let seen: usize = run.task("gather").unwrap().artifact("seen").unwrap();
    assert_eq!(seen, 5000);
    let helper_seen: usize = run.task("helper").unwrap().artifact("seen").unwrap();
    assert_eq!(helper_seen, 1000);
    let start = run.task("start").unwrap().manifest().artifacts["big"];
    assert_eq!(
        run.task("end").unwrap().manifest().artifacts["big"],
        start,
        "passed through untouched"
    );
    let state = run.step("end").unwrap().state().unwrap();
    assert_eq!(state.big, Counted((0..1000).collect()));
    assert_eq!(state.small, 7);
}

// ---------------------------------------------------------------------------------------
// A `String` item taken as `&str`, a `Vec<T>` item as `&[T]` (regression: did not compile).

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Borrowed {
    words: Vec<String>,
    rows: Vec<Vec<u32>>,
    len: usize,
    sum: u32,
    lens: Vec<usize>,
    sums: Vec<u32>,
}

#[flow]
impl Borrowed {
    #[step(start, next = measure, foreach = words)]
    fn start(&mut self) -> Result<()> {
        self.words = vec!["a".into(), "abc".into()];
        self.rows = vec![vec![1, 2], vec![3, 4, 5]];
        Ok(())
    }

    #[step(next = lengths)]
    fn measure(&mut self, word: &str) -> Result<()> {
        self.len = word.len();
        Ok(())
    }

    #[step(join, next = split_rows)]
    fn lengths(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.lens = inputs.iter().map(|i| i.len).collect();
        Ok(())
    }

    #[step(next = add, foreach = rows)]
    fn split_rows(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = sums)]
    fn add(&mut self, row: &[u32]) -> Result<()> {
        self.sum = row.iter().sum();
        Ok(())
    }

    #[step(join, next = end)]
    fn sums(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.sums = inputs.iter().map(|i| i.sum).collect();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn string_and_vec_items_can_be_borrowed_as_str_and_slice() {
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Borrowed>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{:?}", s.failures);
    let run = Run::<Borrowed>::open(&ds, &s.run_id).unwrap();
    let end = run.task("end").unwrap().state().unwrap();
    assert_eq!(end.lens, [1, 3]);
    assert_eq!(end.sums, [3, 12]);
}
