//! What a new run starts from: the initial state (defaults, then parameters), its blobs,
//! and the graph's shape recorded for later resumes.

use std::collections::{BTreeMap, HashSet};

use crate::error::{Error, Result, Site};
use crate::flow::{Flow, Graph};
use crate::meta::StepShape;
use crate::store::cas::{self, What};
use crate::store::codec::FieldWriter;
use crate::store::{BlobRef, Datastore};

/// Apply command-line parameter values to a state.
pub(crate) fn apply_params<F: Flow>(
    state: &mut F,
    params: &[(String, String)],
    given: &mut HashSet<String>,
) -> Result<()> {
    for (name, raw) in params {
        let i = F::field_index(name)
            .filter(|&i| F::FIELDS[i].param.is_some())
            .ok_or_else(|| Error::invalid(format!("flow {} has no parameter `{name}`", F::NAME)))?;
        let flag = F::FIELDS[i].param.map(|p| p.flag).unwrap_or(name.as_str());
        state.__set_param(i, raw).map_err(|e| {
            Error::invalid(format!(
                "invalid value {raw:?} for --{flag} ({}): {e}",
                F::FIELDS[i].ty
            ))
        })?;
        given.insert(name.clone());
    }
    Ok(())
}

/// The parameters' values as recorded in the run record.
pub(crate) fn params_json<F: Flow>(state: &F) -> BTreeMap<String, serde_json::Value> {
    F::FIELDS
        .iter()
        .enumerate()
        .filter(|(_, f)| f.param.is_some())
        .map(|(i, f)| (f.name.to_string(), param_json(state, i)))
        .collect()
}

/// The command-line texts of the values JSON cannot hold.
const NON_FINITE: [&str; 4] = ["NaN", "inf", "-inf", "-NaN"];

/// Parameter `i` as JSON. JSON has no NaN or infinities (serde writes them as `null`), so
/// a parameter holding one is recorded as the text the command line takes for it: the
/// value whose encoding equals the parameter's, among `NaN`, `inf` and `-inf`.
fn param_json<F: Flow>(state: &F, i: usize) -> serde_json::Value {
    let json = state.__field_json(i).unwrap_or(serde_json::Value::Null);
    if !json.is_null() {
        return json;
    }
    let Some(bytes) = encoded(state, i) else {
        return json;
    };
    NON_FINITE
        .iter()
        .find(|text| {
            let mut probe = F::default();
            probe.__set_param(i, text).is_ok()
                && probe.__field_json(i).is_ok_and(|j| j.is_null())
                && encoded(&probe, i).as_ref() == Some(&bytes)
        })
        .map_or(json, |text| serde_json::Value::String(text.to_string()))
}

/// The encoding of field `i` of `state`: the bytes its blob holds, so equal encodings
/// are equal blobs. `None` if it cannot be encoded in memory.
fn encoded<F: Flow>(state: &F, i: usize) -> Option<Vec<u8>> {
    let mut w = FieldWriter::memory(MAX_PARAM_BYTES);
    state.__encode_field(i, &mut w).ok()?;
    (!w.overflowed()).then(|| w.into_bytes())
}

/// More than any parameter holds.
const MAX_PARAM_BYTES: usize = 256 << 20;

/// Each parameter's encoding (see [`encoded`]), to compare values exactly (NaN included)
/// without writing anything.
pub(crate) fn param_encodings<F: Flow>(state: &F) -> BTreeMap<String, Option<Vec<u8>>> {
    F::FIELDS
        .iter()
        .enumerate()
        .filter(|(_, f)| f.param.is_some())
        .map(|(i, f)| (f.name.to_string(), encoded(state, i)))
        .collect()
}

pub(crate) fn store_initial<F: Flow>(
    ds: &Datastore,
    state: &F,
) -> Result<BTreeMap<String, BlobRef>> {
    let mut out = BTreeMap::new();
    for (i, f) in F::FIELDS.iter().enumerate() {
        let what = What::new(f.name, Site::detail(None, "the initial state"));
        let blob = cas::put_encoded(ds, None, &what, &mut |w| state.__encode_field(i, w))?;
        out.insert(f.name.to_string(), blob);
    }
    Ok(out)
}

/// The graph's shape, recorded so a later resume can check it maps onto the new code.
pub(crate) fn shape(graph: &Graph) -> Vec<StepShape> {
    graph
        .steps()
        .iter()
        .map(|s| StepShape {
            name: s.name.to_string(),
            next: s
                .next
                .iter()
                .map(|&n| graph.steps()[n].name.to_string())
                .collect(),
            foreach: s.foreach.map(str::to_string),
            joins: s
                .join
                .map(|(split, _)| graph.steps()[split].name.to_string()),
        })
        .collect()
}

/// The start step's input for a new run: defaults, then `params`; checks that every
/// required parameter is given. Nothing is written.
pub fn initial_state<F: Flow>(params: &[(String, String)]) -> Result<F> {
    let mut state = F::default();
    state.__apply_param_defaults();
    let mut given = HashSet::new();
    apply_params(&mut state, params, &mut given)?;
    let missing: Vec<String> = F::FIELDS
        .iter()
        .filter_map(|f| {
            f.param
                .filter(|p| p.required && !given.contains(f.name))
                .map(|p| format!("--{}", p.flag))
        })
        .collect();
    if !missing.is_empty() {
        return Err(Error::invalid(format!(
            "missing required parameter {}",
            missing.join(", ")
        )));
    }
    Ok(state)
}
