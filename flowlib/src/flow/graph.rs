//! The compiled flow graph: steps, edges, attributes, and a digest that versions them.
//! Built once per flow from what `#[flow]` generated, and rendered by `show`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::meta::IndexPath;
use crate::store::Digest;

/// Description of one field of a flow's state.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct FieldInfo {
    /// Field name (the artifact name).
    pub name: &'static str,
    /// Field type as written in the source.
    pub ty: &'static str,
    /// Doc comment.
    pub doc: &'static str,
    /// Set when the field is a command-line parameter.
    pub param: Option<ParamInfo>,
}

/// `#[cache]` on a step: what its tasks' cache keys take from the step's source.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CacheOptions {
    /// SHA-256 of the step's signature and body tokens (calls into other functions are
    /// not followed).
    pub code: crate::store::Digest,
    /// `#[cache(version = "...")]`: bump it to invalidate after changing a helper.
    pub version: Option<&'static str>,
    /// The body reads its position (`ctx.index()`, `ctx.index_path()`, `ctx.task_id()`),
    /// so the position joins the key.
    pub position: bool,
}

/// A field that is also a command-line parameter of `run` and `resume`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ParamInfo {
    /// The flag name, without dashes (`--learning-rate` is `learning-rate`).
    pub flag: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Must be given on the command line.
    pub required: bool,
    /// A `bool` parameter: `--flag` alone means `true`.
    pub is_bool: bool,
}

/// A task of a run: step index and foreach index path.
pub(crate) type TaskKey = (usize, IndexPath);

/// What a task reads: the task whose state it starts from (none for the start step, which
/// starts from the run's initial state) and, for a join, the tasks it joins, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TaskInputs {
    pub(crate) base: Option<TaskKey>,
    pub(crate) joined: Vec<TaskKey>,
}

/// How a join merges its inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum JoinKind {
    /// Closes a `foreach`: one input per item.
    Foreach,
    /// Closes a static branch `next = [a, b]`: one input per arm.
    Branch,
}

/// What a step does after it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Transition {
    /// One next step.
    Linear,
    /// Several next steps, run in parallel (a static branch).
    Branch,
    /// The next step runs once per item of a field.
    Foreach,
    /// The end of the flow.
    End,
}

/// Resources a step asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Resources {
    /// CPU slots.
    pub cpu: u32,
    /// Memory in bytes, if set.
    pub memory: Option<u64>,
    /// GPUs.
    pub gpu: u32,
}

/// Retry policy of a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub times: u32,
    /// Delay before the first retry, in ms; doubled after each retry.
    pub delay_ms: u64,
    /// Retries after platform failures (node lost, job preempted, could not start), counted
    /// apart from `times`. Not part of the graph's digest.
    #[serde(skip)]
    pub platform: u32,
}

/// Platform retries of a step without `#[retry(platform = N)]`.
pub const DEFAULT_PLATFORM_RETRIES: u32 = 3;

/// `#[slurm(...)]`: how a step's tasks are submitted when the step runs on Slurm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<&'static str>,
    /// `--account`.
    pub account: Option<&'static str>,
    /// `--qos`.
    pub qos: Option<&'static str>,
    /// `--constraint`.
    pub constraint: Option<&'static str>,
    /// `--time` in ms (default: the step's `#[timeout]`).
    pub time_ms: Option<u64>,
    /// More `sbatch` arguments, as given.
    pub extra: &'static [&'static str],
    /// At most this many array tasks of the step at once (`--array=...%P`).
    pub max_parallel: Option<u32>,
}

/// `#[kubernetes(...)]`: how a step's tasks run when the step runs on Kubernetes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KubernetesOptions {
    /// The container image (default: `FLOWLIB_K8S_IMAGE`).
    pub image: Option<&'static str>,
    /// The namespace (default: `FLOWLIB_K8S_NAMESPACE`, else the kubeconfig context's).
    pub namespace: Option<&'static str>,
    /// The pods' service account (its identity reaches the datastore).
    pub service_account: Option<&'static str>,
    /// Node labels the pods require.
    pub node_selector: &'static [(&'static str, &'static str)],
    /// Tolerations: (key, operator `Equal`/`Exists`, value, effect).
    pub tolerations: &'static [(&'static str, &'static str, &'static str, &'static str)],
    /// GPUs are requested as `<vendor>.com/gpu` (default `nvidia`).
    pub gpu_vendor: Option<&'static str>,
    /// Secrets whose keys become the container's environment (`envFrom`), e.g. the
    /// datastore's credentials.
    pub secrets: &'static [&'static str],
    /// At most this many pods of the step's Indexed Job at once (`parallelism`).
    pub max_parallel: Option<u32>,
}

/// `#[batch(...)]`: where a step's jobs go when the step runs on AWS Batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchOptions {
    /// The job queue (name or ARN); default `FLOWLIB_BATCH_QUEUE`.
    pub queue: Option<&'static str>,
    /// The job definition (name, `name:revision` or ARN); default
    /// `FLOWLIB_BATCH_JOB_DEFINITION`.
    pub job_definition: Option<&'static str>,
    /// The container image; default `FLOWLIB_BATCH_IMAGE`, else the job definition's. A
    /// job definition with this image is registered for the run when it differs.
    pub image: Option<&'static str>,
}

/// One step of the graph.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Step {
    /// Index in the graph (declaration order).
    pub index: usize,
    /// Name (the method name).
    pub name: &'static str,
    /// Doc comment.
    pub doc: &'static str,
    /// The start step.
    pub is_start: bool,
    /// What follows the step.
    pub transition: Transition,
    /// Next steps (indices).
    pub next: Vec<usize>,
    /// Previous steps (indices).
    pub preds: Vec<usize>,
    /// The field iterated by a foreach step.
    pub foreach: Option<&'static str>,
    /// For joins: the split step closed and how.
    pub join: Option<(usize, JoinKind)>,
    /// For split steps: the join that closes them.
    pub closed_by: Option<usize>,
    /// Number of enclosing foreach splits.
    pub depth: usize,
    /// Takes the foreach item as a parameter.
    pub takes_item: bool,
    /// Resources.
    pub resources: Resources,
    /// Retry policy.
    pub retry: Option<RetryPolicy>,
    /// Timeout in ms.
    pub timeout_ms: Option<u64>,
    /// `#[catch]`: failures are recorded and the flow continues (with the error stored in
    /// the named field, if any).
    pub catch: Option<Option<&'static str>>,
    /// Uses in-step checkpoints.
    pub checkpoint: bool,
    /// `#[cache]`: tasks of this step are reused from any earlier run with the same key.
    /// Not part of the graph digest.
    #[serde(skip)]
    pub cache: Option<CacheOptions>,
    /// `#[slurm(...)]` options. Where a step runs is not part of the graph's digest.
    #[serde(skip)]
    pub slurm: Option<SlurmOptions>,
    /// `#[kubernetes(...)]` options. Not part of the graph's digest.
    #[serde(skip)]
    pub kubernetes: Option<KubernetesOptions>,
    /// `#[batch(...)]` options. Not part of the graph's digest.
    #[serde(skip)]
    pub batch: Option<BatchOptions>,
    /// The fields the step's body reaches through `self.field` (`None`: possibly all).
    /// Only these are loaded for the task and stored again; the others pass through.
    /// Not part of the graph digest: it follows the step's code, not the graph.
    #[serde(skip)]
    pub uses: Option<Vec<&'static str>>,
    #[serde(skip)]
    pub(crate) field_set: Option<Vec<usize>>,
    /// The split's foreach field, read after the step to count the items.
    #[serde(skip)]
    pub(crate) foreach_read: Option<usize>,
    /// The field a foreach item comes from (of the split's state).
    #[serde(skip)]
    pub(crate) item_source: Option<usize>,
}

impl Step {
    /// Whether this step is a join.
    pub fn is_join(&self) -> bool {
        self.join.is_some()
    }

    /// Retries left for platform failures (`#[retry(platform = N)]`, default
    /// [`DEFAULT_PLATFORM_RETRIES`]).
    pub fn platform_retries(&self) -> u32 {
        self.retry
            .map(|r| r.platform)
            .unwrap_or(DEFAULT_PLATFORM_RETRIES)
    }

    /// Whether this is the end step.
    pub fn is_end(&self) -> bool {
        self.transition == Transition::End
    }
}

/// A flow's graph.
#[derive(Debug)]
pub struct Graph {
    flow: &'static str,
    steps: Vec<Step>,
    fields: &'static [FieldInfo],
    digest: Digest,
    start: usize,
}

impl Graph {
    pub(crate) fn new(flow: &'static str, steps: Vec<Step>, fields: &'static [FieldInfo]) -> Graph {
        let start = steps.iter().position(|s| s.is_start).unwrap_or(0);
        let canonical = serde_json::to_vec(&serde_json::json!({ "flow": flow, "steps": steps }))
            .expect("graph serializes");
        Graph {
            flow,
            steps,
            fields,
            digest: Digest::of(&canonical),
            start,
        }
    }

    /// The flow name.
    pub fn flow(&self) -> &'static str {
        self.flow
    }

    /// All steps, in declaration order.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The step named `name`.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The start step.
    pub fn start(&self) -> &Step {
        &self.steps[self.start]
    }

    /// The state's fields (the artifacts).
    pub fn fields(&self) -> &'static [FieldInfo] {
        self.fields
    }

    /// SHA-256 over the steps, edges and attributes: changes whenever the graph does.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Steps reachable from `from` (inclusive).
    pub fn downstream_of(&self, from: usize) -> Vec<bool> {
        let mut seen = vec![false; self.steps.len()];
        let mut stack = vec![from];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            stack.extend(self.steps[i].next.iter().copied());
        }
        seen
    }

    /// The tasks task (`step`, `index`) starts from and joins: the one rule the scheduler,
    /// resume planning and the task entry point share. `foreach_count` answers how many
    /// items a committed split task produced; `None` when a foreach join's split count is
    /// not known yet (its split has not committed).
    pub(crate) fn inputs_of(
        &self,
        step: usize,
        index: &IndexPath,
        foreach_count: impl FnOnce(&TaskKey) -> Option<u64>,
    ) -> Option<TaskInputs> {
        let s = &self.steps[step];
        if s.is_start {
            return Some(TaskInputs::default());
        }
        let inputs = match s.join {
            Some((split, JoinKind::Foreach)) => {
                let base = (split, index.clone());
                let n = foreach_count(&base)? as u32;
                let pred = s.preds[0];
                let joined = (0..n).map(|i| (pred, index.child(i))).collect();
                TaskInputs {
                    base: Some(base),
                    joined,
                }
            }
            Some((split, JoinKind::Branch)) => TaskInputs {
                base: Some((split, index.clone())),
                joined: s.preds.iter().map(|&p| (p, index.clone())).collect(),
            },
            None => {
                let pred = s.preds[0];
                let parent = if self.steps[pred].foreach.is_some() {
                    index.parent()
                } else {
                    index.clone()
                };
                TaskInputs {
                    base: Some((pred, parent)),
                    joined: Vec::new(),
                }
            }
        };
        Some(inputs)
    }

    /// The graph as indented text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "flow {}  (graph {})", self.flow, self.digest.short());
        let params: Vec<&FieldInfo> = self.fields.iter().filter(|f| f.param.is_some()).collect();
        if !params.is_empty() {
            out.push_str("\nparameters:\n");
            for f in params {
                let p = f.param.unwrap();
                let _ = write!(out, "  --{} <{}>", p.flag, f.ty);
                if p.required {
                    out.push_str("  (required)");
                }
                if !p.help.is_empty() {
                    let _ = write!(out, "  {}", p.help);
                }
                out.push('\n');
            }
        }
        out.push_str("\nartifacts:\n");
        for f in self.fields {
            let _ = writeln!(out, "  {}: {}", f.name, f.ty);
        }
        out.push_str("\nsteps:\n");
        for s in &self.steps {
            let mut tags = Vec::new();
            if s.is_start {
                tags.push("start".to_string());
            }
            if let Some((split, kind)) = s.join {
                let k = match kind {
                    JoinKind::Foreach => "foreach",
                    JoinKind::Branch => "branch",
                };
                tags.push(format!("join of {k} at {}", self.steps[split].name));
            }
            let indent = "  ".repeat(s.depth + 1);
            let _ = write!(out, "{indent}{}", s.name);
            if !tags.is_empty() {
                let _ = write!(out, " [{}]", tags.join(", "));
            }
            let next: Vec<&str> = s.next.iter().map(|&n| self.steps[n].name).collect();
            match s.transition {
                Transition::End => out.push_str(" (end)"),
                Transition::Foreach => {
                    let _ = write!(
                        out,
                        " -> {} foreach {}",
                        next.join(", "),
                        s.foreach.unwrap_or("?")
                    );
                }
                _ => {
                    let _ = write!(out, " -> {}", next.join(", "));
                }
            }
            out.push('\n');
            let attrs = self.attr_summary(s);
            if !attrs.is_empty() {
                let _ = writeln!(out, "{indent}    {}", attrs.join("  "));
            }
            if !s.doc.is_empty() {
                let _ = writeln!(out, "{indent}    # {}", s.doc.lines().next().unwrap_or(""));
            }
        }
        out
    }

    fn attr_summary(&self, s: &Step) -> Vec<String> {
        let mut a = Vec::new();
        let r = s.resources;
        if r.cpu != 1 || r.memory.is_some() || r.gpu != 0 {
            let mut parts = vec![format!("cpu={}", r.cpu)];
            if let Some(m) = r.memory {
                parts.push(format!("memory={}", format_bytes(m)));
            }
            if r.gpu > 0 {
                parts.push(format!("gpu={}", r.gpu));
            }
            a.push(format!("resources({})", parts.join(", ")));
        }
        if let Some(rp) = s.retry {
            a.push(format!(
                "retry(times={}, delay={})",
                rp.times,
                format_ms(rp.delay_ms)
            ));
        }
        if let Some(t) = s.timeout_ms {
            a.push(format!("timeout({})", format_ms(t)));
        }
        if let Some(c) = s.catch {
            match c {
                Some(f) => a.push(format!("catch(field={f})")),
                None => a.push("catch".into()),
            }
        }
        if s.checkpoint {
            a.push("checkpoint".into());
        }
        a
    }

    /// The graph as a Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for s in &self.steps {
            let mut label = s.name.to_string();
            let attrs = self.attr_summary(s);
            if !attrs.is_empty() {
                label.push_str("<br/>");
                label.push_str(&attrs.join("<br/>"));
            }
            let shape = if s.is_start || s.is_end() {
                format!("([\"{label}\"])")
            } else if s.is_join() {
                format!("{{{{\"{label}\"}}}}")
            } else {
                format!("[\"{label}\"]")
            };
            // Node ids are positional: step names like `end` are Mermaid keywords.
            let _ = writeln!(out, "    s{}{}", s.index, shape);
        }
        for s in &self.steps {
            for &n in &s.next {
                let edge = match (s.transition, s.foreach) {
                    (Transition::Foreach, Some(f)) => format!("-- \"foreach {f}\" -->"),
                    _ => "-->".to_string(),
                };
                let _ = writeln!(out, "    s{} {} s{}", s.index, edge, n);
            }
        }
        out
    }

    /// The graph in Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let mut out = format!(
            "digraph \"{}\" {{\n    rankdir=TB;\n    node [shape=box, style=rounded];\n",
            self.flow
        );
        for s in &self.steps {
            let mut label = s.name.to_string();
            for a in self.attr_summary(s) {
                label.push_str("\\n");
                label.push_str(&a.replace('"', "\\\""));
            }
            let shape = if s.is_join() {
                ", shape=hexagon"
            } else if s.is_start || s.is_end() {
                ", shape=oval"
            } else {
                ""
            };
            let _ = writeln!(out, "    \"{}\" [label=\"{}\"{}];", s.name, label, shape);
        }
        for s in &self.steps {
            for &n in &s.next {
                let label = match (s.transition, s.foreach) {
                    (Transition::Foreach, Some(f)) => {
                        format!(" [label=\"foreach {f}\", style=bold]")
                    }
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "    \"{}\" -> \"{}\"{};",
                    s.name, self.steps[n].name, label
                );
            }
        }
        out.push_str("}\n");
        out
    }
}

/// `4 GiB`, `512 MiB`: sizes as flowlib prints them.
pub(crate) fn format_bytes(b: u64) -> String {
    flowlib_units::format_bytes(b)
}

/// `500ms`, `30s`, `2h`: durations as flowlib prints them.
pub(crate) fn format_ms(ms: u64) -> String {
    flowlib_units::format_duration(std::time::Duration::from_millis(ms))
}
