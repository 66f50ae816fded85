//! What a running step can ask about itself: [`Ctx`], and the call frame generated dispatch
//! code receives.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::flow::card::Card;
use crate::flow::checkpoint::Checkpoint;
use crate::flow::Inputs;
use crate::meta::IndexPath;

/// Per-task context handed to a step that asks for it with `ctx: &mut Ctx`.
pub struct Ctx {
    pub(crate) flow: &'static str,
    pub(crate) run_id: String,
    pub(crate) step: &'static str,
    pub(crate) index: IndexPath,
    pub(crate) attempt: u32,
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) checkpoint: Option<Checkpoint>,
    /// Where [`Ctx::log`] lines are stored: `None` when the task's process output is
    /// captured whole by its watcher (processes, Slurm), so printing is enough.
    /// Created on the first line, so a task that logs nothing pays nothing.
    pub(crate) log: Option<LogTarget>,
    /// What the step adds to its task's section of the report; stored when it returns.
    pub(crate) card: Card,
    /// Where [`Ctx::log_metric`] points go: the attempt's metric log.
    pub(crate) metrics: Option<crate::meta::metrics::MetricLog>,
}

impl Ctx {
    /// The flow's name.
    pub fn flow(&self) -> &str {
        self.flow
    }

    /// The id of the run this task belongs to.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The step's name.
    pub fn step(&self) -> &str {
        self.step
    }

    /// The task id: `step` or `step/i.j` inside foreach splits.
    pub fn task_id(&self) -> String {
        crate::meta::task_id(self.step, &self.index)
    }

    /// Index of this task in the innermost foreach, if any.
    pub fn index(&self) -> Option<usize> {
        self.index.0.last().map(|&i| i as usize)
    }

    /// Indices of this task in every enclosing foreach, outermost first.
    pub fn index_path(&self) -> &[u32] {
        &self.index.0
    }

    /// The attempt number, counting from 0 (retries increase it).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// True once this attempt has been abandoned (it timed out): its results will be
    /// discarded, so long loops may stop early.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Write a line to this task's log, on every executor.
    ///
    /// The line is printed to stdout and stored with the attempt's output in the datastore
    /// (`logs <run>/<step>/<task>` prints it). On the processes and batch executors everything
    /// a step prints is captured anyway; on the thread executor, where tasks share the
    /// process's stdout, only what goes through `ctx.log` is stored per task.
    ///
    /// ```no_run
    /// # fn demo(ctx: &mut flowlib::Ctx) {
    /// ctx.log(format_args!("epoch {} loss {:.3}", 3, 0.25));
    /// # }
    /// ```
    pub fn log(&self, line: impl fmt::Display) {
        let mut text = line.to_string();
        text.push('\n');
        {
            use std::io::Write;
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
        }
        if let Some(t) = &self.log {
            t.stream(self).append(text.as_bytes());
        }
    }

    /// This task's card: Markdown, tables, images and charts shown in its section of the
    /// HTML report (`report <run>`). Stored when the step returns, before the attempt
    /// commits, on every executor.
    ///
    /// ```no_run
    /// # fn demo(ctx: &mut flowlib::Ctx) {
    /// ctx.card().markdown(format!("scored **{:.2}**", 0.93));
    /// # }
    /// ```
    pub fn card(&mut self) -> &mut Card {
        &mut self.card
    }

    /// Log a value of metric `name` (`val_loss`), on every executor.
    ///
    /// Points are buffered in memory and written to the datastore in chunks off the step's
    /// thread (at the latest half a second after they were logged, and when the attempt
    /// ends), so logging costs tens of nanoseconds and a killed task keeps what it logged
    /// before. The attempt's commit record keeps the last value, min, max and count of each
    /// metric; `runs --where 'metrics.val_loss < 0.4'` and `compare` use them.
    ///
    /// A name is ASCII letters, digits, `_`, `-`, `/` and `.`; any other name panics, which
    /// fails the task with that message.
    ///
    /// ```no_run
    /// # fn demo(ctx: &mut flowlib::Ctx) {
    /// ctx.log_metric("val_loss", 0.31);
    /// # }
    /// ```
    pub fn log_metric(&self, name: &str, value: f64) {
        if let Some(m) = &self.metrics {
            m.log(name, value, None);
        }
    }

    /// Log a value of metric `name` at step `step` (an epoch, an iteration): like
    /// [`log_metric`](Self::log_metric), with the step kept for charts and `last_step`.
    ///
    /// ```no_run
    /// # fn demo(ctx: &mut flowlib::Ctx) {
    /// for epoch in 0..10u64 {
    ///     let loss = 1.0 / (epoch as f64 + 1.0);
    ///     ctx.log_metric_at("train_loss", loss, epoch);
    /// }
    /// # }
    /// ```
    pub fn log_metric_at(&self, name: &str, value: f64, step: u64) {
        if let Some(m) = &self.metrics {
            m.log(name, value, Some(step));
        }
    }

    /// In-step checkpoints of this task: `save` progress, `load` it back after a retry or a resume.
    ///
    /// ```no_run
    /// # fn demo(ctx: &mut flowlib::Ctx) -> flowlib::Result<()> {
    /// let mut epoch: u32 = ctx.checkpoint().load()?.unwrap_or(0);
    /// while epoch < 100 {
    ///     epoch += 1;
    ///     ctx.checkpoint().save(&epoch)?;
    /// }
    /// # Ok(()) }
    /// ```
    pub fn checkpoint(&mut self) -> &mut Checkpoint {
        self.checkpoint
            .as_mut()
            .expect("checkpoints are available in every task run by flowlib")
    }
}

/// Where a thread-executor task's `ctx.log` lines go: its attempt's log in this datastore.
pub(crate) struct LogTarget {
    pub(crate) ds: crate::store::Datastore,
    pub(crate) stream: OnceLock<crate::meta::logs::LogStream>,
}

impl LogTarget {
    fn stream(&self, ctx: &Ctx) -> &crate::meta::logs::LogStream {
        self.stream.get_or_init(|| {
            let task = crate::meta::TaskRef {
                run: ctx.run_id.clone(),
                step: ctx.step.to_string(),
                index: ctx.index.clone(),
                attempt: ctx.attempt,
            };
            let prefix = crate::meta::logs::prefix(ctx.flow, &task);
            crate::meta::logs::LogStream::new(&self.ds, &prefix, "stdout")
        })
    }
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("flow", &self.flow)
            .field("run_id", &self.run_id)
            .field("task", &self.task_id())
            .field("attempt", &self.attempt)
            .finish()
    }
}

/// What generated dispatch code needs to call one step.
#[doc(hidden)]
pub struct StepCall<'a, F> {
    pub(crate) ctx: &'a mut Ctx,
    pub(crate) item_index: Option<usize>,
    pub(crate) inputs: Option<Inputs<F>>,
    /// The split's state, decoded once and shared by its foreach tasks.
    pub(crate) item_source: Option<Arc<std::sync::Mutex<F>>>,
}

/// Where generated code reads a foreach item from.
#[doc(hidden)]
pub enum ItemSource<'a, F> {
    Own(&'a F),
    Shared(std::sync::MutexGuard<'a, F>),
}

impl<F> fmt::Debug for ItemSource<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemSource::Own(_) => "ItemSource::Own",
            ItemSource::Shared(_) => "ItemSource::Shared",
        })
    }
}

impl<F> fmt::Debug for StepCall<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepCall")
            .field("ctx", &self.ctx)
            .field("item_index", &self.item_index)
            .finish_non_exhaustive()
    }
}

impl<F> Deref for ItemSource<'_, F> {
    type Target = F;
    fn deref(&self) -> &F {
        match self {
            ItemSource::Own(f) => f,
            ItemSource::Shared(g) => g,
        }
    }
}

impl<F> StepCall<'_, F> {
    #[doc(hidden)]
    pub fn ctx(&mut self) -> &mut Ctx {
        self.ctx
    }

    #[doc(hidden)]
    pub fn item_index(&self) -> usize {
        self.item_index.unwrap_or(0)
    }

    #[doc(hidden)]
    pub fn item_source<'b>(&'b self, own: &'b F) -> ItemSource<'b, F> {
        match &self.item_source {
            Some(shared) => ItemSource::Shared(shared.lock().unwrap_or_else(|e| e.into_inner())),
            None => ItemSource::Own(own),
        }
    }

    #[doc(hidden)]
    pub fn take_inputs(&mut self) -> Inputs<F> {
        self.inputs.take().unwrap_or(Inputs {
            refs: std::sync::Arc::default(),
            only: None,
            loader: None,
            template: OnceLock::new(),
        })
    }
}
