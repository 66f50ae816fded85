//! Items used by the code `#[derive(FlowState)]` and `#[flow]` generate. Not a public
//! API: names here may change in any release.

use std::str::FromStr;

use serde::de::DeserializeOwned;

use crate::flow::graph::{
    BatchOptions, CacheOptions, KubernetesOptions, Resources, RetryPolicy, SlurmOptions, Step,
    Transition,
};

pub use crate::error::StepError;
pub use crate::flow::graph::JoinKind;
pub use crate::flow::StepCall;
pub use crate::flow::{
    FieldInfo, Flow, FlowState, Graph, LazyField, LazySource, NotLazy, ParamInfo, StoredBlob,
};
pub use crate::store::codec::{
    DecodeError, EncodeError, FieldReader, FieldWriter, Tag, ViaBulk, ViaSerde,
};
pub use crate::store::BlobRef;
pub use crate::store::Digest;
pub use serde::Serialize;
pub use serde_json::Value as JsonValue;

/// A field's description (`FieldInfo` is non-exhaustive: generated code builds it here).
pub const fn field_info(
    name: &'static str,
    ty: &'static str,
    doc: &'static str,
    param: Option<ParamInfo>,
) -> FieldInfo {
    FieldInfo {
        name,
        ty,
        doc,
        param,
    }
}

/// A parameter's description.
pub const fn param_info(
    flag: &'static str,
    help: &'static str,
    required: bool,
    is_bool: bool,
) -> ParamInfo {
    ParamInfo {
        flag,
        help,
        required,
        is_bool,
    }
}

/// Raw step description emitted by `#[flow]`.
#[derive(Debug)]
pub struct StepDef {
    pub name: &'static str,
    pub doc: &'static str,
    pub start: bool,
    pub end: bool,
    pub next: &'static [usize],
    pub preds: &'static [usize],
    pub foreach: Option<&'static str>,
    pub join: Option<JoinDef>,
    pub closed_by: Option<usize>,
    pub depth: usize,
    pub takes_item: bool,
    pub resources: ResourcesDef,
    pub retry: Option<RetryDef>,
    pub timeout_ms: Option<u64>,
    pub catch: Option<CatchDef>,
    pub checkpoint: bool,
    pub cache: Option<CacheDef>,
    pub slurm: Option<SlurmDef>,
    pub kubernetes: Option<KubernetesDef>,
    pub batch: Option<BatchDef>,
    pub uses: Option<&'static [&'static str]>,
    pub foreach_read: Option<&'static str>,
    pub item_source: Option<&'static str>,
}

/// `#[cache]`: the step's code as tokens, its `version`, and whether its body reads its
/// position.
#[derive(Debug)]
pub struct CacheDef {
    pub code: &'static str,
    pub version: Option<&'static str>,
    pub position: bool,
}

#[derive(Debug)]
pub struct JoinDef {
    pub split: usize,
    pub kind: JoinKind,
}

#[derive(Debug)]
pub struct ResourcesDef {
    pub cpu: u32,
    pub memory: Option<u64>,
    pub gpu: u32,
}

#[derive(Debug)]
pub struct RetryDef {
    pub times: u32,
    pub delay_ms: u64,
    pub platform: u32,
}

#[derive(Debug)]
pub struct SlurmDef {
    pub partition: Option<&'static str>,
    pub account: Option<&'static str>,
    pub qos: Option<&'static str>,
    pub constraint: Option<&'static str>,
    pub time_ms: Option<u64>,
    pub extra: &'static [&'static str],
    pub max_parallel: Option<u32>,
}

#[derive(Debug)]
pub struct KubernetesDef {
    pub image: Option<&'static str>,
    pub namespace: Option<&'static str>,
    pub service_account: Option<&'static str>,
    pub node_selector: &'static [(&'static str, &'static str)],
    pub tolerations: &'static [(&'static str, &'static str, &'static str, &'static str)],
    pub gpu_vendor: Option<&'static str>,
    pub secrets: &'static [&'static str],
    pub max_parallel: Option<u32>,
}

#[derive(Debug)]
pub struct BatchDef {
    pub queue: Option<&'static str>,
    pub job_definition: Option<&'static str>,
    pub image: Option<&'static str>,
}

#[derive(Debug)]
pub struct CatchDef {
    pub field: Option<&'static str>,
}

/// Build the public graph from the generated definitions.
pub fn build_graph(
    flow: &'static str,
    defs: &'static [StepDef],
    fields: &'static [FieldInfo],
) -> Graph {
    let steps = defs
        .iter()
        .enumerate()
        .map(|(i, d)| Step {
            index: i,
            name: d.name,
            doc: d.doc,
            is_start: d.start,
            transition: if d.end {
                Transition::End
            } else if d.foreach.is_some() {
                Transition::Foreach
            } else if d.next.len() > 1 {
                Transition::Branch
            } else {
                Transition::Linear
            },
            next: d.next.to_vec(),
            preds: d.preds.to_vec(),
            foreach: d.foreach,
            join: d.join.as_ref().map(|j| (j.split, j.kind)),
            closed_by: d.closed_by,
            depth: d.depth,
            takes_item: d.takes_item,
            resources: Resources {
                cpu: d.resources.cpu,
                memory: d.resources.memory,
                gpu: d.resources.gpu,
            },
            retry: d.retry.as_ref().map(|r| RetryPolicy {
                times: r.times,
                delay_ms: r.delay_ms,
                platform: r.platform,
            }),
            timeout_ms: d.timeout_ms,
            catch: d.catch.as_ref().map(|c| c.field),
            checkpoint: d.checkpoint,
            cache: d.cache.as_ref().map(|c| CacheOptions {
                code: Digest::of(c.code.as_bytes()),
                version: c.version,
                position: c.position,
            }),
            slurm: d.slurm.as_ref().map(|s| SlurmOptions {
                partition: s.partition,
                account: s.account,
                qos: s.qos,
                constraint: s.constraint,
                time_ms: s.time_ms,
                extra: s.extra,
                max_parallel: s.max_parallel,
            }),
            kubernetes: d.kubernetes.as_ref().map(|k| KubernetesOptions {
                image: k.image,
                namespace: k.namespace,
                service_account: k.service_account,
                node_selector: k.node_selector,
                tolerations: k.tolerations,
                gpu_vendor: k.gpu_vendor,
                secrets: k.secrets,
                max_parallel: k.max_parallel,
            }),
            batch: d.batch.as_ref().map(|b| BatchOptions {
                queue: b.queue,
                job_definition: b.job_definition,
                image: b.image,
            }),
            uses: d.uses.map(|u| u.to_vec()),
            field_set: d.uses.map(|u| {
                (0..fields.len())
                    .filter(|&i| u.contains(&fields[i].name))
                    .collect()
            }),
            foreach_read: d
                .foreach_read
                .and_then(|f| fields.iter().position(|x| x.name == f)),
            item_source: d
                .item_source
                .and_then(|f| fields.iter().position(|x| x.name == f)),
        })
        .collect();
    Graph::new(flow, steps, fields)
}

/// Fields must be storable artifacts.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored as an artifact",
    label = "this field's type must implement Serialize, Deserialize and Send",
    note = "add `#[derive(Serialize, Deserialize)]` (re-exported by `flowlib::prelude`) to the type"
)]
pub trait Artifact: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> Artifact for T {}

pub fn assert_artifact<T: Artifact>() {}

/// A field a `foreach` can iterate: anything iterable by reference yielding `&T`.
#[diagnostic::on_unimplemented(
    message = "`foreach` cannot iterate over a field of type `{Self}`",
    label = "not iterable by reference",
    note = "a foreach field must yield `&T` items when iterated by reference: Vec<T>, [T; N], VecDeque<T>, BTreeSet<T>, ..."
)]
pub trait ForeachField {
    type Item: Clone;
    fn foreach_len(&self) -> usize;
    fn foreach_item(&self, i: usize) -> Option<Self::Item>;
}

impl<F: ?Sized, T: Clone> ForeachField for F
where
    for<'a> &'a F: IntoIterator<Item = &'a T>,
{
    type Item = T;

    fn foreach_len(&self) -> usize {
        self.into_iter().count()
    }

    fn foreach_item(&self, i: usize) -> Option<T> {
        self.into_iter().nth(i).cloned()
    }
}

pub fn assert_foreach_field<F: ForeachField + ?Sized>(_: &F) {}

pub fn foreach_item_type<F: ForeachField + ?Sized>(_: &F) -> F::Item {
    unreachable!("only used for type checking")
}

pub fn foreach_len<F: ForeachField + ?Sized>(f: &F) -> usize {
    f.foreach_len()
}

/// The digest of the item at `i` of a foreach field, encoded as an artifact would be (the
/// cache key of a `#[cache]` step over the item).
pub fn foreach_item_digest<F: ?Sized, T: Serialize + 'static>(
    f: &F,
    i: usize,
) -> Result<Digest, String>
where
    for<'a> &'a F: IntoIterator<Item = &'a T>,
{
    let item = f
        .into_iter()
        .nth(i)
        .ok_or_else(|| format!("foreach item {i} does not exist"))?;
    let bytes = crate::store::codec::encode_blob(item).map_err(|e| e.to_string())?;
    Ok(Digest::of(&bytes))
}

/// The item at `i` of the foreach field, cloned.
pub fn foreach_item<F: ForeachField + ?Sized>(
    f: &F,
    i: usize,
    field: &str,
) -> Result<F::Item, StepError> {
    f.foreach_item(i).ok_or_else(|| {
        format!(
            "foreach item {i} of `{field}` does not exist (the field has {} items): was it changed after the split?",
            f.foreach_len()
        )
        .into()
    })
}

#[diagnostic::on_unimplemented(
    message = "a `#[catch(field = ...)]` field must be an `Option<String>`, not `{Self}`",
    label = "the error message is stored here"
)]
pub trait CatchField {}
impl CatchField for Option<String> {}

pub fn assert_catch_field<F: CatchField>(_: &F) {}

/// What a step may return.
#[diagnostic::on_unimplemented(
    message = "a step must return `Result<()>` (with any error type convertible into `Box<dyn Error + Send + Sync>`) or `()`, not `{Self}`",
    label = "invalid step return type"
)]
pub trait IntoStepResult {
    fn into_step_result(self) -> Result<(), StepError>;
}

impl IntoStepResult for () {
    fn into_step_result(self) -> Result<(), StepError> {
        Ok(())
    }
}

impl<E: Into<StepError>> IntoStepResult for Result<(), E> {
    fn into_step_result(self) -> Result<(), StepError> {
        self.map_err(Into::into)
    }
}

pub fn unknown_step(i: usize) -> StepError {
    format!("no step #{i} in this flow").into()
}

pub fn to_json<T: Serialize>(v: &T) -> Result<serde_json::Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

/// Join inputs share fields with the split's state: `Clone` types are copied from one
/// decoded value instead of being decoded again...
pub trait CloneViaClone<T> {
    fn clone_field_from(&self, dst: &mut T, src: &T) -> bool;
}

impl<T: Clone> CloneViaClone<T> for Tag<T> {
    fn clone_field_from(&self, dst: &mut T, src: &T) -> bool {
        dst.clone_from(src);
        true
    }
}

/// ...other types are decoded.
pub trait CloneNotClone<T> {
    fn clone_field_from(&self, dst: &mut T, src: &T) -> bool;
}

impl<T> CloneNotClone<T> for &Tag<T> {
    fn clone_field_from(&self, _dst: &mut T, _src: &T) -> bool {
        false
    }
}

/// Parameters parse with `FromStr` when the type has it...
pub trait ParseViaFromStr<T> {
    fn parse_param(&self, s: &str) -> Result<T, String>;
}

impl<T: FromStr> ParseViaFromStr<T> for Tag<T>
where
    T::Err: std::fmt::Display,
{
    fn parse_param(&self, s: &str) -> Result<T, String> {
        s.parse::<T>().map_err(|e| e.to_string())
    }
}

/// ...and as JSON otherwise (lists, maps, structs).
pub trait ParseViaJson<T> {
    fn parse_param(&self, s: &str) -> Result<T, String>;
}

impl<T: DeserializeOwned> ParseViaJson<T> for &Tag<T> {
    fn parse_param(&self, s: &str) -> Result<T, String> {
        serde_json::from_str(s).map_err(|e| format!("expected JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreach_field_covers_common_collections() {
        let v = vec![1.5f64, 2.5];
        assert_eq!(foreach_len(&v), 2);
        assert_eq!(foreach_item(&v, 1, "v").unwrap(), 2.5);
        assert!(foreach_item(&v, 2, "v").is_err());
        let s: std::collections::BTreeSet<String> = ["b".into(), "a".into()].into();
        assert_eq!(foreach_item(&s, 0, "s").unwrap(), "a");
        let arr = [1u8, 2, 3];
        assert_eq!(foreach_len(&arr), 3);
    }

    // Borrowing the tag mirrors the generated code's autoref dispatch.
    #[allow(clippy::needless_borrow)]
    #[test]
    fn params_parse_with_fromstr_then_json() {
        assert_eq!((&Tag::<f64>::NEW).parse_param("0.5").unwrap(), 0.5);
        assert_eq!(
            (&Tag::<String>::NEW).parse_param("hi there").unwrap(),
            "hi there"
        );
        assert_eq!(
            (&Tag::<Vec<u32>>::NEW).parse_param("[1,2]").unwrap(),
            vec![1, 2]
        );
        assert!((&Tag::<u32>::NEW).parse_param("x").is_err());
    }
}
