//! The `otel` feature against a real OTLP/HTTP receiver: `tests/support/otlp_receiver.py`
//! decodes what the exporter posts with the official `opentelemetry-proto` messages
//! (installed into `otlp-venv` by `scripts/services.sh install`; without it the test skips
//! loudly, except in CI). The `reportflow` fixture runs with `FLOWLIB_OTLP_ENDPOINT` set,
//! on threads and on the processes executor (where every task process exports its own
//! span), and the test checks the span names and attributes that arrived.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use flowlib_testkit::{fixture, text, Sandbox};
use serde_json::Value;

/// The venv's python, or `None` (a loud skip) outside CI.
fn receiver_python() -> Option<PathBuf> {
    let dir = std::env::var_os("FLOWLIB_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/flowlib-services"));
    let py = dir.join("otlp-venv/bin/python");
    if py.exists() {
        return Some(py);
    }
    assert!(
        std::env::var("FLOWLIB_CI").as_deref() != Ok("1"),
        "FLOWLIB_CI is set but opentelemetry-proto is not installed at {} (scripts/services.sh install)",
        py.display()
    );
    eprintln!(
        "\n*** SKIPPED the OTLP export test: no {} (scripts/services.sh install) ***\n",
        py.display()
    );
    None
}

struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Receiver {
    fn start(py: &PathBuf, dir: &std::path::Path) -> Receiver {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/otlp_receiver.py");
        let out = dir.join("spans.jsonl");
        let mut child = Command::new(py)
            .arg(script)
            .arg("--out")
            .arg(&out)
            .args(["--timeout", "300"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the OTLP receiver");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("the receiver did not start: {line:?}"));
        Receiver { child, port, out }
    }

    fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn attr<'a>(s: &'a Value, k: &str) -> &'a Value {
    &s["attributes"][k]
}

#[test]
fn spans_of_a_run_arrive_at_a_real_otlp_http_receiver_with_their_attributes() {
    let Some(py) = receiver_python() else {
        return;
    };
    let sb = Sandbox::new();
    let rx = Receiver::start(&py, sb.path());
    let endpoint = format!("http://127.0.0.1:{}", rx.port);
    for with in ["threads", "processes"] {
        let o = sb
            .cmd(&fixture("reportflow"))
            .args([
                "run",
                "--n",
                "2",
                "--mode",
                "fail-once",
                "--cards",
                "false",
                "--with",
                with,
            ])
            .env("FLOWLIB_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_SERVICE_NAME", format!("otel-test-{with}"))
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    }
    // The batch exporter flushed at each process's exit.
    let spans = rx.spans();
    assert!(
        !spans.is_empty(),
        "no spans arrived (is the reportflow fixture built with the `otel` feature? \
         cargo build -p flowlib-tests --features otel --example reportflow)"
    );
    for with in ["threads", "processes"] {
        let service = format!("otel-test-{with}");
        let of: Vec<&Value> = spans
            .iter()
            .filter(|s| s["resource"]["service.name"] == service.as_str())
            .collect();
        let runs: Vec<&&Value> = of.iter().filter(|s| s["name"] == "flowlib.run").collect();
        assert_eq!(runs.len(), 1, "{with}: one run span: {of:#?}");
        let run_id = attr(runs[0], "run_id").as_str().unwrap().to_string();
        assert_eq!(attr(runs[0], "flow"), "Report");
        assert_eq!(attr(runs[0], "status"), "succeeded");
        let steps: BTreeSet<&str> = of
            .iter()
            .filter(|s| s["name"] == "flowlib.step")
            .map(|s| attr(s, "step").as_str().unwrap())
            .collect();
        assert_eq!(
            steps,
            BTreeSet::from(["end", "join", "start", "work"]),
            "{with}"
        );
        let mut tasks: Vec<(String, i64, String)> = of
            .iter()
            .filter(|s| s["name"] == "flowlib.task")
            .map(|s| {
                assert_eq!(attr(s, "run_id"), run_id.as_str(), "{with}: {s}");
                assert_eq!(attr(s, "flow"), "Report");
                (
                    attr(s, "task").as_str().unwrap().to_string(),
                    attr(s, "attempt").as_i64().unwrap(),
                    attr(s, "status").as_str().unwrap().to_string(),
                )
            })
            .collect();
        tasks.sort();
        let want: Vec<(String, i64, String)> = [
            ("end", 0, "ok"),
            ("join", 0, "ok"),
            ("start", 0, "ok"),
            ("work/0", 0, "ok"),
            ("work/1", 0, "failed"),
            ("work/1", 1, "ok"),
        ]
        .iter()
        .map(|(t, a, s)| (t.to_string(), *a, s.to_string()))
        .collect();
        assert_eq!(tasks, want, "{with}");
        // in one process (threads) a task's span is its step's child, in the run's trace
        if with == "threads" {
            let trace = runs[0]["trace_id"].as_str().unwrap();
            for s in of.iter().filter(|s| s["name"] == "flowlib.task") {
                assert_eq!(s["trace_id"], trace, "{s}");
                let parent = of
                    .iter()
                    .find(|p| p["span_id"] == s["parent_span_id"])
                    .unwrap_or_else(|| panic!("no parent for {s}"));
                assert_eq!(parent["name"], "flowlib.step");
                assert_eq!(attr(parent, "step"), attr(s, "step"));
            }
        }
    }
}
