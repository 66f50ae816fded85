//! Telemetry: a run, its steps and its task attempts are `tracing` spans that a user's
//! subscriber sees, nested run → step → task, with the run id, flow, step, task and attempt
//! as fields; what a step logs with `tracing` lands inside its attempt's span.
//! (The OTLP export of the `otel` feature is tested in `otel`.)

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use flowlib::prelude::*;
use flowlib_testkit::{run_options, temp_store};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Spans {
    items: Vec<u32>,
    x: u32,
}

#[flow]
impl Spans {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = vec![0, 1];
        Ok(())
    }

    #[step(next = join)]
    #[retry(times = 1, delay = "1ms")]
    fn work(&mut self, item: &u32, ctx: &mut Ctx) -> Result<()> {
        tracing::info!(item = *item, "working");
        if *item == 1 && ctx.attempt() == 0 {
            return Err("item 1 fails once".into());
        }
        self.x = *item;
        Ok(())
    }

    #[step(join, next = end)]
    fn join(&mut self, _inputs: Inputs<Self>) -> Result<()> {
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

/// One span as the capturing layer saw it.
#[derive(Clone, Debug, Default)]
struct Seen {
    name: String,
    parent: Option<u64>,
    fields: BTreeMap<String, String>,
    closed: bool,
}

#[derive(Default)]
struct Fields<'a>(Option<&'a mut BTreeMap<String, String>>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        if let Some(m) = self.0.as_mut() {
            m.insert(
                f.name().to_string(),
                format!("{v:?}").trim_matches('"').to_string(),
            );
        }
    }
    fn record_str(&mut self, f: &Field, v: &str) {
        if let Some(m) = self.0.as_mut() {
            m.insert(f.name().to_string(), v.to_string());
        }
    }
}

/// Each event's message, with the span it was in.
type Events = Arc<Mutex<Vec<(Option<u64>, String)>>>;

/// Records every span (with its parent and fields) and, per event, the span it was in.
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<BTreeMap<u64, Seen>>>,
    events: Events,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut seen = Seen {
            name: attrs.metadata().name().to_string(),
            parent: ctx
                .span_scope(id)
                .and_then(|mut s| s.nth(1))
                .map(|p| p.id().into_u64()),
            ..Seen::default()
        };
        attrs.record(&mut Fields(Some(&mut seen.fields)));
        self.spans.lock().unwrap().insert(id.into_u64(), seen);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        if let Some(s) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(Some(&mut s.fields)));
        }
    }
    fn on_event(&self, e: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut f = BTreeMap::new();
        e.record(&mut Fields(Some(&mut f)));
        let span = ctx.event_span(e).map(|s| s.id().into_u64());
        self.events
            .lock()
            .unwrap()
            .push((span, f.get("message").cloned().unwrap_or_default()));
    }
    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        if let Some(s) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            s.closed = true;
        }
    }
}

#[test]
fn a_run_its_steps_and_attempts_are_nested_tracing_spans_with_their_ids() {
    let cap = Capture::default();
    let subscriber = tracing_subscriber::registry().with(cap.clone());
    let (_dir, ds) = temp_store();
    let summary = tracing::subscriber::with_default(subscriber, || {
        flowlib::run::<Spans>(&ds, &run_options(2)).unwrap()
    });
    let spans = cap.spans.lock().unwrap().clone();
    let named = |n: &str| -> Vec<(u64, Seen)> {
        spans
            .iter()
            .filter(|(_, s)| s.name == n)
            .map(|(id, s)| (*id, s.clone()))
            .collect()
    };
    let runs = named("flowlib.run");
    assert_eq!(runs.len(), 1, "{spans:#?}");
    let (run_id, run) = &runs[0];
    assert_eq!(run.fields["run_id"], summary.run_id);
    assert_eq!(run.fields["flow"], "Spans");
    assert_eq!(run.fields["status"], "succeeded");
    assert!(run.closed);

    let steps = named("flowlib.step");
    let mut step_names: Vec<&str> = steps
        .iter()
        .map(|(_, s)| s.fields["step"].as_str())
        .collect();
    step_names.sort();
    assert_eq!(step_names, ["end", "join", "start", "work"]);
    for (_, s) in &steps {
        assert_eq!(
            s.parent,
            Some(*run_id),
            "a step span is the run span's child: {s:?}"
        );
        assert_eq!(s.fields["run_id"], summary.run_id);
    }

    let mut tasks: Vec<(String, String, String, String)> = named("flowlib.task")
        .into_iter()
        .map(|(_, t)| {
            let parent = &spans[&t.parent.expect("a task span has a parent")];
            assert_eq!(parent.name, "flowlib.step", "{t:?}");
            assert_eq!(parent.fields["step"], t.fields["step"], "{t:?}");
            assert_eq!(t.fields["run_id"], summary.run_id);
            assert_eq!(t.fields["flow"], "Spans");
            assert!(t.closed, "{t:?}");
            (
                t.fields["task"].clone(),
                t.fields["attempt"].clone(),
                t.fields["status"].clone(),
                t.fields["step"].clone(),
            )
        })
        .collect();
    tasks.sort();
    let want: Vec<(String, String, String, String)> = [
        ("end", "0", "ok", "end"),
        ("join", "0", "ok", "join"),
        ("start", "0", "ok", "start"),
        ("work/0", "0", "ok", "work"),
        ("work/1", "0", "failed", "work"),
        ("work/1", "1", "ok", "work"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect();
    assert_eq!(tasks, want);

    // what a step logs is inside its attempt's span
    let events = cap.events.lock().unwrap().clone();
    let working: Vec<_> = events.iter().filter(|(_, m)| m == "working").collect();
    assert_eq!(working.len(), 3, "work/0, and work/1 twice: {events:?}");
    for (span, _) in working {
        let s = &spans[&span.expect("the event is inside a span")];
        assert_eq!(
            (s.name.as_str(), s.fields["step"].as_str()),
            ("flowlib.task", "work")
        );
    }
}
