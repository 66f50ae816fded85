//! The AWS Batch engine (`--with batch`, cargo feature `batch`), on `aws-sdk-batch`. What all
//! batch engines share (buffering, one array per step, polling with backoff, the commit
//! record as the truth, fencing, `--pending-timeout`, cancel) is in [`crate::exec::remote`];
//! this is the Batch part.
//!
//! - **Where.** Each step's queue, job definition and image come from `#[batch(...)]`, else
//!   `FLOWLIB_BATCH_QUEUE`, `FLOWLIB_BATCH_JOB_DEFINITION`, `FLOWLIB_BATCH_IMAGE`. A step with
//!   an image other than its job definition's gets a job definition registered for it
//!   (`flowlib-<hash>`, reused while ACTIVE), since `SubmitJob` cannot override the image.
//! - **Submission.** `SubmitJob` with `containerOverrides`: the command is the container
//!   entry ([`crate::exec::entry`]: it fetches the flow binary by digest and runs
//!   `task-exec --spec`), the environment holds no secret (the containers' credentials are
//!   the job role's), `resourceRequirements` VCPU/MEMORY/GPU come from `#[resources]`. A
//!   foreach's ready tasks go as **one array job** (`arrayProperties.size`, at most 10,000;
//!   children `<id>:<index>` read their spec by `AWS_BATCH_JOB_ARRAY_INDEX` from a list
//!   stored in the datastore, since Batch allows a job's overrides 8192 characters).
//!   `retryStrategy.attempts` is 1: retries are flowlib's, so they never multiply with
//!   Batch's. `timeout.attemptDurationSeconds` is the step's `#[timeout]` (at least 60 s).
//!   Tags name the flow, run, step and attempt.
//! - **Status.** `DescribeJobs`, 100 ids a request (Batch's limit), the SDK's standard
//!   retry backing off on `TooManyRequestsException`, and `Remote`'s poll interval backing
//!   off (0.5 → 5 s) while nothing changes. The commit record decides a task's outcome; a
//!   job's `statusReason`, `container.reason` and `exitCode` only explain a job that ended
//!   without one ([`decode::explain`]), platform failures (host terminated, spot reclaim,
//!   `CannotPullContainerError`, `ResourceInitializationError`) counted against
//!   `#[retry(platform)]`.
//! - **Cancel.** Ctrl-C, `cancel <run>` and a fenced (timed-out) attempt `TerminateJob`
//!   the jobs (a whole array through its parent).
//! - **Checks before anything is written**: a step with no queue or no job definition and
//!   image, a queue that does not exist or is disabled, a job definition that does not
//!   exist, no image anywhere, a request no compute environment of the queue can place
//!   (`DescribeJobQueues`, `DescribeComputeEnvironments`, `DescribeJobDefinitions`). A
//!   datastore on this machine's disk is refused unless `FLOWLIB_SHARED_VOLUME=1` asserts
//!   that every container mounts it at the same path.

pub(crate) mod decode;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_batch::error::DisplayErrorContext;
use aws_sdk_batch::types::{
    ArrayProperties, ContainerOverrides, ContainerProperties, JobDefinitionType, JobStatus,
    JobTimeout, KeyValuePair, ResourceRequirement, ResourceType, RetryStrategy,
};
use aws_sdk_batch::Client;

use crate::error::{Error, Result};
use crate::exec::entry::{entry, entry_listed, Entry};
use crate::exec::package::Package;
use crate::exec::remote::{Engine, Explained, JobState, Submission};
use crate::flow::{Graph, Step};
use crate::store::Datastore;
pub(crate) use decode::JobId;
use decode::Stopped;

/// The largest array job AWS Batch takes.
const MAX_ARRAY: usize = 10_000;
/// Job ids per `DescribeJobs` request (Batch's limit).
const DESCRIBE_BATCH: usize = 100;
/// Arrays up to this size carry their specs in the environment; longer ones fetch a list.
const INLINE_SPECS: usize = 8;
/// AWS Batch's limit on a job's container overrides (command and environment, as JSON).
const OVERRIDES_MAX: usize = 8192;
/// The driver's variables a job gets too (configuration, never credentials): the
/// datastore's endpoint and region, logging. More with `FLOWLIB_BATCH_ENV=A,B`.
const FORWARDED: &[&str] = &[
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT",
    "AWS_ALLOW_HTTP",
    "RUST_LOG",
    "FLOWLIB_CACHE",
];

/// API requests the engine made (benchmarks report them).
#[derive(Debug, Default)]
pub(crate) struct Requests {
    /// `SubmitJob` requests.
    pub(crate) submit: AtomicU64,
    /// `DescribeJobs` requests.
    pub(crate) describe: AtomicU64,
    /// `TerminateJob` requests.
    pub(crate) terminate: AtomicU64,
}

/// Where one step's jobs go.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Target {
    queue: String,
    job_definition: Option<String>,
    image: Option<String>,
}

/// The step's queue, job definition and image, from `#[batch]` or the environment.
fn target(step: &Step) -> std::result::Result<Target, String> {
    let opts = step.batch.unwrap_or_default();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let Some(queue) = opts
        .queue
        .map(str::to_string)
        .or_else(|| env("FLOWLIB_BATCH_QUEUE"))
    else {
        return Err(format!(
            "step `{}`: no AWS Batch job queue: give it `#[batch(queue = \"...\")]` or set FLOWLIB_BATCH_QUEUE",
            step.name
        ));
    };
    let job_definition = opts
        .job_definition
        .map(str::to_string)
        .or_else(|| env("FLOWLIB_BATCH_JOB_DEFINITION"));
    let image = opts
        .image
        .map(str::to_string)
        .or_else(|| env("FLOWLIB_BATCH_IMAGE"));
    if job_definition.is_none() && image.is_none() {
        return Err(format!(
            "step `{}`: no AWS Batch job definition or image: give it `#[batch(job_definition = \"...\")]` or `#[batch(image = \"...\")]`, or set FLOWLIB_BATCH_JOB_DEFINITION or FLOWLIB_BATCH_IMAGE",
            step.name
        ));
    }
    Ok(Target {
        queue,
        job_definition,
        image,
    })
}

/// Where `show --with batch` says a step's jobs go: queue, job definition, image and the
/// resource requirements, or what is missing.
pub(crate) fn placement(step: &Step) -> String {
    let reqs = decode::requirements(&step.resources)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    match target(step) {
        Ok(t) => {
            let mut out = format!("queue {}", t.queue);
            if let Some(d) = &t.job_definition {
                out.push_str(&format!(", job definition {d}"));
            }
            if let Some(i) = &t.image {
                out.push_str(&format!(", image {i}"));
            }
            format!("{out}; {reqs}")
        }
        Err(e) => e,
    }
}

/// The AWS Batch engine of one run.
pub(crate) struct Batch {
    rt: tokio::runtime::Runtime,
    client: Client,
    region: String,
    /// The flow binary's path inside the image, when the image holds it (`FLOWLIB_BATCH_EXE`).
    exe_in_image: Option<String>,
    /// Job definitions to submit to, per target (registered for an image where needed).
    definitions: HashMap<Target, String>,
    /// Array parents and their sizes (a cancel of every child terminates the parent).
    arrays: HashMap<String, usize>,
    /// How each job that ended stopped, from the poll that saw it end.
    stopped: HashMap<JobId, Stopped>,
    /// Requests made.
    pub(crate) requests: Arc<Requests>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("region", &self.region)
            .field("requests", &self.requests)
            .finish_non_exhaustive()
    }
}

/// An SDK error in one line, with its cause chain.
fn sdk_error(what: &str, e: impl std::error::Error) -> Error {
    Error::invalid(format!("AWS Batch {what}: {}", DisplayErrorContext(e)))
}

impl Batch {
    /// The engine, with the standard AWS configuration chain (environment, profile, SSO,
    /// web identity, container and instance credentials); endpoints from
    /// `AWS_ENDPOINT_URL_BATCH` / `AWS_ENDPOINT_URL` as the SDK reads them.
    pub(crate) fn new() -> Result<Batch> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("flowlib-batch")
            .build()
            .map_err(|e| Error::invalid(format!("--with batch: cannot start a runtime: {e}")))?;
        let conf = run_on(
            &rt,
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(5))
                .load(),
        );
        let Some(region) = conf.region().map(|r| r.to_string()) else {
            return Err(Error::invalid(
                "--with batch: no AWS region is configured: set AWS_REGION (or a profile's `region`)",
            ));
        };
        Ok(Batch {
            client: Client::new(&conf),
            rt,
            region,
            exe_in_image: std::env::var("FLOWLIB_BATCH_EXE")
                .ok()
                .filter(|v| !v.is_empty()),
            definitions: HashMap::new(),
            arrays: HashMap::new(),
            stopped: HashMap::new(),
            requests: Arc::new(Requests::default()),
        })
    }

    fn block<F>(&self, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        run_on(&self.rt, f)
    }

    /// Problems with the queues of `targets` (keyed by queue name): missing, disabled,
    /// or unable to place a step's request.
    fn check_queues(
        &self,
        by_queue: &BTreeMap<String, Vec<&Step>>,
        problems: &mut Vec<String>,
    ) -> Result<()> {
        let names: Vec<String> = by_queue.keys().cloned().collect();
        let mut found = HashMap::new();
        for chunk in names.chunks(DESCRIBE_BATCH) {
            let out = self
                .block(
                    self.client
                        .describe_job_queues()
                        .set_job_queues(Some(chunk.to_vec()))
                        .send(),
                )
                .map_err(|e| sdk_error("DescribeJobQueues", e))?;
            for q in out.job_queues() {
                found.insert(
                    q.job_queue_name().unwrap_or_default().to_string(),
                    q.clone(),
                );
                found.insert(q.job_queue_arn().unwrap_or_default().to_string(), q.clone());
            }
        }
        for (name, steps) in by_queue {
            let step_names = steps
                .iter()
                .map(|s| format!("`{}`", s.name))
                .collect::<Vec<_>>()
                .join(", ");
            let Some(q) = found.get(name) else {
                problems.push(format!(
                    "step {step_names}: AWS Batch job queue `{name}` does not exist in {}",
                    self.region
                ));
                continue;
            };
            if q.state().map(|s| s.as_str()) == Some("DISABLED") {
                problems.push(format!(
                    "step {step_names}: AWS Batch job queue `{name}` is DISABLED"
                ));
                continue;
            }
            if q.status().map(|s| s.as_str()) == Some("INVALID") {
                problems.push(format!(
                    "step {step_names}: AWS Batch job queue `{name}` is INVALID: {}",
                    q.status_reason().unwrap_or("no reason given")
                ));
                continue;
            }
            let ces: Vec<String> = q
                .compute_environment_order()
                .iter()
                .filter_map(|o| o.compute_environment().map(str::to_string))
                .collect();
            if ces.is_empty() {
                continue;
            }
            let out = self
                .block(
                    self.client
                        .describe_compute_environments()
                        .set_compute_environments(Some(ces))
                        .send(),
                )
                .map_err(|e| sdk_error("DescribeComputeEnvironments", e))?;
            let caps: Vec<decode::Capacity> = out
                .compute_environments()
                .iter()
                .map(|ce| {
                    let cr = ce.compute_resources();
                    decode::Capacity {
                        name: ce
                            .compute_environment_name()
                            .unwrap_or_default()
                            .to_string(),
                        kind: cr
                            .and_then(|c| c.r#type().map(|t| t.as_str().to_string()))
                            .unwrap_or_else(|| "UNMANAGED".into()),
                        max_vcpus: cr
                            .and_then(|c| c.maxv_cpus())
                            .or(ce.unmanagedv_cpus())
                            .and_then(|v| u32::try_from(v).ok()),
                        instance_types: cr.map(|c| c.instance_types().to_vec()).unwrap_or_default(),
                    }
                })
                .collect();
            for s in steps {
                if let Some(why) = decode::misfit(&s.resources, &caps) {
                    problems.push(format!(
                        "step `{}`: no compute environment of AWS Batch queue `{name}` can run its job: {why}",
                        s.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// The ACTIVE job definition `name` (a name, `name:revision` or ARN): the latest revision.
    fn describe_definition(
        &self,
        name: &str,
    ) -> Result<Option<aws_sdk_batch::types::JobDefinition>> {
        let bare = !name.contains(':');
        let req = self.client.describe_job_definitions();
        let req = if bare {
            req.job_definition_name(name).status("ACTIVE")
        } else {
            req.job_definitions(name)
        };
        let out = self
            .block(req.send())
            .map_err(|e| sdk_error("DescribeJobDefinitions", e))?;
        Ok(out
            .job_definitions()
            .iter()
            .filter(|d| d.status().is_none_or(|s| s == "ACTIVE"))
            .max_by_key(|d| d.revision().unwrap_or(0))
            .cloned())
    }

    /// The job definition a target's jobs are submitted to: its own, or one registered with
    /// its image (`flowlib-<hash of definition and image>`).
    fn definition_for(&mut self, t: &Target) -> Result<String> {
        if let Some(d) = self.definitions.get(t) {
            return Ok(d.clone());
        }
        let base = match &t.job_definition {
            Some(n) => Some(self.describe_definition(n)?.ok_or_else(|| {
                Error::invalid(format!(
                    "AWS Batch job definition `{n}` does not exist or has no ACTIVE revision"
                ))
            })?),
            None => None,
        };
        let base_image = base
            .as_ref()
            .and_then(|d| d.container_properties())
            .and_then(|c| c.image())
            .map(str::to_string);
        let arn = match (&t.image, &base) {
            (None, Some(d)) => d
                .job_definition_arn()
                .or(d.job_definition_name())
                .unwrap_or_default()
                .to_string(),
            (Some(img), Some(d)) if Some(img) == base_image.as_ref() => {
                d.job_definition_arn().unwrap_or_default().to_string()
            }
            (Some(img), base) => {
                let mut props: ContainerProperties = base
                    .as_ref()
                    .and_then(|d| d.container_properties().cloned())
                    .unwrap_or_else(|| ContainerProperties::builder().build());
                props.image = Some(img.clone());
                let name = format!(
                    "flowlib-{}",
                    &crate::store::Digest::of(format!("{:?}\n{img}", t.job_definition).as_bytes())
                        .hex()[..16]
                );
                match self.describe_definition(&name)? {
                    Some(d)
                        if d.container_properties().and_then(|c| c.image())
                            == Some(img.as_str()) =>
                    {
                        d.job_definition_arn().unwrap_or(&name).to_string()
                    }
                    _ => {
                        let out = self
                            .block(
                                self.client
                                    .register_job_definition()
                                    .job_definition_name(&name)
                                    .r#type(JobDefinitionType::Container)
                                    .container_properties(props)
                                    .tags("flowlib", "image")
                                    .send(),
                            )
                            .map_err(|e| sdk_error("RegisterJobDefinition", e))?;
                        out.job_definition_arn().unwrap_or(&name).to_string()
                    }
                }
            }
            (None, None) => unreachable!("target() requires a job definition or an image"),
        };
        self.definitions.insert(t.clone(), arn.clone());
        Ok(arn)
    }

    /// Submit one job (an array job when `size` is given).
    #[allow(clippy::too_many_arguments)]
    fn submit_job(
        &self,
        name: &str,
        queue: &str,
        definition: &str,
        e: &Entry,
        s: &Submission<'_>,
        size: Option<usize>,
    ) -> Result<String> {
        let env: Vec<KeyValuePair> = e
            .env
            .iter()
            .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
            .collect();
        let reqs: Vec<ResourceRequirement> = decode::requirements(&s.step.resources)
            .into_iter()
            .map(|(k, v)| {
                ResourceRequirement::builder()
                    .r#type(ResourceType::from(k))
                    .value(v)
                    .build()
            })
            .collect();
        let overrides = ContainerOverrides::builder()
            .set_command(Some(e.command.clone()))
            .set_environment(Some(env))
            .set_resource_requirements(Some(reqs))
            .build();
        let attempt = s.tasks.first().map_or(0, |t| t.attempt);
        let mut req = self
            .client
            .submit_job()
            .job_name(name)
            .job_queue(queue)
            .job_definition(definition)
            .container_overrides(overrides)
            .retry_strategy(RetryStrategy::builder().attempts(1).build())
            .tags("flowlib:flow", s.flow)
            .tags("flowlib:run", s.run)
            .tags("flowlib:step", s.step.name)
            .tags("flowlib:attempt", attempt.to_string());
        if let Some(n) = size {
            req = req.array_properties(ArrayProperties::builder().size(n as i32).build());
        }
        if let Some(secs) = decode::attempt_duration(s.step.timeout_ms) {
            req = req.timeout(JobTimeout::builder().attempt_duration_seconds(secs).build());
        }
        self.requests.submit.fetch_add(1, Ordering::Relaxed);
        let out = self
            .block(req.send())
            .map_err(|e| sdk_error("SubmitJob", e))?;
        out.job_id()
            .map(str::to_string)
            .ok_or_else(|| Error::invalid("AWS Batch SubmitJob returned no job id"))
    }
}

/// Run a future on `rt` from synchronous code (on a helper thread when called from inside
/// another runtime, where blocking would stall it and nesting `block_on` panics).
fn run_on<F>(rt: &tokio::runtime::Runtime, f: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(f))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    } else {
        rt.block_on(f)
    }
}

/// The job's environment: the entry's, plus the forwarded configuration variables.
fn job_env(mut e: Entry) -> Entry {
    let extra = std::env::var("FLOWLIB_BATCH_ENV").unwrap_or_default();
    let names = FORWARDED
        .iter()
        .map(|s| s.to_string())
        .chain(extra.split(',').map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty());
    for name in names {
        if e.env.iter().any(|(k, _)| *k == name) {
            continue;
        }
        if let Ok(v) = std::env::var(&name) {
            e.env.push((name, v));
        }
    }
    e
}

/// The length of a job's container overrides as Batch counts it (their JSON).
fn overrides_len(e: &Entry) -> usize {
    let env: Vec<serde_json::Value> = e
        .env
        .iter()
        .map(|(k, v)| serde_json::json!({"name": k, "value": v}))
        .collect();
    serde_json::json!({"command": e.command, "environment": env})
        .to_string()
        .len()
}

impl Engine for Batch {
    type Id = JobId;

    fn name(&self) -> &'static str {
        "batch"
    }

    fn describe(&self, id: &JobId) -> String {
        format!("AWS Batch job {id}")
    }

    fn check(&self, graph: &Graph, steps: &[usize]) -> Result<()> {
        let mut problems = Vec::new();
        let mut targets: Vec<(&Step, Target)> = Vec::new();
        for s in graph.steps().iter().filter(|s| steps.contains(&s.index)) {
            match target(s) {
                Ok(t) => targets.push((s, t)),
                Err(e) => problems.push(e),
            }
        }
        if !problems.is_empty() {
            return Err(Error::invalid(format!(
                "--with batch: {}",
                problems.join("; ")
            )));
        }
        let mut by_queue: BTreeMap<String, Vec<&Step>> = BTreeMap::new();
        for (s, t) in &targets {
            by_queue.entry(t.queue.clone()).or_default().push(s);
        }
        self.check_queues(&by_queue, &mut problems)?;
        let defs: BTreeSet<&String> = targets
            .iter()
            .filter_map(|(_, t)| t.job_definition.as_ref())
            .collect();
        let mut images: HashMap<&String, Option<String>> = HashMap::new();
        for d in defs {
            match self.describe_definition(d)? {
                None => problems.push(format!(
                    "AWS Batch job definition `{d}` does not exist or has no ACTIVE revision"
                )),
                Some(jd) if jd.container_properties().is_none() => problems.push(format!(
                    "AWS Batch job definition `{d}` is not a single-container job definition (type {})",
                    jd.r#type().unwrap_or("unknown")
                )),
                Some(jd) => {
                    images.insert(
                        d,
                        jd.container_properties()
                            .and_then(|c| c.image())
                            .map(str::to_string),
                    );
                }
            }
        }
        for (s, t) in &targets {
            let def_image = t
                .job_definition
                .as_ref()
                .and_then(|d| images.get(d).cloned().flatten());
            let missing_def = t
                .job_definition
                .as_ref()
                .is_some_and(|d| !images.contains_key(d));
            if t.image.is_none() && def_image.is_none() && !missing_def {
                problems.push(format!(
                    "step `{}`: no container image: job definition `{}` names none; give `#[batch(image = \"...\")]` or set FLOWLIB_BATCH_IMAGE",
                    s.name,
                    t.job_definition.as_deref().unwrap_or("")
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Resources(format!(
                "--with batch: {}",
                problems.join("; ")
            )))
        }
    }

    fn begin(&mut self, ds: &Datastore, _package: &Package) -> Result<()> {
        if ds.is_local() && std::env::var("FLOWLIB_SHARED_VOLUME").as_deref() != Ok("1") {
            return Err(Error::invalid(format!(
                "--with batch: the datastore {} is a directory on this machine, which AWS Batch containers cannot see: use an s3:// datastore, or mount it at the same path in every container (e.g. EFS in the job definition) and set FLOWLIB_SHARED_VOLUME=1",
                ds.url()
            )));
        }
        Ok(())
    }

    fn max_array(&self) -> usize {
        MAX_ARRAY
    }

    /// `FLOWLIB_BATCH_ARRAYS=off`: one job per task (benchmarks compare the two).
    fn arrays(&self) -> bool {
        std::env::var("FLOWLIB_BATCH_ARRAYS").map_or(true, |v| v != "off")
    }

    fn submit(&mut self, s: &Submission<'_>) -> Result<Vec<JobId>> {
        let t = target(s.step).map_err(Error::invalid)?;
        let definition = self.definition_for(&t)?;
        let index_var = "AWS_BATCH_JOB_ARRAY_INDEX";
        let exe = self.exe_in_image.as_deref();
        let e = if s.specs.len() <= INLINE_SPECS {
            entry(s.ds, s.package, s.specs, index_var, exe)?
        } else {
            entry_listed(s.ds, s.package, s.specs, index_var, exe)?
        };
        let e = job_env(e);
        let len = overrides_len(&e);
        if len > OVERRIDES_MAX {
            return Err(Error::invalid(format!(
                "the container overrides of step `{}` of run {} would be {len} characters, over AWS Batch's {OVERRIDES_MAX} (FLOWLIB_BATCH_ENV adds variables; remove some)",
                s.step.name, s.run
            )));
        }
        let attempt = s.tasks.first().map_or(0, |t| t.attempt);
        let name = decode::job_name(s.flow, s.run, s.step.name, attempt);
        let array = s.is_array().then_some(s.specs.len());
        let id = self
            .submit_job(&name, &t.queue, &definition, &e, s, array)
            .map_err(|err| {
                Error::invalid(format!(
                    "run {} step `{}` ({} task(s) from {}): {}",
                    s.run,
                    s.step.name,
                    s.specs.len(),
                    s.tasks.first().map(|t| t.task_id()).unwrap_or_default(),
                    crate::error::chain(&err)
                ))
            })?;
        Ok(match array {
            Some(n) => {
                self.arrays.insert(id.clone(), n);
                (0..n as u32)
                    .map(|i| JobId {
                        job: id.clone(),
                        index: Some(i),
                    })
                    .collect()
            }
            None => vec![JobId {
                job: id,
                index: None,
            }],
        })
    }

    fn poll(&mut self, ids: &[JobId]) -> Result<HashMap<JobId, JobState>> {
        let names: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in names.chunks(DESCRIBE_BATCH) {
            self.requests.describe.fetch_add(1, Ordering::Relaxed);
            let resp = self
                .block(
                    self.client
                        .describe_jobs()
                        .set_jobs(Some(chunk.to_vec()))
                        .send(),
                )
                .map_err(|e| sdk_error("DescribeJobs", e))?;
            for j in resp.jobs() {
                let Some(job_id) = j.job_id() else { continue };
                let id = JobId::parse(job_id);
                let status = j.status().cloned().unwrap_or(JobStatus::Submitted);
                let state = match &status {
                    JobStatus::Submitted | JobStatus::Pending | JobStatus::Runnable => {
                        JobState::Pending(
                            j.status_reason()
                                .map(str::to_string)
                                .unwrap_or_else(|| status.as_str().to_string()),
                        )
                    }
                    JobStatus::Starting => JobState::Pending("STARTING".into()),
                    JobStatus::Running => JobState::Running,
                    JobStatus::Succeeded | JobStatus::Failed => {
                        let last = j.attempts().last();
                        let c = last.and_then(|a| a.container());
                        let jc = j.container();
                        self.stopped.insert(
                            id.clone(),
                            Stopped {
                                status: status.as_str().to_string(),
                                status_reason: j
                                    .status_reason()
                                    .or(last.and_then(|a| a.status_reason()))
                                    .map(str::to_string),
                                exit_code: c
                                    .and_then(|c| c.exit_code())
                                    .or(jc.and_then(|c| c.exit_code())),
                                reason: c
                                    .and_then(|c| c.reason())
                                    .or(jc.and_then(|c| c.reason()))
                                    .map(str::to_string),
                                log_stream: c
                                    .and_then(|c| c.log_stream_name())
                                    .or(jc.and_then(|c| c.log_stream_name()))
                                    .map(str::to_string),
                            },
                        );
                        JobState::Ended
                    }
                    other => JobState::Pending(other.as_str().to_string()),
                };
                out.insert(id, state);
            }
        }
        Ok(out)
    }

    fn explain(
        &mut self,
        id: &JobId,
        _last: Option<&JobState>,
        _tail: &[String],
        memory: Option<u64>,
    ) -> Explained {
        let (message, platform) = match self.stopped.remove(id) {
            Some(s) => decode::explain(&s, memory),
            None => (
                format!("AWS Batch no longer knows job {id} and the task recorded no result"),
                true,
            ),
        };
        Explained { message, platform }
    }

    fn cancel(&mut self, ids: &[JobId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut per_parent: HashMap<&str, usize> = HashMap::new();
        for j in ids {
            if j.index.is_some() {
                *per_parent.entry(j.job.as_str()).or_default() += 1;
            }
        }
        // A whole array is terminated through its parent (Batch terminates the children).
        let mut targets: BTreeSet<String> = BTreeSet::new();
        for j in ids {
            let whole =
                j.index.is_some() && self.arrays.get(&j.job) == per_parent.get(j.job.as_str());
            targets.insert(if whole { j.job.clone() } else { j.to_string() });
        }
        let mut errors = Vec::new();
        for t in targets {
            self.requests.terminate.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = self.block(
                self.client
                    .terminate_job()
                    .job_id(&t)
                    .reason("flowlib: cancelled, or fenced after its timeout")
                    .send(),
            ) {
                errors.push(format!("{t}: {}", DisplayErrorContext(e)));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "AWS Batch TerminateJob failed for {}",
                errors.join("; ")
            )))
        }
    }
}

/// `cancel <run>`: `TerminateJob` every job of the run that has not ended, in the queues its
/// steps name (`#[batch(queue)]`, `FLOWLIB_BATCH_QUEUE`), so jobs stop even when the driver is
/// gone. An array is terminated through its parent. Returns how many jobs were terminated;
/// none, and no AWS call, when no queue is configured.
pub(crate) fn cancel_run_jobs(graph: &Graph, flow: &str, run: &str) -> Result<usize> {
    let mut queues: BTreeSet<String> = graph
        .steps()
        .iter()
        .filter_map(|s| s.batch.and_then(|b| b.queue).map(str::to_string))
        .collect();
    if let Ok(q) = std::env::var("FLOWLIB_BATCH_QUEUE") {
        if !q.trim().is_empty() {
            queues.insert(q);
        }
    }
    if queues.is_empty() {
        return Ok(0);
    }
    let mut b = Batch::new()?;
    let prefix = decode::job_name_prefix(flow, run);
    let mut live: Vec<JobId> = Vec::new();
    for q in &queues {
        let mut token: Option<String> = None;
        loop {
            let out = b
                .block(
                    b.client
                        .list_jobs()
                        .job_queue(q)
                        .filters(
                            aws_sdk_batch::types::KeyValuesPair::builder()
                                .name("JOB_NAME")
                                .values(format!("{prefix}*"))
                                .build(),
                        )
                        .set_next_token(token.clone())
                        .send(),
                )
                .map_err(|e| sdk_error("ListJobs", e))?;
            for j in out.job_summary_list() {
                let ended = matches!(
                    j.status(),
                    Some(JobStatus::Succeeded) | Some(JobStatus::Failed)
                );
                let name_ok = j.job_name().is_some_and(|n| n.starts_with(&prefix));
                // Array children go with their parent.
                if let Some(id) = j.job_id().filter(|id| !id.contains(':')) {
                    if !ended && name_ok {
                        live.push(JobId::parse(id));
                    }
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    live.sort();
    live.dedup();
    b.cancel(&live)?;
    Ok(live.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry of a big array fits Batch's 8192-character limit on overrides: its specs
    /// travel as a stored list, not in the environment.
    #[test]
    fn an_array_of_10000_fits_the_override_limit() {
        let dir = tempfile::tempdir().unwrap();
        let ds =
            Datastore::open(dir.path().to_str().unwrap(), crate::store::OpenMode::Create).unwrap();
        let pkg = Package {
            exe: "/bin/true".into(),
            digest: crate::store::Digest::of(b"exe"),
            key: crate::store::layout::package(&crate::store::Digest::of(b"exe")),
        };
        let specs: Vec<_> = (0..10_000u32)
            .map(|i| crate::store::Digest::of(&i.to_le_bytes()))
            .collect();
        let e =
            job_env(entry_listed(&ds, &pkg, &specs, "AWS_BATCH_JOB_ARRAY_INDEX", None).unwrap());
        assert!(overrides_len(&e) < OVERRIDES_MAX, "{}", overrides_len(&e));
        let inline = job_env(entry(&ds, &pkg, &specs, "AWS_BATCH_JOB_ARRAY_INDEX", None).unwrap());
        assert!(overrides_len(&inline) > OVERRIDES_MAX);
    }
}
