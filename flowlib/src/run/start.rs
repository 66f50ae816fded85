//! What a new run starts from: the initial state (defaults, then parameters), its blobs,
//! and the graph's shape recorded for later resumes.

use std::collections::{BTreeMap, HashSet};

use crate::error::{Error, Result, Site};
use crate::flow::{Flow, Graph};
use crate::meta::StepShape;
use crate::store::cas::{self, What};
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

pub(crate) fn params_json<F: Flow>(state: &F) -> BTreeMap<String, serde_json::Value> {
    F::FIELDS
        .iter()
        .enumerate()
        .filter(|(_, f)| f.param.is_some())
        .map(|(i, f)| {
            (
                f.name.to_string(),
                state.__field_json(i).unwrap_or(serde_json::Value::Null),
            )
        })
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
