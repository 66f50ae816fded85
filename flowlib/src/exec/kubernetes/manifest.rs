//! The `batch/v1` Job of one submission: a lone task as a one-pod Job, a foreach's tasks as
//! one **Indexed Job** (`completionMode: Indexed`, `parallelism` = the throttle,
//! `backoffLimitPerIndex: 0`: retries are flowlib's, counted per attempt), with
//! `requests`/`limits` from `#[resources]`, GPUs as `<vendor>.com/gpu`, `/dev/shm` as a
//! memory volume, the pod's `activeDeadlineSeconds` from `#[timeout]`, and a
//! `podFailurePolicy` that ends an index at once on a disruption (eviction, preemption,
//! node drain), which flowlib then retries on the step's platform budget.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, PersistentVolumeClaimVolumeSource,
    PodSpec, PodTemplateSpec, ResourceRequirements, SecretEnvSource, Toleration, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::exec::entry::Entry;
use crate::flow::Step;

/// Labels every Job and pod of a run carries.
pub(crate) const FLOW_LABEL: &str = "flowlib.dev/flow";
pub(crate) const RUN_LABEL: &str = "flowlib.dev/run";
pub(crate) const STEP_LABEL: &str = "flowlib.dev/step";
pub(crate) const ATTEMPT_LABEL: &str = "flowlib.dev/attempt";
/// The label Kubernetes puts on an Indexed Job's pods.
pub(crate) const INDEX_LABEL: &str = "batch.kubernetes.io/job-completion-index";
/// The label Kubernetes puts on a Job's pods (`job-name` on older clusters).
pub(crate) const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// Memory limit of a step without `#[resources(memory)]` (a pod without one can take a
/// node down; Kubernetes best practice is to always set it).
pub(crate) const DEFAULT_MEMORY: u64 = 1 << 30;

/// What a pod's `activeDeadlineSeconds` adds to the step's `#[timeout]`.
pub(crate) const DEADLINE_MARGIN_S: u64 = 60;

/// How long finished Jobs stay for `logs` and debugging before Kubernetes deletes them.
const TTL_AFTER_FINISHED: i32 = 7 * 24 * 3600;

/// Where the pod's datastore comes from when it is a directory: a PersistentVolumeClaim
/// mounted at the same path.
#[derive(Debug, Clone)]
pub(crate) struct SharedVolume {
    pub(crate) claim: String,
    pub(crate) path: String,
}

/// Everything the Job of one submission is made of.
#[derive(Debug)]
pub(crate) struct JobParts<'a> {
    pub(crate) name: String,
    pub(crate) flow: &'a str,
    pub(crate) run: &'a str,
    pub(crate) step: &'a Step,
    pub(crate) attempt: u32,
    /// Tasks in the Job (an Indexed Job when more than one).
    pub(crate) tasks: usize,
    pub(crate) parallelism: usize,
    pub(crate) image: &'a str,
    pub(crate) entry: &'a Entry,
    pub(crate) volume: Option<&'a SharedVolume>,
    /// Secrets whose keys become the container's environment: the step's
    /// `#[kubernetes(secrets)]` and `FLOWLIB_K8S_SECRETS`.
    pub(crate) secrets: &'a [String],
}

/// A label value for any text: what Kubernetes allows (63 characters of `[A-Za-z0-9-_.]`,
/// alphanumeric at both ends).
pub(crate) fn label_value(text: &str) -> String {
    let mut v: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    while v.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        v.pop();
    }
    while v.starts_with(|c: char| !c.is_ascii_alphanumeric()) {
        v.remove(0);
    }
    v
}

/// A DNS-1123 label part: lowercase alphanumerics and `-`.
pub(crate) fn dns_part(text: &str, max: usize) -> String {
    let mut v: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    v.truncate(max);
    v.trim_matches('-').to_string()
}

/// Bytes as a Kubernetes quantity in MiB (rounded up).
pub(crate) fn mebibytes(bytes: u64) -> Quantity {
    Quantity(format!("{}Mi", bytes.div_ceil(1 << 20).max(1)))
}

impl JobParts<'_> {
    /// The Job.
    pub(crate) fn job(&self) -> Job {
        let s = self.step;
        let k = s.kubernetes.unwrap_or_default();
        let mut labels = BTreeMap::new();
        labels.insert(FLOW_LABEL.to_string(), label_value(self.flow));
        labels.insert(RUN_LABEL.to_string(), label_value(self.run));
        labels.insert(STEP_LABEL.to_string(), label_value(s.name));
        labels.insert(ATTEMPT_LABEL.to_string(), self.attempt.to_string());
        let mut annotations = BTreeMap::new();
        annotations.insert("flowlib.dev/run-id".to_string(), self.run.to_string());
        annotations.insert("flowlib.dev/step-name".to_string(), s.name.to_string());

        let memory = s.resources.memory.unwrap_or(DEFAULT_MEMORY);
        let mut requests = BTreeMap::new();
        let mut limits = BTreeMap::new();
        requests.insert(
            "cpu".to_string(),
            Quantity(s.resources.cpu.max(1).to_string()),
        );
        requests.insert("memory".to_string(), mebibytes(memory));
        limits.insert("memory".to_string(), mebibytes(memory));
        if s.resources.gpu > 0 {
            let gpu = format!("{}.com/gpu", k.gpu_vendor.unwrap_or("nvidia"));
            requests.insert(gpu.clone(), Quantity(s.resources.gpu.to_string()));
            limits.insert(gpu, Quantity(s.resources.gpu.to_string()));
        }

        let mut volumes = vec![Volume {
            name: "dshm".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                // tmpfs pages count against the container's memory limit anyway.
                size_limit: Some(mebibytes(memory)),
            }),
            ..Volume::default()
        }];
        let mut mounts = vec![VolumeMount {
            name: "dshm".into(),
            mount_path: "/dev/shm".into(),
            ..VolumeMount::default()
        }];
        if let Some(v) = self.volume {
            volumes.push(Volume {
                name: "datastore".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: v.claim.clone(),
                    read_only: Some(false),
                }),
                ..Volume::default()
            });
            mounts.push(VolumeMount {
                name: "datastore".into(),
                mount_path: v.path.clone(),
                ..VolumeMount::default()
            });
        }

        let container = Container {
            name: "task".into(),
            image: Some(self.image.to_string()),
            command: Some(self.entry.command.clone()),
            env: Some(
                self.entry
                    .env
                    .iter()
                    .map(|(k, v)| EnvVar {
                        name: k.clone(),
                        value: Some(v.clone()),
                        ..EnvVar::default()
                    })
                    .collect(),
            ),
            env_from: (!self.secrets.is_empty()).then(|| {
                self.secrets
                    .iter()
                    .map(|name| EnvFromSource {
                        secret_ref: Some(SecretEnvSource {
                            name: name.clone(),
                            optional: Some(false),
                        }),
                        ..EnvFromSource::default()
                    })
                    .collect()
            }),
            resources: Some(ResourceRequirements {
                requests: Some(requests),
                limits: Some(limits),
                ..ResourceRequirements::default()
            }),
            volume_mounts: Some(mounts),
            ..Container::default()
        };
        let pod = PodSpec {
            restart_policy: Some("Never".into()),
            containers: vec![container],
            volumes: Some(volumes),
            service_account_name: k.service_account.map(str::to_string),
            node_selector: (!k.node_selector.is_empty()).then(|| {
                k.node_selector
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect()
            }),
            tolerations: (!k.tolerations.is_empty()).then(|| {
                k.tolerations
                    .iter()
                    .map(|(key, op, value, effect)| Toleration {
                        key: Some(key.to_string()),
                        operator: Some(op.to_string()),
                        value: (!value.is_empty()).then(|| value.to_string()),
                        effect: Some(effect.to_string()),
                        ..Toleration::default()
                    })
                    .collect()
            }),
            // flowlib's own timeout fences the attempt `#[timeout]` after the pod is seen
            // running and deletes the pod; the pod's deadline is the backstop for when no
            // driver is watching (it counts from the pod's start, image pull and binary
            // download included, hence the margin). Per pod: an Indexed Job's own deadline
            // would count for all its tasks together.
            active_deadline_seconds: s
                .timeout_ms
                .map(|ms| (ms.div_ceil(1000) + DEADLINE_MARGIN_S) as i64),
            enable_service_links: Some(false),
            ..PodSpec::default()
        };
        let indexed = self.tasks > 1;
        let disruption = PodFailurePolicyRule {
            action: if indexed { "FailIndex" } else { "FailJob" }.into(),
            on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
            }]),
            ..PodFailurePolicyRule::default()
        };
        Job {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(labels.clone()),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            spec: Some(JobSpec {
                completions: Some(self.tasks as i32),
                parallelism: Some(self.parallelism.clamp(1, self.tasks) as i32),
                completion_mode: Some(if indexed { "Indexed" } else { "NonIndexed" }.into()),
                backoff_limit_per_index: indexed.then_some(0),
                backoff_limit: (!indexed).then_some(0),
                pod_failure_policy: Some(PodFailurePolicy {
                    rules: vec![disruption],
                }),
                ttl_seconds_after_finished: Some(TTL_AFTER_FINISHED),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(pod),
                },
                ..JobSpec::default()
            }),
            ..Job::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_what_kubernetes_accepts() {
        assert_eq!(label_value("20261201T135600-Ab_c"), "20261201T135600-Ab_c");
        assert_eq!(label_value("-x/y:z-"), "x-y-z");
        assert_eq!(label_value(&"a".repeat(80)).len(), 63);
        assert_eq!(dns_part("Train_Model", 20), "train-model");
        assert_eq!(mebibytes(1).0, "1Mi");
        assert_eq!(mebibytes(3 << 20).0, "3Mi");
        assert_eq!(mebibytes((3 << 20) + 1).0, "4Mi");
    }
}
