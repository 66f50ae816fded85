//! Cards: what a step adds to its task's section of the HTML report (`report <run>`), the
//! way Metaflow's `@card` does: Markdown, tables, PNG images and line charts.
//!
//! A step builds its card through [`Ctx::card`](crate::Ctx::card); when the step returns,
//! the attempt stores it create-only as one JSON record, before its commit record, so a
//! committed task's card is always complete (a failed attempt's card is kept too).

use serde::{Deserialize, Serialize};

use crate::meta::TaskRef;

/// The content a step adds to its task's section of the report.
///
/// ```no_run
/// # fn demo(ctx: &mut flowlib::Ctx) {
/// use flowlib::Chart;
/// ctx.card()
///     .markdown("## Fit\nThe model **converged**.")
///     .table(["epoch", "loss"], [[1.to_string(), "0.9".into()], [2.to_string(), "0.4".into()]])
///     .chart(Chart::line("loss").series("train", [(1.0, 0.9), (2.0, 0.4)]));
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Card {
    items: Vec<CardItem>,
}

/// One piece of a [`Card`], in the order the step added them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CardItem {
    /// CommonMark text (raw HTML in it is shown as text, not interpreted).
    Markdown {
        /// The Markdown source.
        text: String,
    },
    /// A table of text cells.
    Table {
        /// Column headers.
        headers: Vec<String>,
        /// Rows of cells.
        rows: Vec<Vec<String>>,
    },
    /// A PNG image, stored inline (base64).
    Image {
        /// The PNG bytes, base64 (standard alphabet).
        png_base64: String,
        /// The image's alternative text.
        alt: String,
    },
    /// A line chart, drawn as SVG when the report is written.
    Chart(Chart),
}

/// A line chart for a card: named series of `(x, y)` points.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Chart {
    /// The chart's title.
    pub title: String,
    /// The series, each drawn as one line.
    pub series: Vec<Series>,
}

/// One line of a [`Chart`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Series {
    /// Its name, in the legend.
    pub name: String,
    /// Its points, in the order given.
    pub points: Vec<(f64, f64)>,
}

impl Chart {
    /// A line chart titled `title`, with no series yet.
    pub fn line(title: impl Into<String>) -> Chart {
        Chart {
            title: title.into(),
            series: Vec::new(),
        }
    }

    /// Add a series named `name`.
    pub fn series(
        mut self,
        name: impl Into<String>,
        points: impl IntoIterator<Item = (f64, f64)>,
    ) -> Chart {
        self.series.push(Series {
            name: name.into(),
            points: points.into_iter().collect(),
        });
        self
    }
}

/// The first bytes of every PNG file.
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

impl Card {
    /// Add Markdown (CommonMark with tables and strikethrough).
    pub fn markdown(&mut self, text: impl Into<String>) -> &mut Card {
        self.items.push(CardItem::Markdown { text: text.into() });
        self
    }

    /// Add a table: column headers, then rows of cells (anything that displays).
    pub fn table<H, R, C>(&mut self, headers: H, rows: R) -> &mut Card
    where
        H: IntoIterator,
        H::Item: std::fmt::Display,
        R: IntoIterator<Item = C>,
        C: IntoIterator,
        C::Item: std::fmt::Display,
    {
        self.items.push(CardItem::Table {
            headers: headers.into_iter().map(|h| h.to_string()).collect(),
            rows: rows
                .into_iter()
                .map(|r| r.into_iter().map(|c| c.to_string()).collect())
                .collect(),
        });
        self
    }

    /// Add a PNG image. Bytes that are not a PNG file are shown as a Markdown note
    /// saying so, so a wrong image is visible in the report, not a broken picture.
    pub fn image_png(&mut self, png: impl AsRef<[u8]>, alt: impl Into<String>) -> &mut Card {
        use base64::Engine;
        let png = png.as_ref();
        let alt = alt.into();
        if !png.starts_with(PNG_SIGNATURE) {
            return self.markdown(format!(
                "*image `{}` is not a PNG file ({} bytes without the PNG signature)*",
                alt.replace('`', "'"),
                png.len()
            ));
        }
        self.items.push(CardItem::Image {
            png_base64: base64::engine::general_purpose::STANDARD.encode(png),
            alt,
        });
        self
    }

    /// Add a line chart.
    pub fn chart(&mut self, chart: Chart) -> &mut Card {
        self.items.push(CardItem::Chart(chart));
        self
    }

    /// The items, in the order they were added.
    pub fn items(&self) -> &[CardItem] {
        &self.items
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The stored card of one attempt (`cards/<step>/<index>@<attempt>.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub(crate) struct CardRecord {
    /// The attempt it belongs to.
    pub(crate) task: TaskRef,
    /// What the step added.
    pub(crate) card: Card,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_keeps_its_items_in_order_and_refuses_non_png_bytes() {
        let mut c = Card::default();
        c.markdown("# hi")
            .table(["a", "b"], [[1, 2], [3, 4]])
            .image_png(b"GIF89a....", "a gif")
            .image_png(b"\x89PNG\r\n\x1a\nrest", "ok")
            .chart(Chart::line("loss").series("train", [(0.0, 1.0), (1.0, 0.5)]));
        let items = c.items();
        assert_eq!(items.len(), 5);
        assert!(matches!(&items[1], CardItem::Table { rows, .. } if rows[1] == ["3", "4"]));
        assert!(
            matches!(&items[2], CardItem::Markdown { text } if text.contains("not a PNG file (10 bytes")),
            "{items:?}"
        );
        assert!(matches!(&items[3], CardItem::Image { alt, .. } if alt == "ok"));
        let json = serde_json::to_string(&c).unwrap();
        let back: Card = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
