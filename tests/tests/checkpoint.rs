//! In-step checkpoints that are damaged on disk: a retry falls back to the previous
//! checkpoint, or starts fresh, with a warning; it never fails because of them (#8.8).

use std::path::PathBuf;
use std::sync::Mutex;

use flowlib::prelude::*;
use flowlib::{Run, RunStatus};
use flowlib_testkit::{run_options, temp_store};

/// The datastore root of the running test (tests in this module run one at a time).
static ROOT: Mutex<Option<PathBuf>> = Mutex::new(None);

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Damaged {
    /// Which pointers attempt 0 damages before failing: `latest` or `both`.
    #[param(default = "latest".to_string())]
    damage: String,
    resumed_from: u32,
    epochs: u32,
}

#[flow]
impl Damaged {
    #[step(start, next = end)]
    #[checkpoint]
    #[retry(times = 1, delay = "1ms")]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        let from: u32 = ctx.checkpoint().load()?.unwrap_or(0);
        self.resumed_from = from;
        let mut epoch = from;
        while epoch < 6 {
            epoch += 1;
            ctx.checkpoint().save(&epoch)?;
        }
        if ctx.attempt() == 0 {
            let root = ROOT.lock().unwrap().clone().expect("root set");
            let dir = root.join(format!(
                "flows/Damaged/runs/{}/checkpoints/start/_",
                ctx.run_id()
            ));
            std::fs::write(dir.join("latest.json"), b"{ not json")?;
            if self.damage == "both" {
                std::fs::write(dir.join("previous.json"), b"\0\0")?;
            }
            return Err("fail after damaging the checkpoint".into());
        }
        self.epochs = epoch;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn run(damage: &str) -> Damaged {
    let (dir, ds) = temp_store();
    *ROOT.lock().unwrap() = Some(dir.path().join("ds"));
    let s = flowlib::run::<Damaged>(&ds, &run_options(1).with_param("damage", damage)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{:?}", s.failures);
    Run::<Damaged>::open(&ds, &s.run_id)
        .unwrap()
        .task("start")
        .unwrap()
        .state()
        .unwrap()
}

#[test]
fn a_damaged_checkpoint_falls_back_to_the_previous_one_or_a_fresh_start() {
    // latest.json (epoch 6) is damaged: the retry continues from previous.json (epoch 5).
    let s = run("latest");
    assert_eq!((s.resumed_from, s.epochs), (5, 6));
    // Both pointers damaged: the retry starts fresh instead of failing.
    let s = run("both");
    assert_eq!((s.resumed_from, s.epochs), (0, 6));
}
