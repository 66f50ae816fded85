//! Benchmark: the HTML report of a 10,000-task foreach.
//!
//! ```text
//! cargo bench --bench report -- [N]        (default N = 10000)
//! ```
//! Runs the `reportflow` fixture (`tests/fixtures/reportflow.rs`: every task adds a card
//! with Markdown, a table, a PNG and a chart; item 1 fails once and is retried) with N
//! items, then measures `report latest`: its wall time and the file's size, and, in
//! headless Chromium (Debian's `chromium`, `scripts/chromium.sh install`), the time from
//! navigation until the page's script has drawn the timeline and the first table page,
//! then paging to the last page and opening a task's details. Saves a screenshot to
//! `target/test-artifacts/report-10k.png`.

use std::time::{Duration, Instant};

use flowlib_testkit::browser::{chromium, file_url, test_artifacts, Browser};
use flowlib_testkit::{fixture, text, Sandbox};

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let sb = Sandbox::new();
    let bin = fixture("reportflow");
    let t = Instant::now();
    let o = sb
        .cmd(&bin)
        .args(["run", "--n", &n.to_string(), "--mode", "fail-once"])
        .output()
        .expect("run reportflow");
    assert!(o.status.success(), "{}", text(&o));
    println!("run of {n} work tasks: {:.2} s", t.elapsed().as_secs_f64());

    let html = sb.path().join("report.html");
    let mut gen = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let o = sb
            .cmd(&bin)
            .args(["report", "latest", "-o", html.to_str().unwrap()])
            .output()
            .expect("report");
        assert!(o.status.success(), "{}", text(&o));
        gen.push(t.elapsed());
    }
    gen.sort();
    let size = std::fs::metadata(&html).unwrap().len();
    println!(
        "report: {:.2} MB ({size} bytes), generated in {:.2} s (median of 3; min {:.2} s)",
        size as f64 / 1e6,
        gen[1].as_secs_f64(),
        gen[0].as_secs_f64()
    );

    let Some(exe) = chromium() else {
        println!("no Chromium here (scripts/chromium.sh install): load time not measured");
        return;
    };
    let mut b = Browser::launch(&exe, 1280, 900).expect("launch chromium");
    let url = file_url(&html);
    let mut loads: Vec<Duration> = (0..5)
        .map(|_| {
            b.open(&url, "document.body && document.body.dataset.ready === '1'")
                .expect("open the report")
        })
        .collect();
    loads.sort();
    let rows = b
        .eval("document.querySelectorAll('#task-rows tr').length")
        .unwrap();
    let t = Instant::now();
    b.eval(
        "(() => { const s = document.getElementById('f-status'); s.value = 'failed'; \
         s.dispatchEvent(new Event('change')); s.value = ''; s.dispatchEvent(new Event('change')); \
         for (let i = 0; i < 400 && !document.getElementById('next').disabled; i++) document.getElementById('next').click(); \
         location.hash = 'task=work/9'; })()",
    )
    .unwrap();
    let interact = t.elapsed();
    let detail = b
        .eval("document.querySelector('#task-details .detail') !== null")
        .unwrap();
    let errors = b.errors();
    println!(
        "Chromium load until drawn: median {:.2} s, min {:.2} s, max {:.2} s (5 loads); {rows} table rows shown",
        loads[2].as_secs_f64(),
        loads[0].as_secs_f64(),
        loads[4].as_secs_f64()
    );
    println!(
        "filter twice + page to the end + open a task: {:.0} ms (details shown: {detail}); page errors: {}",
        interact.as_secs_f64() * 1000.0,
        errors.len()
    );
    b.open(&url, "document.body.dataset.ready === '1'").unwrap();
    b.screenshot(&test_artifacts().join("report-10k.png"))
        .unwrap();
    assert!(errors.is_empty(), "page errors: {errors:#?}");
}
