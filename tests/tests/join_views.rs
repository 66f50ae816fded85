//! A join's inputs past the driver's views budget: the scheduler keeps the committed
//! views of join inputs up to `RunOptions::join_views_budget` bytes (8 MiB by default) and
//! a pin for the rest, and the join reads those inputs' records from the store as it loads
//! them. The result is the same whatever the budget; an input read from the store is
//! verified like any record, and a damaged one fails the join naming it.

use flowlib::prelude::*;
use flowlib::{Datastore, Run, RunStatus};
use flowlib_testkit::{commit_path, damage_committed_manifest, run_options, temp_store};

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Gathered {
    #[param(default = 40u32)]
    n: u32,
    /// When set, the last item damages the record of item 0 (which has committed: the run
    /// has one worker), before the join reads it.
    #[param(default = String::new())]
    damage_root: String,
    items: Vec<u32>,
    tag: String,
    value: u64,
    /// 2 KiB for every 7th item: an object, not held inline.
    payload: Vec<u8>,
    total: u64,
    payload_bytes: u64,
    order: Vec<u32>,
}

#[flow]
impl Gathered {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..self.n).collect();
        Ok(())
    }

    #[step(next = gather)]
    fn work(&mut self, item: &u32, ctx: &mut Ctx) -> Result<()> {
        self.tag = "agreed".into();
        self.value = u64::from(*item) * 3;
        if item % 7 == 0 {
            self.payload = vec![*item as u8; 2048];
        }
        if !self.damage_root.is_empty() && *item + 1 == self.n {
            let root = std::path::Path::new(&self.damage_root);
            let record = commit_path(root, "Gathered", ctx.run_id(), "work/0", 0);
            damage_committed_manifest(&record, |m| m["host"] = "elsewhere".into());
        }
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        inputs.merge_artifacts(self, &["value", "payload", "order"])?;
        for i in inputs.try_iter() {
            let i = i?;
            self.total += i.value;
            self.payload_bytes += i.payload.len() as u64;
            self.order.push(i.index().unwrap() as u32);
        }
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn gathered(ds: &Datastore, budget: Option<usize>) -> Gathered {
    let mut opts = run_options(2);
    if let Some(b) = budget {
        opts = opts.with_join_views_budget(b);
    }
    let s = flowlib::run::<Gathered>(ds, &opts).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{:?}", s.failures);
    Run::<Gathered>::open(ds, &s.run_id)
        .unwrap()
        .task("end")
        .unwrap()
        .state()
        .unwrap()
}

#[test]
fn a_join_past_its_views_budget_reads_its_inputs_and_gets_the_same_result() {
    let (_d, ds) = temp_store();
    // Everything kept, nothing kept (every input read from the store, 64 at a time), and
    // a budget of a few views (the first inputs kept, the rest read).
    for budget in [None, Some(0), Some(1500)] {
        let g = gathered(&ds, budget);
        assert_eq!(
            g.total,
            (0..40u64).map(|i| i * 3).sum::<u64>(),
            "{budget:?}"
        );
        assert_eq!(g.payload_bytes, 6 * 2048, "{budget:?}: items 0, 7, ..., 35");
        assert_eq!(g.order, (0..40).collect::<Vec<u32>>(), "{budget:?}");
        assert_eq!(g.tag, "agreed", "{budget:?}: merged from the inputs");
    }
}

#[test]
fn a_join_input_read_from_the_store_is_verified_and_named_when_damaged() {
    let (dir, ds) = temp_store();
    let root = dir.path().join("ds");
    let opts = |budget: usize| {
        run_options(1)
            .with_param("n", "5")
            .with_param("damage_root", root.to_str().unwrap())
            .with_join_views_budget(budget)
    };
    // Kept no view of: the join reads work/0's record, which no longer matches its pin.
    let s = flowlib::run::<Gathered>(&ds, &opts(0)).unwrap();
    assert_eq!(s.status, RunStatus::Failed);
    let (task, error) = &s.failures[0];
    assert_eq!(task, "gather", "{:?}", s.failures);
    assert!(error.contains("work/0"), "names the input: {error}");
    assert!(
        error.contains("hash") || error.contains("corrupt") || error.contains("pin"),
        "says what is wrong: {error}"
    );
    // With its view kept, the join never reads the record again (and succeeds); `verify`
    // is what finds the damage then.
    let s = flowlib::run::<Gathered>(&ds, &opts(8 << 20)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{:?}", s.failures);
}

#[test]
fn a_bad_views_budget_in_the_environment_is_one_line_of_error() {
    flowlib_testkit::assert_bad_env_is_one_line_of_error(flowlib::JOIN_VIEWS_BUDGET_ENV);
}

/// A join that loads only the fields it names of each input.
#[derive(FlowState, Default, Serialize, Deserialize)]
struct Selected {
    items: Vec<u32>,
    /// Set by the split: every input inherits it unchanged.
    shared: Vec<u64>,
    value: u64,
    note: String,
    total: u64,
    /// What the selected inputs held of the fields not selected.
    unselected: usize,
    /// `shared` as a whole input has it.
    whole: usize,
    bad: String,
}

#[flow]
impl Selected {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..20).collect();
        self.shared = (0..1000).collect();
        Ok(())
    }

    #[step(next = gather)]
    fn work(&mut self, item: &u32) -> Result<()> {
        self.value = u64::from(*item) * 3;
        self.note = format!("item {item}");
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        for i in inputs.select(&["value"])?.try_iter() {
            let i = i?;
            self.total += i.value;
            self.unselected += i.shared.len() + i.note.len() + i.items.len();
        }
        self.whole = inputs.get(3).map_or(0, |i| i.shared.len() + i.note.len());
        self.bad = inputs
            .select(&["value", "nope"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_join_can_load_only_the_fields_it_names_of_each_input() {
    let (_d, ds) = temp_store();
    for budget in [None, Some(0)] {
        let mut opts = run_options(2);
        if let Some(b) = budget {
            opts = opts.with_join_views_budget(b);
        }
        let s = flowlib::run::<Selected>(&ds, &opts).unwrap();
        assert_eq!(s.status, RunStatus::Succeeded, "{:?}", s.failures);
        let g: Selected = Run::<Selected>::open(&ds, &s.run_id)
            .unwrap()
            .task("end")
            .unwrap()
            .state()
            .unwrap();
        assert_eq!(
            g.total,
            (0..20u64).map(|i| i * 3).sum::<u64>(),
            "{budget:?}"
        );
        assert_eq!(g.unselected, 0, "{budget:?}: nothing else was loaded");
        assert_eq!(g.whole, 1000 + "item 3".len(), "{budget:?}: a whole input");
        assert!(
            g.bad.contains("`nope`") && g.bad.contains("not a field"),
            "{budget:?}: {}",
            g.bad
        );
    }
}
