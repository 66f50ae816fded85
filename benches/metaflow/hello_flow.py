"""Metaflow twin of flowlib's examples/hello.rs: four steps in a line, same work.

    python hello_flow.py run [--name Ada]

Measures the fixed cost of a tiny flow as a whole process: interpreter start,
importing Metaflow, graph/CLI setup, one subprocess per task, four artifact
persists and the local metadata writes.
"""

from metaflow import FlowSpec, Parameter, step


class HelloFlow(FlowSpec):
    """Say hello, count the letters, shout it."""

    # `name` is taken by FlowSpec (the flow's name), so the attribute has another name;
    # the command-line option is still --name, as in the flowlib example.
    who = Parameter("name", default="world", help="who to greet")

    @step
    def start(self):
        """Build the greeting."""
        self.greeting = "Hello, %s!" % self.who
        self.next(self.count)

    @step
    def count(self):
        """Count its letters."""
        self.letters = sum(1 for c in self.greeting if c.isalpha())
        self.next(self.shout)

    @step
    def shout(self):
        """Make it loud."""
        self.shout_text = self.greeting.upper()
        self.next(self.end)

    @step
    def end(self):
        """Print the result."""
        print("%s (%d letters)" % (self.shout_text, self.letters))


if __name__ == "__main__":
    HelloFlow()
