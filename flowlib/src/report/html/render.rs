//! The report's HTML: static sections (header, parameters, graph, steps, failures) and the
//! per-attempt data as compact JSON for the inline script (timeline, paged task table,
//! task details with cards).

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::{json, Value};

use crate::flow::card::CardItem;
use crate::report::html::{svg, RunReport};

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

/// Cards are embedded until they take this many bytes; later ones say how to see them
/// (`report <run> --task <id>`), so a run whose 10,000 tasks all add charts stays small.
const CARD_BUDGET: usize = 2 << 20;

/// HTML-escape text.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One decimal is all a timeline needs (keeps the JSON small).
fn round1(x: f64) -> Value {
    let r = (x * 10.0).round() / 10.0;
    if r.fract() == 0.0 && r.abs() < 1e15 {
        json!(r as i64)
    } else {
        json!(r)
    }
}

/// A metric value as JSON: NaN and infinities (which JSON lacks) as strings.
fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        json!(x.to_string())
    }
}

fn fmt_ms(ms: f64) -> String {
    crate::run::events::fmt_duration(std::time::Duration::from_secs_f64(ms.max(0.0) / 1000.0))
}

/// Strings that repeat across attempts (digests of unchanged fields, hosts, names) stored once.
#[derive(Default)]
struct Interner {
    index: HashMap<String, usize>,
    strings: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> usize {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        self.strings.push(s.to_string());
        self.index.insert(s.to_string(), self.strings.len() - 1);
        self.strings.len() - 1
    }
}

/// The page.
pub(crate) fn page(r: &RunReport) -> String {
    let rec = &r.info.record;
    let mut h = String::with_capacity(64 << 10);
    let title = format!("{} run {}", rec.flow, rec.run_id);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"flowlib {}\"><title>{}</title><style>{CSS}</style></head><body>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&title)
    );
    header(&mut h, r);
    params(&mut h, r);
    tags(&mut h, r);
    let _ = writeln!(
        h,
        "<section id=\"graph\"><h2>Graph</h2><div class=\"legend\">\
         <span class=\"st ok\">ok</span> <span class=\"st failed\">failed</span> \
         <span class=\"st caught\">caught</span> <span class=\"st pending\">pending</span> \
         <span class=\"st not-run\">not run</span></div>{}</section>",
        svg::graph(&r.steps)
    );
    steps(&mut h, r);
    failures(&mut h, r);
    metrics(&mut h, r);
    h.push_str(
        "<section id=\"timeline\"><h2>Timeline</h2><p class=\"note\">One row per concurrently \
         running attempt of a step; retried attempts are outlined, failed ones red. Hover a bar \
         for its task.</p><div id=\"gantt\"></div></section>\n",
    );
    h.push_str(
        "<section id=\"tasks\"><h2>Tasks</h2><div class=\"controls\">\
         <select id=\"f-step\"><option value=\"\">all steps</option></select> \
         <select id=\"f-status\"><option value=\"\">any status</option></select> \
         <input id=\"f-text\" type=\"search\" placeholder=\"task id or error text\"> \
         <span id=\"count\"></span></div>\
         <table class=\"tasks\"><thead><tr><th>task</th><th>attempt</th><th>status</th>\
         <th>started</th><th>duration</th><th>host</th><th>error</th></tr></thead>\
         <tbody id=\"task-rows\"></tbody></table>\
         <div class=\"pager\"><button id=\"prev\">&larr; previous</button> <span id=\"page\"></span> \
         <button id=\"next\">next &rarr;</button></div>\
         <div id=\"task-details\"></div></section>\n",
    );
    problems(&mut h, r);
    let data = data_json(r);
    // `<` only occurs inside JSON strings, where `\u003c` means the same: no `</script>`.
    let data = data.replace('<', "\\u003c");
    let _ = write!(
        h,
        "<script type=\"application/json\" id=\"report-data\">{data}</script>\n<script>{JS}</script>\n</body></html>\n"
    );
    h
}

fn header(h: &mut String, r: &RunReport) {
    let rec = &r.info.record;
    let duration = match &r.info.end {
        Some(e) => fmt_ms(e.duration_ms as f64),
        None => "—".to_string(),
    };
    let _ = write!(
        h,
        "<header><h1>{} <span class=\"run-id\">{}</span> <span id=\"run-status\" class=\"st {}\">{}</span></h1>\
         <dl class=\"facts\"><dt>started</dt><dd>{}</dd><dt>duration</dt><dd>{}</dd>\
         <dt>tasks</dt><dd>{}</dd><dt>host</dt><dd>{}</dd><dt>user</dt><dd>{}</dd>\
         <dt>flowlib</dt><dd>{}</dd>",
        esc(&rec.flow),
        esc(&rec.run_id),
        r.state.to_string().trim(),
        r.state.to_string().trim(),
        esc(&rec.started),
        esc(&duration),
        r.steps.iter().map(|s| s.tasks).sum::<usize>(),
        esc(&rec.host),
        esc(&rec.user),
        esc(&rec.code.flowlib),
    );
    if let Some(g) = &rec.code.git_commit {
        let _ = write!(h, "<dt>git</dt><dd>{}</dd>", esc(g));
    }
    if let Some(res) = &rec.resume {
        let _ = write!(
            h,
            "<dt>resumed from</dt><dd>{} ({} tasks reused)</dd>",
            esc(&res.origin),
            res.reused_tasks
        );
    }
    if let Some(err) = r.info.end_error() {
        let _ = write!(
            h,
            "<dt>end record</dt><dd class=\"error\">{}</dd>",
            esc(err)
        );
    }
    let _ = writeln!(
        h,
        "<dt>command</dt><dd><code>{}</code></dd></dl></header>",
        esc(&rec.argv.join(" "))
    );
}

fn params(h: &mut String, r: &RunReport) {
    let p = &r.info.record.params;
    h.push_str("<section id=\"params\"><h2>Parameters</h2>");
    if p.is_empty() {
        h.push_str("<p class=\"note\">none</p>");
    } else {
        h.push_str("<table class=\"kv\"><tbody>");
        for (k, v) in p {
            let _ = write!(
                h,
                "<tr><th>{}</th><td><code>{}</code></td></tr>",
                esc(k),
                esc(&v.to_string())
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>\n");
}

fn tags(h: &mut String, r: &RunReport) {
    let t = &r.tags;
    h.push_str("<section id=\"tags\"><h2>Tags</h2>");
    if t.tags.is_empty() && t.notes.is_empty() {
        h.push_str("<p class=\"note\">none (<code>tag &lt;run&gt; key=value</code>, <code>run --tag key=value</code>)</p>");
    }
    if !t.tags.is_empty() {
        h.push_str("<table class=\"kv\"><tbody>");
        for (k, v) in &t.tags {
            let _ = write!(
                h,
                "<tr data-tag=\"{}\"><th>{}</th><td>{}</td></tr>",
                esc(k),
                esc(k),
                esc(v)
            );
        }
        h.push_str("</tbody></table>");
    }
    if !t.notes.is_empty() {
        h.push_str("<ul class=\"notes\">");
        for n in &t.notes {
            let _ = write!(
                h,
                "<li>{} <span class=\"note\">— {}, {}</span></li>",
                esc(&n.text),
                esc(&n.who),
                esc(&n.when)
            );
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>\n");
}

fn steps(h: &mut String, r: &RunReport) {
    h.push_str(
        "<section id=\"steps\"><h2>Steps</h2><table class=\"steps\"><thead><tr><th>step</th>\
         <th>status</th><th>tasks</th><th>ok</th><th>failed</th><th>caught</th><th>reused / cached</th>\
         <th>retries</th><th>step time min / median / max</th><th>shape</th><th>resources</th>\
         </tr></thead><tbody>",
    );
    for s in &r.steps {
        let time = s
            .step_ms
            .map(|(a, m, b)| format!("{} / {} / {}", fmt_ms(a), fmt_ms(m), fmt_ms(b)))
            .unwrap_or_else(|| "—".into());
        let mut shape = Vec::new();
        if let Some(f) = &s.foreach {
            shape.push(format!("foreach {f}"));
        }
        if let Some(j) = &s.joins {
            shape.push(format!("joins {j}"));
        }
        if !s.next.is_empty() {
            shape.push(format!("→ {}", s.next.join(", ")));
        }
        let _ = write!(
            h,
            "<tr data-step=\"{name}\" data-status=\"{st}\"><td><a href=\"#step={name}\">{name}</a></td>\
             <td><span class=\"st {st}\">{st}</span></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.tasks,
            s.ok,
            s.failed,
            s.caught,
            s.reused,
            s.retries,
            esc(&time),
            esc(&shape.join("; ")),
            esc(s.attrs.as_deref().unwrap_or("—")),
            name = esc(&s.name),
            st = s.status,
        );
    }
    h.push_str("</tbody></table></section>\n");
}

/// Every failed attempt, retried or not, with its error: first 200, then a count.
fn failures(h: &mut String, r: &RunReport) {
    let failed: Vec<_> = r
        .attempts
        .iter()
        .filter(|a| !a.status.is_success())
        .collect();
    if failed.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<section id=\"failures\"><h2>Failed attempts ({})</h2><ul class=\"failures\">",
        failed.len()
    );
    for a in failed.iter().take(200) {
        let id = a.task_id(&r.steps);
        let _ = write!(
            h,
            "<li data-task=\"{id}\" data-attempt=\"{}\"><a href=\"#task={id}\">{id}</a> attempt {} \
             <span class=\"st {}\">{}</span>: <span class=\"error\">{}</span></li>",
            a.attempt,
            a.attempt,
            a.status,
            a.status,
            esc(a.error.as_deref().unwrap_or("(no error recorded)")),
            id = esc(&id),
        );
    }
    if failed.len() > 200 {
        let _ = write!(
            h,
            "<li>… and {} more (filter the task table by status)</li>",
            failed.len() - 200
        );
    }
    h.push_str("</ul></section>\n");
}

fn metrics(h: &mut String, r: &RunReport) {
    if r.metrics.is_empty() {
        return;
    }
    h.push_str("<section id=\"metrics\"><h2>Metrics</h2>");
    for m in &r.metrics {
        let _ = write!(
            h,
            "<figure class=\"metric\" data-metric=\"{}\">{}<figcaption class=\"note\">{}: {}</figcaption></figure>",
            esc(&m.name),
            svg::line_chart(&m.name, &m.series),
            esc(&m.name),
            esc(&m.what)
        );
    }
    h.push_str("</section>\n");
}

fn problems(h: &mut String, r: &RunReport) {
    if r.damaged.is_empty() && r.warnings.is_empty() {
        return;
    }
    h.push_str("<section id=\"problems\"><h2>Records that could not be read</h2><ul>");
    for d in &r.damaged {
        let _ = write!(
            h,
            "<li><code>{}</code>: {}</li>",
            esc(&d.path),
            esc(&d.to_string())
        );
    }
    for w in &r.warnings {
        let _ = write!(h, "<li>{}</li>", esc(w));
    }
    h.push_str("</ul></section>\n");
}

/// A card's items as HTML.
pub(crate) fn card_html(items: &[CardItem]) -> String {
    let mut h = String::from("<div class=\"card\">");
    for item in items {
        match item {
            CardItem::Markdown { text } => h.push_str(&markdown(text)),
            CardItem::Table { headers, rows } => {
                h.push_str("<table class=\"card-table\"><thead><tr>");
                for c in headers {
                    let _ = write!(h, "<th>{}</th>", esc(c));
                }
                h.push_str("</tr></thead><tbody>");
                for row in rows {
                    h.push_str("<tr>");
                    for c in row {
                        let _ = write!(h, "<td>{}</td>", esc(c));
                    }
                    h.push_str("</tr>");
                }
                h.push_str("</tbody></table>");
            }
            CardItem::Image { png_base64, alt } => {
                let _ = write!(
                    h,
                    "<img class=\"card-image\" alt=\"{}\" src=\"data:image/png;base64,{}\">",
                    esc(alt),
                    esc(png_base64)
                );
            }
            CardItem::Chart(c) => {
                let series: Vec<(String, Vec<(f64, f64)>)> = c
                    .series
                    .iter()
                    .map(|s| (s.name.clone(), s.points.clone()))
                    .collect();
                h.push_str(&svg::line_chart(&c.title, &series));
            }
        }
    }
    h.push_str("</div>");
    h
}

/// CommonMark to HTML; raw HTML in the source is shown as text (a card cannot inject script).
fn markdown(text: &str) -> String {
    use pulldown_cmark::{html, Event, Options, Parser};
    let parser =
        Parser::new_ext(text, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH).map(|e| {
            match e {
                Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
                e => e,
            }
        });
    let mut out = String::new();
    html::push_html(&mut out, parser);
    out
}

/// The per-attempt data the script renders: steps, interned strings, one array per attempt.
fn data_json(r: &RunReport) -> String {
    let mut strings = Interner::default();
    let mut cards: Vec<String> = Vec::new();
    let mut card_bytes = 0;
    let attempts: Vec<Value> = r
        .attempts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let opt = |x: Option<f64>| x.map(round1).unwrap_or(Value::Null);
            let artifacts: Vec<Value> = a
                .artifacts
                .iter()
                .map(|(n, d, s)| json!([strings.id(n), strings.id(d), s]))
                .collect();
            let card = match r.cards.get(&i) {
                Some(_) if card_bytes > CARD_BUDGET => json!(-1),
                Some(items) => {
                    let html = card_html(items);
                    card_bytes += html.len();
                    cards.push(html);
                    json!(cards.len() - 1)
                }
                None => Value::Null,
            };
            json!([
                a.step,
                a.index.to_string(),
                a.attempt,
                a.status.to_string(),
                opt(a.start_ms),
                opt(a.end_ms),
                round1(a.load_ms),
                round1(a.body_ms),
                round1(a.store_ms),
                a.error
                    .as_ref()
                    .map(|e| json!(strings.id(e)))
                    .unwrap_or(Value::Null),
                strings.id(&a.host),
                // 0: ran in this run, 1: reused from the origin, 2: taken from the cache.
                if a.cached { 2u8 } else { a.reused as u8 },
                artifacts,
                a.logs.as_ref().map(|l| json!(l)).unwrap_or(Value::Null),
                card,
                a.lane,
                a.source_run
                    .as_ref()
                    .map(|s| json!(strings.id(s)))
                    .unwrap_or(Value::Null),
                a.metrics
                    .iter()
                    .map(|(n, m)| json!([
                        strings.id(n),
                        num(m.last),
                        num(m.min),
                        num(m.max),
                        m.count
                    ]))
                    .collect::<Vec<_>>(),
            ])
        })
        .collect();
    let steps: Vec<Value> = r
        .steps
        .iter()
        .map(|s| json!({"name": s.name, "status": s.status, "attrs": s.attrs}))
        .collect();
    json!({
        "run": r.info.record.run_id,
        "span": round1(r.span_ms),
        "steps": steps,
        "s": strings.strings,
        "a": attempts,
        "cards": cards,
        "only": r.only,
    })
    .to_string()
}
