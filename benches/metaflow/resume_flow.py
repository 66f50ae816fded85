"""Metaflow twin of flowlib's resume benchmark: a foreach of N (default 100) trivial
tasks whose join fails the first time, then `resume`.

    RESUME_BENCH_FAIL=1 python resume_flow.py run --n 100     # join raises, exit != 0
    python resume_flow.py resume                              # clones start + N tasks, reruns gather, end

The join fails while the environment variable RESUME_BENCH_FAIL is "1" (the local
runtime passes its environment to every task). Measures what `resume` costs: finding
the failed run, cloning every successful task (metadata + artifact references, no
re-execution) and running the join and end again.
"""

import os

from metaflow import FlowSpec, Parameter, step


class ResumeFlow(FlowSpec):
    n = Parameter("n", default=100, type=int, help="number of foreach tasks")

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.doubled = self.input * 2
        self.next(self.gather)

    @step
    def gather(self, inputs):
        if os.environ.get("RESUME_BENCH_FAIL") == "1":
            raise RuntimeError("join fails on purpose (RESUME_BENCH_FAIL=1)")
        self.total = sum(i.doubled for i in inputs)
        assert self.total == sum(i * 2 for i in range(self.n))
        self.next(self.end)

    @step
    def end(self):
        print("resume n=%d total=%d" % (self.n, self.total))


if __name__ == "__main__":
    ResumeFlow()
