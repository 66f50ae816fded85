"""Metaflow twin of flowlib's benches/large_artifact.rs: a large `bytes` artifact
(default 1 GiB) created in `start` and read in the next step.

    LARGE_ARTIFACT_REPORT=/path/report.jsonl python large_artifact_flow.py run --mib 1024

What is timed (each task appends JSON lines to $LARGE_ARTIFACT_REPORT, if set):

* write: from the end of `start`'s step function to the exit of the `start` task
  process. That is Metaflow's persist phase (pickle, SHA-1, gzip level 3 into memory,
  write to the local datastore) plus the metadata/"done" markers -- the same span as
  flowlib's `store_ms`. Generating the bytes is timed separately (`gen_s`) and left out.
* read: the first access of `self.data` in `consume` (artifacts load lazily: read
  the file, gunzip, unpickle) -- the same span as flowlib's `load_ms`.
  `consume_persist_s` is what `consume` spends after its step function: because the
  step touched `self.data`, Metaflow pickles and SHA-1-hashes the whole GiB again when
  it persists the task (the blob already exists, so it is not rewritten).
* peak RSS of each task process: `getrusage(RUSAGE_SELF).ru_maxrss` read by an
  `atexit` hook, i.e. when the task process exits, after the persist phase.

The bytes are os.urandom(1 MiB) repeated: as incompressible for gzip (32 KiB
window) as flowlib's xorshift stream, without spending seconds in os.urandom.
"""

import atexit
import json
import os
import resource
import time

from metaflow import FlowSpec, Parameter, current, step


def _report(**fields):
    path = os.environ.get("LARGE_ARTIFACT_REPORT")
    if not path:
        return
    fields.setdefault("step", current.step_name)
    fields.setdefault("pid", os.getpid())
    with open(path, "a") as f:
        f.write(json.dumps(fields) + "\n")


def _report_at_exit(step_name):
    def hook():
        _report(
            step=step_name,
            event="exit",
            t=time.time(),
            maxrss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        )

    atexit.register(hook)


class LargeArtifactFlow(FlowSpec):
    mib = Parameter("mib", default=1024, type=int, help="artifact size in MiB")

    @step
    def start(self):
        _report_at_exit("start")
        t0 = time.perf_counter()
        block = os.urandom(1 << 20)
        self.data = block * self.mib
        gen_s = time.perf_counter() - t0
        _report(event="step_end", t=time.time(), gen_s=gen_s, size=len(self.data))
        self.next(self.consume)

    @step
    def consume(self):
        _report_at_exit("consume")
        t0 = time.perf_counter()
        data = self.data  # lazy load: read + gunzip + unpickle
        load_s = time.perf_counter() - t0
        self.checksum = sum(data[::4096])
        assert len(data) == self.mib << 20
        _report(event="step_end", t=time.time(), load_s=load_s, size=len(data))
        self.next(self.end)

    @step
    def end(self):
        print("checksum %d" % self.checksum)


if __name__ == "__main__":
    LargeArtifactFlow()
