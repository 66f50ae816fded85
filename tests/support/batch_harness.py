"""AWS Batch for flowlib's tests: moto's real Batch (and S3) API on loopback, with THIS
harness as the compute environment.

What is real and what is emulated, plainly:
- Real: moto 5's Batch control plane, spoken to over HTTP by aws-sdk-batch (SubmitJob with
  containerOverrides/arrayProperties/retryStrategy/timeout/tags, DescribeJobs, TerminateJob,
  DescribeJobQueues, DescribeComputeEnvironments, DescribeJobDefinitions), and moto's S3 for
  the datastore and the presigned download of the flow binary.
- Emulated: the compute environment. moto runs a job either in Docker (there is no Docker
  daemon here) or, in its `batch_simple` mode, not at all: it marks every job SUCCEEDED the
  moment it is submitted, which would make the engine's status a lie about a task that never
  ran. So this harness takes the place of moto's Docker runner (`Job.run`): each job's
  container command and environment, as moto stores them from SubmitJob, run as a local
  process (`/bin/sh -c <entry>`, the image's `sh`), with the variables Batch sets
  (AWS_BATCH_JOB_ID, AWS_BATCH_JOB_ATTEMPT, AWS_BATCH_JOB_ARRAY_INDEX for array children).
  The harness moves moto's own job state (RUNNABLE -> STARTING -> RUNNING -> SUCCEEDED or
  FAILED) and records the container's exit code and reason the way an ECS agent reports them,
  so DescribeJobs tells what really happened. It enforces what a container would: the MEMORY
  requirement (the process tree is killed past it: exit 137, reason
  `OutOfMemoryError: Container killed due to memory usage`), `attemptDurationSeconds`
  (statusReason `Job attempt duration exceeded timeout`), TerminateJob (the process group is
  killed, statusReason the caller's reason), and at most `slots` jobs running at once (the
  others wait RUNNABLE, as on a full compute environment).
- Injected on request (the `faults` argument, JSON): platform failures the tests need
  (`host_terminated`: the attempt's host goes away as it starts; `cannot_pull`: the image
  cannot be pulled), and throttling of DescribeJobs (HTTP 429 TooManyRequestsException).

Every SubmitJob, DescribeJobs and TerminateJob request is appended to `<dir>/calls.jsonl`
(the tests count them and check what was submitted).

usage: batch_harness.py <dir> [faults-json]
  writes <dir>/port once listening on 127.0.0.1 (an ephemeral port); runs until killed.
  Creates: S3 bucket `flowlib-batch`, compute environment `flowlib-ce` (MANAGED, maxvCpus
  16, instance types m5.xlarge), job queue `flowlib-q`, job definition `flowlib-jd`
  (image busybox:stable).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

import boto3  # noqa: E402
from moto.batch import models as batch_models  # noqa: E402
from moto.batch import responses as batch_responses  # noqa: E402
from moto.core.exceptions import JsonRESTError  # noqa: E402
from moto.moto_api import state_manager  # noqa: E402
from moto.moto_server.threaded_moto_server import ThreadedMotoServer  # noqa: E402

DIR = sys.argv[1]
FAULTS = json.loads(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else {}
SLOTS = threading.BoundedSemaphore(int(FAULTS.get("slots", 4)))
CALLS = open(os.path.join(DIR, "calls.jsonl"), "a", buffering=1)
CALLS_LOCK = threading.Lock()
WORK = os.path.join(DIR, "hosts")
os.makedirs(WORK, exist_ok=True)
# One host cache for every job (the entry keeps the downloaded flow binary in $TMPDIR): the
# emulated jobs share one instance's scratch volume.
TMP = os.path.join(DIR, "tmp")
os.makedirs(TMP, exist_ok=True)
RUNNING = set()  # process groups of the jobs running now
used_faults = set()
faults_lock = threading.Lock()


def log_call(action, body):
    with CALLS_LOCK:
        CALLS.write(json.dumps({"action": action, "at": time.time(), "body": body}) + "\n")


class Throttled(JsonRESTError):
    code = 429

    def __init__(self):
        super().__init__("TooManyRequestsException", "Too Many Requests")


# --- the API calls the tests look at -------------------------------------------------------
_orig_submit = batch_responses.BatchResponse.submitjob
_orig_describe = batch_responses.BatchResponse.describejobs
_orig_terminate = batch_responses.BatchResponse.terminatejob
describe_count = [0]


def submitjob(self):
    t0 = time.time()
    out = _orig_submit(self)
    body = json.loads(self.body)
    body["_server_ms"] = (time.time() - t0) * 1e3
    log_call("SubmitJob", body)
    return out


def describejobs(self):
    body = json.loads(self.body)
    every = int(FAULTS.get("throttle_every", 0))
    with CALLS_LOCK:
        describe_count[0] += 1
        n = describe_count[0]
    throttled = every > 0 and n % every == 0
    log_call("DescribeJobs", {"jobs": len(body.get("jobs", [])), "throttled": throttled})
    if throttled:
        raise Throttled()
    return _orig_describe(self)


def terminatejob(self):
    log_call("TerminateJob", json.loads(self.body))
    return _orig_terminate(self)


batch_responses.BatchResponse.submitjob = submitjob
batch_responses.BatchResponse.describejobs = describejobs
batch_responses.BatchResponse.terminatejob = terminatejob


# --- the compute environment ---------------------------------------------------------------
def requirement(job, kind):
    for r in job.container_overrides.get("resourceRequirements", []) or []:
        if r.get("type") == kind:
            return r.get("value")
    props = job.job_definition.container_properties or {}
    for r in props.get("resourceRequirements", []) or []:
        if r.get("type") == kind:
            return r.get("value")
    return None


def session_pids(sid):
    """Every process of the container (the session its command started; the task-exec
    wrapper puts the task in a process group of its own, but not in another session)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:
                pids.append(int(pid))
        except (OSError, IndexError, ValueError):
            continue
    return pids


def tree_rss(sid):
    """Anonymous resident bytes of the container's processes: what a memory cgroup cannot
    reclaim and so kills for (the flow binary's file pages are page cache, dropped first)."""
    total = 0
    for pid in session_pids(sid):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, IndexError, ValueError):
            continue
    return total


def kill_container(p):
    """SIGKILL every process of the container, then reap its command."""
    for _ in range(3):
        for pid in session_pids(p.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    p.wait()


def fault_for(job, index):
    """The injected fault of this job (once per fault), if any."""
    for i, f in enumerate(FAULTS.get("platform", [])):
        if f.get("name", "") not in job.job_name:
            continue
        if f.get("index") is not None and f["index"] != index:
            continue
        with faults_lock:
            if i in used_faults:
                continue
            used_faults.add(i)
        return f["kind"]
    return None


def stop(job, success, status_reason=None, exit_code=None, reason=None):
    job.exit_code = exit_code
    if status_reason is not None and job.job_stopped_reason is None:
        job.job_stopped_reason = status_reason
    if job.latest_attempt is not None:
        c = job.latest_attempt["container"]
        if exit_code is not None:
            c["exitCode"] = exit_code
        if reason is not None:
            c["reason"] = reason
        job.latest_attempt["statusReason"] = job.job_stopped_reason or status_reason
    job.container_report = {"exitCode": exit_code, "reason": reason}
    job._mark_stopped(success=success)


def run(self):
    """In place of moto's Docker runner: the job's container command as a local process."""
    try:
        self.status = "PENDING"
        self.status = "RUNNABLE"
        while not SLOTS.acquire(timeout=0.2):
            if self.stop:
                stop(self, False)
                return
        try:
            if self.stop:
                stop(self, False)
                return
            self.status = "STARTING"
            self.job_started_at = datetime.now()
            self._start_attempt()
            index = self.array_properties.get("index")
            fault = fault_for(self, index)
            if fault == "cannot_pull":
                stop(
                    self,
                    False,
                    "CannotPullContainerError: Error response from daemon: pull access denied for busybox:stable",
                    reason="CannotPullContainerError: pull access denied for busybox:stable",
                )
                return
            self.status = "RUNNING"
            command = self._add_parameters_to_command(self._get_container_property("command", []))
            env = dict(os.environ)
            for e in self._get_container_property("environment", []):
                env[e["name"]] = e["value"]
            env["AWS_BATCH_JOB_ID"] = self.job_id
            env["AWS_BATCH_JOB_ATTEMPT"] = "1"
            env["AWS_BATCH_JQ_NAME"] = self.job_queue.name
            env["TMPDIR"] = TMP
            if index is not None:
                env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
            host = os.path.join(WORK, self.job_id.replace(":", "_"))
            os.makedirs(host, exist_ok=True)
            out = open(os.path.join(host, "output.log"), "wb")
            p = subprocess.Popen(
                command, env=env, cwd=host, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            RUNNING.add(p.pid)
            if fault == "host_terminated":
                kill_container(p)
                stop(self, False, "Host EC2 (instance i-0fl0w11b0000000001) terminated.")
                return
            memory = requirement(self, "MEMORY")
            limit = int(memory) * (1 << 20) if memory else None
            duration = self._get_attempt_duration()
            deadline = time.time() + duration if duration else None
            while p.poll() is None:
                if self.stop:
                    kill_container(p)
                    stop(self, False, exit_code=137, reason=None)
                    return
                if limit and tree_rss(p.pid) > limit:
                    kill_container(p)
                    stop(
                        self,
                        False,
                        "Essential container in task exited",
                        exit_code=137,
                        reason="OutOfMemoryError: Container killed due to memory usage",
                    )
                    return
                if deadline and time.time() > deadline:
                    kill_container(p)
                    stop(self, False, "Job attempt duration exceeded timeout")
                    return
                time.sleep(0.05)
            code = p.returncode if p.returncode >= 0 else 128 - p.returncode
            if code == 0:
                stop(self, True, exit_code=0)
            else:
                stop(self, False, "Essential container in task exited", exit_code=code)
        finally:
            RUNNING.discard(getattr(locals().get("p"), "pid", None))
            SLOTS.release()
    except Exception as err:  # the harness itself failed: say so in the job
        stop(self, False, f"harness error: {err!r}")


_orig_details = batch_models.Job._container_details
_orig_property = batch_models.Job._get_container_property


def container_property(self, p, default):
    # moto 5.2.5 appends AWS_BATCH_JOB_ID to the overrides' own list on every call (shared by
    # an array's children), so each DescribeJobs would grow the answer: merge into a copy.
    if p != "environment":
        return _orig_property(self, p, default)
    env = {e["name"]: e["value"] for e in (self.job_definition.container_properties or {}).get("environment", [])}
    for e in self.container_overrides.get("environment", []) or []:
        env[e["name"]] = e["value"]
    env["AWS_BATCH_JOB_ID"] = self.job_id
    return [{"name": k, "value": v} for k, v in env.items()]


def container_details(self):
    d = _orig_details(self)
    for k, v in (getattr(self, "container_report", None) or {}).items():
        if v is not None:
            d[k] = v
    return d


batch_models.Job.run = run
batch_models.Job._container_details = container_details
batch_models.Job._get_container_property = container_property
_orig_terminate_job = batch_models.BatchBackend.terminate_job


def terminate_job(self, job_id, reason):
    # TerminateJob of an array's parent terminates its children, as AWS Batch does (moto
    # 5.2.5 stops only the parent).
    _orig_terminate_job(self, job_id, reason)
    job = self.get_job_by_id(job_id)
    for child in (job._child_jobs or []) if job is not None else []:
        child.terminate(reason)


batch_models.BatchBackend.terminate_job = terminate_job
# Job states move only when the harness moves them (not on each DescribeJobs).
state_manager.set_transition("batch::job", {"progression": "manual", "times": 10**9})


def main():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    kw = dict(endpoint_url=url, region_name="us-east-1")
    boto3.client("s3", **kw).create_bucket(Bucket="flowlib-batch")
    iam = boto3.client("iam", **kw)
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    profile = iam.create_instance_profile(InstanceProfileName="batch-instance")["InstanceProfile"]["Arn"]
    ec2 = boto3.client("ec2", **kw)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
    batch = boto3.client("batch", **kw)
    ce = batch.create_compute_environment(
        computeEnvironmentName="flowlib-ce",
        type="MANAGED",
        state="ENABLED",
        computeResources={
            "type": "EC2",
            "minvCpus": 0,
            "maxvCpus": 16,
            "desiredvCpus": 0,
            "instanceTypes": ["m5.xlarge"],
            "subnets": [subnet],
            "securityGroupIds": [sg],
            "instanceRole": profile,
        },
        serviceRole=role,
    )["computeEnvironmentArn"]
    batch.create_job_queue(
        jobQueueName="flowlib-q",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    batch.register_job_definition(
        jobDefinitionName="flowlib-jd",
        type="container",
        containerProperties={
            "image": "busybox:stable",
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "512"},
            ],
        },
    )
    tmp = os.path.join(DIR, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, os.path.join(DIR, "port"))

    def shutdown(*_):
        # The compute environment goes away with the harness: so do its jobs.
        for sid in list(RUNNING):
            for pid in session_pids(sid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        os._exit(0)

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    parent = os.getppid()
    while os.getppid() == parent:  # the test that started it is gone: stop
        time.sleep(0.5)
    shutdown()


if __name__ == "__main__":
    main()
