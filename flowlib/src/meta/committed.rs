//! The one view of a committed task that the scheduler, resume, the task entry point and
//! the client share.
//!
//! The driver holds one such view per task until the tasks that read it start: a join over
//! a foreach of 100,000 items holds 100,000 of them. So the view is compact. Names are
//! shared (`Arc<str>`: field names are interned, a task's run and step come from its
//! base's where they are equal), and a task's artifacts are stored as the entries that
//! differ from a table it shares with its base: a foreach item that changes one field of
//! five holds one entry, not five.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::meta::{AttemptStatus, IndexPath, TaskAttempt, TaskManifest, TaskRef};
use bytes::Bytes;

use crate::store::{BlobRef, Digest};

/// One interned copy of each field name: a process sees few distinct ones.
fn intern(name: &str) -> Arc<str> {
    static NAMES: Mutex<Option<HashSet<Arc<str>>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(n) = names.get(name) {
        return n.clone();
    }
    let n: Arc<str> = Arc::from(name);
    names.insert(n.clone());
    n
}

/// One artifact: its name, its blob, and the blob's bytes when the manifest holds them
/// inline (a small blob: see `store::cas::INLINE_LIMIT`).
type Entry = (Arc<str>, BlobRef, Option<Bytes>);

/// A committed task's artifacts: name → blob, compactly (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Artifacts {
    /// A table that tasks share (a split's, with all 100,000 of its items): every name in
    /// it is an artifact of this task too.
    shared: Option<Arc<[Entry]>>,
    /// Sorted by name: the entries that differ from `shared` or are not in it.
    own: Box<[Entry]>,
}

/// The inline blobs a view's artifacts hold: digest → bytes.
pub(crate) type Inline = BTreeMap<Digest, Bytes>;

fn table<T: FromIterator<Entry>>(
    map: impl IntoIterator<Item = (String, BlobRef)>,
    inline: &Inline,
) -> T {
    // A BTreeMap iterates sorted by name; `get` relies on it.
    map.into_iter()
        .map(|(k, v)| {
            let bytes = inline.get(&v.digest).cloned();
            (intern(&k), v, bytes)
        })
        .collect()
}

fn find<'a>(t: &'a [Entry], name: &str) -> Option<&'a Entry> {
    t.binary_search_by(|(k, ..)| (**k).cmp(name))
        .ok()
        .map(|i| &t[i])
}

impl Artifacts {
    /// All of `map`, as a table other tasks can share; `inline` holds the bytes of its
    /// small blobs.
    pub(crate) fn full(map: BTreeMap<String, BlobRef>, inline: &Inline) -> Artifacts {
        Artifacts {
            shared: Some(table(map, inline)),
            own: Box::new([]),
        }
    }

    /// `map`, stored as what differs from the table `base` shares when it has every
    /// artifact that table has (a step's output has every field of the state), else on
    /// its own. An entry with the base's blob is the base's entry, inline bytes or not.
    pub(crate) fn over(
        base: &Artifacts,
        map: BTreeMap<String, BlobRef>,
        inline: &Inline,
    ) -> Artifacts {
        let Some(shared) = &base.shared else {
            return Artifacts::full(map, inline);
        };
        if !shared.iter().all(|(k, ..)| map.contains_key(&**k)) {
            return Artifacts::full(map, inline);
        }
        // Same blob, same entry: the bytes are the same whether the base's table or this
        // manifest holds them (a manifest's inline map is by digest, so an item that stores
        // `0` holds every field whose value encodes as `0`; that is no reason for an entry
        // of its own). A shared entry without bytes is an object the base's manifest needs.
        let own = map
            .into_iter()
            .filter(|(k, v)| find(shared, k).map(|e| e.1) != Some(*v));
        Artifacts {
            own: table(own, inline),
            shared: Some(shared.clone()),
        }
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        find(&self.own, name).or_else(|| find(self.shared.as_deref()?, name))
    }

    /// The blob of artifact `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&BlobRef> {
        self.entry(name).map(|e| &e.1)
    }

    /// The blob of artifact `name`, with its bytes when they are held inline.
    pub(crate) fn held(&self, name: &str) -> Option<(&BlobRef, Option<&Bytes>)> {
        self.entry(name).map(|e| (&e.1, e.2.as_ref()))
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        let shared = self.shared.iter().flat_map(|t| t.iter());
        // `own` overrides `shared`: collected into a map, the later entry wins.
        shared.chain(self.own.iter())
    }

    /// Every artifact, sorted by name.
    pub(crate) fn to_map(&self) -> BTreeMap<String, BlobRef> {
        self.entries()
            .map(|(k, v, _)| (k.to_string(), *v))
            .collect()
    }

    /// The bytes of every artifact held inline, by digest.
    pub(crate) fn inline(&self) -> Inline {
        let own: HashSet<&str> = self.own.iter().map(|(k, ..)| &**k).collect();
        let shared = self.shared.iter().flat_map(|t| t.iter());
        let shared = shared.filter(|(k, ..)| !own.contains(&**k));
        shared
            .chain(self.own.iter())
            .filter_map(|(_, v, b)| Some((v.digest, b.clone()?)))
            .collect()
    }
}

/// A foreach index path held inline up to three levels deep: no allocation per task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Idx {
    Inline(u8, [u32; 3]),
    Heap(Box<[u32]>),
}

impl Idx {
    pub(crate) fn of(p: IndexPath) -> Idx {
        match p.0.len() {
            n @ 0..=3 => {
                let mut v = [0; 3];
                v[..n].copy_from_slice(&p.0);
                Idx::Inline(n as u8, v)
            }
            _ => Idx::Heap(p.0.into_boxed_slice()),
        }
    }

    /// `within.child(i)`, without the intermediate path.
    pub(crate) fn child_of(within: &[u32], i: u32) -> Idx {
        match within.len() {
            n @ 0..=2 => {
                let mut v = [0; 3];
                v[..n].copy_from_slice(within);
                v[n] = i;
                Idx::Inline(n as u8 + 1, v)
            }
            _ => Idx::Heap(within.iter().copied().chain([i]).collect()),
        }
    }

    pub(crate) fn as_slice(&self) -> &[u32] {
        match self {
            Idx::Inline(n, v) => &v[..*n as usize],
            Idx::Heap(v) => v,
        }
    }

    pub(crate) fn path(&self) -> IndexPath {
        IndexPath(self.as_slice().to_vec())
    }
}

/// The attempt that produced a committed view: a [`TaskRef`] with shared names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskAt {
    pub(crate) run: Arc<str>,
    pub(crate) step: Arc<str>,
    pub(crate) index: Idx,
    pub(crate) attempt: u32,
}

impl TaskAt {
    /// `t`, sharing the run's and the step's name with `like` where they are equal.
    pub(crate) fn of(t: TaskRef, like: Option<&TaskAt>) -> TaskAt {
        let share = |s: String, other: Option<&Arc<str>>| match other {
            Some(o) if **o == *s => o.clone(),
            _ => Arc::from(s),
        };
        TaskAt {
            run: share(t.run, like.map(|l| &l.run)),
            // A flow has few steps: one copy of each name, whatever the base.
            step: intern(&t.step),
            index: Idx::of(t.index),
            attempt: t.attempt,
        }
    }

    /// As a record's task reference.
    pub(crate) fn to_ref(&self) -> TaskRef {
        TaskRef {
            run: self.run.to_string(),
            step: self.step.to_string(),
            index: self.index.path(),
            attempt: self.attempt,
        }
    }

    /// `step` or `step/2.5`.
    pub(crate) fn task_id(&self) -> String {
        crate::meta::task_id(&self.step, &self.index.path())
    }
}

/// A committed task's artifacts, as the scheduler and readers know them.
#[derive(Debug, Clone)]
pub(crate) struct Committed {
    /// The attempt that produced them (`None` for a run's initial state).
    pub(crate) task: Option<TaskAt>,
    /// The manifest the attempt's commit record pins (`None` for a run's initial state).
    pub(crate) manifest: Option<BlobRef>,
    pub(crate) artifacts: Artifacts,
    pub(crate) foreach_count: Option<u64>,
    pub(crate) status: AttemptStatus,
}

impl Committed {
    /// A run's initial state: defaults and parameters, the start step's input.
    pub(crate) fn initial(artifacts: BTreeMap<String, BlobRef>) -> Committed {
        Committed {
            task: None,
            manifest: None,
            artifacts: Artifacts::full(artifacts, &Inline::new()),
            foreach_count: None,
            status: AttemptStatus::Ok,
        }
    }

    /// The view of attempt `task`, committed with the manifest `m` its record pins as `pin`.
    pub(crate) fn of(task: TaskRef, pin: BlobRef, m: TaskManifest) -> Committed {
        Committed {
            task: Some(TaskAt::of(task, None)),
            manifest: Some(pin),
            artifacts: Artifacts::full(m.artifacts, &m.inline),
            foreach_count: m.foreach_count,
            status: m.status,
        }
    }

    /// The view of attempt `task` that started from `base`, just committed with manifest
    /// `m` as `pin`, sharing names with `base`. A split's artifacts are a table of their
    /// own, which all its items share; any other task's are what differs from its base's.
    pub(crate) fn over(
        base: &Committed,
        task: TaskRef,
        pin: BlobRef,
        m: TaskManifest,
        split: bool,
    ) -> Committed {
        let artifacts = match split {
            true => Artifacts::full(m.artifacts, &m.inline),
            false => Artifacts::over(&base.artifacts, m.artifacts, &m.inline),
        };
        Committed {
            task: Some(TaskAt::of(task, base.task.as_ref())),
            manifest: Some(pin),
            artifacts,
            foreach_count: m.foreach_count,
            status: m.status,
        }
    }

    /// The view of a successful attempt read from the store; `None` for an attempt that
    /// has no manifest (fenced) or did not succeed.
    pub(crate) fn from_attempt(a: &TaskAttempt) -> Option<Committed> {
        let (m, pin) = (a.manifest.as_ref()?, a.manifest_ref?);
        let mut c = Committed::of(a.source.clone(), pin, m.clone());
        c.status = a.status;
        a.status.is_success().then_some(c)
    }
}

impl Committed {
    /// About how many bytes this view holds of its own (the table it shares with its base
    /// is the base's): what the scheduler counts against its budget for join inputs.
    pub(crate) fn footprint(&self) -> usize {
        let own = &self.artifacts.own;
        let bytes: usize = own
            .iter()
            .filter_map(|e| e.2.as_ref())
            .map(Bytes::len)
            .sum();
        std::mem::size_of::<Committed>() + 16 + std::mem::size_of_val(&**own) + bytes
    }
}

/// A committed task as a join's input: the attempt and the manifest its commit record
/// pins, with its view while the driver keeps it. The scheduler keeps the views of join
/// inputs up to a budget (`run::scheduler`); past it, an input is this pin alone (about
/// 100 bytes) and the join reads its record when it loads it, a few dozen at a time.
#[derive(Debug, Clone)]
pub(crate) struct Pinned {
    pub(crate) task: TaskAt,
    pub(crate) manifest: BlobRef,
    pub(crate) view: Option<Arc<Committed>>,
}

impl Pinned {
    /// Pin committed task `c` (never a run's initial state), keeping its view or not.
    pub(crate) fn of(c: Arc<Committed>, keep: bool) -> Option<Pinned> {
        Some(Pinned {
            task: c.task.clone()?,
            manifest: c.manifest?,
            view: keep.then_some(c),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Digest;

    fn blob(s: &str) -> BlobRef {
        BlobRef {
            digest: Digest::of(s.as_bytes()),
            size: s.len() as u64,
        }
    }

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, BlobRef> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), blob(v)))
            .collect()
    }

    #[test]
    fn artifacts_over_a_base_keep_only_what_differs_and_read_the_same() {
        let base = Artifacts::full(map(&[("a", "1"), ("b", "2"), ("c", "3")]), &Inline::new());
        let child_map = map(&[("a", "1"), ("b", "changed"), ("c", "3"), ("d", "new")]);
        let child = Artifacts::over(&base, child_map.clone(), &Inline::new());
        assert_eq!(child.own.len(), 2, "only b and d are its own");
        assert!(Arc::ptr_eq(
            child.shared.as_ref().unwrap(),
            base.shared.as_ref().unwrap()
        ));
        assert_eq!(child.to_map(), child_map);
        for (k, v) in &child_map {
            assert_eq!(child.get(k), Some(v), "{k}");
        }
        assert_eq!(child.get("e"), None);
        // A grandchild shares the same table, not a chain.
        let grand = Artifacts::over(&child, child_map.clone(), &Inline::new());
        assert!(Arc::ptr_eq(
            grand.shared.as_ref().unwrap(),
            child.shared.as_ref().unwrap()
        ));
        assert_eq!(grand.to_map(), child_map);
        // Missing one of the base's names: stored on its own.
        let lone = Artifacts::over(&base, map(&[("a", "1")]), &Inline::new());
        assert!(lone.own.is_empty(), "a table of its own");
        assert_eq!(lone.to_map(), map(&[("a", "1")]));
    }

    #[test]
    fn inline_bytes_pass_on_shared_and_are_collected_once() {
        let b = |s: &str| (blob(s).digest, Bytes::from(s.to_string()));
        let base_inline: Inline = [b("1"), b("2")].into_iter().collect();
        let base = Artifacts::full(map(&[("a", "1"), ("b", "2"), ("c", "3")]), &base_inline);
        assert_eq!(base.held("a").unwrap().1.unwrap(), "1");
        assert!(base.held("c").unwrap().1.is_none(), "c is an object");
        // The child passes a on, changes b to an inline value, c to an object; its
        // manifest holds a's bytes too.
        let child_inline: Inline = [b("1"), b("new")].into_iter().collect();
        let child = Artifacts::over(
            &base,
            map(&[("a", "1"), ("b", "new"), ("c", "obj")]),
            &child_inline,
        );
        assert_eq!(child.own.len(), 2, "b and c are its own, a is shared");
        assert_eq!(child.held("b").unwrap().1.unwrap(), "new");
        assert!(child.held("c").unwrap().1.is_none());
        assert_eq!(child.inline(), child_inline, "not the base's overridden b");
        // The same blob held inline where the base has an object (its manifest holds the
        // digest for another field) is still the base's entry: the object exists.
        let held_now = Artifacts::over(
            &base,
            map(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "3")]),
            &[b("1"), b("2"), b("3")].into_iter().collect(),
        );
        assert_eq!(held_now.own.len(), 1, "only d, new");
        assert!(
            held_now.held("c").unwrap().1.is_none(),
            "read as the object"
        );
        assert_eq!(held_now.held("d").unwrap().1.unwrap(), "3");
        assert_eq!(
            held_now.inline(),
            [b("1"), b("2"), b("3")].into_iter().collect()
        );
    }
}
