#!/usr/bin/env python3
"""Helpers for benches/compare.sh. Standard library only, any Python >= 3.8.

    bench_tools.py time --key K --results F [--warmup 2] [--runs 20] [--cwd D] -- CMD...
        Run CMD warmup + runs times (stdout/stderr to --log or /dev/null), record the
        wall time of each timed run and write K.median_s, K.mean_s, K.min_s, K.max_s,
        K.runs, plus the CPU time (user + sys) of the timed runs' whole process tree
        (K.cpu_s, per run) and the largest peak RSS of any process in it (K.maxrss_bytes,
        getrusage(RUSAGE_CHILDREN): Linux folds waited-for grandchildren into it).
    bench_tools.py cargo-exes                    cargo --message-format=json on stdin -> "name path"
    bench_tools.py hyperfine-json --key K --results F FILE
    bench_tools.py foreach --key K --results F LOG...          flowlib benches/foreach.rs output
    bench_tools.py large --key K --results F LOG               flowlib benches/large_artifact.rs output
    bench_tools.py mf-large --key K --results F REPORT.jsonl   large_artifact_flow.py report
    bench_tools.py mf-tasks --key K --results F LOG            median task lifetime in a Metaflow log
    bench_tools.py resume --key K --results F LOG              flowlib benches/resume.rs output (best effort)
    bench_tools.py table --results F                           the Markdown table
    bench_tools.py get --results F KEY                         one value

Results are "key=value" lines; a later line wins.
"""

import argparse
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import time


# ---------------------------------------------------------------------------- results


def load(path):
    out = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.rstrip("\n")
                if "=" in line:
                    k, v = line.split("=", 1)
                    out[k] = v
    return out


def save(path, key, **fields):
    with open(path, "a") as f:
        for name, value in fields.items():
            f.write("%s.%s=%s\n" % (key, name, value))


# ------------------------------------------------------------------------------- time


def cmd_time(a):
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        sys.exit("time: no command")
    log = open(a.log, "ab") if a.log else subprocess.DEVNULL

    def once():
        t0 = time.perf_counter()
        p = subprocess.run(cmd, cwd=a.cwd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        if p.returncode != 0 and not a.allow_fail:
            sys.exit("time: %s exited %d (log: %s)" % (" ".join(cmd), p.returncode, a.log))
        return dt, p.returncode

    for _ in range(a.warmup):
        once()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    times, codes = [], []
    for _ in range(a.runs):
        dt, rc = once()
        times.append(dt)
        codes.append(rc)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / a.runs
    fields = dict(
        median_s="%.6f" % statistics.median(times),
        mean_s="%.6f" % statistics.mean(times),
        min_s="%.6f" % min(times),
        max_s="%.6f" % max(times),
        runs=a.runs,
        warmup=a.warmup,
        cpu_s="%.6f" % cpu,
        maxrss_bytes=r1.ru_maxrss * 1024,
        exit_codes=",".join(str(c) for c in codes),
        method="python timing loop (bench_tools.py time)",
    )
    save(a.results, a.key, **fields)
    print(
        "%s: median %.4f s, mean %.4f s (min %.4f, max %.4f, %d runs after %d warm-ups; "
        "cpu %.3f s per run)"
        % (a.key, statistics.median(times), statistics.mean(times), min(times), max(times),
           a.runs, a.warmup, cpu),
        file=sys.stderr,
    )


def cmd_hyperfine_json(a):
    with open(a.file) as f:
        r = json.load(f)["results"][0]
    save(
        a.results,
        a.key,
        median_s="%.6f" % r["median"],
        mean_s="%.6f" % r["mean"],
        min_s="%.6f" % r["min"],
        max_s="%.6f" % r["max"],
        runs=len(r.get("times", [])),
        method="hyperfine",
    )


# ------------------------------------------------------------------------------ cargo


def cmd_cargo_exes(a):
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        m = json.loads(line)
        if m.get("reason") == "compiler-artifact" and m.get("executable"):
            if "bench" in m["target"]["kind"]:
                print(m["target"]["name"], m["executable"])


# ------------------------------------------------------------------- flowlib outputs

FOREACH = re.compile(
    r"foreach n=(\d+): (\d+) tasks in ([\d.]+) s on (\d+) workers = ([\d.]+) µs per task"
)


def cmd_foreach(a):
    rows = []
    for path in a.logs:
        with open(path, encoding="utf-8", errors="replace") as f:
            m = FOREACH.search(f.read())
        if not m:
            sys.exit("foreach: no result line in %s" % path)
        rows.append(m.groups())
    per_task = [float(r[4]) for r in rows]
    walls = [float(r[2]) for r in rows]
    save(
        a.results,
        a.key,
        n=rows[0][0],
        tasks=rows[0][1],
        workers=rows[0][3],
        us_per_task="%.3f" % statistics.median(per_task),
        us_per_task_min="%.3f" % min(per_task),
        us_per_task_all=",".join("%.1f" % x for x in per_task),
        wall_s="%.6f" % statistics.median(walls),
        reps=len(rows),
    )


def _num(pattern, text, what):
    m = re.search(pattern, text)
    if not m:
        sys.exit("large: cannot find %s in the output" % what)
    return [float(g) for g in m.groups()]


def cmd_large(a):
    with open(a.log, encoding="utf-8", errors="replace") as f:
        t = f.read()
    (mib,) = _num(r"artifact: (\d+) MiB", t, "the size")
    (sha_s,) = _num(r"sha256sum on the blob:\s+([\d.]+) s", t, "sha256sum")
    (w_s,) = _num(r"write \(start task store phase\):\s+([\d.]+) s", t, "write")
    (r_in,) = _num(r"read, in-process run:\s+([\d.]+) s", t, "in-process read")
    r_child, child_wall = _num(
        r"read, `step consume` child:\s+([\d.]+) s.*child wall ([\d.]+) s", t, "child read"
    )
    (whole,) = _num(r"whole 3-step run: ([\d.]+) s", t, "whole run")
    run_gib, child_gib = _num(
        r"peak RSS: run \(write \+ read in one process\) ([\d.]+) GiB.*reading child ([\d.]+) GiB",
        t,
        "peak RSS",
    )
    save(
        a.results,
        a.key,
        mib=int(mib),
        sha256sum_s=sha_s,
        write_s=w_s,
        read_inproc_s=r_in,
        read_s=r_child,
        read_child_wall_s=child_wall,
        whole_run_s=whole,
        rss_run_bytes=int(run_gib * (1 << 30)),
        rss_read_bytes=int(child_gib * (1 << 30)),
    )


def cmd_resume(a):
    """benches/resume.rs output. Knows its three lines (first run / reuse part / resume
    with the join fixed); if they change, takes `RESULT key=value` lines if any, else the
    first line mentioning resume with a time in s or ms (best effort)."""
    with open(a.log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    lines = text.splitlines()
    fixed = re.search(r"resume with the join fixed \((\d+) reused[^\n]*\): ([\d.]+) ms", text)
    if fixed:
        fields = dict(resume_s="%.6f" % (float(fixed.group(2)) / 1e3), reused=fixed.group(1))
        m = re.search(r"foreach of (\d+): first run \(join fails\) ([\d.]+) s", text)
        if m:
            fields.update(n=m.group(1), fail_run_s=m.group(2))
        m = re.search(r"resume, reuse part \((\d+) tasks reused[^\n]*\): ([\d.]+) ms", text)
        if m:
            fields["reuse_s"] = "%.6f" % (float(m.group(2)) / 1e3)
        save(a.results, a.key, **fields)
        return
    fields = {}
    for line in lines:
        m = re.match(r"RESULT (\w+)=(\S+)", line.strip())
        if m:
            fields[m.group(1)] = m.group(2)
    if "resume_s" not in fields:
        for line in lines:
            if "resume" not in line.lower():
                continue
            m = re.search(r"([\d.]+)\s*(ms|s)\b", line)
            if m:
                v = float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)
                fields["resume_s"] = "%.6f" % v
                fields["line"] = line.strip().replace("|", "/")
                break
    if not fields:
        fields["line"] = (lines[-1].strip().replace("|", "/") if lines else "(no output)")
    save(a.results, a.key, **fields)


# ------------------------------------------------------------------ Metaflow outputs


def cmd_mf_large(a):
    ev = {}
    with open(a.report) as f:
        for line in f:
            line = line.strip()
            if line:
                d = json.loads(line)
                ev[(d["step"], d["event"])] = d
    try:
        s_end, s_exit = ev[("start", "step_end")], ev[("start", "exit")]
        c_end, c_exit = ev[("consume", "step_end")], ev[("consume", "exit")]
    except KeyError as e:
        sys.exit("mf-large: missing event %s in %s" % (e, a.report))
    save(
        a.results,
        a.key,
        mib=s_end["size"] >> 20,
        gen_s="%.4f" % s_end["gen_s"],
        write_s="%.4f" % (s_exit["t"] - s_end["t"]),
        read_s="%.4f" % c_end["load_s"],
        consume_persist_s="%.4f" % (c_exit["t"] - c_end["t"]),
        rss_write_bytes=s_exit["maxrss_bytes"],
        rss_read_bytes=c_exit["maxrss_bytes"],
    )


MF_LOG = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \[([^\]/]+/[^\]/]+/[^\] ]+)[^\]]*\] "
    r"(Task is starting\.|Task finished successfully\.)"
)


def cmd_mf_tasks(a):
    """Median lifetime of a Metaflow task (runtime's "Task is starting." -> "Task finished
    successfully." log lines): what one task costs, seen from the runtime."""
    import datetime

    starts, durs = {}, []
    with open(a.log, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = MF_LOG.match(line)
            if not m:
                continue
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            if m.group(3).startswith("Task is"):
                starts[m.group(2)] = t
            elif m.group(2) in starts:
                durs.append(t - starts.pop(m.group(2)))
    if durs:
        save(a.results, a.key, task_median_s="%.4f" % statistics.median(durs),
             task_count=len(durs))


# ------------------------------------------------------------------------------ table


def cmd_get(a):
    print(load(a.results).get(a.key, ""))


def fmt_s(v):
    if v is None:
        return None
    v = float(v)
    if v < 1e-3:
        return "%.0f µs" % (v * 1e6)
    if v < 1:
        return "%.1f ms" % (v * 1e3)
    if v < 100:
        return "%.2f s" % v
    return "%.0f s" % v


def fmt_us(v):
    if v is None:
        return None
    v = float(v)
    if v >= 1e5:
        return "%.0f ms" % (v / 1e3)
    if v >= 1e3:
        return "%.1f ms" % (v / 1e3)
    return "%.1f µs" % v


def fmt_gib(b, mib=None):
    if b is None:
        return None
    b = float(b)
    s = "%.2f GiB" % (b / (1 << 30))
    if mib:
        s += " (%.2f× the artifact)" % (b / (float(mib) * (1 << 20)))
    return s


def ratio(mf, fl):
    try:
        mf, fl = float(mf), float(fl)
    except (TypeError, ValueError):
        return "—"
    if fl <= 0:
        return "—"
    r = mf / fl
    return ("%.0f×" % r) if r >= 10 else ("%.1f×" % r) if r >= 1 else ("%.2f×" % r)


def gbps(mib, s):
    try:
        return " (%.2f GB/s)" % (float(mib) * (1 << 20) / float(s) / 1e9)
    except (TypeError, ValueError, ZeroDivisionError):
        return ""


def cmd_table(a):
    r = load(a.results)
    g = r.get
    rows = []
    mf_on = g("metaflow.enabled") == "1"
    nomf = "not run (no --with-metaflow)"

    def row(name, fl, mf, rat="—"):
        rows.append((name, fl or "—", mf if mf is not None else (nomf if not mf_on else "—"), rat))

    # hello
    fl = None
    if g("hello.fl.median_s"):
        fl = "median %s, mean %s (%s runs after %s warm-ups)" % (
            fmt_s(g("hello.fl.median_s")), fmt_s(g("hello.fl.mean_s")),
            g("hello.fl.runs"), g("hello.fl.warmup", "2"))
    mf = None
    if g("hello.mf.median_s"):
        mf = "median %s, mean %s (%s runs after %s warm-up)" % (
            fmt_s(g("hello.mf.median_s")), fmt_s(g("hello.mf.mean_s")),
            g("hello.mf.runs"), g("hello.mf.warmup", "1"))
    row("hello: `run` of the 4-step linear flow, whole process", fl, mf,
        ratio(g("hello.mf.median_s"), g("hello.fl.median_s")).replace("×", "× (medians)"))
    if g("import.mf.median_s"):
        row("  of which: Python start + `import metaflow` (paid by the runtime and again by every task)",
            "—", "median %s" % fmt_s(g("import.mf.median_s")), "—")

    # foreach
    mf_us = None
    if g("foreach.mf.100.wall_s"):
        mf_us = float(g("foreach.mf.100.wall_s")) / float(g("foreach.mf.100.tasks")) * 1e6
    for n in ("100", "1000", "10000"):
        k = "foreach.fl.%s" % n
        fl = None
        if g(k + ".us_per_task"):
            fl = "%s per task (%s tasks in %s on %s workers; median of %s, best %s)" % (
                fmt_us(g(k + ".us_per_task")), g(k + ".tasks"), fmt_s(g(k + ".wall_s")),
                g(k + ".workers"), g(k + ".reps"), fmt_us(g(k + ".us_per_task_min")))
        mf = rat = None
        if n == "100" and mf_us is not None:
            mf = "%s per task (%s tasks in %s, max-workers %s%s)" % (
                fmt_us(mf_us), g("foreach.mf.100.tasks"), fmt_s(g("foreach.mf.100.wall_s")),
                g("foreach.mf.100.max_workers"),
                "; %s CPU in all" % fmt_s(g("foreach.mf.100.cpu_s")) if g("foreach.mf.100.cpu_s") else "")
            rat = ratio(mf_us, g(k + ".us_per_task"))
            if g("foreach.mf.100.task_median_s"):
                mf += "; a task lives %s from spawn to finished (median; %s one at a time in hello)" % (
                    fmt_s(g("foreach.mf.100.task_median_s")),
                    fmt_s(g("hello.mf.task_median_s")) or "?")
        elif mf_us is not None:
            est = mf_us * (int(n) + 3) / 1e6
            mf = "not run: impractical (≈ %s extrapolated from N=100)" % (
                fmt_s(est) if est < 100 else "%.0f min" % (est / 60))
            rat = ratio(mf_us, g(k + ".us_per_task"))
            if rat != "—":
                rat += " (vs Metaflow's N=100 per-task cost)"
        elif mf_on:
            mf = "not run: impractical"
        row("foreach N=%s: start → %s trivial tasks → join → end, amortized" % (n, n), fl, mf,
            rat or "—")

    # large artifact
    mibs = sorted({k.split(".")[2] for k in r if k.startswith(("large.fl.", "large.mf."))},
                  key=lambda m: -int(m))
    for mib in mibs:
        k, km = "large.fl.%s" % mib, "large.mf.%s" % mib
        label = "1 GiB" if mib == "1024" else "%s MiB" % mib
        if not g(k + ".write_s") and not g(km + ".write_s"):
            continue
        fl_w = fl_r = fl_rss = fl_rssw = None
        if g(k + ".write_s"):
            fl_w = fmt_s(g(k + ".write_s")) + gbps(mib, g(k + ".write_s"))
            fl_r = "%s%s; in-process run %s" % (
                fmt_s(g(k + ".read_s")), gbps(mib, g(k + ".read_s")),
                fmt_s(g(k + ".read_inproc_s")))
            fl_rss = fmt_gib(g(k + ".rss_read_bytes"), mib)
            fl_rssw = fmt_gib(g(k + ".rss_run_bytes"), mib) + ", write + read in one process"
        mf_w = mf_r = mf_rss = mf_rssw = None
        if g(km + ".write_s"):
            mf_w = fmt_s(g(km + ".write_s")) + gbps(mib, g(km + ".write_s"))
            mf_r = "%s%s; + %s re-pickling/hashing it when `consume` persists" % (
                fmt_s(g(km + ".read_s")), gbps(mib, g(km + ".read_s")),
                fmt_s(g(km + ".consume_persist_s")))
            mf_rss = fmt_gib(g(km + ".rss_read_bytes"), mib)
            mf_rssw = fmt_gib(g(km + ".rss_write_bytes"), mib) + ", `start` task"
        elif mf_on:
            mf_w = mf_r = mf_rss = mf_rssw = "not run (1 GiB only)"
        row("large artifact %s: write (store phase of the producing task)" % label, fl_w, mf_w,
            ratio(g(km + ".write_s"), g(k + ".write_s")))
        row("large artifact %s: read (load in a fresh consuming process)" % label, fl_r, mf_r,
            ratio(g(km + ".read_s"), g(k + ".read_s")))
        row("large artifact %s: peak RSS of the reading process" % label, fl_rss, mf_rss,
            ratio(g(km + ".rss_read_bytes"), g(k + ".rss_read_bytes")))
        row("large artifact %s: peak RSS while writing" % label, fl_rssw, mf_rssw,
            ratio(g(km + ".rss_write_bytes"), g(k + ".rss_run_bytes")))
        if g(km + ".wall_s") or g(k + ".whole_run_s"):
            row("large artifact %s: whole run incl. generating the bytes" % label,
                fmt_s(g(k + ".whole_run_s")) and "%s (xorshift generation in `start` included)" % fmt_s(g(k + ".whole_run_s")),
                fmt_s(g(km + ".wall_s")) and "%s (whole `run` process; os.urandom 1 MiB × %s)" % (fmt_s(g(km + ".wall_s")), mib),
                ratio(g(km + ".wall_s"), g(k + ".whole_run_s")))

    # resume (flowlib's bench is in-process: a library call on a fresh datastore handle;
    # Metaflow's is a whole `resume` command)
    mf = None
    if g("resume.mf.resume_s"):
        mf = "%s, whole `resume` process (%s tasks cloned; join + end rerun as subprocesses; the failing run took %s)" % (
            fmt_s(g("resume.mf.resume_s")), g("resume.mf.cloned", "?"),
            fmt_s(g("resume.mf.fail_run_s")))
    for key, n in (("resume.fl100", g("resume.mf.n", "100")), ("resume.fl", "1000")):
        fl = None
        if g(key + ".resume_s"):
            fl = "%s, in-process `flowlib::resume` (%s reused" % (
                fmt_s(g(key + ".resume_s")), g(key + ".reused", "?"))
            if g(key + ".reuse_s"):
                fl += "; reuse part alone %s" % fmt_s(g(key + ".reuse_s"))
            if g(key + ".fail_run_s"):
                fl += "; the failing run took %s" % fmt_s(g(key + ".fail_run_s"))
            fl += ")"
        elif g(key + ".line"):
            fl = "`%s`" % g(key + ".line")
        elif g("resume.fl.absent") == "1":
            fl = "benches/resume.rs not there yet"
        if n == g("resume.mf.n", "100"):
            row("resume after a failed join, N=%s: foreach, join fixed, `resume` to the end" % n,
                fl, mf, ratio(g("resume.mf.resume_s"), g(key + ".resume_s")))
        else:
            row("resume after a failed join, N=%s (flowlib's default)" % n, fl,
                "not run (N=%s only)" % g("resume.mf.n", "100") if mf_on else None, "—")

    print("| benchmark | flowlib | Metaflow | ratio (Metaflow ÷ flowlib) |")
    print("| --- | --- | --- | --- |")
    for name, fl, mf, rat in rows:
        print("| %s | %s | %s | %s |" % (name, fl, mf, rat))


# ------------------------------------------------------------------------------- main


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd_name", required=True)

    t = sub.add_parser("time")
    t.add_argument("--key", required=True)
    t.add_argument("--results", required=True)
    t.add_argument("--warmup", type=int, default=2)
    t.add_argument("--runs", type=int, default=20)
    t.add_argument("--cwd")
    t.add_argument("--log")
    t.add_argument("--allow-fail", action="store_true")
    t.add_argument("cmd", nargs=argparse.REMAINDER)
    t.set_defaults(fn=cmd_time)

    c = sub.add_parser("cargo-exes")
    c.set_defaults(fn=cmd_cargo_exes)

    h = sub.add_parser("hyperfine-json")
    h.add_argument("--key", required=True)
    h.add_argument("--results", required=True)
    h.add_argument("file")
    h.set_defaults(fn=cmd_hyperfine_json)

    f = sub.add_parser("foreach")
    f.add_argument("--key", required=True)
    f.add_argument("--results", required=True)
    f.add_argument("logs", nargs="+")
    f.set_defaults(fn=cmd_foreach)

    la = sub.add_parser("large")
    la.add_argument("--key", required=True)
    la.add_argument("--results", required=True)
    la.add_argument("log")
    la.set_defaults(fn=cmd_large)

    rs = sub.add_parser("resume")
    rs.add_argument("--key", required=True)
    rs.add_argument("--results", required=True)
    rs.add_argument("log")
    rs.set_defaults(fn=cmd_resume)

    m = sub.add_parser("mf-large")
    m.add_argument("--key", required=True)
    m.add_argument("--results", required=True)
    m.add_argument("report")
    m.set_defaults(fn=cmd_mf_large)

    mt = sub.add_parser("mf-tasks")
    mt.add_argument("--key", required=True)
    mt.add_argument("--results", required=True)
    mt.add_argument("log")
    mt.set_defaults(fn=cmd_mf_tasks)

    tb = sub.add_parser("table")
    tb.add_argument("--results", required=True)
    tb.set_defaults(fn=cmd_table)

    gt = sub.add_parser("get")
    gt.add_argument("--results", required=True)
    gt.add_argument("key")
    gt.set_defaults(fn=cmd_get)

    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
