//! In-step checkpoints: progress saved inside a long step, so a retry or a resume continues
//! from the last save instead of starting over.
//!
//! A checkpoint belongs to a task identity (flow, step, foreach index path) within a run's
//! lineage: saves go to the current run; loads look in the current run first (a retry sees
//! the previous attempt's last save), then in the origin runs of a resume in which that task
//! did not finish (a finished task's checkpoints are history, not progress). The value is a
//! blob in the content-addressed store and `latest.json` points at it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use object_store::PutMode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Site};
use crate::meta::{now_rfc3339, task_id, IndexPath};
use crate::store::cas::{self, What};
use crate::store::codec::{Tag, ViaSerde};
use crate::store::{layout, BlobRef, Datastore};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Pointer {
    blob: BlobRef,
    seq: u64,
    attempt: u32,
    run: String,
    saved: String,
    type_name: String,
}

/// Handle to the checkpoints of the running task, from [`Ctx::checkpoint`](crate::Ctx::checkpoint).
#[derive(Debug)]
pub struct Checkpoint {
    pub(crate) ds: Datastore,
    pub(crate) flow: &'static str,
    pub(crate) step: &'static str,
    pub(crate) index: IndexPath,
    pub(crate) attempt: u32,
    /// Runs to look in, newest first: the current run, then eligible origins.
    pub(crate) sources: Vec<String>,
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) declared: bool,
    pub(crate) seq: u64,
    pub(crate) last: Option<BlobRef>,
    pub(crate) saves: u64,
    /// The pointer `latest.json` holds now, as this attempt last read or wrote it: the
    /// next save keeps it as `previous.json`, the fallback when `latest.json` is damaged.
    pub(crate) current: Option<Pointer>,
}

impl Checkpoint {
    fn task(&self) -> String {
        task_id(self.step, &self.index)
    }

    fn check_declared(&self) -> Result<()> {
        if self.declared {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "step `{}` uses checkpoints but is not marked `#[checkpoint]`; add the attribute so the graph records it",
                self.step
            )))
        }
    }

    /// Save `value` as this task's latest checkpoint.
    ///
    /// Fails once the attempt has been abandoned (timed out), so a runaway loop stops.
    pub fn save<T: Serialize + DeserializeOwned>(&mut self, value: &T) -> Result<()> {
        self.check_declared()?;
        if self.cancel.load(Ordering::Relaxed) {
            return Err(Error::invalid(format!(
                "task {} attempt {} was abandoned (timed out); its checkpoint was not saved",
                self.task(),
                self.attempt
            )));
        }
        let run = self.sources[0].clone();
        let what = What::new(
            format!("checkpoint of {}", self.task()),
            Site {
                run: Some(run.clone()),
                ..Site::default()
            },
        );
        let blob = cas::put_encoded(&self.ds, self.last, &what, &mut |w| {
            (&Tag::<T>::NEW).encode_field(value, w)
        })?;
        self.seq += 1;
        let ptr = Pointer {
            blob,
            seq: self.seq,
            attempt: self.attempt,
            run: run.clone(),
            saved: now_rfc3339(),
            type_name: std::any::type_name::<T>().to_string(),
        };
        let dir = self.index.dir_name();
        let rel = layout::checkpoint_latest(self.flow, &run, self.step, &dir);
        let previous = match self.current.take() {
            Some(p) => Some(p),
            None => self.ds.get_json::<Pointer>(&rel).ok().flatten(),
        };
        if let Some(p) = previous {
            let prev_rel = layout::checkpoint_previous(self.flow, &run, self.step, &dir);
            self.ds.put_json(&prev_rel, &p, PutMode::Overwrite)?;
        }
        crate::failpoint::hold("checkpoint-pointer", &self.task());
        self.ds.put_json(&rel, &ptr, PutMode::Overwrite)?;
        self.last = Some(blob);
        self.current = Some(ptr);
        self.saves += 1;
        Ok(())
    }

    /// The latest checkpoint of this task, if any was saved by an earlier attempt, an earlier
    /// call in this attempt, or (after a resume) by the origin run.
    ///
    /// A damaged checkpoint (an unreadable pointer, a missing or corrupted blob, a value
    /// of another type) is skipped with a warning on stderr: the previous checkpoint of
    /// that run is tried, then the origin runs, then the step starts fresh (`Ok(None)`).
    pub fn load<T: Serialize + DeserializeOwned>(&mut self) -> Result<Option<T>> {
        self.check_declared()?;
        let dir = self.index.dir_name();
        for run in self.sources.clone() {
            let pointers = [
                layout::checkpoint_latest(self.flow, &run, self.step, &dir),
                layout::checkpoint_previous(self.flow, &run, self.step, &dir),
            ];
            for rel in pointers {
                match self.read::<T>(&run, &rel) {
                    Ok(None) => break,
                    Ok(Some((ptr, value))) => {
                        if self.seq < ptr.seq && run == self.sources[0] {
                            self.seq = ptr.seq;
                        }
                        self.last = Some(ptr.blob);
                        if rel.ends_with("latest.json") && run == self.sources[0] {
                            self.current = Some(ptr);
                        }
                        return Ok(Some(value));
                    }
                    Err(e) => eprintln!(
                        "flowlib: warning: checkpoint of task {} in run {run} is unreadable ({}); trying an earlier one",
                        self.task(),
                        crate::error::chain(&e)
                    ),
                }
            }
        }
        Ok(None)
    }

    /// The checkpoint the pointer at `rel` names, or `None` when there is no pointer.
    fn read<T: Serialize + DeserializeOwned>(
        &self,
        run: &str,
        rel: &str,
    ) -> Result<Option<(Pointer, T)>> {
        let Some(ptr) = self.ds.get_json::<Pointer>(rel)? else {
            return Ok(None);
        };
        let what = What::new(
            format!("checkpoint of {}", self.task()),
            Site::detail(Some(run), format!("(saved as {})", ptr.type_name)),
        );
        let mut out: Option<T> = None;
        cas::load_decoded(&self.ds, ptr.blob, None, &what, &mut |r| {
            out = Some((&Tag::<T>::NEW).decode_field(r)?);
            Ok(())
        })?;
        Ok(out.map(|v| (ptr, v)))
    }

    /// Number of saves in this attempt.
    pub fn saves(&self) -> u64 {
        self.saves
    }
}
