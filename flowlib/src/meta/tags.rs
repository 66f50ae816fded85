//! Tags and notes on runs and on artifacts: create-only events, never a read-modify-write.
//!
//! Each `tag`, `untag` or note is one event record, `<target>/tags/<n>.json`, numbered from
//! 0 and created create-only: a tagger takes the next free number, and when another
//! tagger created that number first it takes the one after, so concurrent taggers never
//! lose each other's events. The current tags are the fold of the events in number order
//! (an untag removes a key); the notes are every note event, in order. Each event says who
//! (`$USER@host`) and when.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::meta::{hostname, now_rfc3339, username, IndexPath, METADATA_VERSION};
use crate::store::{layout, Datastore};

/// One tag event: tags set, tags removed, or a note.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TagEvent {
    /// Metadata version.
    pub version: u32,
    /// Tags set (key → value).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Tags removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unset: Vec<String>,
    /// A note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Who wrote it: `user@host`.
    pub who: String,
    /// When (RFC 3339).
    pub when: String,
    /// A unique writer id, so two taggers never write identical bytes.
    #[serde(default)]
    pub writer: String,
}

/// A note on a run or an artifact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Note {
    /// The text.
    pub text: String,
    /// Who wrote it: `user@host`.
    pub who: String,
    /// When (RFC 3339).
    pub when: String,
}

/// The tags and notes of a run or an artifact: the fold of its events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Tags {
    /// Current tags.
    pub tags: BTreeMap<String, String>,
    /// Every note, oldest first.
    pub notes: Vec<Note>,
    /// How many events there were.
    pub events: usize,
}

/// What a tag event is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TagTarget {
    /// A run.
    Run { run: String },
    /// An artifact of one task of a run.
    Artifact {
        run: String,
        step: String,
        index: IndexPath,
        artifact: String,
    },
}

impl TagTarget {
    /// The store prefix of the target's events.
    pub(crate) fn prefix(&self, flow: &str) -> String {
        match self {
            TagTarget::Run { run } => layout::run_tags(flow, run),
            TagTarget::Artifact {
                run,
                step,
                index,
                artifact,
            } => layout::artifact_tags(flow, run, step, &index.dir_name(), artifact),
        }
    }
}

/// Whether `key` can be a tag key: what a metric name can be (so `tags.<key>` reads
/// unambiguously in a `--where` filter).
pub(crate) fn valid_key(key: &str) -> bool {
    crate::meta::metrics::valid_name(key)
}

/// `key=value` from the command line.
pub(crate) fn parse_assignment(s: &str) -> Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| Error::invalid(format!("`{s}` is not a tag: write key=value")))?;
    if !valid_key(k) {
        return Err(Error::invalid(format!(
            "`{k}` is not a valid tag key: use ASCII letters, digits, `_`, `-`, `/` and `.`"
        )));
    }
    Ok((k.to_string(), v.to_string()))
}

/// The id of run `id` (`latest` too) of flow `flow`, which must exist: an unknown run is
/// not found (exit 2).
pub(crate) fn existing_run(ds: &Datastore, flow: &str, id: &str) -> Result<String> {
    let run = ds.resolve_run(flow, id)?;
    if ds.get_bytes(&layout::run_record(flow, &run))?.is_none() {
        return Err(Error::not_found(format!(
            "flow {flow} has no run {run} in {}",
            ds.url()
        )));
    }
    Ok(run)
}

/// `user@host`.
pub(crate) fn who() -> String {
    format!("{}@{}", username(), hostname())
}

/// A unique id for one writer's record.
pub(crate) fn writer_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{}:{:016x}", std::process::id(), h.finish())
}

impl TagEvent {
    /// An event by this user, now.
    pub(crate) fn new(
        set: BTreeMap<String, String>,
        unset: Vec<String>,
        note: Option<String>,
    ) -> TagEvent {
        TagEvent {
            version: METADATA_VERSION,
            set,
            unset,
            note,
            who: who(),
            when: now_rfc3339(),
            writer: writer_id(),
        }
    }
}

/// The numbered records under `dir`, in number order: (number, path).
pub(crate) fn numbered(ds: &Datastore, dir: &str) -> Result<Vec<(u64, String)>> {
    let mut out: Vec<(u64, String)> = ds
        .list(dir)?
        .into_iter()
        .filter_map(|l| {
            let rest = l.rel.strip_prefix(dir)?;
            (!rest.contains('/')).then_some(())?;
            Some((layout::parse_numbered(rest)?, l.rel))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Add `event` about `target` of flow `flow`: create-only, at the next free number.
/// Returns its number.
pub(crate) fn add(ds: &Datastore, flow: &str, target: &TagTarget, event: &TagEvent) -> Result<u64> {
    let dir = target.prefix(flow);
    let mut n = numbered(ds, &dir)?.last().map_or(0, |(n, _)| n + 1);
    loop {
        if ds.create_json(&layout::numbered(&dir, n), event)? {
            return Ok(n);
        }
        // Another tagger took this number: take the next.
        n += 1;
    }
}

/// Parse the event at `rel`.
pub(crate) fn read_event(ds: &Datastore, rel: &str) -> Result<Option<TagEvent>> {
    let Some(bytes) = ds.get_bytes(rel)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::metadata(ds.path(rel), format!("invalid tag event: {e}")))
}

/// The tags and notes of `target`: the fold of its events in order. A damaged event is an
/// error naming its path.
pub(crate) fn read(ds: &Datastore, flow: &str, target: &TagTarget) -> Result<Tags> {
    let mut out = Tags::default();
    for (_, rel) in numbered(ds, &target.prefix(flow))? {
        let Some(e) = read_event(ds, &rel)? else {
            continue;
        };
        out.events += 1;
        for k in &e.unset {
            out.tags.remove(k);
        }
        out.tags.extend(e.set);
        if let Some(text) = e.note {
            out.notes.push(Note {
                text,
                who: e.who,
                when: e.when,
            });
        }
    }
    Ok(out)
}

impl Datastore {
    /// The tags and notes of run `run` of flow `flow` (the fold of its tag events).
    ///
    /// ```no_run
    /// # fn demo(ds: &flowlib::Datastore) -> flowlib::Result<()> {
    /// let tags = ds.run_tags("Train", "20260101T000000Z-1a2b")?;
    /// println!("team: {:?}", tags.tags.get("team"));
    /// # Ok(()) }
    /// ```
    pub fn run_tags(&self, flow: &str, run: &str) -> Result<Tags> {
        crate::meta::validate_run_id(run)?;
        read(
            self,
            flow,
            &TagTarget::Run {
                run: run.to_string(),
            },
        )
    }

    /// Tag run `run` of flow `flow` with `tags` (key → value), as one create-only event.
    ///
    /// ```no_run
    /// # fn demo(ds: &flowlib::Datastore) -> flowlib::Result<()> {
    /// ds.tag_run("Train", "20260101T000000Z-1a2b", [("team", "vision")], None)?;
    /// # Ok(()) }
    /// ```
    pub fn tag_run<K: Into<String>, V: Into<String>>(
        &self,
        flow: &str,
        run: &str,
        tags: impl IntoIterator<Item = (K, V)>,
        note: Option<&str>,
    ) -> Result<()> {
        let run = existing_run(self, flow, run)?;
        let mut set = BTreeMap::new();
        for (k, v) in tags {
            let k = k.into();
            if !valid_key(&k) {
                return Err(Error::invalid(format!("`{k}` is not a valid tag key")));
            }
            set.insert(k, v.into());
        }
        let event = TagEvent::new(set, Vec::new(), note.map(str::to_string));
        add(self, flow, &TagTarget::Run { run }, &event)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenMode;

    #[test]
    fn concurrent_taggers_never_lose_an_event() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Datastore::open(dir.path().to_str().unwrap(), OpenMode::Create).unwrap();
        let target = TagTarget::Run { run: "r1".into() };
        std::thread::scope(|s| {
            for t in 0..8 {
                let (ds, target) = (&ds, &target);
                s.spawn(move || {
                    for i in 0..10 {
                        let set = BTreeMap::from([(format!("k{t}-{i}"), format!("{t}"))]);
                        add(ds, "F", target, &TagEvent::new(set, vec![], None)).unwrap();
                    }
                });
            }
        });
        let tags = read(&ds, "F", &target).unwrap();
        assert_eq!((tags.events, tags.tags.len()), (80, 80));
        let unset = TagEvent::new(BTreeMap::new(), vec!["k0-0".into()], Some("hi".into()));
        assert_eq!(add(&ds, "F", &target, &unset).unwrap(), 80);
        let tags = read(&ds, "F", &target).unwrap();
        assert_eq!(tags.tags.len(), 79);
        assert_eq!(tags.notes[0].text, "hi");
    }

    #[test]
    fn assignments_are_checked() {
        assert_eq!(
            parse_assignment("team=vision=2").unwrap(),
            ("team".into(), "vision=2".into())
        );
        assert!(parse_assignment("team").is_err());
        assert!(parse_assignment("a b=1").is_err());
    }
}
