//! `export argo`: a flow's compiled graph as an Argo Workflows `WorkflowTemplate`
//! (`argoproj.io/v1alpha1`), so the flow runs on Kubernetes with no flowlib driver.
//!
//! The template's entry DAG is the graph's top level:
//! - `flowlib-init` creates an ordinary run record (`<exe> argo-init`) from the workflow's
//!   parameters, naming the workflow, and passes the run id on (`outputs.parameters.run`,
//!   also global as `flowlib-run` for the exit handler);
//! - one container template per step runs `<exe> step NAME --run RUN --task INDEX
//!   --attempt {{retries}}`, which reads its inputs from the datastore by deterministic task
//!   ids and commits as every executor does;
//! - a foreach split also writes its item indices (`step --emit-foreach`) as an output
//!   parameter; its body is a DAG template of its own, invoked `withParam` once per index
//!   (`{{item}}` is the full index, `2.5` in a nested foreach), and its join depends on that
//!   fan-out;
//! - a static branch is DAG `dependencies`, and so is a branch join;
//! - the exit handler `flowlib-end` (`<exe> argo-end`) writes the run's end record from the
//!   store's commit records, as the driver would.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::flow::{Flow, Graph, Step, Transition};

/// Where the split step's pod writes its foreach indices (an Argo output parameter).
pub const FOREACH_PATH: &str = "/tmp/flowlib-foreach.json";
/// Where `flowlib-init` writes the new run's id (an Argo output parameter).
pub const RUN_ID_PATH: &str = "/tmp/flowlib-run-id";
/// Where pods keep flowlib's local read cache (`FLOWLIB_CACHE_DIR`).
pub const CACHE_DIR: &str = "/tmp/flowlib-cache";
/// The global output parameter holding the run id, read by the exit handler.
pub const RUN_GLOBAL: &str = "flowlib-run";
const INIT: &str = "flowlib-init";
const END: &str = "flowlib-end";
const ENTRY: &str = "flowlib-flow";

/// How a flow is exported to Argo Workflows: the image and the path of the flow binary in
/// it, the datastore every pod uses, and the template's name.
///
/// ```
/// let opts = flowlib::ArgoOptions::new("s3://bucket/flows")
///     .with_image("registry.example.com/train:1.4")
///     .with_exe("/flow")
///     .with_secret("flowlib-s3");
/// assert_eq!(opts.exe, "/flow");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ArgoOptions {
    /// The datastore URL every pod opens (`s3://...`, `gs://...`, `az://...`, or a path on a
    /// volume every pod mounts).
    pub datastore: String,
    /// The container image (default: the flow name in kebab case, `:latest`).
    pub image: Option<String>,
    /// Path of the flow binary inside the image.
    pub exe: String,
    /// The `WorkflowTemplate`'s name (default: the flow name in kebab case).
    pub name: Option<String>,
    /// Secrets whose keys become every container's environment (`envFrom`): the
    /// datastore's credentials (`AWS_ACCESS_KEY_ID`, `GOOGLE_SERVICE_ACCOUNT`...).
    pub secrets: Vec<String>,
    /// The service account pods run as (for workload identity, IRSA...).
    pub service_account: Option<String>,
}

impl ArgoOptions {
    /// Export for pods that share the datastore `datastore`, with the binary at `/flow`.
    pub fn new(datastore: impl Into<String>) -> Self {
        ArgoOptions {
            datastore: datastore.into(),
            image: None,
            exe: "/flow".to_string(),
            name: None,
            secrets: Vec::new(),
            service_account: None,
        }
    }

    /// Run this image.
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    /// The flow binary is at `path` in the image.
    pub fn with_exe(mut self, path: impl Into<String>) -> Self {
        self.exe = path.into();
        self
    }

    /// Name the template `name`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Give every container the keys of secret `name` as environment variables.
    pub fn with_secret(mut self, name: impl Into<String>) -> Self {
        self.secrets.push(name.into());
        self
    }

    /// Run pods as service account `name`.
    pub fn with_service_account(mut self, name: impl Into<String>) -> Self {
        self.service_account = Some(name.into());
        self
    }
}

/// The `WorkflowTemplate` of flow `F` with `opts`, as a JSON value (render it with
/// [`to_yaml`](crate::export::to_yaml) or `serde_json`). Fails naming the problem for a
/// name Kubernetes would refuse, or step names that collide once made DNS-safe.
pub fn workflow_template<F: Flow>(opts: &ArgoOptions) -> Result<Value> {
    let graph = F::graph();
    let name = match &opts.name {
        Some(n) => {
            check_name(n)?;
            n.clone()
        }
        None => kebab(F::NAME),
    };
    check_datastore(&opts.datastore)?;
    let image = opts
        .image
        .clone()
        .unwrap_or_else(|| format!("{name}:latest"));
    let b = Builder {
        graph,
        opts,
        image,
        names: names(graph)?,
    };
    let params = params::<F>();
    let mut templates = vec![b.init_template(&params), b.end_template()];
    b.dag_template(None, &mut templates);
    for s in graph.steps() {
        templates.push(b.step_template(s));
    }
    let mut spec = json!({
        "entrypoint": ENTRY,
        "onExit": END,
        "podMetadata": {"labels": {"flowlib.dev/flow": kebab(F::NAME)}},
        "templates": templates,
    });
    if !params.is_empty() {
        spec["arguments"] = json!({
            "parameters": params.iter().map(|p| {
                let mut v = json!({"name": p.flag});
                if let Some(d) = &p.default {
                    v["value"] = json!(d);
                }
                if !p.help.is_empty() {
                    v["description"] = json!(p.help);
                }
                v
            }).collect::<Vec<_>>()
        });
    }
    if let Some(sa) = &opts.service_account {
        spec["serviceAccountName"] = json!(sa);
    }
    Ok(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTemplate",
        "metadata": {
            "name": name,
            "labels": {"flowlib.dev/flow": kebab(F::NAME)},
            "annotations": {
                "flowlib.dev/flow": F::NAME,
                "flowlib.dev/graph-digest": graph.digest().to_string(),
            },
        },
        "spec": spec,
    }))
}

/// A parameter of the flow as a workflow parameter.
struct Param {
    flag: &'static str,
    help: &'static str,
    /// The default as the command line takes it; `None` for a required parameter.
    default: Option<String>,
}

fn params<F: Flow>() -> Vec<Param> {
    let mut defaults = F::default();
    defaults.__apply_param_defaults();
    F::FIELDS
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.param.map(|p| (i, p)))
        .map(|(i, p)| Param {
            flag: p.flag,
            help: p.help,
            default: (!p.required).then(|| match defaults.__field_json(i).ok() {
                // A string parameter's command-line text is the string itself.
                Some(Value::String(s)) => s,
                Some(v) => v.to_string(),
                None => String::new(),
            }),
        })
        .collect()
}

/// Names of templates and DAG tasks: Argo takes `[a-z0-9-]` (no `_`), so step `fit_model`
/// is task `fit-model`, its template `step-fit-model`, and a foreach body `foreach-...`.
struct Names {
    task: Vec<String>,
}

fn names(graph: &Graph) -> Result<Names> {
    let task: Vec<String> = graph.steps().iter().map(|s| kebab(s.name)).collect();
    let mut seen = BTreeSet::from([INIT.to_string(), END.to_string(), ENTRY.to_string()]);
    for (s, t) in graph.steps().iter().zip(&task) {
        let mut mine = vec![t.clone(), format!("step-{t}")];
        if s.transition == Transition::Foreach {
            mine.push(format!("{t}-each"));
            mine.push(format!("foreach-{t}"));
        }
        for n in mine {
            if !seen.insert(n.clone()) {
                return Err(Error::invalid(format!(
                    "export argo: step `{}` would be named `{n}` in Argo, which another step or flowlib's own `{INIT}`/`{END}` already is: rename the step",
                    s.name
                )));
            }
        }
    }
    Ok(Names { task })
}

struct Builder<'a> {
    graph: &'a Graph,
    opts: &'a ArgoOptions,
    image: String,
    names: Names,
}

impl Builder<'_> {
    fn task(&self, step: usize) -> &str {
        &self.names.task[step]
    }

    fn container(&self, args: Vec<String>) -> Value {
        let mut all = vec!["--datastore".to_string(), self.opts.datastore.clone()];
        all.extend(args);
        let mut c = json!({
            "name": "main",
            "image": self.image,
            "command": [self.opts.exe],
            "args": all,
            // The read cache in the pod's scratch space: images may have no writable home.
            "env": [{"name": "FLOWLIB_CACHE_DIR", "value": CACHE_DIR}],
        });
        if !self.opts.secrets.is_empty() {
            c["envFrom"] = self
                .opts
                .secrets
                .iter()
                .map(|s| json!({"secretRef": {"name": s}}))
                .collect();
        }
        c
    }

    fn init_template(&self, params: &[Param]) -> Value {
        let graph = self.graph.digest().to_string();
        let mut args: Vec<String> = [
            "argo-init",
            "--workflow",
            "{{workflow.name}}",
            "--uid",
            "{{workflow.uid}}",
            "--graph",
            &graph,
            "--run-id-file",
            RUN_ID_PATH,
        ]
        .map(String::from)
        .to_vec();
        for p in params {
            args.push(format!("--{}", p.flag));
            args.push(format!("{{{{workflow.parameters.{}}}}}", p.flag));
        }
        json!({
            "name": INIT,
            "container": self.container(args),
            "outputs": {"parameters": [{
                "name": "run",
                "globalName": RUN_GLOBAL,
                "valueFrom": {"path": RUN_ID_PATH},
            }]},
        })
    }

    fn end_template(&self) -> Value {
        let args = [
            "argo-end",
            "--run",
            &format!("{{{{workflow.outputs.parameters.{RUN_GLOBAL}}}}}"),
            "--status",
            "{{workflow.status}}",
            "--failures",
            "{{workflow.failures}}",
        ]
        .map(String::from)
        .to_vec();
        json!({
            "name": END,
            "container": self.container(args),
            // Writing the end record again returns the one there: safe to retry.
            "retryStrategy": {"limit": 3, "retryPolicy": "OnError"},
        })
    }

    fn step_template(&self, s: &Step) -> Value {
        let retry = s.retry.map_or(0, |r| r.times);
        let limit = retry + s.platform_retries();
        let mut args: Vec<String> = vec![
            "step".into(),
            s.name.into(),
            "--run".into(),
            "{{inputs.parameters.run}}".into(),
            "--task".into(),
            "{{inputs.parameters.index}}".into(),
            "--attempt".into(),
            if limit > 0 { "{{retries}}" } else { "0" }.into(),
            "--capture".into(),
        ];
        if s.transition == Transition::Foreach {
            args.push("--emit-foreach".into());
            args.push(FOREACH_PATH.into());
        }
        let mut container = self.container(args);
        let resources = resources(s);
        if resources != json!({}) {
            container["resources"] = resources;
        }
        let mut t = json!({
            "name": format!("step-{}", self.task(s.index)),
            "metadata": {"labels": {"flowlib.dev/step": self.task(s.index)}},
            "inputs": {"parameters": [{"name": "run"}, {"name": "index"}]},
            "container": container,
        });
        if limit > 0 {
            // One Argo budget per template: `#[retry(times)]` plus the platform budget.
            // Without `times`, only Argo's errors (pod deleted, evicted, node lost) retry.
            let mut r = json!({
                "limit": limit,
                "retryPolicy": if retry > 0 { "Always" } else { "OnError" },
            });
            if let Some(p) = s.retry.filter(|p| p.times > 0 && p.delay_ms > 0) {
                r["backoff"] = json!({
                    "duration": flowlib_units::format_duration(std::time::Duration::from_millis(p.delay_ms)),
                    "factor": 2,
                });
            }
            t["retryStrategy"] = r;
        }
        if let Some(ms) = s.timeout_ms {
            t["activeDeadlineSeconds"] = json!(ms.div_ceil(1000));
        }
        if s.transition == Transition::Foreach {
            t["outputs"] = json!({"parameters": [{
                "name": "foreach",
                "valueFrom": {"path": FOREACH_PATH},
            }]});
        }
        t
    }

    /// The steps of one DAG: the top level (`split` = `None`) or the body of foreach split
    /// `split`, each once, in declaration order. A foreach split inside it stands for its
    /// whole body (a fan-out task), so the walk goes on from its join.
    fn members(&self, split: Option<usize>) -> Vec<usize> {
        let steps = self.graph.steps();
        let (entry, depth) = match split {
            None => (self.graph.start().index, 0),
            Some(s) => (steps[s].next[0], steps[s].depth + 1),
        };
        let mut seen = vec![false; steps.len()];
        let mut stack = vec![entry];
        while let Some(x) = stack.pop() {
            if std::mem::replace(&mut seen[x], true) {
                continue;
            }
            let s = &steps[x];
            if s.transition == Transition::Foreach {
                stack.extend(s.closed_by);
            } else {
                stack.extend(s.next.iter().copied().filter(|&n| steps[n].depth == depth));
            }
        }
        (0..steps.len()).filter(|&i| seen[i]).collect()
    }

    /// The DAG template of the top level or of foreach split `split`'s body, after those of
    /// the foreach bodies inside it.
    fn dag_template(&self, split: Option<usize>, out: &mut Vec<Value>) {
        let steps = self.graph.steps();
        let members = self.members(split);
        let (run, index) = match split {
            None => (
                format!("{{{{tasks.{INIT}.outputs.parameters.run}}}}"),
                "_".to_string(),
            ),
            Some(_) => (
                "{{inputs.parameters.run}}".to_string(),
                "{{inputs.parameters.index}}".to_string(),
            ),
        };
        let mut tasks = Vec::new();
        if split.is_none() {
            tasks.push(json!({"name": INIT, "template": INIT}));
        }
        for &x in &members {
            let s = &steps[x];
            let deps: Vec<String> = if s.is_start {
                vec![INIT.to_string()]
            } else if let Some((sp, crate::flow::JoinKind::Foreach)) = s.join {
                vec![format!("{}-each", self.task(sp))]
            } else {
                s.preds
                    .iter()
                    .filter(|p| members.contains(p))
                    .map(|&p| self.task(p).to_string())
                    .collect()
            };
            let mut t = json!({
                "name": self.task(x),
                "template": format!("step-{}", self.task(x)),
                "arguments": {"parameters": [
                    {"name": "run", "value": run},
                    {"name": "index", "value": index},
                ]},
            });
            if !deps.is_empty() {
                t["dependencies"] = json!(deps);
            }
            tasks.push(t);
            if s.transition == Transition::Foreach {
                tasks.push(json!({
                    "name": format!("{}-each", self.task(x)),
                    "template": format!("foreach-{}", self.task(x)),
                    "dependencies": [self.task(x)],
                    "withParam": format!("{{{{tasks.{}.outputs.parameters.foreach}}}}", self.task(x)),
                    "arguments": {"parameters": [
                        {"name": "run", "value": run},
                        {"name": "index", "value": "{{item}}"},
                    ]},
                }));
                self.dag_template(Some(x), out);
            }
        }
        let mut t = json!({
            "name": match split {
                None => ENTRY.to_string(),
                Some(s) => format!("foreach-{}", self.task(s)),
            },
            "dag": {"tasks": tasks},
        });
        if split.is_some() {
            t["inputs"] = json!({"parameters": [{"name": "run"}, {"name": "index"}]});
        }
        out.push(t);
    }
}

/// `#[resources]` as container resources: CPU and memory requested, memory also the limit
/// (as flowlib's process executor enforces it), GPUs as `nvidia.com/gpu` limits.
fn resources(s: &Step) -> Value {
    let r = s.resources;
    let mut requests = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    if r.cpu > 0 {
        requests.insert("cpu".into(), json!(r.cpu.to_string()));
    }
    if let Some(m) = r.memory {
        requests.insert("memory".into(), json!(quantity(m)));
        limits.insert("memory".into(), json!(quantity(m)));
    }
    if r.gpu > 0 {
        limits.insert("nvidia.com/gpu".into(), json!(r.gpu.to_string()));
    }
    let mut v = serde_json::Map::new();
    if !requests.is_empty() {
        v.insert("requests".into(), Value::Object(requests));
    }
    if !limits.is_empty() {
        v.insert("limits".into(), Value::Object(limits));
    }
    Value::Object(v)
}

/// Bytes as a Kubernetes quantity: `4Gi`, `64Mi`, or plain bytes.
fn quantity(bytes: u64) -> String {
    for (shift, unit) in [(40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// `TrainModel` → `train-model`, `fit_rates` → `fit-rates`: a DNS-1123 label.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    let mut prev = ' ';
    for c in name.chars() {
        let after_lower = prev.is_ascii_lowercase() || prev.is_ascii_digit();
        prev = c;
        if c.is_ascii_uppercase() {
            if after_lower {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() || !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        format!("flow-{out}")
    } else {
        out
    }
}

/// A datastore every pod can open with this very binary: a remote store whose backend is
/// compiled in, or an absolute path (a volume every pod mounts there).
fn check_datastore(url: &str) -> Result<()> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme = lower.split_once("://").map(|(s, _)| s);
    let feature = match scheme {
        Some("s3" | "s3a") => Some(("aws", cfg!(feature = "aws"))),
        Some("gs") => Some(("gcp", cfg!(feature = "gcp"))),
        Some("az" | "azure" | "abfs" | "abfss") => Some(("azure", cfg!(feature = "azure"))),
        Some("memory") => {
            return Err(Error::invalid(format!(
                "export argo: the datastore {url} is in one process's memory; pods need one they all reach (s3://, gs://, az://, or a path on a shared volume)"
            )))
        }
        Some("file") => None,
        Some(other) => {
            return Err(Error::invalid(format!(
                "export argo: unsupported datastore URL scheme `{other}://` in `{url}`; use s3://, gs://, az:// or an absolute path"
            )))
        }
        None if !url.starts_with('/') => {
            return Err(Error::invalid(format!(
                "export argo: the datastore path `{url}` is relative; pods need the absolute path where a volume they all mount holds it (or s3://, gs://, az://)"
            )))
        }
        None => None,
    };
    match feature {
        Some((name, false)) => Err(Error::invalid(format!(
            "export argo: this binary cannot open {url}: it was built without flowlib's `{name}` feature, and the pods run this binary; build it with `--features flowlib/{name}`"
        ))),
        _ => Ok(()),
    }
}

/// A `--name` Kubernetes takes for a `WorkflowTemplate` (a DNS-1123 label).
fn check_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 63
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "export argo: --name {n:?} is not a Kubernetes name (lowercase letters, digits and `-`, at most 63, not starting or ending with `-`)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::Result;
    use crate::prelude::*;

    #[derive(FlowState, Default, Serialize, Deserialize)]
    struct Fit {
        #[param(default = 0.5, help = "a rate")]
        rate: f64,
        #[param(required, help = "where the data is")]
        data: String,
        items: Vec<u32>,
    }

    #[flow]
    impl Fit {
        #[step(start, next = fit_model, foreach = items)]
        fn start(&mut self) -> Result<()> {
            Ok(())
        }
        #[step(next = pick)]
        #[resources(cpu = 2, memory = "4GiB", gpu = 1)]
        #[retry(times = 3, delay = "1s")]
        #[timeout("30m")]
        fn fit_model(&mut self, item: &u32) -> Result<()> {
            let _ = item;
            Ok(())
        }
        #[step(join, next = end)]
        fn pick(&mut self, inputs: Inputs<Self>) -> Result<()> {
            let _ = inputs;
            Ok(())
        }
        #[step(end)]
        fn end(&mut self) -> Result<()> {
            Ok(())
        }
    }

    fn template<'a>(doc: &'a Value, name: &str) -> &'a Value {
        doc["spec"]["templates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no template {name}"))
    }

    #[test]
    fn attributes_map_to_resources_retries_and_deadlines() {
        let opts = ArgoOptions::new("/shared/flows")
            .with_image("img:1")
            .with_secret("creds")
            .with_service_account("runner");
        let doc = workflow_template::<Fit>(&opts).unwrap();
        assert_eq!(doc["metadata"]["name"], "fit");
        assert_eq!(doc["spec"]["serviceAccountName"], "runner");
        let params = &doc["spec"]["arguments"]["parameters"];
        assert_eq!(
            params[0],
            json!({"name": "rate", "value": "0.5", "description": "a rate"})
        );
        assert_eq!(
            params[1],
            json!({"name": "data", "description": "where the data is"})
        );
        let fit = template(&doc, "step-fit-model");
        let c = &fit["container"];
        assert_eq!(c["image"], "img:1");
        assert_eq!(c["envFrom"], json!([{"secretRef": {"name": "creds"}}]));
        assert_eq!(
            c["resources"],
            json!({"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"memory": "4Gi", "nvidia.com/gpu": "1"}})
        );
        assert_eq!(
            fit["retryStrategy"],
            json!({"limit": 6, "retryPolicy": "Always", "backoff": {"duration": "1s", "factor": 2}})
        );
        assert_eq!(fit["activeDeadlineSeconds"], 1800);
        let args: Vec<&str> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "--datastore",
                "/shared/flows",
                "step",
                "fit_model",
                "--run",
                "{{inputs.parameters.run}}",
                "--task",
                "{{inputs.parameters.index}}",
                "--attempt",
                "{{retries}}",
                "--capture"
            ]
        );
        // A step without #[retry]: only the platform budget, only on Argo's errors.
        assert_eq!(
            template(&doc, "step-end")["retryStrategy"],
            json!({"limit": 3, "retryPolicy": "OnError"})
        );
        // The split emits its items; the fan-out goes over them; the join waits for it.
        let start = template(&doc, "step-start");
        assert_eq!(
            start["outputs"]["parameters"][0]["valueFrom"]["path"],
            FOREACH_PATH
        );
        let tasks = template(&doc, ENTRY)["dag"]["tasks"].as_array().unwrap();
        let each = tasks.iter().find(|t| t["name"] == "start-each").unwrap();
        assert_eq!(
            each["withParam"],
            "{{tasks.start.outputs.parameters.foreach}}"
        );
        assert_eq!(each["template"], "foreach-start");
        let pick = tasks.iter().find(|t| t["name"] == "pick").unwrap();
        assert_eq!(pick["dependencies"], json!(["start-each"]));
        let init = template(&doc, INIT);
        let init_args = init["container"]["args"].to_string();
        assert!(
            init_args.contains("\"--data\",\"{{workflow.parameters.data}}\""),
            "{init_args}"
        );
    }

    #[test]
    fn bad_names_and_stores_are_refused() {
        let e = workflow_template::<Fit>(&ArgoOptions::new("/shared/flows").with_name("Fit_1"))
            .unwrap_err();
        assert!(e.to_string().contains("not a Kubernetes name"), "{e}");
        let e = workflow_template::<Fit>(&ArgoOptions::new("memory://x")).unwrap_err();
        assert!(e.to_string().contains("one process's memory"), "{e}");
        let e = workflow_template::<Fit>(&ArgoOptions::new("./.flowlib")).unwrap_err();
        assert!(e.to_string().contains("is relative"), "{e}");
        let e = workflow_template::<Fit>(&ArgoOptions::new("ftp://x")).unwrap_err();
        assert!(
            e.to_string().contains("unsupported datastore URL scheme"),
            "{e}"
        );
        assert!(workflow_template::<Fit>(&ArgoOptions::new("/shared/flows")).is_ok());
        if !cfg!(feature = "gcp") {
            let e = workflow_template::<Fit>(&ArgoOptions::new("gs://b")).unwrap_err();
            assert!(e.to_string().contains("`gcp` feature"), "{e}");
        }
    }

    #[test]
    fn names_and_quantities() {
        assert_eq!(kebab("TrainModel"), "train-model");
        assert_eq!(kebab("fit_rates"), "fit-rates");
        assert_eq!(kebab("HTTPFlow"), "httpflow");
        assert_eq!(quantity(4 << 30), "4Gi");
        assert_eq!(quantity(64 << 20), "64Mi");
        assert_eq!(quantity(1000), "1000");
        assert!(check_name("train").is_ok());
        assert!(check_name("Train").is_err());
        assert!(check_name("-x").is_err());
    }
}
