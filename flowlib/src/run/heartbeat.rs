//! A run's heartbeat: `heartbeat.json`, created create-only when the run starts (it
//! reserves the run id), rewritten every [`HEARTBEAT_PERIOD`] by a small thread while the
//! run's driver lives, and marked ended when the driver stops. Readers
//! (`RunInfo::is_alive`, resume) judge a run dead when its heartbeat is ended, older than
//! `HEARTBEAT_STALE`, or written by a process of this host that no longer exists.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;

use crate::error::Result;
use crate::meta::{hostname, now_rfc3339, Heartbeat, HEARTBEAT_PERIOD};
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
    /// Whether the run record exists (else the heartbeat is removed on drop).
    pub(crate) recorded: bool,
}

impl std::fmt::Debug for Beating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beating").field("rel", &self.rel).finish()
    }
}

fn beat(writer: &str, ended: bool) -> Heartbeat {
    Heartbeat {
        host: hostname(),
        pid: std::process::id(),
        refreshed: now_rfc3339(),
        ended,
        writer: writer.to_string(),
    }
}

impl Beating {
    /// Create the heartbeat of run `run` of `flow` create-only and start refreshing it;
    /// `None` if that run id is taken.
    pub(crate) fn start(ds: &Datastore, flow: &str, run: &str) -> Result<Option<Beating>> {
        let rel = layout::heartbeat(flow, run);
        let writer = crate::store::unique_name();
        if !ds.create_json(&rel, &beat(&writer, false))? {
            return Ok(None);
        }
        let (tx, rx) = mpsc::channel::<()>();
        let (tds, trel, twriter) = (ds.clone(), rel.clone(), writer.clone());
        let thread = std::thread::Builder::new()
            .name("flowlib-heartbeat".into())
            .spawn(move || loop {
                match rx.recv_timeout(HEARTBEAT_PERIOD) {
                    // A failed write is tried again next period; readers allow three.
                    Err(RecvTimeoutError::Timeout) => {
                        let _ = tds.put_json(&trel, &beat(&twriter, false), PutMode::Overwrite);
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
            recorded: false,
        }))
    }
}

impl Drop for Beating {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Best effort: a heartbeat left unmarked goes stale (and a killed driver's process
        // is gone at once on its own host).
        let _ = if self.recorded {
            self.ds
                .put_json(&self.rel, &beat(&self.writer, true), PutMode::Overwrite)
                .map(|_| ())
        } else {
            self.ds.delete(&self.rel)
        };
    }
}
