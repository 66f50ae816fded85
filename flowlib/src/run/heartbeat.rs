//! A run's heartbeat: `heartbeat.json`, created create-only when the run starts (it
//! reserves the run id), rewritten every [`HEARTBEAT_PERIOD`] by a small thread while the
//! run's driver lives, and marked ended when the driver stops. Readers
//! (`RunInfo::is_alive`, resume) judge a run dead when its heartbeat is ended, older than
//! `HEARTBEAT_STALE`, or written by a process of this host that no longer exists.
//!
//! A driver that cannot write its end record (the disk is full) records why in the
//! heartbeat ([`Beating::end_failed`]), and readers show such a run as failed. Why here: the
//! heartbeat is the one record of the run that already exists and that the driver already
//! rewrites, so on a local disk it can be rewritten in place, in blocks the file already
//! has, when no new block can be had; a new record (or `end.json` itself) needs new blocks.
//! Deriving "failed" from other evidence alone would not do: a run whose every task
//! succeeded looks, without an end record, just like one killed before it could write it.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;

use crate::error::Result;
use crate::meta::{hostname, now_rfc3339, Heartbeat, Orchestrator, HEARTBEAT_PERIOD};
use object_store::PutMode;

use crate::store::{layout, Datastore};

/// The heartbeat of the run this process drives; dropping it stops the refresh thread and
/// marks the heartbeat ended (or removes it when the run record was never written).
pub(crate) struct Beating {
    ds: Datastore,
    rel: String,
    writer: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The workflow engine driving the run, if one does: then no thread refreshes the
    /// heartbeat, and dropping this leaves it as it is (the engine's exit handler ends it).
    orchestrator: Option<Orchestrator>,
    /// Whether the run record exists (else the heartbeat is removed on drop).
    pub(crate) recorded: bool,
    /// Why the end record could not be written, once that happened: every later write of
    /// the heartbeat keeps saying it.
    end_error: Option<String>,
}

impl std::fmt::Debug for Beating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beating").field("rel", &self.rel).finish()
    }
}

fn beat(
    writer: &str,
    ended: bool,
    end_error: Option<&str>,
    orchestrator: Option<&Orchestrator>,
) -> Heartbeat {
    Heartbeat {
        host: hostname(),
        pid: std::process::id(),
        refreshed: now_rfc3339(),
        ended,
        writer: writer.to_string(),
        end_error: end_error.map(str::to_string),
        orchestrator: orchestrator.cloned(),
    }
}

impl Beating {
    /// Create the heartbeat of run `run` of `flow` create-only and start refreshing it;
    /// `None` if that run id is taken. A run that `orchestrator` drives gets a heartbeat
    /// that names the engine, and nothing refreshes it.
    pub(crate) fn start(
        ds: &Datastore,
        flow: &str,
        run: &str,
        orchestrator: Option<Orchestrator>,
    ) -> Result<Option<Beating>> {
        let rel = layout::heartbeat(flow, run);
        let writer = crate::store::unique_name();
        if !ds.create_json(&rel, &beat(&writer, false, None, orchestrator.as_ref()))? {
            return Ok(None);
        }
        if orchestrator.is_some() {
            return Ok(Some(Beating {
                ds: ds.clone(),
                rel,
                writer,
                stop: None,
                thread: None,
                orchestrator,
                recorded: false,
                end_error: None,
            }));
        }
        let (tx, rx) = mpsc::channel::<()>();
        let (tds, trel, twriter) = (ds.clone(), rel.clone(), writer.clone());
        let thread = std::thread::Builder::new()
            .name("flowlib-heartbeat".into())
            .spawn(move || loop {
                match rx.recv_timeout(HEARTBEAT_PERIOD) {
                    // A failed write is tried again next period; readers allow three.
                    Err(RecvTimeoutError::Timeout) => {
                        let _ = tds.put_json(
                            &trel,
                            &beat(&twriter, false, None, None),
                            PutMode::Overwrite,
                        );
                    }
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .map_err(|e| crate::error::Error::io("starting the heartbeat thread", e))?;
        Ok(Some(Beating {
            ds: ds.clone(),
            rel,
            writer,
            stop: Some(tx),
            thread: Some(thread),
            orchestrator: None,
            recorded: false,
            end_error: None,
        }))
    }

    /// The end record could not be written, for reason `why`: stop refreshing and mark the
    /// heartbeat ended with `why`, so readers show the run as failed rather than killed.
    /// On a local disk the heartbeat is rewritten in place (see the module docs), else
    /// overwritten. Returns whether the heartbeat now says so.
    pub(crate) fn end_failed(&mut self, why: &str) -> bool {
        self.stop_refreshing();
        self.end_error = Some(why.to_string());
        let record = beat(&self.writer, true, Some(why), self.orchestrator.as_ref());
        let bytes = serde_json::to_vec_pretty(&record).expect("metadata serializes to JSON");
        match self.ds.rewrite_in_place(&self.rel, &bytes) {
            Ok(true) => true,
            Ok(false) | Err(_) => self
                .ds
                .put_json(&self.rel, &record, PutMode::Overwrite)
                .is_ok(),
        }
    }

    fn stop_refreshing(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Beating {
    fn drop(&mut self) {
        self.stop_refreshing();
        if self.recorded && self.orchestrator.is_some() {
            return; // the run goes on in the engine; its exit handler ends the heartbeat
        }
        // Best effort: a heartbeat left unmarked goes stale (and a killed driver's process
        // is gone at once on its own host).
        let _ = if self.recorded {
            self.ds
                .put_json(
                    &self.rel,
                    &beat(&self.writer, true, self.end_error.as_deref(), None),
                    PutMode::Overwrite,
                )
                .map(|_| ())
        } else {
            self.ds.delete(&self.rel)
        };
    }
}

/// Mark the heartbeat of run `run` of `flow`, which `orchestrator` drives, ended: what the
/// engine's exit handler does once the run's end record is written.
pub(crate) fn end_orchestrated(
    ds: &Datastore,
    flow: &str,
    run: &str,
    orchestrator: &Orchestrator,
) -> Result<()> {
    let writer = crate::store::unique_name();
    ds.put_json(
        &layout::heartbeat(flow, run),
        &beat(&writer, true, None, Some(orchestrator)),
        PutMode::Overwrite,
    )?;
    Ok(())
}
