//! Retries, timeouts, checkpoints across retries and resumes, concurrent runs.

use super::*;

// ---------------------------------------------------------------------------------------

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Flaky {
    attempts_seen: Vec<u32>,
}

#[flow]
impl Flaky {
    #[step(start, next = end)]
    #[retry(times = 3, delay = "10ms")]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
        if n < 2 {
            return Err(format!("transient failure #{n}").into());
        }
        self.attempts_seen = vec![ctx.attempt()];
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn retries_back_off_and_record_every_attempt() {
    let _g = serial();
    FLAKY_CALLS.store(0, Ordering::SeqCst);
    let (_d, ds) = temp_store();
    let t0 = std::time::Instant::now();
    let s = flowlib::run::<Flaky>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    // Backoff: 10 ms then 20 ms.
    assert!(t0.elapsed() >= Duration::from_millis(30));
    let run = Run::<Flaky>::open(&ds, &s.run_id).unwrap();
    let mut attempts: Vec<(u32, AttemptStatus, Option<String>)> = run
        .attempts()
        .unwrap()
        .iter()
        .filter(|a| a.step == "start")
        .map(|a| (a.source.attempt, a.status, a.error.clone()))
        .collect();
    attempts.sort_by_key(|a| a.0);
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0].1, AttemptStatus::Failed);
    assert_eq!(attempts[0].2.as_deref(), Some("transient failure #0"));
    assert_eq!(attempts[1].2.as_deref(), Some("transient failure #1"));
    assert_eq!(attempts[2].1, AttemptStatus::Ok);
    let seen: Vec<u32> = run
        .task("start")
        .unwrap()
        .artifact("attempts_seen")
        .unwrap();
    assert_eq!(seen, vec![2]);
}

// ---------------------------------------------------------------------------------------

static SLOW_FINISHED: AtomicBool = AtomicBool::new(false);

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Slow {
    winner: String,
}

#[flow]
impl Slow {
    #[step(start, next = end)]
    #[timeout("150ms")]
    #[retry(times = 1, delay = "1ms")]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        if ctx.attempt() == 0 {
            // Runs well past the timeout, then tries to commit a different result.
            std::thread::sleep(Duration::from_millis(600));
            self.winner = "the timed-out attempt".into();
            SLOW_FINISHED.store(true, Ordering::SeqCst);
            return Ok(());
        }
        self.winner = "the retry".into();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn one_task_read_alone_is_the_attempt_the_run_used_retried_or_reused() {
    let _g = serial();
    FLAKY_CALLS.store(0, Ordering::SeqCst);
    let (_d, ds) = temp_store();
    let first = flowlib::run::<Flaky>(&ds, &run_options(2)).unwrap();
    let again = flowlib::resume::<Flaky>(
        &ds,
        &run_options(2),
        &resume_opts(Some(&first.run_id), Some("end")),
    )
    .unwrap();
    assert_eq!(again.status, RunStatus::Succeeded, "{again:?}");
    // What `task_attempts` lists for the task, its last successful attempt, is what
    // `successful_task` reads without listing the run.
    let used = |run: &str, task: &str| {
        let all = ds.task_attempts("Flaky", run).unwrap();
        let mut ok: Vec<_> = all
            .into_iter()
            .filter(|a| a.task_id() == task && a.status.is_success())
            .collect();
        ok.pop().map(|a| (a.source, a.reused, a.manifest_ref))
    };
    for (run, task) in [
        (&first.run_id, "start"),
        (&again.run_id, "start"),
        (&again.run_id, "end"),
    ] {
        let a = ds.successful_task("Flaky", run, task).unwrap();
        assert_eq!(
            Some((a.source.clone(), a.reused, a.manifest_ref)),
            used(run, task),
            "{run} {task}"
        );
        assert!(a.manifest.is_some());
    }
    let retried = ds.successful_task("Flaky", &first.run_id, "start").unwrap();
    assert_eq!(retried.source.attempt, 2, "the third attempt succeeded");
    let reused = ds.successful_task("Flaky", &again.run_id, "start").unwrap();
    assert!(reused.reused);
    assert_eq!(reused.source.run, first.run_id);
    let e = ds
        .successful_task("Flaky", &first.run_id, "nope")
        .unwrap_err()
        .to_string();
    assert!(e.contains("no successful task `nope`"), "{e}");
}

#[test]
fn a_timed_out_attempt_is_fenced_and_can_never_become_the_result() {
    let _g = serial();
    SLOW_FINISHED.store(false, Ordering::SeqCst);
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Slow>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    let winner: String = ds.artifact("Slow", &s.run_id, "end", "winner").unwrap();
    assert_eq!(winner, "the retry");
    // Let the abandoned thread finish and try to commit.
    for _ in 0..100 {
        if SLOW_FINISHED.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(SLOW_FINISHED.load(Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(200));
    let attempts = ds.task_attempts("Slow", &s.run_id).unwrap();
    let a0 = attempts
        .iter()
        .find(|a| a.step == "start" && a.source.attempt == 0)
        .unwrap();
    assert_eq!(a0.status, AttemptStatus::TimedOut, "{a0:?}");
    assert!(a0
        .error
        .as_deref()
        .unwrap()
        .contains("timed out after 150ms"));
    let winner: String = ds.artifact("Slow", &s.run_id, "start", "winner").unwrap();
    assert_eq!(
        winner, "the retry",
        "the late thread's result is never believed"
    );
}

// ---------------------------------------------------------------------------------------

static ITERATIONS: AtomicU32 = AtomicU32::new(0);
static CRASH_AT: AtomicU32 = AtomicU32::new(u32::MAX);

/// Ten checkpointed epochs that fail once after `CRASH_AT`; returns (first epoch, last).
fn train_ten_epochs(ctx: &mut Ctx) -> Result<(u32, u32)> {
    let from: u32 = ctx.checkpoint().load()?.unwrap_or(0);
    let mut epoch = from;
    while epoch < 10 {
        ITERATIONS.fetch_add(1, Ordering::SeqCst);
        epoch += 1;
        ctx.checkpoint().save(&epoch)?;
        if epoch == CRASH_AT.load(Ordering::SeqCst) {
            CRASH_AT.store(u32::MAX, Ordering::SeqCst);
            return Err(format!("crashed after epoch {epoch}").into());
        }
    }
    Ok((from, epoch))
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Epochs {
    epochs: u32,
    resumed_from: Option<u32>,
}

#[flow]
impl Epochs {
    #[step(start, next = end)]
    #[checkpoint]
    #[retry(times = 1, delay = "1ms")]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        let (from, epochs) = train_ten_epochs(ctx)?;
        self.resumed_from = Some(from);
        self.epochs = epochs;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_retry_continues_from_the_last_checkpoint() {
    let _g = serial();
    ITERATIONS.store(0, Ordering::SeqCst);
    CRASH_AT.store(4, Ordering::SeqCst);
    let (_d, ds) = temp_store();
    let s = flowlib::run::<Epochs>(&ds, &run_options(2)).unwrap();
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert_eq!(
        ITERATIONS.load(Ordering::SeqCst),
        10,
        "4 before the failure, 6 after: none repeated"
    );
    let from: Option<u32> = ds
        .artifact("Epochs", &s.run_id, "end", "resumed_from")
        .unwrap();
    assert_eq!(from, Some(4));
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct EpochsNoRetry {
    epochs: u32,
    resumed_from: Option<u32>,
}

#[flow]
impl EpochsNoRetry {
    #[step(start, next = end)]
    #[checkpoint]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        let (from, epochs) = train_ten_epochs(ctx)?;
        self.resumed_from = Some(from);
        self.epochs = epochs;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_resumed_run_continues_from_the_origins_checkpoint_but_a_fresh_run_does_not() {
    let _g = serial();
    ITERATIONS.store(0, Ordering::SeqCst);
    CRASH_AT.store(7, Ordering::SeqCst);
    let (_d, ds) = temp_store();
    let first = flowlib::run::<EpochsNoRetry>(&ds, &run_options(2)).unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    assert_eq!(ITERATIONS.load(Ordering::SeqCst), 7);
    let second =
        flowlib::resume::<EpochsNoRetry>(&ds, &run_options(2), &resume_opts(None, None)).unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(ITERATIONS.load(Ordering::SeqCst), 10);
    let from: Option<u32> = ds
        .artifact("EpochsNoRetry", &second.run_id, "end", "resumed_from")
        .unwrap();
    assert_eq!(from, Some(7));
    // A new run starts from scratch.
    ITERATIONS.store(0, Ordering::SeqCst);
    let third = flowlib::run::<EpochsNoRetry>(&ds, &run_options(2)).unwrap();
    assert_eq!(third.status, RunStatus::Succeeded);
    assert_eq!(ITERATIONS.load(Ordering::SeqCst), 10);
    let from: Option<u32> = ds
        .artifact("EpochsNoRetry", &third.run_id, "end", "resumed_from")
        .unwrap();
    assert_eq!(from, Some(0));
}

#[derive(FlowState, Default, Serialize, Deserialize)]
struct EpochsAtRate {
    #[param(default = 1u32, help = "learning rate")]
    rate: u32,
    epochs: u32,
    resumed_from: Option<u32>,
}

#[flow]
impl EpochsAtRate {
    #[step(start, next = end)]
    #[checkpoint]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        let (from, epochs) = train_ten_epochs(ctx)?;
        self.resumed_from = Some(from);
        self.epochs = epochs * self.rate;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

#[test]
fn a_resume_with_a_changed_parameter_ignores_checkpoints_made_with_the_old_value() {
    let _g = serial();
    ITERATIONS.store(0, Ordering::SeqCst);
    CRASH_AT.store(7, Ordering::SeqCst);
    let (_d, ds) = temp_store();
    let first = flowlib::run::<EpochsAtRate>(&ds, &run_options(2)).unwrap();
    assert_eq!(first.status, RunStatus::Failed);
    ITERATIONS.store(0, Ordering::SeqCst);
    let o = run_options(2).with_param("rate", "3");
    let second = flowlib::resume::<EpochsAtRate>(&ds, &o, &resume_opts(None, None)).unwrap();
    assert_eq!(second.status, RunStatus::Succeeded, "{second:?}");
    assert_eq!(
        ITERATIONS.load(Ordering::SeqCst),
        10,
        "all ten epochs run at the new rate"
    );
    let from: Option<u32> = ds
        .artifact("EpochsAtRate", &second.run_id, "end", "resumed_from")
        .unwrap();
    assert_eq!(from, Some(0), "the rate-1 checkpoint is not continued");
}

// ---------------------------------------------------------------------------------------

#[test]
fn concurrent_runs_in_one_datastore_do_not_interfere() {
    let _g = serial();
    reset();
    let (_d, ds) = temp_store();
    let handles: Vec<_> = (1..=4u64)
        .map(|factor| {
            let ds = ds.clone();
            std::thread::spawn(move || {
                let mut o = run_options(2);
                o.params = vec![("factor".into(), factor.to_string())];
                (factor, flowlib::run::<Squares>(&ds, &o).unwrap())
            })
        })
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        let (factor, s) = h.join().unwrap();
        assert_eq!(s.status, RunStatus::Succeeded);
        let total: u64 = ds.artifact("Squares", &s.run_id, "sum", "total").unwrap();
        assert_eq!(total, expected_total(factor));
        ids.push(s.run_id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
    assert_eq!(ds.run_ids("Squares").unwrap().len(), 4);
}
