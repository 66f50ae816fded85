//! The Kubernetes engine (`--with kubernetes`, feature `kubernetes`): tasks run as
//! `batch/v1` Jobs through the Kubernetes API (`kube` and `k8s-openapi`), configured by an
//! ordinary kubeconfig (`KUBECONFIG`, `~/.kube/config`) or the in-cluster service account.
//! What all batch engines share is in [`crate::exec::remote`]; this is the Kubernetes part.
//!
//! - **Submission.** A lone task is a one-pod Job; a foreach's ready tasks are **one
//!   Indexed Job** (`manifest.rs`). The container runs [`crate::exec::entry`]: it gets the
//!   flow binary by digest (from the image, a presigned URL of the datastore's copy, or a
//!   shared volume), verifies it and runs `task-exec --spec`. No Python, pip or SDK in the
//!   image.
//! - **Status.** Two list requests per poll, whatever the number of tasks: the run's Jobs
//!   and the run's pods, by label (paginated by 500). The commit record is the truth; the
//!   pod's status only explains a task that ended without one: `OOMKilled`, the pod's
//!   `DeadlineExceeded`, a `DisruptionTarget` condition (eviction, preemption, node drain:
//!   a platform failure), an image that cannot be pulled, an exit code or signal.
//! - **Stuck pods.** A pod that waits on `ErrImagePull`/`ImagePullBackOff` for
//!   `FLOWLIB_K8S_PULL_GRACE` seconds (default 120), or at once on `InvalidImageName` or a
//!   missing secret (`CreateContainerConfigError`), is deleted and reported with that
//!   reason; an unschedulable pod waits (the scheduler's message is shown with
//!   `--pending-timeout`).
//! - **Logs.** From the store, written while the task runs; the pod log API only for a
//!   container that died before flowlib started in it (it loses the tail otherwise).
//! - **Cancel.** Ctrl-C, `cancel <run>` and a timed-out attempt delete the Jobs
//!   (background propagation deletes their pods).

mod manifest;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};

use crate::error::{Error, Result};
use crate::exec::entry::{self, NO_BINARY_EXIT};
use crate::exec::package::Package;
use crate::exec::remote::{Engine, Explained, JobState, Submission};
use crate::flow::{Graph, Step};
use crate::store::{Backend, Datastore};
use manifest::{JobParts, SharedVolume, INDEX_LABEL, JOB_NAME_LABEL, RUN_LABEL};

/// One task of a submitted Job: the Job and, for an Indexed Job, its completion index.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PodTask {
    namespace: String,
    job: String,
    index: Option<u32>,
}

impl fmt::Display for PodTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}/{} index {i}", self.namespace, self.job),
            None => write!(f, "{}/{}", self.namespace, self.job),
        }
    }
}

/// A container's terminated state.
#[derive(Clone, Debug, Default)]
struct Terminated {
    reason: Option<String>,
    code: i32,
    signal: Option<i32>,
    message: Option<String>,
}

/// What a task's latest pod says, kept to explain its end.
#[derive(Clone, Debug, Default)]
struct PodView {
    name: String,
    phase: String,
    /// The pod's own reason (`DeadlineExceeded`, `Evicted`, `NodeLost`).
    reason: Option<String>,
    message: Option<String>,
    /// The container's terminated state.
    terminated: Option<Terminated>,
    /// The container's waiting state: (reason, message).
    waiting: Option<(String, String)>,
    /// A `DisruptionTarget` condition: (reason, message).
    disruption: Option<(String, String)>,
    /// A `PodScheduled=False` condition: (reason, message).
    unschedulable: Option<(String, String)>,
    node: Option<String>,
    /// The container started (so the pod log may have something).
    ran: bool,
}

/// The Kubernetes engine of one run.
pub(crate) struct Kubernetes {
    rt: tokio::runtime::Runtime,
    client: kube::Client,
    /// The kubeconfig context's namespace, or `FLOWLIB_K8S_NAMESPACE`.
    default_namespace: String,
    default_image: Option<String>,
    exe_in_image: Option<String>,
    volume: Option<SharedVolume>,
    /// Variables of the driver's environment passed to the pods (`FLOWLIB_K8S_ENV`).
    pass_env: Vec<(String, String)>,
    pull_grace: Duration,
    /// `FLOWLIB_K8S_SECRETS`: secrets every pod gets as environment (`envFrom`).
    secrets: Vec<String>,
    run: Option<String>,
    seq: u32,
    pods: HashMap<PodTask, PodView>,
    /// Tasks whose pod waits on something that will not fix itself, since when.
    stuck: HashMap<PodTask, Instant>,
    /// Tasks given up because their pod was stuck: reported ended.
    given_up: BTreeSet<PodTask>,
    /// API requests made (the benchmarks report the polling rate).
    pub(crate) requests: std::cell::Cell<u64>,
}

impl fmt::Debug for Kubernetes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kubernetes")
            .field("namespace", &self.default_namespace)
            .field("run", &self.run)
            .field("requests", &self.requests.get())
            .finish_non_exhaustive()
    }
}

/// One line for an API error: the server's message and reason, not a debug dump.
fn api_error(what: &str, e: kube::Error) -> Error {
    let text = match &e {
        kube::Error::Api(s) => format!("{} ({}, HTTP {})", s.message, s.reason, s.code),
        other => crate::error::chain(other),
    };
    Error::invalid(format!("Kubernetes: {what}: {text}"))
}

fn env_list(name: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Kubernetes {
    /// The engine, from the kubeconfig (or the in-cluster service account).
    pub(crate) fn new() -> Result<Kubernetes> {
        // kube's rustls needs a process-wide crypto provider; with no other TLS user in the
        // program none is chosen (and with two compiled in, none can be). An error means
        // one is installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::invalid(format!("cannot start the Kubernetes client: {e}")))?;
        let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
        let kubeconfig = std::env::var_os("KUBECONFIG")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".kube/config"))
            });
        if !in_cluster && !kubeconfig.as_ref().is_some_and(|p| p.exists()) {
            return Err(Error::invalid(format!(
                "--with kubernetes: no kubeconfig at {} and not inside a cluster; set KUBECONFIG to your cluster's kubeconfig (kubectl config view --raw)",
                kubeconfig
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "~/.kube/config".into())
            )));
        }
        let config = rt.block_on(kube::Config::infer()).map_err(|e| {
            Error::invalid(format!(
                "--with kubernetes: cannot read the kubeconfig: {e}"
            ))
        })?;
        let default_namespace = std::env::var("FLOWLIB_K8S_NAMESPACE")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = {
            let _guard = rt.enter();
            kube::Client::try_from(config).map_err(|e| {
                Error::invalid(format!("--with kubernetes: cannot make a client: {e}"))
            })?
        };
        let pass_env = env_list("FLOWLIB_K8S_ENV")
            .into_iter()
            .filter_map(|k| std::env::var(&k).ok().map(|v| (k, v)))
            .collect();
        let pull_grace = std::env::var("FLOWLIB_K8S_PULL_GRACE")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .map_or(Duration::from_secs(120), Duration::from_secs);
        Ok(Kubernetes {
            rt,
            client,
            default_namespace,
            default_image: std::env::var("FLOWLIB_K8S_IMAGE")
                .ok()
                .filter(|s| !s.is_empty()),
            exe_in_image: std::env::var("FLOWLIB_K8S_EXE")
                .ok()
                .filter(|s| !s.is_empty()),
            volume: None,
            pass_env,
            pull_grace,
            secrets: env_list("FLOWLIB_K8S_SECRETS"),
            run: None,
            seq: 0,
            pods: HashMap::new(),
            stuck: HashMap::new(),
            given_up: BTreeSet::new(),
            requests: std::cell::Cell::new(0),
        })
    }

    fn count(&self) {
        self.requests.set(self.requests.get() + 1);
    }

    fn namespace_of(&self, s: &Step) -> String {
        s.kubernetes
            .and_then(|k| k.namespace)
            .map(str::to_string)
            .unwrap_or_else(|| self.default_namespace.clone())
    }

    fn image_of(&self, s: &Step) -> Option<String> {
        s.kubernetes
            .and_then(|k| k.image)
            .map(str::to_string)
            .or_else(|| self.default_image.clone())
    }

    fn secrets_of(&self, s: &Step) -> Vec<String> {
        let mut v: Vec<String> = s
            .kubernetes
            .map(|k| k.secrets.iter().map(|x| x.to_string()).collect())
            .unwrap_or_default();
        for x in &self.secrets {
            if !v.contains(x) {
                v.push(x.clone());
            }
        }
        v
    }

    fn jobs(&self, ns: &str) -> Api<Job> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn pod_api(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Every object of a kind in `ns` with the run's label, page by page.
    fn list_all<K>(&self, run: &str, api: Api<K>, what: &str) -> Result<Vec<K>>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + fmt::Debug,
    {
        let selector = format!("{RUN_LABEL}={}", manifest::label_value(run));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().labels(&selector).limit(500);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            self.count();
            let page = self
                .rt
                .block_on(api.list(&lp))
                .map_err(|e| api_error(&format!("listing the run's {what}"), e))?;
            out.extend(page.items);
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// The largest allocatable CPU, memory and GPU count of any node (None: not allowed
    /// to list nodes, as in many namespaced setups).
    fn node_capacity(&self, gpu_resource: &str) -> Option<(f64, u64, u64)> {
        let api: Api<Node> = Api::all(self.client.clone());
        self.count();
        let nodes = self.rt.block_on(api.list(&ListParams::default())).ok()?;
        let mut best = (0.0f64, 0u64, 0u64);
        for n in nodes.items {
            let Some(a) = n.status.and_then(|s| s.allocatable) else {
                continue;
            };
            let cpu = a.get("cpu").and_then(|q| parse_cpu(&q.0)).unwrap_or(0.0);
            let mem = a.get("memory").and_then(|q| parse_bytes(&q.0)).unwrap_or(0);
            let gpu = a
                .get(gpu_resource)
                .and_then(|q| q.0.parse::<u64>().ok())
                .unwrap_or(0);
            best = (best.0.max(cpu), best.1.max(mem), best.2.max(gpu));
        }
        Some(best)
    }

    fn view_of(pod: &Pod) -> PodView {
        let st = pod.status.clone().unwrap_or_default();
        let mut v = PodView {
            name: pod.metadata.name.clone().unwrap_or_default(),
            phase: st.phase.clone().unwrap_or_default(),
            reason: st.reason.clone(),
            message: st.message.clone(),
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            ..PodView::default()
        };
        for c in st.conditions.unwrap_or_default() {
            if c.type_ == "DisruptionTarget" && c.status == "True" {
                v.disruption = Some((c.reason.unwrap_or_default(), c.message.unwrap_or_default()));
            } else if c.type_ == "PodScheduled" && c.status == "False" {
                v.unschedulable =
                    Some((c.reason.unwrap_or_default(), c.message.unwrap_or_default()));
            }
        }
        if let Some(cs) = st.container_statuses.and_then(|c| c.into_iter().next()) {
            if let Some(state) = cs.state {
                if let Some(t) = state.terminated {
                    v.ran = true;
                    v.terminated = Some(Terminated {
                        reason: t.reason,
                        code: t.exit_code,
                        signal: t.signal,
                        message: t.message,
                    });
                } else if let Some(w) = state.waiting {
                    v.waiting = Some((w.reason.unwrap_or_default(), w.message.unwrap_or_default()));
                } else if state.running.is_some() {
                    v.ran = true;
                }
            }
        }
        v
    }

    /// A waiting reason that will not fix itself soon, and whether it is fatal at once.
    fn stuck_reason(v: &PodView) -> Option<bool> {
        let (reason, _) = v.waiting.as_ref()?;
        match reason.as_str() {
            "InvalidImageName" | "CreateContainerConfigError" | "CreateContainerError" => {
                Some(true)
            }
            "ErrImagePull" | "ImagePullBackOff" => Some(false),
            _ => None,
        }
    }
}

/// `"2"`, `"1500m"` as cores.
fn parse_cpu(q: &str) -> Option<f64> {
    match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok().map(|m| m / 1000.0),
        None => q.parse().ok(),
    }
}

/// `"8Gi"`, `"8035100Ki"`, `"512M"`, `"1000"` as bytes.
fn parse_bytes(q: &str) -> Option<u64> {
    let split = q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len());
    let (n, suffix) = q.split_at(split);
    let n: f64 = n.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        _ => return None,
    };
    Some((n * mult) as u64)
}

/// `"0-2,5"` (a Job's completed or failed indexes) holds `i`.
fn in_intervals(text: Option<&str>, i: u32) -> bool {
    text.unwrap_or("")
        .split(',')
        .any(|part| match part.split_once('-') {
            Some((a, b)) => {
                matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a <= i && i <= b)
            }
            None => part.parse::<u32>() == Ok(i),
        })
}

impl Engine for Kubernetes {
    type Id = PodTask;

    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn describe(&self, id: &PodTask) -> String {
        format!("Kubernetes Job {id}")
    }

    /// Every step has an image; no step asks for more than the largest node has
    /// (when nodes may be listed); the API server accepts each step's Job (a server-side
    /// dry run: a missing namespace, an invalid field, a quota or an admission policy).
    fn check(&self, graph: &Graph, steps: &[usize]) -> Result<()> {
        let me = self;
        let mut problems = Vec::new();
        let chosen: Vec<&Step> = graph
            .steps()
            .iter()
            .filter(|s| steps.contains(&s.index))
            .collect();
        for s in &chosen {
            if me.image_of(s).is_none() {
                problems.push(format!(
                    "step `{}` has no container image: give it #[kubernetes(image = \"...\")] or set FLOWLIB_K8S_IMAGE",
                    s.name
                ));
            }
        }
        if !problems.is_empty() {
            return Err(Error::Resources(problems.join("; ")));
        }
        let gpu_resources: BTreeSet<String> = chosen
            .iter()
            .map(|s| {
                format!(
                    "{}.com/gpu",
                    s.kubernetes.and_then(|k| k.gpu_vendor).unwrap_or("nvidia")
                )
            })
            .collect();
        for gpu in gpu_resources {
            let Some((cpu, mem, gpus)) = me.node_capacity(&gpu) else {
                break;
            };
            for s in chosen.iter().filter(|s| {
                format!(
                    "{}.com/gpu",
                    s.kubernetes.and_then(|k| k.gpu_vendor).unwrap_or("nvidia")
                ) == gpu
            }) {
                let r = &s.resources;
                let want_mem = r.memory.unwrap_or(manifest::DEFAULT_MEMORY);
                if f64::from(r.cpu.max(1)) > cpu {
                    problems.push(format!(
                        "step `{}` asks for {} CPUs; the largest node has {cpu} allocatable",
                        s.name, r.cpu
                    ));
                }
                if want_mem > mem {
                    problems.push(format!(
                        "step `{}` asks for {} of memory; the largest node has {} allocatable",
                        s.name,
                        crate::flow::graph::format_bytes(want_mem),
                        crate::flow::graph::format_bytes(mem)
                    ));
                }
                if u64::from(r.gpu) > gpus {
                    problems.push(format!(
                        "step `{}` asks for {} GPU(s) ({gpu}); the largest node has {gpus}",
                        s.name, r.gpu
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::Resources(format!(
                "no node of the cluster could run it: {}",
                problems.join("; ")
            )));
        }
        for s in &chosen {
            let image = me.image_of(s).expect("checked above");
            let entry = entry::Entry {
                command: vec!["/bin/sh".into(), "-c".into(), "true".into()],
                env: Vec::new(),
            };
            let job = JobParts {
                name: format!("fl-check-{}", manifest::dns_part(s.name, 40)),
                flow: "check",
                run: "check",
                step: s,
                attempt: 0,
                tasks: 2,
                parallelism: 1,
                image: &image,
                entry: &entry,
                volume: None,
                secrets: &me.secrets_of(s),
            }
            .job();
            let ns = me.namespace_of(s);
            let pp = PostParams {
                dry_run: true,
                ..PostParams::default()
            };
            me.count();
            if let Err(e) = me.rt.block_on(me.jobs(&ns).create(&pp, &job)) {
                problems.push(format!(
                    "step `{}`: the API server refuses its Job in namespace `{ns}`: {}",
                    s.name,
                    api_error("dry run", e)
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Resources(problems.join("; ")))
        }
    }

    fn begin(&mut self, ds: &Datastore, _package: &Package) -> Result<()> {
        if let Backend::Local(root) = ds.backend() {
            let Some(claim) = std::env::var("FLOWLIB_K8S_VOLUME")
                .ok()
                .filter(|s| !s.is_empty())
            else {
                return Err(Error::invalid(format!(
                    "--with kubernetes: the datastore {} is a directory the pods cannot see; use an object store (s3://, gs://, az://), or put the directory on a PersistentVolumeClaim and set FLOWLIB_K8S_VOLUME=<claim> (it is mounted at the same path)",
                    ds.url()
                )));
            };
            self.volume = Some(SharedVolume {
                claim,
                path: root.display().to_string(),
            });
        }
        Ok(())
    }

    /// A Job's `completions` may be up to 100,000; the pod specs list one spec digest per
    /// index in one variable, so Jobs stay at 1,000 tasks (65 KB of digests).
    fn max_array(&self) -> usize {
        1000
    }

    /// `FLOWLIB_K8S_INDEXED=off`: one Job per task (for clusters older than 1.21, and to
    /// measure what Indexed Jobs save).
    fn arrays(&self) -> bool {
        std::env::var("FLOWLIB_K8S_INDEXED").map_or(true, |v| v != "off")
    }

    fn throttle(&self, step: &Step) -> Option<usize> {
        step.kubernetes
            .and_then(|k| k.max_parallel)
            .map(|p| p as usize)
    }

    fn submit(&mut self, s: &Submission<'_>) -> Result<Vec<PodTask>> {
        self.run.get_or_insert_with(|| s.run.to_string());
        let image = self.image_of(s.step).ok_or_else(|| {
            Error::invalid(format!(
                "step `{}` has no container image (#[kubernetes(image)] or FLOWLIB_K8S_IMAGE)",
                s.step.name
            ))
        })?;
        // An Indexed Job's pods fetch their spec list from the datastore: every pod of the
        // Job carries its template's environment, so 1,000 digests inline would be 65 KB in
        // each pod object (65 MB for every list of the run's pods).
        let make = if s.specs.len() > 1 {
            entry::entry_listed
        } else {
            entry::entry
        };
        let mut e = make(
            s.ds,
            s.package,
            s.specs,
            "JOB_COMPLETION_INDEX",
            self.exe_in_image.as_deref(),
        )?;
        e.env.extend(self.pass_env.iter().cloned());
        self.seq += 1;
        let attempt = s.tasks.first().map_or(0, |t| t.attempt);
        let name = format!(
            "fl-{}-{}-{}-{}",
            manifest::dns_part(s.run, 26),
            manifest::dns_part(s.step.name, 20),
            attempt,
            self.seq
        );
        let n = s.specs.len();
        let job = JobParts {
            name: name.clone(),
            flow: s.flow,
            run: s.run,
            step: s.step,
            attempt,
            tasks: n,
            parallelism: s.throttle.unwrap_or(n),
            image: &image,
            entry: &e,
            volume: self.volume.as_ref(),
            secrets: &self.secrets_of(s.step),
        }
        .job();
        let ns = self.namespace_of(s.step);
        self.count();
        self.rt
            .block_on(self.jobs(&ns).create(&PostParams::default(), &job))
            .map_err(|e| api_error(&format!("creating Job {ns}/{name}"), e))?;
        Ok((0..n)
            .map(|i| PodTask {
                namespace: ns.clone(),
                job: name.clone(),
                index: (n > 1).then_some(i as u32),
            })
            .collect())
    }

    fn poll(&mut self, ids: &[PodTask]) -> Result<HashMap<PodTask, JobState>> {
        let namespaces: BTreeSet<String> = ids.iter().map(|i| i.namespace.clone()).collect();
        let mut out = HashMap::new();
        for ns in namespaces {
            let run = self.run.clone().unwrap_or_default();
            let jobs = self.list_all(&run, self.jobs(&ns), "Jobs")?;
            let pods = self.list_all(&run, self.pod_api(&ns), "pods")?;
            let jobs: HashMap<String, Job> = jobs
                .into_iter()
                .filter_map(|j| j.metadata.name.clone().map(|n| (n, j)))
                .collect();
            // The newest pod of each (Job, index).
            let mut latest: BTreeMap<(String, Option<u32>), Pod> = BTreeMap::new();
            for p in pods {
                let labels = p.metadata.labels.clone().unwrap_or_default();
                let Some(job) = labels
                    .get(JOB_NAME_LABEL)
                    .or_else(|| labels.get("job-name"))
                    .cloned()
                else {
                    continue;
                };
                let index = labels.get(INDEX_LABEL).and_then(|i| i.parse::<u32>().ok());
                let key = (job, index);
                let newer = latest
                    .get(&key)
                    .is_none_or(|q| p.metadata.creation_timestamp >= q.metadata.creation_timestamp);
                if newer {
                    latest.insert(key, p);
                }
            }
            for id in ids.iter().filter(|i| i.namespace == ns) {
                let Some(job) = jobs.get(&id.job) else {
                    continue; // gone: the executor asks why
                };
                if self.given_up.contains(id) {
                    out.insert(id.clone(), JobState::Ended);
                    continue;
                }
                let pod = latest.get(&(id.job.clone(), id.index));
                let state = match pod {
                    Some(p) => {
                        let v = Self::view_of(p);
                        let st = match v.phase.as_str() {
                            "Succeeded" | "Failed" => JobState::Ended,
                            "Running" => JobState::Running,
                            _ => {
                                let now = Instant::now();
                                match Self::stuck_reason(&v) {
                                    Some(fatal) => {
                                        let since = *self.stuck.entry(id.clone()).or_insert(now);
                                        if fatal || now.duration_since(since) >= self.pull_grace {
                                            self.count();
                                            let _ = self.rt.block_on(
                                                self.pod_api(&ns)
                                                    .delete(&v.name, &DeleteParams::background()),
                                            );
                                            self.given_up.insert(id.clone());
                                            JobState::Ended
                                        } else {
                                            JobState::Pending(
                                                v.waiting.clone().map(|w| w.0).unwrap_or_default(),
                                            )
                                        }
                                    }
                                    None => JobState::Pending(
                                        v.unschedulable
                                            .as_ref()
                                            .map(|(r, m)| format!("{r}: {m}"))
                                            .or_else(|| v.waiting.as_ref().map(|w| w.0.clone()))
                                            .unwrap_or_else(|| "ContainerCreating".into()),
                                    ),
                                }
                            }
                        };
                        self.pods.insert(id.clone(), v);
                        st
                    }
                    None => {
                        let status = job.status.clone().unwrap_or_default();
                        let over = match id.index {
                            Some(i) => {
                                in_intervals(status.completed_indexes.as_deref(), i)
                                    || in_intervals(status.failed_indexes.as_deref(), i)
                            }
                            None => {
                                status.succeeded.unwrap_or(0) > 0 || status.failed.unwrap_or(0) > 0
                            }
                        };
                        let failed_job = status.conditions.unwrap_or_default().iter().any(|c| {
                            (c.type_ == "Failed" || c.type_ == "Complete") && c.status == "True"
                        });
                        if over || failed_job {
                            JobState::Ended
                        } else {
                            JobState::Pending(
                                "waiting for the Job controller to create the pod".into(),
                            )
                        }
                    }
                };
                out.insert(id.clone(), state);
            }
        }
        Ok(out)
    }

    /// The pod log's tail, only for a container that ran but recorded nothing.
    fn tail(&mut self, id: &PodTask) -> Vec<String> {
        let Some(v) = self.pods.get(id).cloned() else {
            return Vec::new();
        };
        if !v.ran {
            return Vec::new();
        }
        let lp = LogParams {
            tail_lines: Some(40),
            ..LogParams::default()
        };
        self.count();
        match self
            .rt
            .block_on(self.pod_api(&id.namespace).logs(&v.name, &lp))
        {
            Ok(text) => text.lines().map(str::to_string).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn explain(
        &mut self,
        id: &PodTask,
        _last: Option<&JobState>,
        _tail: &[String],
        memory: Option<u64>,
    ) -> Explained {
        let Some(v) = self.pods.remove(id) else {
            return Explained {
                message: format!(
                    "the Job {} or its pod no longer exists (deleted outside flowlib, or its TTL passed) and the task recorded no result",
                    id.job
                ),
                platform: true,
            };
        };
        let node = v
            .node
            .as_ref()
            .map(|n| format!(" on node {n}"))
            .unwrap_or_default();
        if self.given_up.remove(id) {
            let (reason, message) = v.waiting.clone().unwrap_or_default();
            let image_problem = reason.contains("Image");
            return Explained {
                message: if image_problem {
                    format!("the container image could not be pulled ({reason}: {message}); check #[kubernetes(image)] / FLOWLIB_K8S_IMAGE and the registry's credentials (imagePullSecrets of the service account)")
                } else {
                    format!("the container could not be created ({reason}: {message}); a secret named in #[kubernetes(secrets)] may be missing")
                },
                // A registry outage is the platform's; a wrong name fails again and again.
                platform: reason == "ErrImagePull" || reason == "ImagePullBackOff",
            };
        }
        if let Some((reason, message)) = &v.disruption {
            return Explained {
                message: format!(
                    "the pod {} was disrupted{node} ({reason}: {message}): a platform failure (eviction, preemption or node drain)",
                    v.name
                ),
                platform: true,
            };
        }
        match v.reason.as_deref() {
            Some("DeadlineExceeded") => {
                return Explained {
                    message: format!(
                        "timed out: the pod ran past its activeDeadlineSeconds{node} (#[timeout] sets it)"
                    ),
                    platform: false,
                }
            }
            Some(r @ ("Evicted" | "NodeLost" | "Shutdown" | "Terminated" | "NodeAffinity")) => {
                return Explained {
                    message: format!(
                        "the pod {} was stopped by Kubernetes{node} ({r}: {}): a platform failure",
                        v.name,
                        v.message.clone().unwrap_or_default()
                    ),
                    platform: true,
                }
            }
            _ => {}
        }
        let mem = memory.unwrap_or(manifest::DEFAULT_MEMORY);
        match &v.terminated {
            Some(t) if t.reason.as_deref() == Some("OOMKilled") => Explained {
                message: format!(
                    "out of memory: Kubernetes killed the container at its memory limit of {} (OOMKilled; #[resources(memory)] sets the limit)",
                    crate::flow::graph::format_bytes(mem)
                ),
                platform: false,
            },
            Some(t) if t.code == NO_BINARY_EXIT => Explained {
                message: "the container could not get the flow binary or its task spec (exit 97; its last output says why)".into(),
                platform: false,
            },
            Some(Terminated {
                reason,
                code,
                signal,
                message,
            }) => {
                let how = match signal {
                    Some(sig) if *sig != 0 => format!(
                        "killed by signal {sig} ({})",
                        crate::exec::child::signal_name(*sig)
                    ),
                    _ if *code > 128 => format!(
                        "exit code {code}: killed by signal {} ({})",
                        code - 128,
                        crate::exec::child::signal_name(code - 128)
                    ),
                    _ => format!("exit code {code}"),
                };
                let what = reason.clone().unwrap_or_else(|| "Error".into());
                let extra = message
                    .as_ref()
                    .filter(|m| !m.is_empty())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                Explained {
                    message: format!(
                        "the container ended ({what}, {how}{extra}){node} without recording a result"
                    ),
                    platform: false,
                }
            }
            None => Explained {
                message: format!(
                    "the pod {} ended in phase {} before its container ran{node}{}",
                    v.name,
                    if v.phase.is_empty() { "unknown" } else { &v.phase },
                    v.message
                        .as_ref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
                platform: true,
            },
        }
    }

    fn cancel(&mut self, ids: &[PodTask]) -> Result<()> {
        let mut jobs: BTreeMap<(String, String), Vec<&PodTask>> = BTreeMap::new();
        for id in ids {
            jobs.entry((id.namespace.clone(), id.job.clone()))
                .or_default()
                .push(id);
        }
        let mut errors = Vec::new();
        for ((ns, job), tasks) in jobs {
            // One element of an Indexed Job (a timed-out attempt): delete its pod, which
            // fails that index only (`backoffLimitPerIndex: 0`). Otherwise the whole Job.
            let one = tasks.len() == 1 && tasks[0].index.is_some();
            let pod_name = one
                .then(|| self.pods.get(tasks[0]).map(|v| v.name.clone()))
                .flatten();
            self.count();
            let r = match pod_name {
                Some(pod) => self
                    .rt
                    .block_on(self.pod_api(&ns).delete(&pod, &DeleteParams::background()))
                    .map(|_| ()),
                None => self
                    .rt
                    .block_on(self.jobs(&ns).delete(&job, &DeleteParams::background()))
                    .map(|_| ()),
            };
            match r {
                Ok(()) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    errors.push(api_error(&format!("deleting Job {ns}/{job}"), e).to_string())
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(errors.join("; ")))
        }
    }
}

/// `cancel <run>`: delete every Job of the run in the namespaces its steps use. Returns
/// how many Jobs were deleted.
pub(crate) fn cancel_run_jobs(graph: &Graph, run: &str) -> Result<usize> {
    let k = Kubernetes::new()?;
    let namespaces: BTreeSet<String> = graph.steps().iter().map(|s| k.namespace_of(s)).collect();
    let mut n = 0;
    for ns in namespaces {
        let jobs = k.list_all(run, k.jobs(&ns), "Jobs")?;
        for j in jobs {
            let Some(name) = j.metadata.name else {
                continue;
            };
            match k
                .rt
                .block_on(k.jobs(&ns).delete(&name, &DeleteParams::background()))
            {
                Ok(_) => n += 1,
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(api_error(&format!("deleting Job {ns}/{name}"), e)),
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_and_index_intervals() {
        assert_eq!(parse_cpu("1500m"), Some(1.5));
        assert_eq!(parse_cpu("2"), Some(2.0));
        assert_eq!(parse_bytes("8Gi"), Some(8 << 30));
        assert_eq!(parse_bytes("8035100Ki"), Some(8_035_100 * 1024));
        assert_eq!(parse_bytes("512M"), Some(512_000_000));
        assert!(in_intervals(Some("0-2,5"), 1));
        assert!(in_intervals(Some("0-2,5"), 5));
        assert!(!in_intervals(Some("0-2,5"), 3));
        assert!(!in_intervals(None, 0));
    }
}
