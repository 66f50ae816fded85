//! The report's pictures as inline SVG: the step graph laid out by `layout-rs` (a
//! Sugiyama-style layered layout: rank assignment, crossing reduction, placement) and line
//! charts drawn by `plotters`' SVG backend (its built-in text metrics: no font files).

use layout::backends::svg::SVGWriter;
use layout::core::base::Orientation;
use layout::core::color::Color;
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;

use crate::report::html::StepSummary;

/// Fill colour of a step's node by its status (RGBA).
fn status_fill(status: &str) -> u32 {
    match status {
        "ok" => 0xc8e6c9ff,
        "failed" => 0xffcdd2ff,
        "caught" => 0xffe0b2ff,
        "pending" => 0xe3f2fdff,
        _ => 0xeeeeeeff,
    }
}

/// The graph of the run's steps, each node filled by its status, as an `<svg>` element.
pub(crate) fn graph(steps: &[StepSummary]) -> String {
    if steps.is_empty() {
        return String::new();
    }
    let mut vg = VisualGraph::new(Orientation::TopToBottom);
    let handles: Vec<_> = steps
        .iter()
        .map(|s| {
            let label = if s.tasks > 1 {
                format!("{} ({})", s.name, s.tasks)
            } else {
                s.name.clone()
            };
            let look = StyleAttr::new(
                Color::new(0x444444ff),
                2,
                Some(Color::new(status_fill(s.status))),
                6,
                14,
            );
            let width = 24.0 + 8.5 * label.chars().count() as f64;
            vg.add_node(Element::create(
                ShapeKind::new_box(&label),
                look,
                Orientation::TopToBottom,
                Point::new(width, 36.0),
            ))
        })
        .collect();
    for (i, s) in steps.iter().enumerate() {
        for n in &s.next {
            if let Some(j) = steps.iter().position(|t| &t.name == n) {
                vg.add_edge(Arrow::simple(""), handles[i], handles[j]);
            }
        }
    }
    let mut svg = SVGWriter::new();
    vg.do_it(false, false, false, &mut svg);
    let out = svg.finalize();
    // Inline in HTML: no XML prolog; the font class is scoped to the graph.
    let start = out.find("<svg").unwrap_or(0);
    out[start..].replacen("<svg ", "<svg class=\"graph\" role=\"img\" ", 1)
}

/// A line chart of named series as an `<svg>` element, or a note when it has no points.
pub(crate) fn line_chart(title: &str, series: &[(String, Vec<(f64, f64)>)]) -> String {
    use plotters::prelude::*;
    let points: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if points.is_empty() {
        return format!(
            "<p class=\"note\">chart {}: no finite points</p>",
            super::render::esc(title)
        );
    }
    let (mut x0, mut x1, mut y0, mut y1) = points.iter().fold(
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if x1 <= x0 {
        x0 -= 0.5;
        x1 += 0.5;
    }
    if y1 <= y0 {
        y0 -= 0.5;
        y1 += 0.5;
    }
    let pad = (y1 - y0) * 0.05;
    let mut buf = String::new();
    let drawn: Result<(), String> = (|| {
        let root = SVGBackend::with_string(&mut buf, (560, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(x0..x1, (y0 - pad)..(y1 + pad))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let pts: Vec<(f64, f64)> = pts
                .iter()
                .copied()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect();
            let s = chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| e.to_string())?;
            if series.len() > 1 {
                s.label(name.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            }
        }
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK.mix(0.3))
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    })();
    match drawn {
        Ok(()) => {
            let start = buf.find("<svg").unwrap_or(0);
            buf[start..].replacen("<svg ", "<svg class=\"chart\" role=\"img\" ", 1)
        }
        Err(e) => format!(
            "<p class=\"note\">chart {} could not be drawn: {}</p>",
            super::render::esc(title),
            super::render::esc(&e)
        ),
    }
}
