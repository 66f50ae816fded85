"""Metaflow twin of flowlib's benches/foreach.rs: start -> foreach over N trivial
items -> join summing -> end.

    python foreach_flow.py run --n 100 [--max-workers W]

Measures the per-task overhead of Metaflow's local runtime: each of the N+3 tasks
is its own `python foreach_flow.py step ...` subprocess that imports Metaflow,
loads its inputs from the local datastore and persists its artifacts.
compare.sh divides the wall time of the whole `run` process by the number of tasks.
"""

from metaflow import FlowSpec, Parameter, step


class ForeachFlow(FlowSpec):
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
        self.total = sum(i.doubled for i in inputs)
        expected = sum(i * 2 for i in range(self.n))
        assert self.total == expected, (self.total, expected)
        self.next(self.end)

    @step
    def end(self):
        print("foreach n=%d total=%d" % (self.n, self.total))


if __name__ == "__main__":
    ForeachFlow()
