#!/usr/bin/env python3
"""Measurement harness shared by bench/run.sh and bench/peers.sh (standard library only).

  harness.py measure --results R.jsonl --name N [options] -- COMMAND...
      One instrumented run (peak RSS via /usr/bin/time -v plus /proc sampling of the process
      tree; its output is what --check verifies), then BENCH_RUNS timed runs with hyperfine.
      Appends one JSON record to R.jsonl. Exit 0 even when the benchmark fails (the record
      says so), unless the harness itself breaks.
  harness.py report --results R.jsonl --json OUT.json [--stamped DIR/PREFIX] [--peers]
      Prints the table and writes the JSON document. Exit 1 if any benchmark failed.
  harness.py compare OLD.json NEW.json
      Medians side by side with the ratio NEW/OLD.
  harness.py same-counts A B
      A and B are files or folders of part-* files with `key<TAB>value` lines; exit 1 and
      a description of the differences if the sets differ.
  harness.py sorted-tokens DIR REF
      DIR (test-sort's tokens output) holds every token of REF (a `token<TAB>count` file)
      exactly once, in ascending byte order across part-* files, with its byte length.
  harness.py same-bytes A B
      A and B (files, or folders whose part-* files are concatenated in order) hold the same
      bytes: a sort's output against GNU sort's.
  harness.py same-lines A B
      A and B hold the same lines in any order (duplicates count): joins and groupings.
  harness.py stream-view DIR REF
      DIR/view.tsv (a `sluice kappa eventcounts` view) has the header, is sorted by key then
      window, has as many (key, window) lines as REF says (`pairs rows`, computed by awk from
      the events) and its counts plus DIR/late.tsv's lines add up to the rows.
  harness.py lambda-view DIR REF
      The newest batch view under DIR/views (`sluice lambda batch`) holds REF's pairs.
  harness.py same-view A B [--sort]
      A (a file, or a folder of part files; a `key<TAB>window...` header is skipped) has
      exactly the lines of B (Sluice's view.tsv), in B's order (--sort: in any order).
"""
import argparse
import datetime
import glob
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20


def die(msg):
    print(f"harness: {msg}", file=sys.stderr)
    sys.exit(2)


# ---------------------------------------------------------------------------------------------
# Peak RSS of a process tree

def _proc_table():
    """pid -> (ppid, user+system CPU ticks) for every process (walking /proc: kernels built
    without CONFIG_PROC_CHILDREN have no /proc/PID/task/TID/children)."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces and parentheses.
        rest = data[data.rfind(b")") + 2:].split()
        if len(rest) >= 13:
            table[int(name)] = (int(rest[1]), int(rest[11]) + int(rest[12]))
    return table


def _status(pid):
    """(name, VmHWM KiB, VmRSS KiB) or None once the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    if "VmHWM" not in fields:
        return None
    return fields.get("Name", "?"), int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])


def instrumented_run(cmd, log_path, sample_ms):
    """Runs cmd under /usr/bin/time -v while sampling VmHWM of every descendant.

    Returns a dict with wall seconds, exit status, the /usr/bin/time maximum RSS and the
    sampled peaks of the coordinator (the command's own process) and of each descendant."""
    with tempfile.NamedTemporaryFile(prefix="bench-time-", suffix=".txt", delete=False) as tf:
        time_file = tf.name
    start = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["/usr/bin/time", "-v", "-o", time_file, "--"] + cmd,
                                stdout=log, stderr=subprocess.STDOUT)
    peaks = {}  # pid -> (name, hwm KiB, depth below the command)
    cpu_ticks = {}  # pid -> last seen user+system ticks
    sum_peak = 0  # largest sum of VmRSS over the tree at one sample
    root = None
    while True:
        table = _proc_table()
        if root is None:
            kids = [p for p, (pp, _) in table.items() if pp == proc.pid]
            root = kids[0] if kids else None
        if root is not None:
            depth = {root: 0} if root in table else {}
            changed = True
            while changed:  # descendants of root
                changed = False
                for p, (pp, _) in table.items():
                    if p not in depth and pp in depth:
                        depth[p] = depth[pp] + 1
                        changed = True
            total = 0
            for p, d in depth.items():
                cpu_ticks[p] = table[p][1]
                st = _status(p)
                if st:
                    name, hwm, rss_now = st
                    total += rss_now
                    old = peaks.get(p)
                    peaks[p] = (name, max(hwm, old[1] if old else 0), d)
            sum_peak = max(sum_peak, total)
        if proc.poll() is not None:
            break
        time.sleep(sample_ms / 1000)
    wall = time.monotonic() - start
    with open(time_file, encoding="utf-8", errors="replace") as f:
        time_out = f.read()
    os.unlink(time_file)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_out)
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", time_out))
    e = re.search(r"Exit status: (\d+)", time_out)
    sig = re.search(r"Command terminated by signal (\d+)", time_out)
    status = int(e.group(1)) if e else (128 + int(sig.group(1)) if sig else proc.returncode)
    coord = peaks.get(root)
    workers = [(p, v) for p, v in peaks.items() if p != root]
    time_max = int(m.group(1)) if m else None
    # The largest process: GNU time sees waited-for processes only; samples see the others.
    largest = max([v[1] for v in peaks.values()] + ([time_max] if time_max else []), default=None)
    return {
        "wall_s": wall,
        "exit_status": status,
        "total_max_kib": time_max,
        "largest_process_kib": largest,
        "coordinator_kib": coord[1] if coord else None,
        "worker_max_kib": max((v[1] for _, v in workers), default=None),
        "workers_seen": len(workers),
        "descendants": sorted(({"pid": p, "name": v[0], "depth": v[2], "peak_kib": v[1]} for p, v in workers),
                              key=lambda d: d["pid"]),
        # At least the largest process (a short run may end between samples).
        "tree_sum_peak_kib": max(sum_peak, largest or 0) or None,
        "sampled_every_ms": sample_ms,
        # CPU of the tree: rusage covers waited-for children only (a JVM started by PySpark is
        # not waited for), the samples miss each process's last moments; take the larger.
        "_cpu_s": max(cpu, sum(cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")),
        "_rusage_cpu_s": cpu,
    }


def parse_stage_summary(text):
    """The stage table printed by `sluice run` (without -q), as a list of dicts.

    Columns are found by the header's offsets since cells like `40× 49.2 MiB` hold spaces."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("stage ") and " kind " in line and "records in" in line:
            header = line
            break
    else:
        return None
    names = re.findall(r"\S+(?: \S+)*", header)  # column titles are separated by 2+ spaces
    starts = []
    pos = 0
    for n in names:
        pos = header.index(n, pos)
        starts.append(pos)
        pos += len(n)
    stages = []
    for line in lines[i + 1:]:
        if not re.match(r"^\d+\s", line):
            break
        row = {}
        for k, n in enumerate(names):
            end = starts[k + 1] if k + 1 < len(names) else None
            cell = line[starts[k]:end]
            row[n.replace(" ", "_").replace("/", "_")] = cell.strip()
        stages.append(row)
    return stages


def parse_metrics(log_path, specs):
    """NAME=REGEX pairs: the first group of REGEX's first match in the run's log, as a number
    (commas dropped); a metric that does not match is left out."""
    out = {}
    if not specs:
        return out
    with open(log_path, errors="replace") as f:
        text = f.read()
    for spec in specs:
        name, _, rx = spec.partition("=")
        m = re.search(rx, text)
        if m:
            try:
                out[name] = float(m.group(1).replace(",", ""))
            except ValueError:
                pass
    return out


def cpu_times():
    """(busy seconds, steal seconds) of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    busy = v[0] + v[1] + v[2] + v[5] + v[6]
    return busy / tick, (v[7] if len(v) > 7 else 0) / tick


def hyperfine_runs(cmd, runs, prepare, json_path):
    args = ["hyperfine", "-N", "--style", "basic", "--runs", str(runs), "--export-json", json_path]
    if prepare:
        args += ["--prepare", prepare]
    args.append(shlex.join(cmd))
    rc = subprocess.run(args).returncode
    if rc != 0:
        return None, f"hyperfine exited with {rc}"
    with open(json_path) as f:
        r = json.load(f)["results"][0]
    return r, None


def cmd_measure(a):
    cmd = a.command
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        die("measure needs a command after --")
    os.makedirs(a.log_dir, exist_ok=True)
    log_path = os.path.join(a.log_dir, re.sub(r"[^A-Za-z0-9._-]+", "_", a.name) + ".log")
    rec = {
        "name": a.name, "group": a.group, "description": a.desc, "tool": a.tool,
        "command": cmd + a.timed_extra, "workers": a.workers, "input_bytes": a.input_bytes,
        "records": a.records, "records_label": a.records_label, "compare_to": a.compare_to,
        "runs": a.runs, "status": "ok", "check": "skipped", "log": log_path,
    }
    print(f"\n=== {a.name}: {a.desc}", flush=True)
    print(f"    $ {shlex.join(cmd + a.timed_extra)}", flush=True)
    if a.prepare:
        subprocess.run(a.prepare, shell=True, check=False)
    # The machine's busy CPU time is read around the instrumented and timed runs, to tell how
    # much other processes used meanwhile (the check, run afterwards, is outside the window).
    t0, (busy0, steal0), load0 = time.monotonic(), cpu_times(), os.getloadavg()[0]
    rss = instrumented_run(cmd, log_path, a.sample_ms)
    rec["rss"] = {k: v for k, v in rss.items() if not k.startswith("_")}
    rec["rss"]["cpu_s"] = rss["_cpu_s"]
    if rss["exit_status"] != 0:
        rec["status"] = "failed"
        with open(log_path, errors="replace") as f:
            tail = f.read()[-2000:]
        rec["error"] = f"exit status {rss['exit_status']} (log {log_path}):\n{tail}"
        print(f"    FAILED: {rec['error']}", file=sys.stderr, flush=True)
    else:
        with open(log_path, errors="replace") as f:
            stages = parse_stage_summary(f.read())
        if stages is not None:
            rec["stages"] = stages
        metrics = parse_metrics(log_path, a.metric)
        if metrics:
            rec["metrics"] = metrics
            print("    " + ", ".join(f"{k} {fmt_rate(v)}" for k, v in metrics.items()), flush=True)
        print(f"    instrumented run: {rss['wall_s']:.2f} s, peak RSS tree {fmt_kib(rss['total_max_kib'])}, "
              f"coordinator {fmt_kib(rss['coordinator_kib'])}, worker max {fmt_kib(rss['worker_max_kib'])}",
              flush=True)
        # With --count-instrumented (for slow peers such as Spark) the instrumented run is one
        # of the timed runs and hyperfine makes the others.
        hf_runs = a.runs - 1 if a.count_instrumented else a.runs
        times, r, err = [], {}, None
        if a.count_instrumented:
            times.append(rss["wall_s"])
        if hf_runs > 0:
            with tempfile.NamedTemporaryFile(prefix="bench-hf-", suffix=".json", delete=False) as tf:
                hf_path = tf.name
            r, err = hyperfine_runs(cmd + a.timed_extra, hf_runs, a.prepare, hf_path)
            os.unlink(hf_path)
            if r is not None:
                times += r["times"]
        t1, (busy1, steal1), load1 = time.monotonic(), cpu_times(), os.getloadavg()[0]
        if err:
            rec["status"] = "failed"
            rec["error"] = err
            print(f"    FAILED: {err}", file=sys.stderr, flush=True)
        else:
            rec.update({
                "times_s": times, "median_s": statistics.median(times), "min_s": min(times),
                "max_s": max(times), "mean_s": statistics.fmean(times),
                "stddev_s": statistics.stdev(times) if len(times) > 1 else None,
                "user_s": r.get("user"), "system_s": r.get("system"),
            })
            if a.input_bytes:
                rec["mib_per_s"] = a.input_bytes / MiB / rec["median_s"]
            if a.records:
                rec["records_per_s"] = a.records / rec["median_s"]
            # CPU the rest of the machine used meanwhile: all busy time minus this benchmark's
            # user+system (from rusage, which includes waited-for children such as workers).
            cpus = os.cpu_count() or 1
            per_run = r.get("user", 0) + r.get("system", 0)
            if rss["_rusage_cpu_s"] > 0:  # scale up when rusage misses unwaited children
                per_run *= max(1.0, rss["_cpu_s"] / rss["_rusage_cpu_s"])
            own = rss["_cpu_s"] + per_run * hf_runs
            rec["machine"] = {
                "cpus": cpus,
                "other_cpu_share": max(0.0, (busy1 - busy0 - own) / (cpus * (t1 - t0))),
                "steal_share": (steal1 - steal0) / (cpus * (t1 - t0)),
                "loadavg_1m_before": load0, "loadavg_1m_after": load1,
            }
        # The output left by the last run is checked.
        if a.check and not err:
            c = subprocess.run(a.check, shell=True, capture_output=True, text=True, errors="replace")
            rec["check"] = "ok" if c.returncode == 0 else "FAIL"
            if c.returncode != 0:
                rec["check_output"] = (c.stdout + c.stderr)[-4000:]
                print(f"    CHECK FAILED: {a.check}\n{rec['check_output']}", file=sys.stderr, flush=True)
            else:
                print(f"    check ok: {c.stdout.strip()}", flush=True)
    if a.cleanup:
        subprocess.run(a.cleanup, shell=True, check=False)
    with open(a.results, "a") as f:
        f.write(json.dumps(rec) + "\n")


# ---------------------------------------------------------------------------------------------
# Reports

def fmt_kib(k):
    return "-" if k is None else f"{k / 1024:.0f} MiB"


def fmt_share(r):
    m = r.get("machine")
    return "-" if not m else f"{100 * m['other_cpu_share']:.0f}%"


def fmt_s(s):
    if s is None:
        return "-"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def fmt_bytes(n):
    if not n:
        return "-"
    for unit, size in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            v = n / size
            return f"{v:.0f} {unit}" if v >= 10 or v == int(v) else f"{v:.1f} {unit}"
    return f"{n} B"


def fmt_rate(x):
    if x is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if x >= size:
            return f"{x / size:.2f}{unit}"
    return f"{x:.0f}" if x >= 100 else f"{x:.2f}"


def print_table(headers, rows, right=None):
    right = right or set()
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))


def host_info():
    info = {"cpus": os.cpu_count(), "kernel": platform.release(), "machine": platform.machine()}
    try:
        with open("/proc/meminfo") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / (1 << 20), 1)
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def git_info():
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip() != ""
        return {"commit": commit or None, "dirty": dirty}
    except OSError:
        return {"commit": None, "dirty": None}


def cmd_report(a):
    recs = []
    if os.path.exists(a.results):
        with open(a.results) as f:
            recs = [json.loads(line) for line in f if line.strip()]
    by_name = {r["name"]: r for r in recs}
    doc = {
        "suite": "sluice-peers" if a.peers else "sluice-bench",
        "format": 1,
        "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "quick": os.environ.get("BENCH_QUICK") == "1",
        "host": host_info(),
        "git": git_info(),
        "tools": {},
        "benchmarks": recs,
    }
    for tool, args in (("hyperfine", ["hyperfine", "--version"]),):
        try:
            doc["tools"][tool] = subprocess.run(args, capture_output=True, text=True).stdout.strip()
        except OSError:
            pass
    if a.meta:
        for kv in a.meta:
            k, _, v = kv.partition("=")
            doc["tools"][k] = v
    failed = [r for r in recs if r["status"] != "ok" or r["check"] == "FAIL"]

    print()
    if a.peers:
        groups = []
        for r in recs:
            if r["group"] not in groups:
                groups.append(r["group"])
        for g in groups:
            rows = []
            ref = next((r for r in recs if r["group"] == g and r["tool"] == "sluice" and r.get("median_s")), None)
            for r in (x for x in recs if x["group"] == g):
                if r.get("metrics"):
                    r["description"] += "".join(f"; {k} {fmt_rate(v)}" for k, v in r["metrics"].items())
                ratio = "-"
                if ref and r.get("median_s"):
                    ratio = f"{r['median_s'] / ref['median_s']:.2f}"
                rows.append([r["name"], r["description"], fmt_s(r.get("median_s")), fmt_s(r.get("min_s")),
                             fmt_s(r.get("max_s")), ratio,
                             f"{r['mib_per_s']:.1f}" if r.get("mib_per_s") else "-",
                             fmt_kib(r.get("rss", {}).get("tree_sum_peak_kib")),
                             fmt_kib(r.get("rss", {}).get("largest_process_kib")), fmt_share(r),
                             r["check"] if r["status"] == "ok" else "FAILED"])
            inp = next((r for r in recs if r["group"] == g), {})
            print(f"{g} — input {fmt_bytes(inp.get('input_bytes'))}; time/Sluice > 1: slower than Sluice; "
                  f"RSS sum: peak of all processes together (sampled); RSS max: largest process")
            print_table(["peer", "what", "median", "min", "max", "time/Sluice", "MiB/s", "RSS sum", "RSS max",
                         "others", "output"], rows, right={2, 3, 4, 5, 6, 7, 8, 9})
            print()
    else:
        rows = []
        for r in recs:
            rss = r.get("rss", {})
            vs = "-"
            base = by_name.get(r.get("compare_to") or "")
            if base and base.get("median_s") and r.get("median_s"):
                vs = f"{r['median_s'] / base['median_s']:.1f}x"
            rows.append([
                r["name"], r.get("workers") or "-", fmt_bytes(r.get("input_bytes")),
                fmt_s(r.get("median_s")), fmt_s(r.get("min_s")), fmt_s(r.get("max_s")),
                f"{r['mib_per_s']:.1f}" if r.get("mib_per_s") else "-",
                fmt_rate(r.get("records_per_s")) + (f" {r['records_label']}" if r.get("records_per_s") else ""),
                fmt_kib(rss.get("tree_sum_peak_kib")), fmt_kib(rss.get("largest_process_kib")),
                fmt_kib(rss.get("coordinator_kib")), fmt_kib(rss.get("worker_max_kib")), vs, fmt_share(r),
                r["check"] if r["status"] == "ok" else "FAILED",
            ])
        runs = sorted({r.get("runs") for r in recs if r.get("runs")})
        print(f"Sluice benchmarks — median of {'/'.join(map(str, runs))} runs; "
              "RSS from one extra instrumented run (see bench/README.md)")
        print_table(["benchmark", "w", "input", "median", "min", "max", "MiB/s", "records/s",
                     "RSS sum", "RSS max", "coord", "worker", "vs", "others", "check"],
                    rows, right={1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13})
        print("RSS sum: peak of the summed RSS of all processes (sampled); RSS max: largest single process\n"
              "(/usr/bin/time -v, and samples); coord / worker: peak of the coordinator / of the largest worker (VmHWM)\n"
              "vs: median / median of the benchmark named in brackets below (C baseline with as many threads\n"
              "as workers, or the plain run); others: share of the machine's CPU used by other processes\n"
              "during the runs (above ~10%, the figures are disturbed)")
        print()
        for r in recs:
            if r["description"]:
                vs = f" [vs {r['compare_to']}]" if r.get("compare_to") else ""
                ms = "".join(f"; {k} {fmt_rate(v)}" for k, v in (r.get("metrics") or {}).items())
                print(f"  {r['name']}: {r['description']}{vs}{ms}")
    for r in failed:
        why = r.get("error") or r.get("check_output") or ""
        print(f"\nFAILED {r['name']}: {why.strip()[:1500]}", file=sys.stderr)

    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(doc, f, indent=1)
    paths = [a.json]
    if a.stamped:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        stamped = f"{a.stamped}-{stamp}.json"
        shutil.copyfile(a.json, stamped)
        paths.append(stamped)
    print("\nwrote " + " and ".join(paths))
    return 1 if failed else 0


def cmd_compare(a):
    docs = []
    for p in (a.old, a.new):
        with open(p) as f:
            docs.append({r["name"]: r for r in json.load(f)["benchmarks"]})
    old, new = docs
    rows = []
    for name in list(old) + [n for n in new if n not in old]:
        o, n = old.get(name, {}), new.get(name, {})
        ratio = "-"
        if o.get("median_s") and n.get("median_s"):
            ratio = f"{n['median_s'] / o['median_s']:.2f}"
        rows.append([name, fmt_s(o.get("median_s")), fmt_s(n.get("median_s")), ratio,
                     fmt_kib(o.get("rss", {}).get("total_max_kib")), fmt_kib(n.get("rss", {}).get("total_max_kib"))])
    print(f"old: {a.old}\nnew: {a.new}   (new/old < 1: faster)\n")
    print_table(["benchmark", "old median", "new median", "new/old", "old RSS", "new RSS"], rows,
                right={1, 2, 3, 4, 5})
    return 0


# ---------------------------------------------------------------------------------------------
# Output checks

def part_files(path):
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path) if n.startswith("part-"))
        if not files:
            raise SystemExit(f"{path}: no part-* files")
        return files
    return [path]


def read_pairs(path):
    """key bytes -> value (int if it parses, else the normalised text); duplicates listed."""
    pairs, dups = {}, []
    for fn in part_files(path):
        with open(fn, "rb") as f:
            for line in f:
                line = line.rstrip(b"\n")
                if not line:
                    continue
                key, tab, value = line.rpartition(b"\t")
                if not tab:
                    raise SystemExit(f"{fn}: line without a tab: {line[:80]!r}")
                try:
                    v = int(value)
                except ValueError:
                    try:
                        v = float(value)
                        v = int(v) if v == int(v) else v
                    except ValueError:
                        v = value
                if key in pairs:
                    dups.append(key)
                pairs[key] = v
    return pairs, dups


def cmd_same_counts(a):
    pa, da = read_pairs(a.a)
    pb, db = read_pairs(a.b)
    problems = []
    if da:
        problems.append(f"{a.a}: {len(da)} duplicate keys, e.g. {da[:3]}")
    if db:
        problems.append(f"{a.b}: {len(db)} duplicate keys, e.g. {db[:3]}")
    only_a = [k for k in pa if k not in pb]
    only_b = [k for k in pb if k not in pa]
    diff = [k for k in pa if k in pb and pa[k] != pb[k]]
    if only_a:
        problems.append(f"{len(only_a)} keys only in {a.a}, e.g. " +
                        ", ".join(f"{k!r}={pa[k]}" for k in only_a[:5]))
    if only_b:
        problems.append(f"{len(only_b)} keys only in {a.b}, e.g. " +
                        ", ".join(f"{k!r}={pb[k]}" for k in only_b[:5]))
    if diff:
        problems.append(f"{len(diff)} keys with different values, e.g. " +
                        ", ".join(f"{k!r}: {pa[k]} vs {pb[k]}" for k in diff[:5]))
    if problems:
        print(f"outputs differ ({len(pa)} vs {len(pb)} keys):\n  " + "\n  ".join(problems))
        return 1
    print(f"same {len(pa)} keys and values")
    return 0


def cmd_sorted_tokens(a):
    ref, _ = read_pairs(a.ref)
    prev = None
    n = 0
    seen = set()
    for fn in part_files(a.dir):
        with open(fn, "rb") as f:
            for line in f:
                tok, _, length = line.rstrip(b"\n").rpartition(b"\t")
                if prev is not None and not prev < tok:
                    print(f"{fn}: {tok!r} follows {prev!r} (not ascending)")
                    return 1
                if int(length) != len(tok):
                    print(f"{fn}: {tok!r} has length {len(tok)}, output says {length.decode()}")
                    return 1
                if tok not in ref:
                    print(f"{fn}: {tok!r} is not a token of the input")
                    return 1
                prev = tok
                seen.add(tok)
                n += 1
    if n != len(ref):
        missing = [k for k in ref if k not in seen][:5]
        print(f"{n} tokens in the output, {len(ref)} in the input; missing e.g. {missing}")
        return 1
    print(f"{n} tokens, ascending, lengths right")
    return 0


def _chunks(path):
    for fn in part_files(path):
        with open(fn, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                yield b


def cmd_same_bytes(a):
    """A and B (files, or folders of part files concatenated in part order) hold the same bytes."""
    ha, hb = hashlib.sha256(), hashlib.sha256()
    na = nb = 0
    for b in _chunks(a.a):
        ha.update(b)
        na += len(b)
    for b in _chunks(a.b):
        hb.update(b)
        nb += len(b)
    if ha.digest() != hb.digest():
        print(f"outputs differ: {a.a} has {na} bytes, {a.b} {nb} bytes (different contents)")
        return 1
    print(f"same {na} bytes")
    return 0


def _line_digest(path):
    """An order-independent digest of the lines: their count and the sum of their hashes."""
    n, total = 0, 0
    for fn in part_files(path):
        with open(fn, "rb") as f:
            for line in f:
                n += 1
                total = (total + int.from_bytes(hashlib.blake2b(line.rstrip(b"\n"), digest_size=16).digest(), "little")) % (1 << 128)
    return n, total


def cmd_same_lines(a):
    """A and B hold the same lines, in any order (a multiset: duplicates count)."""
    (na, da), (nb, db) = _line_digest(a.a), _line_digest(a.b)
    if (na, da) != (nb, db):
        print(f"outputs differ: {a.a} has {na} lines, {a.b} {nb} lines" + ("" if na != nb else " (different contents)"))
        return 1
    print(f"same {na} lines")

VIEW_HEADER = b"key\twindow\tcount\tsum"


def cmd_stream_view(a):
    with open(a.ref) as f:
        ref_pairs, ref_rows = (int(x) for x in f.read().split()[:2])
    view = os.path.join(a.dir, "view.tsv")
    late_path = os.path.join(a.dir, "late.tsv")
    n, total, prev = 0, 0, None
    with open(view, "rb") as f:
        header = f.readline().rstrip(b"\n")
        if header != VIEW_HEADER:
            print(f"{view}: header {header[:80]!r}, expected {VIEW_HEADER!r}")
            return 1
        for line in f:
            cells = line.rstrip(b"\n").split(b"\t")
            if len(cells) != 4:
                print(f"{view}: line {n + 2} has {len(cells)} cells: {line[:80]!r}")
                return 1
            k = (cells[0], cells[1])
            if prev is not None and not prev < k:
                print(f"{view}: line {n + 2} {k!r} follows {prev!r} (not sorted by key, window)")
                return 1
            prev = k
            total += int(cells[2])
            n += 1
    late = 0
    if os.path.exists(late_path):
        with open(late_path, "rb") as f:
            late = max(0, sum(1 for _ in f) - 1)
    if total + late != ref_rows:
        print(f"{view}: counts add up to {total}, plus {late} late events = {total + late}; the log has {ref_rows}")
        return 1
    # A (key, window) whose events were all late is missing from the view: only then fewer.
    if n != ref_pairs and not (late and n < ref_pairs):
        print(f"{view}: {n} (key, window) lines, the events hold {ref_pairs} ({late} late events)")
        return 1
    print(f"{n} (key, window) lines, sorted; counts {total} + {late} late = {ref_rows} events")
    return 0


def cmd_lambda_view(a):
    with open(a.ref) as f:
        ref_pairs = int(f.read().split()[0])
    views = sorted(glob.glob(os.path.join(a.dir, "views", "*", "_VIEW")))
    if not views:
        print(f"{a.dir}: no views/*/_VIEW")
        return 1
    with open(views[-1]) as f:
        v = json.load(f)
    if v.get("entries") != ref_pairs:
        print(f"{views[-1]}: {v.get('entries')} entries, the events hold {ref_pairs} (key, window) pairs")
        return 1
    print(f"batch view {v.get('batchId')}: cut {v.get('cut')}, {v['entries']} entries = (key, window) pairs of the events")
    return 0


def _view_lines(path, sort):
    """Lines of a view-like output (bytes, without the newline), header skipped, sorted
    by (key, window) when sort; the files are read in name order otherwise."""
    files = sorted(os.path.join(path, n) for n in os.listdir(path)
                   if not n.startswith((".", "_"))) if os.path.isdir(path) else [path]
    if not files:
        raise SystemExit(f"{path}: no output files")
    if sort:
        with tempfile.NamedTemporaryFile(prefix="bench-sorted-", delete=False) as tf:
            tmp = tf.name
        env = dict(os.environ, LC_ALL="C")
        subprocess.run(["sort", "-t", "\t", "-k1,1", "-k2,2", "-S", "25%", "-o", tmp] + files,
                       check=True, env=env)
        files = [tmp]
    try:
        for fn in files:
            with open(fn, "rb") as f:
                for line in f:
                    line = line.rstrip(b"\r\n")
                    if line and not line.startswith(b"key\twindow"):
                        yield line
    finally:
        if sort:
            os.unlink(tmp)


def cmd_same_view(a):
    """Merges A and B by (key, window): lines only in one, and lines with other values."""
    def keyed(path, sort):
        prev = None
        for line in _view_lines(path, sort):
            cells = line.split(b"\t")
            k = (cells[0], cells[1])
            if prev is not None and not prev < k:
                raise SystemExit(f"{path}: {k!r} follows {prev!r} (not sorted by key, window, or a duplicate)")
            prev = k
            yield k, cells[2:]
    ia, ib = keyed(a.a, a.sort), keyed(a.b, False)
    only_a, only_b, diff, same = [], [], [], 0
    na, nb = 0, 0
    x, y = next(ia, None), next(ib, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x[0] < y[0]):
            only_a.append(x); na += 1; x = next(ia, None)
        elif x is None or y[0] < x[0]:
            only_b.append(y); nb += 1; y = next(ib, None)
        else:
            if x[1] == y[1]:
                same += 1
            else:
                diff.append((x, y))
            na += 1; nb += 1
            x, y = next(ia, None), next(ib, None)
    if only_a or only_b or diff:
        def show(kv):
            return b"\t".join(list(kv[0]) + kv[1]).decode("utf-8", "replace")
        print(f"outputs differ: {na} lines in {a.a}, {nb} in {a.b}, {same} equal")
        if only_a:
            print(f"  {len(only_a)} (key, window) only in {a.a}, e.g. " + "; ".join(show(v) for v in only_a[:5]))
        if only_b:
            print(f"  {len(only_b)} (key, window) only in {a.b}, e.g. " + "; ".join(show(v) for v in only_b[:5]))
        if diff:
            print(f"  {len(diff)} with other count/sum, e.g. " +
                  "; ".join(show(p) + " vs " + b"\t".join(q[1]).decode() for p, q in diff[:5]))
        return 1
    print(f"same {same} (key, window) lines")
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--results", required=True)
    m.add_argument("--name", required=True)
    m.add_argument("--desc", default="")
    m.add_argument("--group", default="")
    m.add_argument("--tool", default="sluice")
    m.add_argument("--workers", type=int)
    m.add_argument("--input-bytes", type=int)
    m.add_argument("--records", type=int)
    m.add_argument("--records-label", default="rec")
    m.add_argument("--compare-to")
    m.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "3")))
    m.add_argument("--prepare", help="command run before every run (e.g. rm -rf OUT); no shell in timed runs")
    m.add_argument("--check", help="shell command run after the instrumented run; non-zero = wrong output")
    m.add_argument("--cleanup", help="shell command run at the end (e.g. rm -rf OUT)")
    m.add_argument("--timed-extra", action="append", default=[],
                   help="argument appended for the timed runs only (e.g. -q)")
    m.add_argument("--count-instrumented", action="store_true",
                   help="the instrumented run counts as one of --runs (for very slow commands)")
    m.add_argument("--metric", action="append", default=[],
                   help="NAME=REGEX: a number read from the instrumented run's output (group 1)")
    m.add_argument("--log-dir", default="bench/results/logs")
    m.add_argument("--sample-ms", type=int, default=int(os.environ.get("BENCH_SAMPLE_MS", "50")))
    m.add_argument("command", nargs=argparse.REMAINDER)
    r = sub.add_parser("report")
    r.add_argument("--results", required=True)
    r.add_argument("--json", required=True)
    r.add_argument("--stamped")
    r.add_argument("--peers", action="store_true")
    r.add_argument("--meta", action="append", help="name=value recorded under tools")
    c = sub.add_parser("compare")
    c.add_argument("old")
    c.add_argument("new")
    s = sub.add_parser("same-counts")
    s.add_argument("a")
    s.add_argument("b")
    t = sub.add_parser("sorted-tokens")
    t.add_argument("dir")
    t.add_argument("ref")
    sb = sub.add_parser("same-bytes")
    sb.add_argument("a")
    sb.add_argument("b")
    sl = sub.add_parser("same-lines")
    sl.add_argument("a")
    sl.add_argument("b")
    v = sub.add_parser("stream-view")
    v.add_argument("dir")
    v.add_argument("ref")
    lv = sub.add_parser("lambda-view")
    lv.add_argument("dir")
    lv.add_argument("ref")
    sv = sub.add_parser("same-view")
    sv.add_argument("a")
    sv.add_argument("b")
    sv.add_argument("--sort", action="store_true", help="A is in any order (sorted here first)")
    a = p.parse_args()
    handler = {"measure": cmd_measure, "report": cmd_report, "compare": cmd_compare,
               "same-counts": cmd_same_counts, "sorted-tokens": cmd_sorted_tokens,
               "stream-view": cmd_stream_view, "lambda-view": cmd_lambda_view, "same-view": cmd_same_view,
               "same-bytes": cmd_same_bytes, "same-lines": cmd_same_lines}[a.cmd]
    sys.exit(handler(a) or 0)


if __name__ == "__main__":
    main()
