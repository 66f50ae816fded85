//! Exporting a compiled flow to a production scheduler, so the flow runs there with no
//! flowlib driver process: [`argo`] writes an Argo Workflows `WorkflowTemplate`. The
//! exported workflow calls the flow binary's own entry points (`argo-init`, `step`,
//! `argo-end`), so a run it starts is an ordinary flowlib run in the datastore.

pub mod argo;
mod yaml;

pub use argo::{workflow_template, ArgoOptions};

/// A JSON value (an exported workflow) as a YAML document, in block style; strings that
/// could be misread are double-quoted.
///
/// ```
/// let v = serde_json::json!({"kind": "WorkflowTemplate", "args": ["{{item}}", "yes"]});
/// assert_eq!(
///     flowlib::export::to_yaml(&v),
///     "args:\n- \"{{item}}\"\n- \"yes\"\nkind: WorkflowTemplate\n"
/// );
/// ```
pub fn to_yaml(value: &serde_json::Value) -> String {
    yaml::to_yaml(value)
}
