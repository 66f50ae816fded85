#!/usr/bin/env python3
"""A small interpreter of Argo Workflows DAGs, for flowlib's tests of `export argo`.

No Argo or Kubernetes can run on the machines these tests run on, so this walks an exported
WorkflowTemplate the way Argo's controller would and runs each container's command as a
local process (the flow binary's path in the image is the local binary's, `export argo
--exe`). It implements what the export uses, the way Argo documents it:

- DAG templates, tasks in `dependencies` order, fail-fast (after a failure no new task
  starts; the DAG fails), the entrypoint and then the `onExit` handler with
  `{{workflow.status}}`;
- `withParam`: one instance of the task per item of the JSON list, `{{item}}`;
- `{{workflow.name}}`, `{{workflow.uid}}`, `{{workflow.parameters.X}}` (defaults from
  `spec.arguments`, overridden with `-p X=V`), `{{inputs.parameters.X}}`,
  `{{tasks.T.outputs.parameters.Y}}`, `{{workflow.outputs.parameters.G}}` (`globalName`),
  `{{retries}}`, `{{workflow.status}}` and `{{workflow.failures}}` (in the exit handler);
  an unresolved variable, an unknown template or dependency, or a missing or
  extra input parameter is an invalid workflow (exit 2);
- container templates: `command` + `args`, `env` values; `outputs.parameters[].valueFrom.path`
  read after a pod succeeds, a missing output file is an error as in Argo; each pod has its
  own scratch space (the pod-local paths the export uses, `/tmp/flowlib-*`, in an argument,
  an `env` value or an output path, are mapped into a directory of the pod's own);
- `retryStrategy`: `limit`, `retryPolicy` (`Always`, `OnFailure` (the default), `OnError`),
  `backoff` (`duration`, `factor`); `activeDeadlineSeconds` kills a pod that runs too long.

Not emulated: scheduling, `resources`, images, `envFrom` secrets, parallel execution (tasks
run one at a time, which Argo's semantics allow).

Usage: argo_run.py WORKFLOW.(yaml|json) [-p NAME=VALUE]... [--workflow-name NAME]
           [--error-first STEP]...
`--error-first STEP` makes the first attempt of every pod of template `step-STEP` end in
Argo's `Error` phase without running (a pod evicted or deleted): a platform failure.
Prints a JSON report on stdout: {"status", "run", "nodes": [...], "exit_handler"}.
Exit code: 0 when the workflow succeeded, 1 when it failed, 2 when it is invalid.
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import yaml

VAR = re.compile(r"\{\{([^{}]*)\}\}")
# The pod-local scratch paths the export uses (output parameters, the read cache).
POD_LOCAL = "/tmp/flowlib-"


def kill_session(sid):
    """SIGKILL every process of session `sid`: a pod past its deadline dies whole (its
    processes may be in process groups of their own, as flowlib's watched child is)."""
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            try:
                os.kill(int(d), signal.SIGKILL)
            except OSError:
                pass


class Invalid(Exception):
    """The workflow is not one Argo would run."""


def duration_s(text):
    """An Argo duration: `10ms`, `2s`, `1m`, `1h`, or plain seconds."""
    text = str(text)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text)
    if not m:
        raise Invalid(f"bad duration {text!r}")
    n = float(m.group(1))
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


class Interpreter:
    def __init__(self, doc, params, name, error_first):
        if doc.get("apiVersion") != "argoproj.io/v1alpha1" or doc.get("kind") not in (
            "Workflow",
            "WorkflowTemplate",
        ):
            raise Invalid("not an argoproj.io/v1alpha1 Workflow or WorkflowTemplate")
        spec = doc["spec"]
        self.spec = spec
        self.templates = {}
        for t in spec["templates"]:
            if t["name"] in self.templates:
                raise Invalid(f"template {t['name']} is defined twice")
            self.templates[t["name"]] = t
        self.wf = {"workflow.name": name, "workflow.uid": str(uuid.uuid4())}
        declared = {
            p["name"]: p.get("value") for p in spec.get("arguments", {}).get("parameters", [])
        }
        for k, v in params.items():
            if k not in declared:
                raise Invalid(f"-p {k}: the workflow has no parameter {k}")
            declared[k] = v
        for k, v in declared.items():
            if v is None:
                raise Invalid(f"workflow parameter {k} has no value (pass -p {k}=...)")
            self.wf[f"workflow.parameters.{k}"] = str(v)
        self.globals = {}
        self.nodes = []
        self.error_first = set(error_first)
        self.errored_once = set()
        self.pods = tempfile.mkdtemp(prefix="argo-pods-")

    def subst(self, text, scope):
        def one(m):
            key = m.group(1).strip()
            if key in scope:
                return scope[key]
            if key in self.wf:
                return self.wf[key]
            g = key.removeprefix("workflow.outputs.parameters.")
            if g != key and g in self.globals:
                return self.globals[g]
            raise Invalid(f"unresolved variable {{{{{key}}}}} in {text!r}")

        return VAR.sub(one, str(text))

    def template(self, name, inputs, path):
        t = self.templates.get(name)
        if t is None:
            raise Invalid(f"{path}: no template named {name}")
        declared = [p["name"] for p in t.get("inputs", {}).get("parameters", [])]
        if sorted(declared) != sorted(inputs):
            raise Invalid(
                f"{path}: template {name} takes parameters {declared}, given {sorted(inputs)}"
            )
        scope = {f"inputs.parameters.{k}": v for k, v in inputs.items()}
        if "dag" in t:
            return self.dag(t, scope, path)
        if "container" in t:
            return self.container(t, scope, path)
        raise Invalid(f"template {name} is neither a dag nor a container")

    def dag(self, t, scope, path):
        tasks = {x["name"]: x for x in t["dag"]["tasks"]}
        for x in tasks.values():
            for d in x.get("dependencies", []):
                if d not in tasks:
                    raise Invalid(f"{path}/{x['name']}: depends on unknown task {d}")
        done = {}
        failed = False
        while len(done) < len(tasks):
            ready = [
                n
                for n, x in tasks.items()
                if n not in done and all(d in done for d in x.get("dependencies", []))
            ]
            if not ready:
                raise Invalid(f"{path}: the DAG's dependencies have a cycle")
            if failed:
                break  # fail fast: nothing new starts after a failure
            for n in ready:
                ok, outputs = self.task(tasks[n], scope, done, f"{path}/{n}")
                done[n] = outputs
                failed |= not ok
                if failed:
                    break
        return not failed, {}

    def task(self, x, scope, done, path):
        local = dict(scope)
        for n, outputs in done.items():
            for k, v in outputs.items():
                local[f"tasks.{n}.outputs.parameters.{k}"] = v
        args = {p["name"]: p.get("value", "") for p in x.get("arguments", {}).get("parameters", [])}
        if "withParam" not in x:
            inputs = {k: self.subst(v, local) for k, v in args.items()}
            return self.template(x["template"], inputs, path)
        items = json.loads(self.subst(x["withParam"], local))
        if not isinstance(items, list):
            raise Invalid(f"{path}: withParam is not a JSON list: {items!r}")
        ok = True
        # Argo starts every item at once: one failing does not stop its siblings.
        for item in items:
            s = dict(local)
            s["item"] = item if isinstance(item, str) else json.dumps(item)
            inputs = {k: self.subst(v, s) for k, v in args.items()}
            item_ok, _ = self.template(x["template"], inputs, f"{path}({s['item']})")
            ok &= item_ok
        return ok, {}

    def container(self, t, scope, path):
        c = t["container"]
        rs = t.get("retryStrategy") or {}
        limit = int(rs.get("limit", 0))
        policy = rs.get("retryPolicy", "OnFailure")
        backoff = rs.get("backoff") or {}
        deadline = t.get("activeDeadlineSeconds")
        outputs = t.get("outputs", {}).get("parameters", [])
        for retry in range(limit + 1):
            s = dict(scope)
            s["retries"] = str(retry)
            # Each pod has its own filesystem: its scratch files are in a directory of its own
            # here (the datastore, on a shared volume, may be under /tmp too: not mapped).
            pod = tempfile.mkdtemp(dir=self.pods)
            os.makedirs(os.path.join(pod, "tmp"))

            def local(v):
                return os.path.join(pod, v[1:]) if v.startswith(POD_LOCAL) else v

            env = dict(os.environ)
            for e in c.get("env", []):
                env[e["name"]] = local(self.subst(e.get("value", ""), s))
            argv = [local(self.subst(a, s)) for a in c.get("command", []) + c.get("args", [])]
            paths = {o["valueFrom"]["path"]: local(o["valueFrom"]["path"]) for o in outputs}
            node = {"path": path, "template": t["name"], "retry": retry, "argv": argv}
            self.nodes.append(node)
            step = t["name"].removeprefix("step-")
            if step in self.error_first and (path, step) not in self.errored_once:
                self.errored_once.add((path, step))
                node.update(phase="Error", message="pod deleted (emulated platform failure)")
            else:
                try:
                    # Its own session, so a deadline kills the whole pod (the watched child too).
                    p = subprocess.Popen(
                        argv,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        text=True,
                        start_new_session=True,
                    )
                    try:
                        out, err = p.communicate(timeout=float(deadline) if deadline is not None else None)
                        node.update(exit=p.returncode, phase="Succeeded" if p.returncode == 0 else "Failed")
                    except subprocess.TimeoutExpired:
                        kill_session(p.pid)
                        out, err = p.communicate()
                        node.update(
                            exit=p.returncode,
                            phase="Failed",
                            message="Pod was active on the node longer than the specified deadline",
                        )
                    sys.stderr.write(f"--- {path} retry {retry}: exit {p.returncode}\n{err}")
                    node["stdout"] = out
                except OSError as e:
                    node.update(phase="Error", message=str(e))
            if node["phase"] == "Succeeded":
                values = {}
                for o in outputs:
                    f = paths[o["valueFrom"]["path"]]
                    if not os.path.exists(f):
                        node.update(phase="Error", message=f"output parameter {o['name']}: {o['valueFrom']['path']} not found")
                        break
                    with open(f) as fh:
                        values[o["name"]] = fh.read().strip()
                    if "globalName" in o:
                        self.globals[o["globalName"]] = values[o["name"]]
                if node["phase"] == "Succeeded":
                    return True, values
            again = {
                "Always": True,
                "OnFailure": node["phase"] == "Failed",
                "OnError": node["phase"] == "Error",
            }.get(policy)
            if again is None:
                raise Invalid(f"{t['name']}: unknown retryPolicy {policy}")
            if not again or retry == limit:
                return False, {}
            if "duration" in backoff:
                factor = float(backoff.get("factor", 1))
                time.sleep(duration_s(backoff["duration"]) * factor**retry)
        return False, {}

    def run(self):
        ok, _ = self.template(self.spec["entrypoint"], {}, self.spec["entrypoint"])
        status = "Succeeded" if ok else "Failed"
        report = {"status": status, "nodes": self.nodes}
        if "onExit" in self.spec:
            self.wf["workflow.status"] = status
            # Quoted, as Argo's controller substitutes it (a JSON string holding the list).
            self.wf["workflow.failures"] = json.dumps(json.dumps(
                [
                    {
                        "displayName": f"{n['path'].rsplit('/', 1)[-1]}({n['retry']})",
                        "message": n.get("message", ""),
                        "templateName": n["template"],
                        "phase": n["phase"],
                    }
                    for n in self.nodes
                    if n["phase"] != "Succeeded"
                ]
            ))
            exit_ok, _ = self.template(self.spec["onExit"], {}, self.spec["onExit"])
            report["exit_handler"] = "Succeeded" if exit_ok else "Failed"
            if not exit_ok:
                status = report["status"] = "Failed"
        report["run"] = self.globals.get("flowlib-run")
        return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workflow")
    ap.add_argument("-p", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--workflow-name", default="flowlib-test-" + uuid.uuid4().hex[:6])
    ap.add_argument("--error-first", action="append", default=[], metavar="STEP")
    a = ap.parse_args()
    with open(a.workflow) as f:
        doc = yaml.safe_load(f)
    params = dict(p.split("=", 1) for p in a.p)
    try:
        report = Interpreter(doc, params, a.workflow_name, a.error_first).run()
    except Invalid as e:
        print(f"argo_run: invalid workflow: {e}", file=sys.stderr)
        sys.exit(2)
    json.dump(report, sys.stdout, indent=1)
    print()
    sys.exit(0 if report["status"] == "Succeeded" else 1)


if __name__ == "__main__":
    main()
