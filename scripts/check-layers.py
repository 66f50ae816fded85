#!/usr/bin/env python3
"""Check that flowlib's runtime layers point one way (see ARCHITECTURE.md).

Each top-level module of flowlib/src is a layer; a module may name (`crate::x`, `super::`
paths resolved to a top-level module) only layers listed before it. Exits 1 naming every
file and line that reaches up or sideways into a later layer.
"""
import pathlib
import re
import sys

# Lowest first; the same order as the `mod` lines of flowlib/src/lib.rs.
LAYERS = ["error", "failpoint", "store", "meta", "flow", "task", "exec", "run",
          "client", "maintenance", "report", "export", "cli", "__private"]
# Re-export facades that may name everything: the crate root and the macros' support module.
FACADES = {"lib", "__private"}

root = pathlib.Path(__file__).resolve().parent.parent / "flowlib" / "src"
use_re = re.compile(r"\bcrate::([a-z_]+)")
bad = []
for path in sorted(root.rglob("*.rs")):
    rel = path.relative_to(root)
    layer = rel.parts[0].removesuffix(".rs")
    if layer in FACADES:
        continue
    if layer not in LAYERS:
        bad.append(f"{rel}: module `{layer}` is not in the layer list of scripts/check-layers.py")
        continue
    rank = LAYERS.index(layer)
    in_tests = False
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.startswith("#[cfg(test)]") or rel.name == "tests.rs":
            in_tests = True  # unit tests may use the whole crate (prelude, macros)
        if in_tests or line.lstrip().startswith("//"):
            continue
        for m in use_re.finditer(line):
            target = m.group(1)
            if target in ("prelude",) or target not in LAYERS:
                continue
            if LAYERS.index(target) > rank:
                bad.append(f"{rel}:{n}: layer `{layer}` uses the later layer `{target}`: {line.strip()}")
if bad:
    print("\n".join(bad))
    sys.exit(1)
print(f"layers ok: {' -> '.join(LAYERS[:-1])}")
