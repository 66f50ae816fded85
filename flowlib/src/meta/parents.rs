//! [`Parents`]: the tasks a task started from or joined, recorded compactly in its
//! manifest. A join over a foreach of 100,000 items has 100,000 parents that differ only in
//! their last index, so consecutive foreach siblings are one range entry
//! (`{"run":…,"step":"work","within":[],"foreach":"0..100000","attempt":0}`), with the few
//! members whose attempt differs listed apart (`"attempts":{"17":1}`). Any other parent is
//! a plain task reference, as in manifests of older flowlib, which still read unchanged.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::meta::{IndexPath, TaskRef};

/// The parents of a task, in order: the task it started from, then the tasks it joined.
///
/// Iterate with [`iter`](Parents::iter); [`len`](Parents::len) counts every parent, however
/// compactly they are stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parents {
    entries: Vec<Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Entry {
    // First: a range has a `foreach` key a task reference lacks.
    Range(Range),
    One(TaskRef),
}

/// Foreach siblings `within.child(i)` for `i` in `start..end`, of one step of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Range {
    run: String,
    step: String,
    /// The index path of the split's task; members add one index to it.
    within: IndexPath,
    foreach: Span,
    /// The attempt of every member not listed in `attempts`.
    attempt: u32,
    /// Members whose attempt differs: foreach index → attempt.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "string_keys"
    )]
    attempts: BTreeMap<u32, u32>,
}

/// JSON object keys are strings; inside an untagged enum serde does not turn them back into
/// numbers by itself.
pub(crate) mod string_keys {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        m: &BTreeMap<u32, u32>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k.to_string(), v)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<u32, u32>, D::Error> {
        BTreeMap::<String, u32>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                k.parse()
                    .map(|k| (k, v))
                    .map_err(|_| serde::de::Error::custom(format!("invalid foreach index `{k}`")))
            })
            .collect()
    }
}

/// `start..end` (end exclusive), written as that string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}..{}", self.start, self.end))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || serde::de::Error::custom(format!("invalid foreach range `{s}`"));
        let (a, b) = s.split_once("..").ok_or_else(bad)?;
        let (start, end) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if start >= end {
            return Err(bad());
        }
        Ok(Span { start, end })
    }
}

impl Range {
    fn len(&self) -> usize {
        (self.foreach.end - self.foreach.start) as usize
    }

    fn attempt_of(&self, i: u32) -> u32 {
        self.attempts.get(&i).copied().unwrap_or(self.attempt)
    }

    /// The same range with the most common attempt as its default (fewest exceptions).
    fn normalized(&self) -> Range {
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for a in self.attempts.values() {
            *counts.entry(*a).or_default() += 1;
        }
        let default_count = self.len() - self.attempts.len();
        let Some((&best, _)) = counts
            .iter()
            .filter(|(_, &c)| c > default_count)
            .max_by_key(|(_, &c)| c)
        else {
            return self.clone();
        };
        let attempts = (self.foreach.start..self.foreach.end)
            .map(|i| (i, self.attempt_of(i)))
            .filter(|&(_, a)| a != best)
            .collect();
        Range {
            attempt: best,
            attempts,
            ..self.clone()
        }
    }
}

/// Whether `index` is `within.child(i)` for some `i`: then `Some(i)`.
pub(crate) fn last_within(index: &[u32], within: &[u32]) -> Option<u32> {
    let (last, head) = index.split_last()?;
    (head == within).then_some(*last)
}

impl Parents {
    /// No parents (the start step's first attempt has none).
    pub fn new() -> Self {
        Parents::default()
    }

    /// Number of parents.
    pub fn len(&self) -> usize {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::One(_) => 1,
                Entry::Range(r) => r.len(),
            })
            .sum()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every parent, in order.
    pub fn iter(&self) -> impl Iterator<Item = TaskRef> + '_ {
        self.entries.iter().flat_map(|e| {
            let (one, range) = match e {
                Entry::One(t) => (Some(t.clone()), None),
                Entry::Range(r) => (None, Some(r)),
            };
            one.into_iter().chain(range.into_iter().flat_map(|r| {
                (r.foreach.start..r.foreach.end).map(move |i| TaskRef {
                    run: r.run.clone(),
                    step: r.step.clone(),
                    index: r.within.child(i),
                    attempt: r.attempt_of(i),
                })
            }))
        })
    }

    /// Append a parent: attempt `attempt` of task `index` of step `step` of run `run`. A
    /// foreach sibling that follows the previous parent extends its range.
    pub(crate) fn push(&mut self, run: &str, step: &str, index: &[u32], attempt: u32) {
        match self.entries.last_mut() {
            Some(Entry::Range(r))
                if r.run == run
                    && r.step == step
                    && last_within(index, &r.within.0) == Some(r.foreach.end)
                    && r.foreach.end < u32::MAX =>
            {
                if attempt != r.attempt {
                    r.attempts.insert(r.foreach.end, attempt);
                }
                r.foreach.end += 1;
                return;
            }
            Some(Entry::One(t)) if t.run == run && t.step == step => {
                let within = t.index.parent();
                if let (Some(a), Some(b)) = (
                    last_within(&t.index.0, &within.0),
                    last_within(index, &within.0),
                ) {
                    if a.checked_add(1) == Some(b) && b < u32::MAX {
                        let mut attempts = BTreeMap::new();
                        if attempt != t.attempt {
                            attempts.insert(b, attempt);
                        }
                        let range = Range {
                            run: run.to_string(),
                            step: step.to_string(),
                            within,
                            foreach: Span {
                                start: a,
                                end: b + 1,
                            },
                            attempt: t.attempt,
                            attempts,
                        };
                        *self.entries.last_mut().expect("a last entry") = Entry::Range(range);
                        return;
                    }
                }
            }
            _ => {}
        }
        self.entries.push(Entry::One(TaskRef {
            run: run.to_string(),
            step: step.to_string(),
            index: IndexPath(index.to_vec()),
            attempt,
        }));
    }
}

impl FromIterator<TaskRef> for Parents {
    fn from_iter<I: IntoIterator<Item = TaskRef>>(iter: I) -> Self {
        let mut p = Parents::new();
        for t in iter {
            p.push(&t.run, &t.step, &t.index.0, t.attempt);
        }
        p
    }
}

impl From<Vec<TaskRef>> for Parents {
    fn from(v: Vec<TaskRef>) -> Self {
        v.into_iter().collect()
    }
}

impl Serialize for Parents {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.entries.len()))?;
        for e in &self.entries {
            match e {
                Entry::Range(r) => seq.serialize_element(&Entry::Range(r.normalized()))?,
                one => seq.serialize_element(one)?,
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Parents {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Parents {
            entries: Vec::deserialize(d)?,
        })
    }
}

impl fmt::Display for Parents {
    /// `start, work/0, work/1, … (100001 in all)`: the first eight task ids.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.iter().take(8).map(|t| t.task_id()).collect();
        f.write_str(&ids.join(", "))?;
        let n = self.len();
        if n > ids.len() {
            write!(f, ", … ({n} in all)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(run: &str, step: &str, index: &[u32], attempt: u32) -> TaskRef {
        TaskRef {
            run: run.into(),
            step: step.into(),
            index: IndexPath(index.to_vec()),
            attempt,
        }
    }

    #[test]
    fn a_foreach_join_records_its_inputs_as_one_range_and_reads_them_all_back() {
        let mut want = vec![t("R", "start", &[], 0)];
        want.extend((0..100_000).map(|i| t("R", "work", &[i], u32::from(i == 17))));
        let p: Parents = want.clone().into();
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.len() < 300, "{json}");
        assert!(json.contains(r#""foreach":"0..100000""#), "{json}");
        assert!(json.contains(r#""attempts":{"17":1}"#), "{json}");
        let back: Parents = serde_json::from_str(&json).unwrap();
        assert_eq!(back.len(), 100_001);
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            want,
            "every parent, in order"
        );
    }

    #[test]
    fn the_most_common_attempt_is_the_default_and_gaps_split_ranges() {
        // The first member was retried, the rest were not; index 5 is missing.
        let mut want: Vec<TaskRef> = (0..10u32)
            .filter(|&i| i != 5)
            .map(|i| t("R", "work", &[3, i], u32::from(i == 0)))
            .collect();
        want.push(t("origin", "work", &[3, 10], 0));
        let p: Parents = want.clone().into();
        let json = serde_json::to_string(&p).unwrap();
        let back: Parents = serde_json::from_str(&json).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), want);
        assert!(
            json.contains(r#""within":[3],"foreach":"0..5","attempt":0,"attempts":{"0":1}"#),
            "{json}"
        );
        assert!(json.contains(r#""foreach":"6..10""#), "{json}");
        assert!(
            json.contains(r#""run":"origin""#),
            "a parent in another run is apart: {json}"
        );
    }

    #[test]
    fn old_manifests_list_every_parent_and_still_read() {
        let old = r#"[{"run":"R","step":"start","index":[],"attempt":0},
                      {"run":"R","step":"work","index":[0],"attempt":0},
                      {"run":"R","step":"work","index":[1],"attempt":2}]"#;
        let p: Parents = serde_json::from_str(old).unwrap();
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            vec![
                t("R", "start", &[], 0),
                t("R", "work", &[0], 0),
                t("R", "work", &[1], 2)
            ]
        );
        assert_eq!(p.to_string(), "start, work/0, work/1");
        // A single parent is written as it always was.
        let one: Parents = vec![t("R", "start", &[], 0)].into();
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            r#"[{"run":"R","step":"start","index":[],"attempt":0}]"#
        );
    }
}
