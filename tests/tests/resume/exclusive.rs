//! One resume at a time: a live origin is refused, concurrent resumes of one origin refuse all but one.

use super::*;

// ---------------------------------------------------------------------------------------
// Exclusivity: a resume refuses an origin that is still running, and of two concurrent
// resumes of one origin exactly one runs.

static GATE_FAILS: AtomicBool = AtomicBool::new(false);
/// The next call of `work` blocks until `GATE_OPEN` (only that one call).
static GATE_BLOCK_NEXT: AtomicBool = AtomicBool::new(false);
static GATE_ENTERED: AtomicBool = AtomicBool::new(false);
static GATE_OPEN: AtomicBool = AtomicBool::new(false);
static GATE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Gate {
    done: bool,
}

#[flow]
impl Gate {
    #[step(start, next = work)]
    fn start(&mut self) -> Result<()> {
        Ok(())
    }

    #[step(next = end)]
    fn work(&mut self) -> Result<()> {
        GATE_CALLS.fetch_add(1, Ordering::SeqCst);
        if GATE_FAILS.load(Ordering::SeqCst) {
            return Err("work is broken".into());
        }
        if GATE_BLOCK_NEXT.swap(false, Ordering::SeqCst) {
            GATE_ENTERED.store(true, Ordering::SeqCst);
            while !GATE_OPEN.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.done = true;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn gate_reset() {
    GATE_FAILS.store(false, Ordering::SeqCst);
    GATE_BLOCK_NEXT.store(false, Ordering::SeqCst);
    GATE_ENTERED.store(false, Ordering::SeqCst);
    GATE_OPEN.store(false, Ordering::SeqCst);
    GATE_CALLS.store(0, Ordering::SeqCst);
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    let t0 = std::time::Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn resume_refuses_an_origin_that_is_still_running() {
    let _g = serial();
    gate_reset();
    let (_d, ds) = temp_store();
    GATE_BLOCK_NEXT.store(true, Ordering::SeqCst);
    let running = {
        let ds = ds.clone();
        std::thread::spawn(move || flowlib::run::<Gate>(&ds, &run_options(2)).unwrap())
    };
    wait_until("the run reaches `work`", || {
        GATE_ENTERED.load(Ordering::SeqCst)
    });
    let origin = ds.latest_run("Gate").unwrap().unwrap();
    let info = ds.run_info("Gate", &origin).unwrap();
    assert_eq!(info.is_alive(), Some(true), "a running run is alive");

    let res = flowlib::resume::<Gate>(&ds, &run_options(2), &resume_opts(Some(&origin), None));
    GATE_OPEN.store(true, Ordering::SeqCst);
    let first = running.join().unwrap();
    assert_eq!(first.status, RunStatus::Succeeded);
    let err = match res {
        Ok(s) => panic!("a resume of a running run went ahead: {s:?}"),
        Err(e) => e,
    };
    let msg = err.to_string();
    assert!(matches!(err, flowlib::Error::InvalidInput(_)), "{err:?}");
    assert!(
        msg.contains(&format!("run {origin} is still running")) && msg.contains("heartbeat"),
        "{msg}"
    );
    assert_eq!(GATE_CALLS.load(Ordering::SeqCst), 1, "work ran once only");
    assert_eq!(
        ds.runs("Gate").unwrap().len(),
        1,
        "the refusal wrote no run"
    );

    // Once it finished, it is not alive, and may be resumed.
    assert_eq!(
        ds.run_info("Gate", &origin).unwrap().is_alive(),
        Some(false)
    );
    let again =
        flowlib::resume::<Gate>(&ds, &run_options(2), &resume_opts(Some(&origin), None)).unwrap();
    assert_eq!(again.status, RunStatus::Succeeded);
}

#[test]
fn of_two_concurrent_resumes_of_one_origin_one_runs_and_the_other_refuses() {
    let _g = serial();
    gate_reset();
    let (_d, ds) = temp_store();
    GATE_FAILS.store(true, Ordering::SeqCst);
    let origin = flowlib::run::<Gate>(&ds, &run_options(2)).unwrap();
    assert_eq!(origin.status, RunStatus::Failed);
    let origin = origin.run_id;
    GATE_FAILS.store(false, Ordering::SeqCst);
    GATE_CALLS.store(0, Ordering::SeqCst);
    // Whichever resume runs `work` first stays in it until the test opens the gate.
    GATE_BLOCK_NEXT.store(true, Ordering::SeqCst);

    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let (tx, rx) = std::sync::mpsc::channel();
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (ds, barrier, tx, origin) =
                (ds.clone(), barrier.clone(), tx.clone(), origin.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let r = flowlib::resume::<Gate>(
                    &ds,
                    &run_options(2),
                    &resume_opts(Some(&origin), None),
                );
                tx.send(
                    r.map_err(|e| (matches!(e, flowlib::Error::InvalidInput(_)), e.to_string())),
                )
                .unwrap();
            })
        })
        .collect();
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a resume ends");
    GATE_OPEN.store(true, Ordering::SeqCst);
    let second = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a resume ends");
    for h in handles {
        h.join().unwrap();
    }
    let (invalid, msg) = match first {
        Err(e) => e,
        Ok(s) => panic!("the first resume to end did not refuse (both ran): {s:?}; {second:?}"),
    };
    let winner = second.expect("the other resume runs");
    assert_eq!(winner.status, RunStatus::Succeeded);
    assert!(invalid, "{msg}");
    assert!(
        msg.contains(&origin) && msg.contains(&winner.run_id),
        "the refusal names the origin and the resume in progress: {msg}"
    );
    assert_eq!(
        GATE_CALLS.load(Ordering::SeqCst),
        1,
        "the failed work ran once"
    );
    assert_eq!(ds.runs("Gate").unwrap().len(), 2, "one new run only");

    // After the first resume finished, resuming the same origin again is allowed.
    let again =
        flowlib::resume::<Gate>(&ds, &run_options(2), &resume_opts(Some(&origin), None)).unwrap();
    assert_eq!(again.status, RunStatus::Succeeded);
    assert_eq!(again.tasks_reused, 1, "start is reused again");
    assert_eq!(ds.runs("Gate").unwrap().len(), 3);
}
