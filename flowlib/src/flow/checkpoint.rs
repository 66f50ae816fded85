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

#[derive(Serialize, Deserialize)]
struct Pointer {
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
        let rel = layout::checkpoint_latest(self.flow, &run, self.step, &self.index.dir_name());
        crate::failpoint::hold("checkpoint-pointer", &self.task());
        self.ds.put_json(&rel, &ptr, PutMode::Overwrite)?;
        self.last = Some(blob);
        self.saves += 1;
        Ok(())
    }

    /// The latest checkpoint of this task, if any was saved by an earlier attempt, an earlier
    /// call in this attempt, or (after a resume) by the origin run.
    pub fn load<T: Serialize + DeserializeOwned>(&mut self) -> Result<Option<T>> {
        self.check_declared()?;
        for run in &self.sources {
            let rel = layout::checkpoint_latest(self.flow, run, self.step, &self.index.dir_name());
            let Some(ptr) = self.ds.get_json::<Pointer>(&rel)? else {
                continue;
            };
            let what = What::new(
                format!("checkpoint of {}", self.task()),
                Site::detail(Some(run), format!("(saved as {})", ptr.type_name)),
            );
            let mut out: Option<T> = None;
            cas::load_decoded(&self.ds, ptr.blob, &what, &mut |r| {
                out = Some((&Tag::<T>::NEW).decode_field(r)?);
                Ok(())
            })?;
            if self.seq < ptr.seq && run == &self.sources[0] {
                self.seq = ptr.seq;
            }
            self.last = Some(ptr.blob);
            return Ok(out);
        }
        Ok(None)
    }

    /// Number of saves in this attempt.
    pub fn saves(&self) -> u64 {
        self.saves
    }
}
