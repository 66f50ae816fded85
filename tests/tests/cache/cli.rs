//! The cache from the command line (the `train` example, whose `fit` is `#[cache]`), a
//! kill -9 in a run that took hits, and the cache on S3 (moto).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use flowlib_testkit::{example, text, Sandbox};

#[cfg_attr(not(feature = "aws"), allow(unused_imports))]
use super::*;

fn ok(sb: &Sandbox, args: &[&str]) -> String {
    let o = sb.run("train", args);
    assert!(o.status.success(), "train {args:?}: {}", text(&o));
    text(&o)
}

fn usage_error(sb: &Sandbox, args: &[&str], needle: &str) {
    let o = sb.run("train", args);
    assert_eq!(o.status.code(), Some(2), "train {args:?}: {}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(needle), "{needle:?} in {err}");
}

#[test]
fn train_twice_takes_every_fit_from_the_cache_and_the_cli_shows_it() {
    let sb = Sandbox::new();
    let first = ok(&sb, &["run", "--plain"]);
    assert!(first.contains("succeeded"), "{first}");
    assert!(!first.contains("cached"), "{first}");
    let best = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("best rate"))
            .map(str::to_string)
    };
    let second = ok(&sb, &["run", "--plain"]);
    assert!(second.contains("7 tasks, 4 cached"), "{second}");
    assert_eq!(
        second.matches("cached from run").count(),
        4,
        "progress names the source of each hit: {second}"
    );
    assert!(!second.contains("[fit/"), "fit did not run: {second}");
    assert_eq!(best(&second), best(&first));

    let runs = ok(&sb, &["runs"]);
    assert!(runs.contains("4 cached"), "{runs}");
    let dump = ok(&sb, &["dump", "latest"]);
    assert!(dump.contains("4 tasks ok (4 cached)"), "{dump}");
    let task = ok(&sb, &["dump", "latest/fit/2"]);
    assert!(task.contains("(cached from run "), "{task}");

    let list = ok(&sb, &["cache", "list"]);
    assert_eq!(list.matches(" fit ").count(), 4, "{list}");
    let key = list
        .lines()
        .find(|l| l.contains(" fit "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap();
    let show = ok(&sb, &["cache", "show", key]);
    for part in ["code", "field.rows", "item", "position"] {
        assert!(show.contains(part), "{part} in {show}");
    }

    // A changed parameter the step reads misses; `--no-cache` and `--refresh` run it.
    let other = ok(&sb, &["run", "--plain", "--split", "0.7"]);
    assert!(!other.contains("cached"), "{other}");
    let nocache = ok(&sb, &["run", "--plain", "--no-cache"]);
    assert!(!nocache.contains("cached"), "{nocache}");
    let refresh = ok(&sb, &["run", "--plain", "--refresh", "fit"]);
    assert!(!refresh.contains("cached from"), "{refresh}");
    assert!(ok(&sb, &["run", "-q"]).contains("4 cached"));

    let cleared = ok(&sb, &["cache", "clear", "fit"]);
    assert!(cleared.contains("cleared 8 cache entries"), "{cleared}");
    assert!(ok(&sb, &["cache", "list"]).contains("no cache entries"));
    assert!(ok(&sb, &["verify"]).contains("no problems"));

    usage_error(&sb, &["run", "--refresh", "nosuch"], "has no step `nosuch`");
    usage_error(&sb, &["run", "--refresh", "pick"], "not a #[cache] step");
    usage_error(&sb, &["cache", "list", "pick"], "not a #[cache] step");
    usage_error(&sb, &["cache", "show", "zz"], "not a cache key");
    usage_error(
        &sb,
        &["cache", "show", "abcdef"],
        "no cache entry with key abcdef",
    );
    usage_error(
        &sb,
        &["run", "--no-cache", "--refresh", "fit"],
        "cannot be used with",
    );
}

#[test]
fn a_run_killed_after_taking_hits_resumes_with_them() {
    let sb = Sandbox::new();
    ok(&sb, &["run", "-q"]);
    let point = "before-commit@pick";
    let mut child = sb
        .cmd(&example("train"))
        .env("FLOWLIB_TEST_HOLD", point)
        .args(["run", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let held = BufReader::new(stderr)
        .lines()
        .map_while(|l| l.ok())
        .any(|l| l.starts_with("FLOWLIB_HOLD before-commit pick"));
    assert!(held, "the run never reached {point}");
    // SAFETY: kill(2) on the pid of our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();

    let killed = sb.open();
    let run = killed.latest_run("Train").unwrap().unwrap();
    let attempts = killed.task_attempts("Train", &run).unwrap();
    assert_eq!(
        attempts.iter().filter(|a| a.cached).count(),
        4,
        "the hits were on record before pick started"
    );
    let resumed = ok(&sb, &["resume", "--plain"]);
    assert!(resumed.contains("succeeded"), "{resumed}");
    assert!(
        resumed.contains("5 tasks reused"),
        "start and the 4 cached fits: {resumed}"
    );
    let best: Option<(f64, f64, (f64, f64))> = sb
        .open()
        .artifact(
            "Train",
            &sb.open().latest_run("Train").unwrap().unwrap(),
            "pick",
            "best",
        )
        .unwrap();
    assert_eq!(best.map(|b| b.0), Some(0.5));
    let verify = sb.run("train", &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
}

#[test]
#[cfg(feature = "aws")]
fn the_cache_works_on_s3() {
    let Ok(base) = std::env::var("FLOWLIB_TEST_S3") else {
        panic!("FLOWLIB_TEST_S3 is not set: start the test servers with scripts/test-all.sh (or scripts/services.sh start and eval \"$(scripts/services.sh env)\")");
    };
    let _g = serial();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let url = format!("{}/cache-{nanos}", base.trim_end_matches('/'));
    let ds = Datastore::builder(&url)
        .cache(flowlib::CacheConfig::disabled())
        .open()
        .unwrap();
    calls();
    let first = run_with(&ds, run_options(2));
    assert_eq!(calls().len(), 8);
    let second = run_with(&ds, run_options(2));
    assert_eq!(second.tasks_cached, 5, "{second:?}");
    assert_eq!(calls(), ["end", "split", "start"]);
    assert_eq!(report(&ds, &second), report(&ds, &first));
    let s = run_with(&ds, params(&[("n", "4")]));
    assert_eq!(s.tasks_cached, 3);
    let (entries, bad) = flowlib::cache::entries(&ds, "Memo", None).unwrap();
    assert!(bad.is_empty());
    assert_eq!(
        entries.len(),
        1 + 3 + 1 + 1 + 1 + 1,
        "prep×2, squares 1..4, total×2"
    );
    let v = flowlib::verify(&ds, None, None).unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}
