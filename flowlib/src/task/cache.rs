//! The cache key of a task of a `#[cache]` step, and taking a hit: the task's committed
//! view built from the earlier task that had the same key, by reference (no blob copied,
//! no step body run).
//!
//! The key is the SHA-256 of, in order: the key's version; the flow and step names; the
//! SHA-256 of the step's signature and body tokens and its `#[cache(version)]`; the codec
//! version; the `#[catch]` and `foreach` attributes; for each field the step can read
//! (what its body reaches through `self.field`, the split's foreach field, or every field
//! when the body uses `self` any other way) the field's declared type and the digest of its
//! input blob (the run's value for a parameter); the digest of the foreach item it takes
//! (not its position, unless the body reads `ctx.index()`, `ctx.index_path()` or
//! `ctx.task_id()`); for a join, the digests of every artifact of every input, in order.
//! Resources, retries, timeouts and where the step runs are not in it.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::flow::{Flow, Step};
use crate::meta::cache::{lookup, CacheEntry, CacheKey, CachedTask, Lookup, KEY_VERSION};
use crate::meta::commit::write_manifest;
use crate::meta::{
    hostname, now_rfc3339, Committed, IndexPath, TaskManifest, TaskRef, Timings, METADATA_VERSION,
};
use crate::store::{codec, Digest};
use crate::task::spec::{read_input, Resolved, TaskSpec};
use crate::task::state::{describe, input_blob, shared_split, Fields, RunContext, READ_AHEAD};

/// The fields a task of `step` can read: its body's, plus the split's foreach field;
/// `None` for every field.
fn key_fields(step: &Step) -> Option<Vec<usize>> {
    step.field_set.as_deref().map(|set| {
        let mut v = set.to_vec();
        v.extend(step.foreach_read);
        v.sort_unstable();
        v.dedup();
        v
    })
}

/// The cache key of task `index` of `step` (a `#[cache]` step), whose inputs are `r`.
pub(crate) fn key<F: Flow>(
    run: &RunContext,
    step: &Step,
    index: &IndexPath,
    r: &Resolved,
) -> Result<CacheKey> {
    let opts = step
        .cache
        .ok_or_else(|| Error::internal(format!("step {} is not a #[cache] step", step.name)))?;
    let mut parts: Vec<(String, String)> = Vec::with_capacity(16);
    let mut put = |k: &str, v: String| parts.push((k.to_string(), v));
    put("key", KEY_VERSION.to_string());
    put("flow", F::NAME.to_string());
    put("step", step.name.to_string());
    put("code", opts.code.hex());
    put("version", opts.version.unwrap_or("").to_string());
    put("codec", codec::CODEC_MAJOR.to_string());
    put(
        "attrs",
        format!(
            "catch={:?} foreach={:?} join={}",
            step.catch,
            step.foreach,
            step.is_join()
        ),
    );
    let fields = key_fields(step);
    for (i, f) in F::FIELDS.iter().enumerate() {
        if fields.as_ref().is_some_and(|set| !set.contains(&i)) {
            continue;
        }
        let blob = input_blob(run, &r.base, f)
            .map(|(b, _)| b.digest.hex())
            .unwrap_or_else(|| "absent".into());
        put(&format!("field.{}", f.name), format!("{} {blob}", f.ty));
    }
    if let (Some(fi), Some(&i)) = (step.item_source, index.0.last()) {
        let site = describe(&r.base.task, &run.run_id);
        let blob = input_blob(run, &r.base, &F::FIELDS[fi]).ok_or_else(|| {
            Error::internal(format!(
                "the split of {} has no foreach field `{}`",
                step.name,
                F::FIELDS[fi].name
            ))
        })?;
        let split_step = F::graph()
            .steps()
            .iter()
            .find(|s| s.foreach.is_some() && s.next.first() == Some(&step.index))
            .map(|s| s.index)
            .ok_or_else(|| Error::internal(format!("no split feeds {}", step.name)))?;
        let split = shared_split::<F>(run, fi, blob, &site)?;
        let guard = split.lock().unwrap_or_else(|e| e.into_inner());
        let item = guard
            .__foreach_item_digest(split_step, i as usize)
            .ok_or_else(|| {
                Error::internal(format!(
                    "no item digest for the foreach of step {}",
                    F::graph().steps()[split_step].name
                ))
            })?
            .map_err(|e| Error::invalid(format!("cannot hash foreach item {i}: {e}")))?;
        put("item", item.hex());
    }
    if opts.position {
        put("position", index.dir_name());
    }
    // A join's inputs the driver kept no view of are read a batch at a time on the store's
    // I/O pool, as the join itself reads them, never all at once.
    for k in 0..r.inputs.len().div_ceil(READ_AHEAD) {
        let chunk = r
            .inputs
            .slice(k * READ_AHEAD..((k + 1) * READ_AHEAD).min(r.inputs.len()));
        let views = crate::store::par_io(&chunk, |p| read_input(&run.ds, run.flow, p))?;
        for (j, c) in views.into_iter().enumerate() {
            let n = k * READ_AHEAD + j;
            let step = c.task.as_ref().map_or("", |t| &*t.step).to_string();
            let map = c.artifacts.to_map();
            let mut text = String::with_capacity(map.len() * 80);
            for (name, b) in &map {
                text.push_str(name);
                text.push('=');
                text.push_str(&b.digest.hex());
                text.push('\n');
            }
            put(
                &format!("input.{n}"),
                format!("{step} {}", Digest::of(text.as_bytes()).hex()),
            );
        }
    }
    Ok(CacheKey::of(parts))
}

/// Take a hit for task `task` (this run's attempt) from `entry`, whose manifest is `m`:
/// the committed view downstream steps use, and the record of the hit. The source's own
/// manifest stands for the task when every field the step does not read is the same in
/// this run; otherwise a manifest for this run is written (the step's outputs from the
/// source, the rest passed through from this run's inputs, as the step would have).
pub(crate) fn take_hit<F: Flow>(
    run: &RunContext,
    step: &Step,
    task: &TaskRef,
    r: &Resolved,
    entry: &CacheEntry,
    m: TaskManifest,
) -> Result<(Arc<Committed>, CachedTask)> {
    let written = step.field_set.as_deref();
    let mut merged = Fields::default();
    for (i, f) in F::FIELDS.iter().enumerate() {
        let from_source = m
            .artifacts
            .get(f.name)
            .map(|b| (*b, m.inline_of(b).cloned()));
        let passes = written.is_some_and(|w| !w.contains(&i));
        let blob = match (passes, input_blob(run, &r.base, f)) {
            (true, Some((b, bytes))) => Some((b, bytes.cloned())),
            _ => from_source,
        };
        if let Some((b, bytes)) = blob {
            merged.insert(f.name, b, bytes);
        }
    }
    let split = step.closed_by.is_some();
    let (pin, committed) = if merged.artifacts == m.artifacts {
        let pin = entry.manifest;
        let c = Committed::over(&r.base, entry.source.clone(), pin, m, split);
        (pin, c)
    } else {
        let own = TaskManifest {
            version: METADATA_VERSION,
            flow: F::NAME.to_string(),
            run: task.run.clone(),
            step: task.step.clone(),
            index: task.index.clone(),
            attempt: task.attempt,
            parents: r.parents(),
            artifacts: merged.artifacts,
            inline: merged.inline,
            foreach_count: m.foreach_count,
            status: m.status,
            error: None,
            started: now_rfc3339(),
            finished: now_rfc3339(),
            timings: Timings::default(),
            host: hostname(),
            pid: std::process::id(),
            logs: None,
            cached_from: Some(entry.source.clone()),
        };
        let pin = write_manifest(&run.ds, &own)?;
        let c = Committed::over(&r.base, task.clone(), pin, own, split);
        (pin, c)
    };
    let hit = CachedTask {
        step: task.step.clone(),
        index: task.index.clone(),
        attempt: task.attempt,
        source: entry.source.clone(),
        status: entry.status,
        manifest: pin,
        key: entry.key,
    };
    Ok((Arc::new(committed), hit))
}

/// What the cache says about a task about to be dispatched.
#[derive(Debug)]
pub(crate) enum Probe {
    /// Taken from the cache: its view, the record of the hit, and who computed it.
    Hit {
        committed: Arc<Committed>,
        hit: Box<CachedTask>,
        from: TaskRef,
    },
    /// Not in the cache (or `--refresh`): run it, then publish it under this key.
    Miss(CacheKey),
    /// The entry for the key does not verify (why): run it and replace the entry.
    Invalid(CacheKey, String),
}

/// Probe the cache for the task `spec` describes, with inputs `r`; with `refresh`, only
/// compute its key (the task re-runs and republishes).
pub(crate) fn probe<F: Flow>(
    run: &RunContext,
    spec: &TaskSpec,
    r: &Resolved,
    refresh: bool,
) -> Result<Probe> {
    let step = F::graph().step(&spec.task.step).ok_or_else(|| {
        Error::internal(format!("flow {} has no step {}", F::NAME, spec.task.step))
    })?;
    let key = key::<F>(run, step, &spec.task.index, r)?;
    if refresh {
        return Ok(Probe::Miss(key));
    }
    match lookup(&run.ds, F::NAME, step.name, &key.digest)? {
        Lookup::Miss => Ok(Probe::Miss(key)),
        Lookup::Invalid(why) => Ok(Probe::Invalid(key, why)),
        Lookup::Hit(entry, m) => {
            let (committed, hit) = take_hit::<F>(run, step, &spec.task, r, &entry, *m)?;
            Ok(Probe::Hit {
                committed,
                hit: Box::new(hit),
                from: entry.source,
            })
        }
    }
}
