//! The crate's error type. Every error names what it was about (run, step, task,
//! artifact, digest, path) so a one-line message is enough to act on it.

use std::fmt;

/// Errors returned by a step body: any error type converts into it with `?`.
pub type StepError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result type of flowlib's API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in flowlib outside of a step body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The datastore URL or location is unusable.
    #[error("datastore {url}: {message}")]
    Datastore {
        /// The datastore URL as given.
        url: String,
        /// What is wrong.
        message: String,
    },

    /// A storage operation failed.
    #[error("{op} {path} in {url}: {source}")]
    Store {
        /// The operation (`get`, `put`, `list`, ...).
        op: &'static str,
        /// The object path.
        path: String,
        /// The datastore URL.
        url: String,
        /// The object store error.
        #[source]
        source: Box<object_store::Error>,
    },

    /// An artifact blob is missing, corrupted or cannot be decoded.
    #[error("artifact `{artifact}` ({digest}){site}: {message}")]
    Artifact {
        /// The artifact (field) name.
        artifact: String,
        /// Its content digest.
        digest: String,
        /// Where it was read or written: run, task, and what else identifies it.
        site: Box<Site>,
        /// What is wrong.
        message: String,
    },

    /// A metadata record (run record, manifest, commit) is unreadable.
    #[error("metadata {path}: {message}")]
    Metadata {
        /// The object path of the record.
        path: String,
        /// What is wrong.
        message: String,
    },

    /// A run, step, task or artifact that was asked for does not exist.
    #[error("{0}")]
    NotFound(String),

    /// Input from the user (CLI, parameters, ids) is invalid.
    #[error("{0}")]
    InvalidInput(String),

    /// A step asks for more resources than this machine or run allows.
    #[error("{0}")]
    Resources(String),

    /// A local I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// An inconsistency inside flowlib, or between a task spec and the binary running it
    /// (a bug or a mismatched build, never bad input).
    #[error("internal error: {0}")]
    Internal(String),

    /// The run finished, but some tasks failed.
    #[error("{0}")]
    RunFailed(RunFailure),
}

/// Where an artifact was read or written, as structured fields (an [`Error::Artifact`]
/// renders it as ` of run R task T`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Site {
    /// The run, when it is not the obvious one.
    pub run: Option<String>,
    /// The task (`step` or `step/2.5`), when the artifact belongs to one.
    pub task: Option<String>,
    /// What else identifies it: `initial state`, `input fit/2 of join pick`, ...
    pub detail: Option<String>,
}

impl Site {
    /// An artifact of task `task`, in run `run` when given.
    pub(crate) fn task(run: Option<&str>, task: impl Into<String>) -> Site {
        Site {
            run: run.map(str::to_string),
            task: Some(task.into()),
            detail: None,
        }
    }

    /// An artifact of run `run` (when given) that `detail` identifies.
    pub(crate) fn detail(run: Option<&str>, detail: impl Into<String>) -> Site {
        Site {
            run: run.map(str::to_string),
            task: None,
            detail: Some(detail.into()),
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.run.is_none() && self.task.is_none() && self.detail.is_none() {
            return Ok(());
        }
        f.write_str(" of")?;
        if let Some(r) = &self.run {
            write!(f, " run {r}")?;
        }
        if let Some(t) = &self.task {
            write!(f, " task {t}")?;
        }
        if let Some(d) = &self.detail {
            write!(f, " {d}")?;
        }
        Ok(())
    }
}

/// Summary of a failed run: which tasks failed and why.
#[derive(Debug, Clone)]
pub struct RunFailure {
    /// The run id.
    pub run_id: String,
    /// `(task id, error message)` for every failed task.
    pub failed: Vec<(String, String)>,
    /// Tasks that never ran because something upstream failed.
    pub not_run: usize,
}

impl fmt::Display for RunFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run {} failed: ", self.run_id)?;
        for (i, (task, err)) in self.failed.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "task {task}: {err}")?;
        }
        if self.not_run > 0 {
            write!(f, " ({} downstream tasks not run)", self.not_run)?;
        }
        Ok(())
    }
}

impl Error {
    pub(crate) fn store(
        op: &'static str,
        path: impl fmt::Display,
        url: &str,
        source: object_store::Error,
    ) -> Self {
        Error::Store {
            op,
            path: path.to_string(),
            url: url.to_string(),
            source: Box::new(source),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }

    pub(crate) fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }

    pub(crate) fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }

    pub(crate) fn metadata(path: impl fmt::Display, msg: impl fmt::Display) -> Self {
        Error::Metadata {
            path: path.to_string(),
            message: msg.to_string(),
        }
    }

    /// Whether this is a lost create-only race (the object already exists).
    pub(crate) fn is_already_exists(&self) -> bool {
        match self {
            Error::Store { source, .. } => matches!(
                **source,
                object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
            ),
            _ => false,
        }
    }
}

/// Render an error with its chain of sources on one line.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out.replace('\n', " ")
}
