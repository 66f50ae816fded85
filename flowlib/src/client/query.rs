//! Searching runs: `runs --where 'params.lr < 0.01 and metrics.val_loss < 0.4 and
//! tags.team = "vision"' --order-by metrics.val_loss`, and [`search`] in Rust.
//!
//! The filter grammar is small and fixed, so the parser is hand-written recursive descent
//! (about 200 lines) rather than a parser-combinator or PEG crate: no dependency for a
//! grammar of a dozen tokens, and errors that say exactly which column is wrong in the
//! words of this grammar.
//!
//! ```text
//! filter  := or
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" or ")" | field op value | field "exists"
//! op      := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
//! value   := number | "text" | 'text' | true | false
//! field   := params.<name> | metrics.<name>[.min|.max|.count|.last] | tags.<key>
//!          | run.id | run.status | run.started | run.user | run.host
//! ```
//!
//! What a field is, per run:
//! - `params.<name>`: the parameter's value in the run record.
//! - `metrics.<name>`: the **last value logged** over the run's successful task attempts
//!   (reused ones included): of the attempt whose last point of that metric was logged
//!   latest. `.last` says the same; `.min` and `.max` are over every point of every such
//!   attempt; `.count` is how many points they logged. (A metric whose name itself ends in
//!   `.min`, `.max`, `.count` or `.last` is reached as `metrics.<name>.last`.)
//! - `tags.<key>`: the run's current tag.
//! - `run.status`: `succeeded`, `failed`, `running`, `killed` or `cancelled`.
//!
//! A comparison with a field a run does not have is false (so `!=` too); `exists` asks for
//! it. Numbers compare as numbers, texts as texts; a number and a text are never equal.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::meta::{RunInfo, RunStatus};
use crate::store::Datastore;

/// A parsed filter, with an optional order and limit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    filter: Option<Expr>,
    order_by: Option<(Field, bool)>,
    limit: Option<usize>,
}

/// A field of a run that a filter names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    /// `params.<name>`.
    Param(String),
    /// `metrics.<name>[.agg]`.
    Metric(String, Agg),
    /// `tags.<key>`.
    Tag(String),
    /// `run.<attribute>`.
    Run(String),
}

/// Which aggregate of a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Agg {
    /// The last value logged.
    Last,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// How many points.
    Count,
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Param(n) => write!(f, "params.{n}"),
            Field::Metric(n, Agg::Last) => write!(f, "metrics.{n}"),
            Field::Metric(n, a) => write!(
                f,
                "metrics.{n}.{}",
                match a {
                    Agg::Min => "min",
                    Agg::Max => "max",
                    Agg::Count => "count",
                    Agg::Last => "last",
                }
            ),
            Field::Tag(k) => write!(f, "tags.{k}"),
            Field::Run(a) => write!(f, "run.{a}"),
        }
    }
}

/// A value a field has, or a filter compares with.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    /// A number.
    Num(f64),
    /// A text.
    Text(String),
    /// A boolean.
    Bool(bool),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n}"),
            Value::Text(t) => f.write_str(t),
            Value::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Field, Op, Value),
    Exists(Field),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Word(String),
    Num(f64),
    Text(String),
    Op(Op),
    Open,
    Close,
    End,
}

/// Splits a filter into tokens, each with its column (1-based, in characters).
struct Lexer {
    toks: Vec<(Tok, usize)>,
}

fn parse_error(src: &str, col: usize, msg: impl std::fmt::Display) -> Error {
    Error::invalid(format!("invalid filter at column {col}: {msg}: `{src}`"))
}

impl Lexer {
    fn lex(src: &str) -> Result<Vec<(Tok, usize)>> {
        let mut l = Lexer { toks: Vec::new() };
        let b = src.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let col = src[..i].chars().count() + 1;
            if c.is_ascii_whitespace() {
                i += 1;
            } else if c == b'(' {
                l.toks.push((Tok::Open, col));
                i += 1;
            } else if c == b')' {
                l.toks.push((Tok::Close, col));
                i += 1;
            } else if c == b'"' || c == b'\'' {
                let mut text = String::new();
                let mut j = i + 1;
                loop {
                    let Some(ch) = src[j..].chars().next() else {
                        return Err(parse_error(src, col, "unterminated text"));
                    };
                    j += ch.len_utf8();
                    if ch as u32 == u32::from(c) {
                        break;
                    }
                    if ch == '\\' {
                        let Some(n) = src[j..].chars().next() else {
                            return Err(parse_error(src, col, "unterminated text"));
                        };
                        j += n.len_utf8();
                        text.push(n);
                    } else {
                        text.push(ch);
                    }
                }
                l.toks.push((Tok::Text(text), col));
                i = j;
            } else if matches!(c, b'=' | b'!' | b'<' | b'>') {
                let two = src.get(i..i + 2).unwrap_or("");
                let (op, n) = match (c, two) {
                    (_, "==") => (Op::Eq, 2),
                    (_, "!=") => (Op::Ne, 2),
                    (_, "<=") => (Op::Le, 2),
                    (_, ">=") => (Op::Ge, 2),
                    (b'=', _) => (Op::Eq, 1),
                    (b'<', _) => (Op::Lt, 1),
                    (b'>', _) => (Op::Gt, 1),
                    _ => return Err(parse_error(src, col, "`!` must be followed by `=`")),
                };
                l.toks.push((Tok::Op(op), col));
                i += n;
            } else if c.is_ascii_digit()
                || (c == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
                || c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)
            {
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_digit()
                        || b[j] == b'.'
                        || matches!(b[j], b'e' | b'E')
                        || (matches!(b[j], b'+' | b'-') && matches!(b[j - 1], b'e' | b'E')))
                {
                    j += 1;
                }
                let text = &src[i..j];
                let n: f64 = text
                    .parse()
                    .map_err(|_| parse_error(src, col, format!("`{text}` is not a number")))?;
                l.toks.push((Tok::Num(n), col));
                i = j;
            } else if c.is_ascii_alphanumeric() || c == b'_' {
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_alphanumeric() || matches!(b[j], b'_' | b'.' | b'-' | b'/'))
                {
                    j += 1;
                }
                l.toks.push((Tok::Word(src[i..j].to_string()), col));
                i = j;
            } else {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(parse_error(src, col, format!("unexpected `{ch}`")));
            }
        }
        l.toks.push((Tok::End, src.chars().count() + 1));
        Ok(l.toks)
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

fn keyword(t: &Tok, k: &str) -> bool {
    matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case(k))
}

impl Parser<'_> {
    fn peek(&self) -> &(Tok, usize) {
        &self.toks[self.pos]
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn err(&self, col: usize, msg: impl std::fmt::Display) -> Error {
        parse_error(self.src, col, msg)
    }

    fn or(&mut self) -> Result<Expr> {
        let mut e = self.and()?;
        while keyword(&self.peek().0, "or") {
            self.next();
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr> {
        let mut e = self.unary()?;
        while keyword(&self.peek().0, "and") {
            self.next();
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr> {
        let (tok, col) = self.next();
        match tok {
            t if keyword(&t, "not") => Ok(Expr::Not(Box::new(self.unary()?))),
            Tok::Open => {
                let e = self.or()?;
                match self.next() {
                    (Tok::Close, _) => Ok(e),
                    (_, c) => Err(self.err(c, "expected `)`")),
                }
            }
            Tok::Word(w) => {
                let field = parse_field(&w).map_err(|m| self.err(col, m))?;
                if keyword(&self.peek().0, "exists") {
                    self.next();
                    return Ok(Expr::Exists(field));
                }
                let op = match self.next() {
                    (Tok::Op(op), _) => op,
                    (_, c) => {
                        return Err(self.err(
                            c,
                            format!("expected a comparison (`=`, `!=`, `<`, `<=`, `>`, `>=`) or `exists` after `{w}`"),
                        ))
                    }
                };
                let value = match self.next() {
                    (Tok::Num(n), _) => Value::Num(n),
                    (Tok::Text(t), _) => Value::Text(t),
                    (t, _) if keyword(&t, "true") => Value::Bool(true),
                    (t, _) if keyword(&t, "false") => Value::Bool(false),
                    (Tok::Word(v), c) => {
                        return Err(self.err(c, format!("expected a value; quote texts: \"{v}\"")))
                    }
                    (_, c) => {
                        return Err(
                            self.err(c, "expected a value (a number, \"text\", true or false)")
                        )
                    }
                };
                Ok(Expr::Cmp(field, op, value))
            }
            Tok::End => Err(self.err(col, "expected a condition, found the end")),
            _ => Err(self.err(
                col,
                "expected a field such as `params.lr`, `metrics.val_loss` or `tags.team`",
            )),
        }
    }
}

/// Parse a field name (`metrics.val_loss.min`); the error says what fields there are.
fn parse_field(w: &str) -> std::result::Result<Field, String> {
    let bad = || {
        format!("`{w}` is not a field: use params.<name>, metrics.<name>[.min|.max|.count|.last], tags.<key> or run.id|status|started|user|host")
    };
    let (kind, rest) = w.split_once('.').ok_or_else(bad)?;
    if rest.is_empty() {
        return Err(bad());
    }
    Ok(match kind {
        "params" => Field::Param(rest.to_string()),
        "tags" => Field::Tag(rest.to_string()),
        "metrics" => {
            let (name, agg) = match rest.rsplit_once('.') {
                Some((n, "min")) => (n, Agg::Min),
                Some((n, "max")) => (n, Agg::Max),
                Some((n, "count")) => (n, Agg::Count),
                Some((n, "last")) => (n, Agg::Last),
                _ => (rest, Agg::Last),
            };
            if name.is_empty() {
                return Err(bad());
            }
            Field::Metric(name.to_string(), agg)
        }
        "run" if matches!(rest, "id" | "status" | "started" | "user" | "host") => {
            Field::Run(rest.to_string())
        }
        _ => return Err(bad()),
    })
}

impl Query {
    /// Parse a filter (empty: every run). A malformed one is an error with its column.
    ///
    /// ```
    /// use flowlib::client::Query;
    /// let q = Query::parse(r#"params.lr < 0.01 and metrics.val_loss < 0.4 and tags.team = "vision""#)?;
    /// assert!(Query::parse("params.lr <").unwrap_err().to_string().contains("column 12"));
    /// # let _ = q;
    /// # Ok::<(), flowlib::Error>(())
    /// ```
    pub fn parse(filter: &str) -> Result<Query> {
        if filter.trim().is_empty() {
            return Ok(Query::default());
        }
        let toks = Lexer::lex(filter)?;
        let mut p = Parser {
            src: filter,
            toks,
            pos: 0,
        };
        let e = p.or()?;
        match p.next() {
            (Tok::End, _) => Ok(Query {
                filter: Some(e),
                ..Query::default()
            }),
            (_, c) => Err(p.err(c, "expected `and`, `or` or the end")),
        }
    }

    /// Order the result by `field` (ascending, or descending with `desc`); runs without
    /// the field come last.
    pub fn order_by(mut self, field: &str, desc: bool) -> Result<Query> {
        let f =
            parse_field(field).map_err(|m| Error::invalid(format!("invalid --order-by: {m}")))?;
        self.order_by = Some((f, desc));
        Ok(self)
    }

    /// Keep only the first `n` runs of the result.
    pub fn limit(mut self, n: usize) -> Query {
        self.limit = Some(n);
        self
    }

    /// The fields the filter and the order name, each once, in order of appearance.
    pub fn fields(&self) -> Vec<Field> {
        let mut out = Vec::new();
        fn walk(e: &Expr, out: &mut Vec<Field>) {
            match e {
                Expr::And(a, b) | Expr::Or(a, b) => {
                    walk(a, out);
                    walk(b, out);
                }
                Expr::Not(a) => walk(a, out),
                Expr::Cmp(f, _, _) | Expr::Exists(f) => {
                    if !out.contains(f) {
                        out.push(f.clone())
                    }
                }
            }
        }
        if let Some(e) = &self.filter {
            walk(e, &mut out);
        }
        if let Some((f, _)) = &self.order_by {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
        out
    }

    /// Whether `row` passes the filter.
    pub fn matches(&self, row: &RunRow) -> bool {
        self.filter.as_ref().is_none_or(|e| eval(e, row))
    }
}

fn eval(e: &Expr, row: &RunRow) -> bool {
    match e {
        Expr::And(a, b) => eval(a, row) && eval(b, row),
        Expr::Or(a, b) => eval(a, row) || eval(b, row),
        Expr::Not(a) => !eval(a, row),
        Expr::Exists(f) => row.get(f).is_some(),
        Expr::Cmp(f, op, v) => row.get(f).is_some_and(|have| compare(&have, *op, v)),
    }
}

fn compare(have: &Value, op: Op, want: &Value) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (have, want) {
        (Value::Num(a), Value::Num(b)) => a.partial_cmp(b),
        (Value::Text(a), Value::Text(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        // A tag is text: `tags.epochs = 10` compares it as the number it spells.
        (Value::Text(a), Value::Num(b)) => {
            a.trim().parse::<f64>().ok().and_then(|a| a.partial_cmp(b))
        }
        _ => None,
    };
    match (op, ord) {
        (_, None) => false,
        (Op::Eq, Some(o)) => o == Ordering::Equal,
        (Op::Ne, Some(o)) => o != Ordering::Equal,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
    }
}

/// A metric over one run's successful attempts.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RunMetric {
    /// The last value logged (of the attempt that logged it latest).
    pub last: f64,
    /// The task that logged it (`fit/2`).
    pub task: String,
    /// The smallest value of every attempt.
    pub min: f64,
    /// The largest value of every attempt.
    pub max: f64,
    /// Points logged.
    pub count: u64,
    #[serde(skip)]
    last_at_ms: u64,
}

/// One run, as search sees it.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct RunRow {
    /// Run id.
    pub run: String,
    /// Status: succeeded, failed, running, killed or cancelled.
    pub status: String,
    /// Start time (RFC 3339).
    pub started: String,
    /// Who started it.
    pub user: String,
    /// Where.
    pub host: String,
    /// Parameter values.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Final metrics over its successful tasks.
    pub metrics: BTreeMap<String, RunMetric>,
    /// Current tags.
    pub tags: BTreeMap<String, String>,
}

impl RunRow {
    /// Read the row of run `info`: its tags and its attempts' commit records.
    pub(crate) fn read(ds: &Datastore, flow: &str, info: &RunInfo) -> Result<RunRow> {
        let run = info.record.run_id.clone();
        let mut metrics: BTreeMap<String, RunMetric> = BTreeMap::new();
        for (task, summaries) in crate::meta::metrics::run_summaries(ds, flow, &run)? {
            for (name, s) in &summaries {
                let m = metrics.entry(name.clone()).or_insert_with(|| RunMetric {
                    last: s.last,
                    task: task.task_id(),
                    min: s.min,
                    max: s.max,
                    count: 0,
                    last_at_ms: s.last_at_ms,
                });
                m.count += s.count;
                if s.min < m.min || m.min.is_nan() {
                    m.min = s.min;
                }
                if s.max > m.max || m.max.is_nan() {
                    m.max = s.max;
                }
                if s.last_at_ms > m.last_at_ms {
                    m.last = s.last;
                    m.last_at_ms = s.last_at_ms;
                    m.task = task.task_id();
                }
            }
        }
        let status = match info.status() {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Running => match info.is_alive() {
                Some(false) => "killed",
                _ => "running",
            },
        };
        Ok(RunRow {
            tags: ds.run_tags(flow, &run)?.tags,
            run,
            status: status.to_string(),
            started: info.record.started.clone(),
            user: info.record.user.clone(),
            host: info.record.host.clone(),
            params: info.record.params.clone(),
            metrics,
        })
    }

    /// The value of `field` in this run, if it has one.
    pub fn get(&self, field: &Field) -> Option<Value> {
        match field {
            Field::Param(n) => self.params.get(n).map(|v| match v {
                serde_json::Value::Number(n) => Value::Num(n.as_f64().unwrap_or(f64::NAN)),
                serde_json::Value::String(s) => Value::Text(s.clone()),
                serde_json::Value::Bool(b) => Value::Bool(*b),
                other => Value::Text(other.to_string()),
            }),
            Field::Metric(n, agg) => self.metrics.get(n).map(|m| {
                Value::Num(match agg {
                    Agg::Last => m.last,
                    Agg::Min => m.min,
                    Agg::Max => m.max,
                    Agg::Count => m.count as f64,
                })
            }),
            Field::Tag(k) => self.tags.get(k).map(|v| Value::Text(v.clone())),
            Field::Run(a) => Some(Value::Text(match a.as_str() {
                "id" => self.run.clone(),
                "status" => self.status.clone(),
                "started" => self.started.clone(),
                "user" => self.user.clone(),
                _ => self.host.clone(),
            })),
        }
    }
}

/// The runs of flow `flow` that pass `query`, in its order (default: oldest first), at
/// most its limit. Runs whose records cannot be read are left out.
///
/// ```no_run
/// use flowlib::client::{search, Query};
/// # fn demo(ds: &flowlib::Datastore) -> flowlib::Result<()> {
/// let q = Query::parse("params.epochs >= 100 and metrics.val_loss < 0.4")?
///     .order_by("metrics.val_loss", false)?
///     .limit(5);
/// for row in search(ds, "Train", &q)? {
///     println!("{} {:?}", row.run, row.metrics.get("val_loss").map(|m| m.last));
/// }
/// # Ok(()) }
/// ```
pub fn search(ds: &Datastore, flow: &str, query: &Query) -> Result<Vec<RunRow>> {
    let mut rows = Vec::new();
    for (_, info) in ds.runs_checked(flow)? {
        let Ok(info) = info else { continue };
        let row = RunRow::read(ds, flow, &info)?;
        if query.matches(&row) {
            rows.push(row);
        }
    }
    if let Some((f, desc)) = &query.order_by {
        rows.sort_by(|a, b| {
            use std::cmp::Ordering;
            match (a.get(f), b.get(f)) {
                (Some(x), Some(y)) => {
                    let o = match (&x, &y) {
                        (Value::Num(p), Value::Num(q)) => p.total_cmp(q),
                        _ => x.to_string().cmp(&y.to_string()),
                    };
                    if *desc {
                        o.reverse()
                    } else {
                        o
                    }
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }
        });
    }
    if let Some(n) = query.limit {
        rows.truncate(n);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> RunRow {
        RunRow {
            run: "r1".into(),
            status: "succeeded".into(),
            started: "2026".into(),
            user: "u".into(),
            host: "h".into(),
            params: BTreeMap::from([
                ("lr".into(), serde_json::json!(0.005)),
                ("name".into(), serde_json::json!("a")),
            ]),
            metrics: BTreeMap::from([(
                "val_loss".into(),
                RunMetric {
                    last: 0.3,
                    task: "fit/0".into(),
                    min: 0.2,
                    max: 0.9,
                    count: 10,
                    last_at_ms: 0,
                },
            )]),
            tags: BTreeMap::from([("team".into(), "vision".into())]),
        }
    }

    #[test]
    fn filters_evaluate() {
        let r = row();
        let yes = [
            r#"params.lr < 0.01 and metrics.val_loss < 0.4 and tags.team = "vision""#,
            "metrics.val_loss.min <= 0.2 and metrics.val_loss.count = 10",
            "not (params.lr > 0.01) or tags.x = 'y'",
            "tags.team exists and not tags.other exists",
            "params.name = 'a' and run.status = \"succeeded\"",
            "params.lr >= 5e-3",
        ];
        for f in yes {
            assert!(Query::parse(f).unwrap().matches(&r), "{f}");
        }
        let no = [
            "params.lr > 0.01",
            "tags.missing != 'x'",
            "metrics.val_loss.max < 0.5",
            "params.name = 1",
        ];
        for f in no {
            assert!(!Query::parse(f).unwrap().matches(&r), "{f}");
        }
    }

    #[test]
    fn malformed_filters_name_the_column() {
        let cases = [
            ("params.lr <", 12),
            ("params.lr < 0.1 and", 20),
            ("lr < 1", 1),
            ("params.lr < 0.1 metrics.x > 1", 17),
            ("tags.team = vision", 13),
            ("(params.lr < 1", 15),
            ("params.lr ! 1", 11),
            ("tags.a = 'open", 10),
            ("params.lr < 1 & 2", 15),
        ];
        for (f, col) in cases {
            let e = Query::parse(f).unwrap_err().to_string();
            assert!(e.contains(&format!("column {col}:")), "{f}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }
}
