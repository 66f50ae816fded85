#!/usr/bin/env python3
"""A Kubernetes API server for flowlib's tests: no cluster can run on the test machines
(no container runtime, no kube-apiserver package), so this server speaks the real
Kubernetes REST/JSON protocol for the calls flowlib's Kubernetes executor makes, and
*runs* each pod's command as a local process with the pod's environment, the way a
one-node cluster with the host as its only image would.

Emulated, plainly:
  * API: create/get/list/delete Jobs (batch/v1, label selectors, dryRun, generateName,
    delete-collection), list/get/delete Pods, pod logs (tailLines), the Eviction API
    (policy/v1), Nodes (one node), Secrets (create/get; envFrom/secretKeyRef resolve).
  * Job controller: NonIndexed and Indexed Jobs (completions, parallelism,
    backoffLimit, backoffLimitPerIndex, podFailurePolicy onPodConditions/onExitCodes with
    FailIndex/FailJob/Ignore/Count), JOB_COMPLETION_INDEX, the completion-index annotation
    and label, completedIndexes/failedIndexes, Complete/Failed conditions.
  * Kubelet: the container's command runs on this host (the image is not pulled: an image
    whose name starts with `missing/` fails to pull and the pod waits in
    ErrImagePull/ImagePullBackOff); memory limits are enforced by sampling the process
    group's RSS (over the limit: SIGKILL, reason OOMKilled, exit 137, as the kernel's OOM
    killer would); pod activeDeadlineSeconds (phase Failed, reason DeadlineExceeded);
    requests larger than the node: Pending, PodScheduled=False, reason Unschedulable.
Every Job created is also written to <state>/manifests/<name>.json, for validation with
kubernetes-validate against the official schemas.

Usage: k8s_api.py --state DIR [--port 0] [--node-cpu 2] [--node-memory 8Gi]
Prints `listening on PORT` and writes DIR/kubeconfig (an ordinary kubeconfig).
"""

import argparse
import json
import os
import random
import re
import signal
import string
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.RLock()
STATE = {
    "rv": 1,
    "jobs": {},  # (ns, name) -> job
    "pods": {},  # (ns, name) -> pod
    "procs": {},  # (ns, name) -> Popen
    "secrets": {},  # (ns, name) -> secret
    "requests": 0,
}
ARGS = None


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def next_rv():
    STATE["rv"] += 1
    return str(STATE["rv"])


def quantity(q, cpu=False):
    """Kubernetes quantity -> float (cores for cpu, bytes otherwise)."""
    if q is None:
        return 0.0
    if isinstance(q, (int, float)):
        return float(q)
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(q).strip())
    if not m:
        raise ValueError(f"quantities must match the regular expression: {q!r}")
    n, suf = float(m.group(1)), m.group(2)
    mult = {
        "": 1, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
        "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
    }
    if suf not in mult:
        raise ValueError(f"quantities must match the regular expression: {q!r}")
    return n * mult[suf]


def status(code, reason, message):
    return code, {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    }


def selector_matches(sel, labels):
    if not sel:
        return True
    for part in sel.split(","):
        part = part.strip()
        if not part:
            continue
        if "!=" in part:
            k, v = part.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in part:
            k, v = part.split("=", 1)
            k = k.rstrip("=")
            if labels.get(k) != v:
                return False
        elif labels.get(part) is None:
            return False
    return True


def intervals(indexes):
    """[0,1,2,5] -> '0-2,5' (the Job status format)."""
    out, xs = [], sorted(set(indexes))
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(out) or None


# ----------------------------------------------------------------------------- validation

def validate_job(job):
    errs = []
    md = job.get("metadata") or {}
    if not md.get("name") and not md.get("generateName"):
        errs.append("metadata.name: Required value: name or generateName is required")
    name = md.get("name") or md.get("generateName", "")
    if name and not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?-?", name):
        errs.append(f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain")
    if len(md.get("name") or "") > 63:
        errs.append("metadata.name: Invalid value: must be no more than 63 characters")
    for k, v in (md.get("labels") or {}).items():
        if len(v) > 63 or not re.fullmatch(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?", v):
            errs.append(f"metadata.labels: Invalid value: {v!r}")
    spec = job.get("spec") or {}
    tpl = (spec.get("template") or {}).get("spec") or {}
    if tpl.get("restartPolicy") not in ("Never", "OnFailure"):
        errs.append('spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"')
    if spec.get("podFailurePolicy") and tpl.get("restartPolicy") != "Never":
        errs.append("spec.podFailurePolicy: only allowed with restartPolicy Never")
    cs = tpl.get("containers") or []
    if not cs:
        errs.append("spec.template.spec.containers: Required value")
    for i, c in enumerate(cs):
        if not c.get("name"):
            errs.append(f"spec.template.spec.containers[{i}].name: Required value")
        if not c.get("image"):
            errs.append(f"spec.template.spec.containers[{i}].image: Required value")
        res = c.get("resources") or {}
        try:
            for kind in ("requests", "limits"):
                for k, v in (res.get(kind) or {}).items():
                    quantity(v, cpu=(k == "cpu"))
        except ValueError as e:
            errs.append(f"spec.template.spec.containers[{i}].resources: Invalid value: {e}")
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        for k in req:
            if k in lim and quantity(req[k]) > quantity(lim[k]):
                errs.append(f"spec.template.spec.containers[{i}].resources.requests: Invalid value: must be less than or equal to {k} limit")
    if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
        errs.append("spec.completions: Required value: when completion mode is Indexed")
    if spec.get("backoffLimitPerIndex") is not None and spec.get("completionMode") != "Indexed":
        errs.append("spec.backoffLimitPerIndex: requires indexed completion mode")
    return errs


# ----------------------------------------------------------------------------- controller

def pod_for(job, index):
    ns = job["metadata"]["namespace"]
    jname = job["metadata"]["name"]
    suffix = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    name = f"{jname}-{index}-{suffix}" if index is not None else f"{jname}-{suffix}"
    tpl = json.loads(json.dumps(job["spec"]["template"]))
    md = tpl.get("metadata") or {}
    labels = dict(md.get("labels") or {})
    labels["job-name"] = jname
    labels["batch.kubernetes.io/job-name"] = jname
    annotations = dict(md.get("annotations") or {})
    if index is not None:
        labels["batch.kubernetes.io/job-completion-index"] = str(index)
        annotations["batch.kubernetes.io/job-completion-index"] = str(index)
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": ns, "uid": str(uuid.uuid4()),
            "labels": labels, "annotations": annotations,
            "creationTimestamp": now(), "resourceVersion": next_rv(),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": jname,
                                 "uid": job["metadata"]["uid"], "controller": True}],
        },
        "spec": tpl["spec"],
        "status": {"phase": "Pending", "conditions": []},
        "_index": index,
        "_job": (ns, jname),
    }
    return pod


def pod_requests(pod):
    cpu = mem = 0.0
    for c in pod["spec"].get("containers", []):
        req = (c.get("resources") or {}).get("requests") or {}
        cpu += quantity(req.get("cpu", 0), cpu=True)
        mem += quantity(req.get("memory", 0))
    return cpu, mem


def used_capacity():
    cpu = mem = 0.0
    for (ns, name), p in STATE["pods"].items():
        if p["status"].get("phase") == "Running":
            c, m = pod_requests(p)
            cpu += c
            mem += m
    return cpu, mem


def resolve_env(pod, container, index):
    ns = pod["metadata"]["namespace"]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/root" if os.getuid() == 0 else os.environ.get("HOME", "/tmp"),
        "HOSTNAME": pod["metadata"]["name"],
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
    }
    if index is not None:
        env["JOB_COMPLETION_INDEX"] = str(index)
    for ef in container.get("envFrom") or []:
        ref = (ef.get("secretRef") or {}).get("name")
        if ref:
            sec = STATE["secrets"].get((ns, ref))
            if sec is None:
                if (ef.get("secretRef") or {}).get("optional"):
                    continue
                raise LookupError(f'secret "{ref}" not found')
            for k, v in secret_data(sec).items():
                env[(ef.get("prefix") or "") + k] = v
    for e in container.get("env") or []:
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif "valueFrom" in e:
            vf = e["valueFrom"]
            if "secretKeyRef" in vf:
                r = vf["secretKeyRef"]
                sec = STATE["secrets"].get((ns, r["name"]))
                if sec is None:
                    raise LookupError(f'secret "{r["name"]}" not found')
                env[e["name"]] = secret_data(sec).get(r["key"], "")
            elif "fieldRef" in vf:
                path = vf["fieldRef"]["fieldPath"]
                m = re.fullmatch(r"metadata\.annotations\['(.+)'\]", path)
                if m:
                    env[e["name"]] = pod["metadata"]["annotations"].get(m.group(1), "")
                elif path == "metadata.name":
                    env[e["name"]] = pod["metadata"]["name"]
                elif path == "metadata.namespace":
                    env[e["name"]] = ns
    return env


def secret_data(sec):
    import base64
    out = {k: base64.b64decode(v).decode() for k, v in (sec.get("data") or {}).items()}
    out.update(sec.get("stringData") or {})
    return out


def start_pod(pod):
    """Kubelet: run the pod's (single) container as a local process."""
    key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
    c = pod["spec"]["containers"][0]
    image = c.get("image", "")
    if image.startswith("missing/"):
        st = pod["status"]
        waited = st.setdefault("_pull_tries", 0)
        st["_pull_tries"] = waited + 1
        reason = "ErrImagePull" if waited < 3 else "ImagePullBackOff"
        st["containerStatuses"] = [{
            "name": c["name"], "image": image, "imageID": "", "ready": False, "restartCount": 0,
            "state": {"waiting": {"reason": reason,
                                  "message": f'Back-off pulling image "{image}"' if reason == "ImagePullBackOff"
                                  else f'failed to pull and unpack image "{image}": not found'}},
        }]
        st["conditions"] = [{"type": "PodScheduled", "status": "True"}]
        pod["metadata"]["resourceVersion"] = next_rv()
        return
    try:
        env = resolve_env(pod, c, pod["_index"])
    except LookupError as e:
        pod["status"]["containerStatuses"] = [{
            "name": c["name"], "image": image, "ready": False, "restartCount": 0,
            "state": {"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}},
        }]
        pod["metadata"]["resourceVersion"] = next_rv()
        return
    argv = list(c.get("command") or []) + list(c.get("args") or [])
    logdir = os.path.join(ARGS.state, "logs")
    os.makedirs(logdir, exist_ok=True)
    logpath = os.path.join(logdir, pod["metadata"]["name"] + ".log")
    log = open(logpath, "ab")
    workdir = c.get("workingDir") or os.path.join(ARGS.state, "work", pod["metadata"]["name"])
    os.makedirs(workdir, exist_ok=True)
    try:
        proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
        pod["status"].update({"phase": "Failed"})
        pod["status"]["containerStatuses"] = [{
            "name": c["name"], "image": image, "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": 128, "reason": "StartError", "message": str(e),
                                     "startedAt": now(), "finishedAt": now()}},
        }]
        pod["metadata"]["resourceVersion"] = next_rv()
        return
    finally:
        log.close()
    pod["_log"] = logpath
    pod["_started"] = time.time()
    lim = ((c.get("resources") or {}).get("limits") or {}).get("memory")
    pod["_mem_limit"] = quantity(lim) if lim else None
    STATE["procs"][key] = proc
    pod["status"].update({
        "phase": "Running", "startTime": now(), "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
        "conditions": [{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": c["name"], "image": image, "ready": True, "restartCount": 0,
                               "started": True, "state": {"running": {"startedAt": now()}}}],
    })
    pod["metadata"]["resourceVersion"] = next_rv()


def sessions():
    """(session id -> [pids], session id -> resident bytes) from one pass over /proc. A
    pod's processes are its session (every pod starts one): a task that puts its children
    in process groups of their own is still all inside it, as in a container's cgroup."""
    pids, rss = {}, {}
    page = os.sysconf("SC_PAGE_SIZE")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            sid, r = int(fields[3]), int(fields[21]) * page
        except (OSError, IndexError, ValueError):
            continue
        pids.setdefault(sid, []).append(int(d))
        rss[sid] = rss.get(sid, 0) + r
    return pids, rss


def kill_group(proc):
    """SIGKILL every process of the pod (its session), as a container's end does."""
    members, _ = sessions()
    for pid in members.get(proc.pid, []) + [proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def end_pod(pod, code, reason, pod_reason=None, message=None, condition=None):
    key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
    STATE["procs"].pop(key, None)
    st = pod["status"]
    st["phase"] = "Succeeded" if code == 0 and pod_reason is None else "Failed"
    if pod_reason:
        st["reason"] = pod_reason
        st["message"] = message or pod_reason
    term = {"exitCode": code, "reason": reason, "startedAt": st.get("startTime", now()),
            "finishedAt": now()}
    if code > 128:
        term["signal"] = code - 128
    cs = st.get("containerStatuses") or [{"name": "task"}]
    cs[0].update({"ready": False, "started": False, "state": {"terminated": term}})
    st["containerStatuses"] = cs
    conds = [c for c in st.get("conditions", []) if c["type"] != "Ready"]
    conds.append({"type": "Ready", "status": "False", "reason": "PodCompleted"})
    if condition:
        conds.append(condition)
    st["conditions"] = conds
    pod["metadata"]["resourceVersion"] = next_rv()


def matches_rule(rule, pod):
    term = ((pod["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get("terminated") or {}
    if "onExitCodes" in rule:
        r = rule["onExitCodes"]
        code = term.get("exitCode")
        if code is None:
            return False
        vals = set(r.get("values") or [])
        return (code in vals) if r.get("operator") == "In" else (code not in vals and code != 0)
    for pc in rule.get("onPodConditions") or []:
        for c in pod["status"].get("conditions", []):
            if c["type"] == pc["type"] and c.get("status") == pc.get("status", "True"):
                return True
    return False


def reconcile():
    """One pass of the job controller and the kubelet."""
    with LOCK:
        # kubelet: finished processes, memory limits (sampled every 100 ms), deadlines
        rss = {}
        if STATE["procs"] and time.time() - STATE.get("_rss_at", 0) >= 0.1:
            STATE["_rss_at"] = time.time()
            rss = sessions()[1]
        for key, proc in list(STATE["procs"].items()):
            pod = STATE["pods"].get(key)
            if pod is None:
                kill_group(proc)
                STATE["procs"].pop(key, None)
                continue
            code = proc.poll()
            if code is None:
                lim = pod.get("_mem_limit")
                if lim and rss.get(proc.pid, 0) > lim:
                    kill_group(proc)
                    proc.wait()
                    end_pod(pod, 137, "OOMKilled")
                    continue
                dl = pod["spec"].get("activeDeadlineSeconds")
                if dl is not None and time.time() - pod["_started"] > dl:
                    kill_group(proc)
                    proc.wait()
                    end_pod(pod, 137, "Error", "DeadlineExceeded",
                            f"Pod was active on the node longer than the specified deadline")
                    continue
                continue
            kill_group(proc)  # what a container's exit leaves behind dies with it
            if code < 0:
                code = 128 - code
            end_pod(pod, code, "Completed" if code == 0 else "Error")
        # scheduler: pending pods onto the node
        cpu_used, mem_used = used_capacity()
        for key, pod in sorted(STATE["pods"].items(), key=lambda kv: kv[1]["metadata"]["creationTimestamp"]):
            if pod["status"]["phase"] != "Pending" or key in STATE["procs"]:
                continue
            if pod["status"].get("containerStatuses"):
                waiting = (pod["status"]["containerStatuses"][0].get("state") or {}).get("waiting")
                if waiting and waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
                    start_pod(pod)  # retry the pull (it fails again)
                continue
            cpu, mem = pod_requests(pod)
            if cpu > ARGS.node_cpu or mem > ARGS.node_memory:
                what = "cpu" if cpu > ARGS.node_cpu else "memory"
                pod["status"]["conditions"] = [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": f"0/1 nodes are available: 1 Insufficient {what}. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
                }]
                continue
            if cpu_used + cpu > ARGS.node_cpu or mem_used + mem > ARGS.node_memory:
                pod["status"]["conditions"] = [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient cpu.",
                }]
                continue
            cpu_used += cpu
            mem_used += mem
            start_pod(pod)
        # job controller
        for jkey, job in list(STATE["jobs"].items()):
            reconcile_job(jkey, job)


def reconcile_job(jkey, job):
    spec, st = job["spec"], job["status"]
    if any(c["type"] in ("Complete", "Failed") and c["status"] == "True" for c in st.get("conditions", [])):
        return
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions", 1) or 1
    parallelism = spec.get("parallelism", 1)
    per_index = spec.get("backoffLimitPerIndex")
    backoff = spec.get("backoffLimit", 6 if per_index is None else 2**31 - 1)
    pods = [p for p in STATE["pods"].values() if p["_job"] == jkey]
    done, failed_idx = set(job.setdefault("_done", [])), set(job.setdefault("_failed", []))
    fail_counts = job.setdefault("_fail_counts", {})
    job_failed = None
    for p in pods:
        if p.get("_counted") or p["status"]["phase"] not in ("Succeeded", "Failed"):
            continue
        p["_counted"] = True
        idx = p["_index"] if indexed else 0
        if p["status"]["phase"] == "Succeeded":
            done.add(idx)
            st["succeeded"] = st.get("succeeded", 0) + 1
            continue
        action = "Count"
        for rule in (spec.get("podFailurePolicy") or {}).get("rules", []):
            if matches_rule(rule, p):
                action = rule["action"]
                break
        if action == "Ignore":
            continue
        st["failed"] = st.get("failed", 0) + 1
        if action == "FailJob":
            job_failed = ("PodFailurePolicy", f"Pod {p['metadata']['name']} matched a FailJob rule")
        elif action == "FailIndex" and indexed:
            failed_idx.add(idx)
        else:
            fail_counts[str(idx)] = fail_counts.get(str(idx), 0) + 1
            if indexed and per_index is not None and fail_counts[str(idx)] > per_index:
                failed_idx.add(idx)
            elif st["failed"] > backoff:
                job_failed = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
    for p in pods:
        if p.get("_deleted") and p.get("_counted"):
            STATE["pods"].pop((p["metadata"]["namespace"], p["metadata"]["name"]), None)
    pods = [p for p in pods if not p.get("_deleted")]
    job["_done"], job["_failed"] = sorted(done), sorted(failed_idx)
    active = [p for p in pods if p["status"]["phase"] in ("Pending", "Running")]
    st["active"] = len(active)
    if indexed:
        st["completedIndexes"] = intervals(done) or ""
        if per_index is not None:
            st["failedIndexes"] = intervals(failed_idx) or ""
    st["uncountedTerminatedPods"] = {}
    if job_failed is None and not spec.get("suspend"):
        if indexed:
            busy = {p["_index"] for p in active}
            for i in range(completions):
                if len(busy) >= parallelism:
                    break
                if i in done or i in failed_idx or i in busy:
                    continue
                pod = pod_for(job, i)
                STATE["pods"][(pod["metadata"]["namespace"], pod["metadata"]["name"])] = pod
                busy.add(i)
        elif not done and not active:
            pod = pod_for(job, None)
            STATE["pods"][(pod["metadata"]["namespace"], pod["metadata"]["name"])] = pod
    remaining = [i for i in range(completions if indexed else 1) if i not in done and i not in failed_idx]
    if job_failed is None and not remaining and not active:
        if failed_idx:
            job_failed = ("FailedIndexes", "Job has failed indexes")
        else:
            st.setdefault("conditions", []).append({"type": "Complete", "status": "True",
                                                    "lastTransitionTime": now()})
            st["completionTime"] = now()
    if job_failed:
        for p in active:
            proc = STATE["procs"].pop((p["metadata"]["namespace"], p["metadata"]["name"]), None)
            if proc:
                kill_group(proc)
                end_pod(p, 137, "Error")
        st.setdefault("conditions", []).append({"type": "Failed", "status": "True",
                                                "reason": job_failed[0], "message": job_failed[1],
                                                "lastTransitionTime": now()})
    job["metadata"]["resourceVersion"] = next_rv()


def controller_loop():
    while True:
        try:
            reconcile()
        except Exception as e:  # keep serving; say what broke
            print(f"k8s_api: controller error: {e!r}", file=sys.stderr, flush=True)
        time.sleep(0.05)


def delete_pod(key):
    pod = STATE["pods"].pop(key, None)
    proc = STATE["procs"].pop(key, None)
    if proc:
        kill_group(proc)
    return pod


def delete_job(key):
    job = STATE["jobs"].pop(key, None)
    if job is None:
        return None
    for pkey in [k for k, p in STATE["pods"].items() if p["_job"] == key]:
        delete_pod(pkey)
    return job


# ----------------------------------------------------------------------------- HTTP

def public(obj):
    return {k: v for k, v in obj.items() if not k.startswith("_")} if isinstance(obj, dict) else obj


def clean(obj):
    o = public(obj)
    if "status" in o and isinstance(o["status"], dict):
        o["status"] = {k: v for k, v in o["status"].items() if not k.startswith("_")}
    return o


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if os.environ.get("K8S_API_VERBOSE"):
            sys.stderr.write("k8s_api: " + fmt % args + "\n")

    def reply(self, code, body, ctype="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        return json.loads(self._raw or b"{}")

    def route(self, method):
        # Read the body whatever the method (a DELETE carries DeleteOptions), or it would
        # be taken for the next request on this kept-alive connection.
        n = int(self.headers.get("Content-Length") or 0)
        self._raw = self.rfile.read(n) if n else b""
        u = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        parts = [p for p in u.path.split("/") if p]
        with LOCK:
            STATE["requests"] += 1
            counts = STATE.setdefault("by_kind", {})
            kind_key = f"{method} {'/'.join(p for p in parts if p not in ('namespaces',))[:60]}"
            counts[kind_key] = counts.get(kind_key, 0) + 1
        try:
            code, body = self.dispatch(method, parts, q)
        except json.JSONDecodeError as e:
            code, body = status(400, "BadRequest", f"invalid JSON: {e}")
        if isinstance(body, (bytes, str)):
            self.reply(code, body.encode() if isinstance(body, str) else body, "text/plain")
        else:
            self.reply(code, body)

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_DELETE(self):
        self.route("DELETE")

    def dispatch(self, method, parts, q):
        if parts == ["_test", "stats"]:
            with LOCK:
                return 200, {"requests": STATE["requests"], "by_kind": STATE.get("by_kind", {}),
                             "jobs": len(STATE["jobs"]), "pods": len(STATE["pods"])}
        if parts in (["api"], ["version"]):
            return 200, {"kind": "APIVersions", "versions": ["v1"], "major": "1", "minor": "33",
                         "gitVersion": "v1.33.0-flowlib-test"}
        if parts == ["api", "v1", "nodes"] and method == "GET":
            return 200, {"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": str(STATE["rv"])},
                         "items": [{"apiVersion": "v1", "kind": "Node",
                                    "metadata": {"name": "flowlib-test-node", "labels": {"kubernetes.io/hostname": "flowlib-test-node"}},
                                    "status": {"allocatable": {"cpu": str(ARGS.node_cpu), "memory": str(int(ARGS.node_memory)),
                                                               "pods": "110"},
                                               "capacity": {"cpu": str(ARGS.node_cpu), "memory": str(int(ARGS.node_memory))}}}]}
        m = parts
        # /apis/batch/v1/namespaces/{ns}/jobs[/{name}]
        if len(m) >= 6 and m[:3] == ["apis", "batch", "v1"] and m[3] == "namespaces" and m[5] == "jobs":
            return self.jobs(method, m[4], m[6] if len(m) > 6 else None, q)
        # /api/v1/namespaces/{ns}/pods[/{name}[/log|/eviction]]
        if len(m) >= 5 and m[:2] == ["api", "v1"] and m[2] == "namespaces" and m[4] == "pods":
            return self.pods(method, m[3], m[5] if len(m) > 5 else None, m[6] if len(m) > 6 else None, q)
        if len(m) >= 5 and m[:2] == ["api", "v1"] and m[2] == "namespaces" and m[4] == "secrets":
            return self.secrets(method, m[3], m[5] if len(m) > 5 else None)
        return status(404, "NotFound", f"the server could not find the requested resource ({method} /{'/'.join(parts)})")

    def jobs(self, method, ns, name, q):
        with LOCK:
            if method == "POST" and name is None:
                job = self.body()
                errs = validate_job(job)
                if errs:
                    jn = (job.get("metadata") or {}).get("name", "")
                    return status(422, "Invalid", f'Job.batch "{jn}" is invalid: ' + "; ".join(errs))
                md = job.setdefault("metadata", {})
                if not md.get("name"):
                    md["name"] = md["generateName"] + "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
                key = (ns, md["name"])
                if key in STATE["jobs"]:
                    return status(409, "AlreadyExists", f'jobs.batch "{md["name"]}" already exists')
                md.update({"namespace": ns, "uid": str(uuid.uuid4()), "creationTimestamp": now(),
                           "resourceVersion": next_rv()})
                job["status"] = {}
                if q.get("dryRun") == "All":
                    return 201, clean(job)
                spec = job["spec"]
                spec.setdefault("completions", 1)
                spec.setdefault("parallelism", 1)
                spec.setdefault("completionMode", "NonIndexed")
                os.makedirs(os.path.join(ARGS.state, "manifests"), exist_ok=True)
                with open(os.path.join(ARGS.state, "manifests", md["name"] + ".json"), "w") as f:
                    json.dump({k: v for k, v in job.items() if k != "status"}, f, indent=1)
                job["status"] = {"startTime": now(), "active": 0}
                STATE["jobs"][key] = job
                return 201, clean(job)
            if method == "GET" and name is None:
                items = [clean(j) for (n, _), j in sorted(STATE["jobs"].items())
                         if n == ns and selector_matches(q.get("labelSelector"), j["metadata"].get("labels") or {})]
                return 200, {"apiVersion": "batch/v1", "kind": "JobList",
                             "metadata": {"resourceVersion": str(STATE["rv"])}, "items": items}
            if method == "GET":
                job = STATE["jobs"].get((ns, name))
                if job is None:
                    return status(404, "NotFound", f'jobs.batch "{name}" not found')
                return 200, clean(job)
            if method == "DELETE" and name is None:
                keys = [k for k, j in STATE["jobs"].items()
                        if k[0] == ns and selector_matches(q.get("labelSelector"), j["metadata"].get("labels") or {})]
                gone = [clean(delete_job(k)) for k in keys]
                return 200, {"apiVersion": "batch/v1", "kind": "JobList", "metadata": {}, "items": gone}
            if method == "DELETE":
                job = delete_job((ns, name))
                if job is None:
                    return status(404, "NotFound", f'jobs.batch "{name}" not found')
                return 200, clean(job)
        return status(405, "MethodNotAllowed", "method not allowed")

    def pods(self, method, ns, name, sub, q):
        with LOCK:
            if method == "GET" and name is None:
                items = [clean(p) for (n, _), p in sorted(STATE["pods"].items())
                         if n == ns and not p.get("_deleted") and selector_matches(q.get("labelSelector"), p["metadata"].get("labels") or {})]
                return 200, {"apiVersion": "v1", "kind": "PodList",
                             "metadata": {"resourceVersion": str(STATE["rv"])}, "items": items}
            pod = STATE["pods"].get((ns, name)) if name else None
            if pod is None:
                return status(404, "NotFound", f'pods "{name}" not found')
            if method == "GET" and sub is None:
                return 200, clean(pod)
            if method == "GET" and sub == "log":
                path = pod.get("_log")
                if not path:
                    return status(400, "BadRequest",
                                  f'container "task" in pod "{name}" is waiting to start: '
                                  + (((pod["status"].get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting") or {}).get("reason", "ContainerCreating"))
                with open(path, "rb") as f:
                    data = f.read()
                if q.get("tailLines"):
                    lines = data.splitlines(keepends=True)
                    data = b"".join(lines[-int(q["tailLines"]):])
                return 200, data
            if method == "POST" and sub == "eviction":
                # policy/v1 Eviction: the pod is terminated with a DisruptionTarget condition.
                proc = STATE["procs"].get((ns, name))
                if proc:
                    kill_group(proc)
                    proc.wait()
                if pod["status"]["phase"] in ("Pending", "Running"):
                    end_pod(pod, 137, "Error", "Evicted", "The node was low on resources.",
                            {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                             "message": "Eviction API: evicting", "lastTransitionTime": now()})
                return 201, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 201}
            if method == "DELETE":
                # As in a cluster: a Job's running pod that is deleted ends Failed (exit 137)
                # and the Job controller counts that failure before the pod goes away.
                proc = STATE["procs"].get((ns, name))
                if pod.get("_job") in STATE["jobs"] and pod["status"]["phase"] in ("Pending", "Running"):
                    if proc:
                        kill_group(proc)
                        proc.wait()
                    end_pod(pod, 137, "Error")
                    pod["_deleted"] = True
                else:
                    delete_pod((ns, name))
                return 200, clean(pod)
        return status(405, "MethodNotAllowed", "method not allowed")

    def secrets(self, method, ns, name):
        with LOCK:
            if method == "POST" and name is None:
                sec = self.body()
                sname = sec["metadata"]["name"]
                sec["metadata"].update({"namespace": ns, "uid": str(uuid.uuid4()), "resourceVersion": next_rv()})
                STATE["secrets"][(ns, sname)] = sec
                return 201, sec
            if method == "GET" and name:
                sec = STATE["secrets"].get((ns, name))
                if sec is None:
                    return status(404, "NotFound", f'secrets "{name}" not found')
                return 200, sec
        return status(405, "MethodNotAllowed", "method not allowed")


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--state", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--node-cpu", type=float, default=2)
    p.add_argument("--node-memory", default="8Gi")
    p.add_argument("--namespace", default="default")
    ARGS = p.parse_args()
    ARGS.node_memory = quantity(ARGS.node_memory)
    os.makedirs(ARGS.state, exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    srv.daemon_threads = True
    port = srv.server_address[1]
    with open(os.path.join(ARGS.state, "kubeconfig"), "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: flowlib-test
  cluster:
    server: http://127.0.0.1:{port}
contexts:
- name: flowlib-test
  context:
    cluster: flowlib-test
    user: flowlib-test
    namespace: {ARGS.namespace}
current-context: flowlib-test
users:
- name: flowlib-test
  user:
    token: flowlib-test-token
""")
    threading.Thread(target=controller_loop, daemon=True).start()

    def stop(*_):
        with LOCK:
            for proc in STATE["procs"].values():
                kill_group(proc)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"listening on {port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
