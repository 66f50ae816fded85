//! `report <run>`: the HTML report of runs of the `reportflow` fixture, opened in headless
//! Chromium (Debian's `chromium`; skipped loudly without it, except in CI) and checked
//! through the DOM: every step and its status, a failed task's error, a task's card, no
//! exceptions or console errors; a screenshot of each goes to `target/test-artifacts/`.
//! Reports of a killed run and bad input are checked without a browser.

use std::path::{Path, PathBuf};
use std::process::Output;

use flowlib_testkit::browser::{chromium_or_skip, file_url, test_artifacts, Browser};
use flowlib_testkit::{fixture, text, Sandbox};
use serde_json::Value;

fn run_flow(sb: &Sandbox, args: &[&str]) -> Output {
    sb.cmd(&fixture("reportflow"))
        .args(args)
        .output()
        .expect("spawn reportflow")
}

/// Write the report of the latest run to `<sandbox>/<name>.html`; return its path.
#[track_caller]
fn write_report(sb: &Sandbox, name: &str) -> PathBuf {
    let out = sb.path().join(format!("{name}.html"));
    let o = run_flow(sb, &["report", "latest", "-o", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "report failed\n{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("wrote the report of run"), "{}", text(&o));
    out
}

/// Open `html` in Chromium (at `hash`), wait for the script, fail on any page error.
fn open(b: &mut Browser, html: &Path, hash: &str) {
    let url = format!("{}{hash}", file_url(html));
    b.open(&url, "document.body && document.body.dataset.ready === '1'")
        .unwrap_or_else(|e| panic!("open {url}: {e}"));
}

fn js(b: &mut Browser, expr: &str) -> Value {
    b.eval(expr).unwrap_or_else(|e| panic!("{e}"))
}

/// `[step, status]` of every row of the steps table.
fn step_statuses(b: &mut Browser) -> Vec<(String, String)> {
    let v = js(
        b,
        "JSON.stringify([...document.querySelectorAll('#steps tr[data-step]')].map(r => [r.dataset.step, r.dataset.status]))",
    );
    serde_json::from_str(v.as_str().unwrap()).unwrap()
}

fn launch(test: &str) -> Option<Browser> {
    let exe = chromium_or_skip(test)?;
    Some(Browser::launch(&exe, 1280, 900).unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn report_of_a_run_with_a_retry_shows_steps_timeline_and_cards_in_chromium() {
    let Some(mut b) = launch("report_of_a_run_with_a_retry") else {
        return;
    };
    let sb = Sandbox::new();
    let o = run_flow(
        &sb,
        &[
            "run",
            "--mode",
            "fail-once",
            "--n",
            "3",
            "--tag",
            "team=vision",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run_flow(&sb, &["tag", "latest", "stage=candidate"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let html = write_report(&sb, "retry");
    open(&mut b, &html, "");

    assert_eq!(
        js(&mut b, "document.getElementById('run-status').textContent"),
        "succeeded"
    );
    assert_eq!(
        js(&mut b, "[...document.querySelectorAll('#tags tr[data-tag]')].map(r => r.dataset.tag + '=' + r.cells[1].textContent).join(' ')"),
        "stage=candidate team=vision"
    );
    assert_eq!(
        step_statuses(&mut b),
        [
            ("start", "ok"),
            ("work", "ok"),
            ("join", "ok"),
            ("end", "ok")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // the graph names every step
    let graph = js(&mut b, "document.querySelector('#graph svg').textContent");
    for s in ["start", "work (3)", "join", "end"] {
        assert!(
            graph.as_str().unwrap().contains(s),
            "graph lacks {s}: {graph}"
        );
    }
    // the retried attempt: its failure is listed, both attempts are on the timeline
    let failures = js(&mut b, "document.getElementById('failures').innerText");
    assert!(
        failures.as_str().unwrap().contains("work/1 attempt 0")
            && failures
                .as_str()
                .unwrap()
                .contains("item 1 fails on its first attempt"),
        "{failures}"
    );
    assert_eq!(
        js(
            &mut b,
            "document.querySelectorAll('#gantt rect[data-task=\"work/1\"]').length"
        ),
        2
    );
    assert_eq!(
        js(&mut b, "document.querySelectorAll('#task-rows tr').length"),
        7,
        "start, work/0, work/1 twice, work/2, join, end"
    );
    // a task's section: its card (Markdown, table, image, chart) and its log tail
    js(&mut b, "location.hash = 'task=work/2'");
    let detail = js(
        &mut b,
        "document.querySelector('#task-details .detail').innerText",
    );
    let detail = detail.as_str().unwrap();
    assert!(detail.contains("work/2 — attempt 0"), "{detail}");
    assert!(
        detail.contains("Item 2") && detail.contains("square is 4"),
        "{detail}"
    );
    assert!(
        detail.contains("work 2 attempt 0 starts"),
        "the log tail\n{detail}"
    );
    assert!(
        detail.contains("cpu 1, memory 64MiB"),
        "resources\n{detail}"
    );
    assert_eq!(
        js(&mut b, "document.querySelectorAll('#task-details .card img.card-image, #task-details .card svg.chart, #task-details .card table').length"),
        3
    );
    assert_eq!(
        js(
            &mut b,
            "document.querySelector('#task-details .card img').naturalWidth"
        ),
        8,
        "the PNG decodes"
    );
    // the metric: one chart, one line per attempt that logged it; the task's summary
    assert_eq!(
        js(
            &mut b,
            "document.querySelectorAll('#metrics figure[data-metric=\"loss\"] svg.chart').length"
        ),
        1
    );
    let chart = js(
        &mut b,
        "document.querySelector('#metrics figure[data-metric=\"loss\"] svg').textContent",
    );
    for s in ["work/0@0", "work/1@0", "work/1@1", "work/2@0"] {
        assert!(
            chart.as_str().unwrap().contains(s),
            "legend lacks {s}: {chart}"
        );
    }
    assert!(
        detail.contains("Metrics") && detail.contains("loss"),
        "{detail}"
    );
    let errors = b.errors();
    assert!(errors.is_empty(), "page errors: {errors:#?}");
    let shot = test_artifacts().join("report-retry.png");
    b.screenshot(&shot).unwrap();
    if std::env::var_os("FLOWLIB_UPDATE_DOCS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/report.png");
        std::fs::copy(&shot, docs).unwrap();
    }
}

#[test]
fn report_of_a_failed_run_shows_the_failed_task_and_what_did_not_run_in_chromium() {
    let Some(mut b) = launch("report_of_a_failed_run") else {
        return;
    };
    let sb = Sandbox::new();
    let o = run_flow(
        &sb,
        &["run", "--mode", "fail", "--n", "3", "--cards", "false"],
    );
    assert_eq!(o.status.code(), Some(1), "the run fails\n{}", text(&o));
    let html = write_report(&sb, "failed");
    open(&mut b, &html, "#task=work/1");

    assert_eq!(
        js(&mut b, "document.getElementById('run-status').textContent"),
        "failed"
    );
    assert_eq!(
        step_statuses(&mut b),
        [
            ("start", "ok"),
            ("work", "failed"),
            ("join", "not-run"),
            ("end", "not-run")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let failures = js(
        &mut b,
        "document.querySelectorAll('#failures li[data-task=\"work/1\"]').length",
    );
    assert_eq!(failures, 2, "both attempts of work/1 failed");
    // the hash opened the failed task's last attempt
    let detail = js(
        &mut b,
        "document.querySelector('#task-details .detail').innerText",
    );
    let detail = detail.as_str().unwrap();
    assert!(detail.contains("work/1 — attempt 1"), "{detail}");
    assert!(
        detail.contains("item 1 always fails: </script><b>not bold</b>"),
        "the error, markup shown as text\n{detail}"
    );
    assert_eq!(
        js(
            &mut b,
            "document.querySelectorAll('#failures b, #task-details b').length"
        ),
        0
    );
    assert!(detail.contains("0: failed, 1: failed"), "{detail}");
    // filtering the table by status leaves the failed attempts
    js(
        &mut b,
        "(() => { const s = document.getElementById('f-status'); s.value = 'failed'; s.dispatchEvent(new Event('change')); })()",
    );
    assert_eq!(
        js(&mut b, "[...document.querySelectorAll('#task-rows tr')].map(r => r.dataset.task + '@' + r.dataset.attempt).join(' ')"),
        "work/1@0 work/1@1"
    );
    let errors = b.errors();
    assert!(errors.is_empty(), "page errors: {errors:#?}");
    b.screenshot(&test_artifacts().join("report-failed.png"))
        .unwrap();
}

#[test]
fn report_of_a_killed_run_shows_what_committed() {
    let sb = Sandbox::new();
    let mut child = sb
        .cmd(&fixture("reportflow"))
        .args(["run", "--mode", "sleep", "--sleep-ms", "120000", "--n", "3"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // wait until the other work tasks committed (item 1 sleeps)
    let tasks = sb.datastore().join("flows/Report/runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let n = std::fs::read_dir(&tasks)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|r| r.ok())
            .map(|run| flowlib_testkit::count_files(&run.path().join("tasks/work")))
            .unwrap_or(0);
        if n >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "work/0 and work/2 never committed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // while it runs
    let html = std::fs::read_to_string(write_report(&sb, "running")).unwrap();
    assert!(
        html.contains("id=\"run-status\" class=\"st running\""),
        "running"
    );
    // killed
    child.kill().unwrap();
    child.wait().unwrap();
    let html = std::fs::read_to_string(write_report(&sb, "killed")).unwrap();
    assert!(
        html.contains("id=\"run-status\" class=\"st killed\""),
        "killed"
    );
    assert!(html.contains("<tr data-step=\"start\" data-status=\"ok\">"));
    assert!(
        html.contains("<tr data-step=\"work\" data-status=\"ok\">"),
        "two of three work tasks committed"
    );
    assert!(html.contains("<tr data-step=\"join\" data-status=\"not-run\">"));
}

#[test]
fn report_of_an_unknown_run_is_one_line_exit_2() {
    let sb = Sandbox::new();
    let o = run_flow(&sb, &["run", "--n", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for (args, needle) in [
        (
            vec!["report", "20200101T000000000Z-000000000000"],
            "no run `20200101T000000000Z-000000000000`",
        ),
        (vec!["report", "../etc"], "../etc"),
    ] {
        let o = run_flow(&sb, &args);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(err.lines().count(), 1, "{}", text(&o));
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{}",
            text(&o)
        );
    }
    let empty = Sandbox::new();
    let o = empty
        .cmd(&fixture("reportflow"))
        .args(["report", "latest"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).lines().count(),
        1,
        "{}",
        text(&o)
    );
}

/// The harness's own check: a page that throws and logs an error is seen as failing, so
/// "no page errors" above can fail.
#[test]
fn the_browser_harness_sees_exceptions_and_console_errors() {
    let Some(mut b) = launch("the_browser_harness_sees_exceptions") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("bad.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><body><script>console.error('bad thing'); document.body.dataset.ready = '1'; \
         setTimeout(() => { throw new Error('boom'); }, 0);</script></body>",
    )
    .unwrap();
    open(&mut b, &page, "");
    js(&mut b, "new Promise(r => setTimeout(r, 50))");
    let errors = b.errors().join("\n");
    assert!(
        errors.contains("bad thing") && errors.contains("boom"),
        "{errors}"
    );
}

#[test]
fn report_of_a_run_with_cache_hits_marks_them_cached_in_chromium() {
    let Some(mut b) = launch("report_of_a_run_with_cache_hits") else {
        return;
    };
    let sb = Sandbox::new();
    for _ in 0..2 {
        let o = sb.run("train", &["run", "-q"]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    let html = sb.path().join("cached.html");
    let o = sb.run("train", &["report", "latest", "-o", html.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    open(&mut b, &html, "#task=fit/2");
    let detail = js(
        &mut b,
        "document.querySelector('#task-details .detail').innerText",
    );
    let detail = detail.as_str().unwrap();
    assert!(detail.contains("(cached from run "), "{detail}");
    assert!(detail.contains("task fit/2"), "{detail}");
    let rows = js(
        &mut b,
        "[...document.querySelectorAll('#task-rows tr')].filter(r => r.innerText.includes('(cached)')).length",
    );
    assert_eq!(rows, 4, "the four fits are cached");
    assert_eq!(
        js(
            &mut b,
            "document.querySelectorAll('#gantt rect[data-task=\"fit/0\"]').length"
        ),
        0,
        "a cached task ran in another run: no bar on this run's timeline"
    );
}
