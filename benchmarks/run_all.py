"""Run every benchmark in this directory and write ``benchmarks/RESULTS.md``.

Each ``bench_*.py`` script runs in its own process with a time limit. Its figures are read from
what it prints and compared with the targets the project holds itself to (``shared`` design
numbers, repeated in each script's docstring). The report gives the machine, the Python, the
date, each figure against its target (met / NOT MET), every failure, time-out or missing script,
and the raw output of every script. Nothing is dropped: a figure that cannot be read is reported
as missing, and the exit status is 1 whenever any target is missed or any script failed.

    python benchmarks/run_all.py                 # full run, writes benchmarks/RESULTS.md
    python benchmarks/run_all.py --quick         # smoke pass: tiny sizes, prints the report
    python benchmarks/run_all.py --only bench_points --output /tmp/r.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_OUTPUT = HERE / "RESULTS.md"
FULL_TIMEOUT_S = 900.0
QUICK_TIMEOUT_S = 180.0

# Runs one benchmark script. Full runs execute it as ``__main__`` exactly as ``python script.py``
# would; quick runs import it, shrink its size constants, then call its ``main()``.
RUNNER = """
import importlib.util, json, runpy, sys
path, overrides = sys.argv[1], json.loads(sys.argv[2])
sys.argv = [path, *sys.argv[3:]]
if not overrides:
    runpy.run_path(path, run_name="__main__")
    raise SystemExit(0)
name = path.rsplit("/", 1)[-1].removesuffix(".py")
spec = importlib.util.spec_from_file_location(name, path)
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
for key, value in overrides.items():
    if not hasattr(module, key):
        raise SystemExit(f"run_all: {name} has no constant {key} to shrink for --quick")
    setattr(module, key, value)
result = module.main()
raise SystemExit(result if isinstance(result, int) else 0)
"""


# -- what each benchmark must show --------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One measured number and its target."""

    label: str
    value: float
    op: str  # one of OPS
    target: float
    unit: str = ""

    @property
    def met(self) -> bool:
        return OPS[self.op](self.value, self.target)

    def target_text(self) -> str:
        return f"{self.op} {_number(self.target)}{self.unit}"

    def value_text(self) -> str:
        return f"{_number(self.value)}{self.unit}"


OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda v, t: v < t,
    "<=": lambda v, t: v <= t,
    ">": lambda v, t: v > t,
    ">=": lambda v, t: v >= t,
    "==": lambda v, t: v == t,
}


@dataclass(frozen=True)
class Metric:
    """A figure read from one printed line: ``pattern``'s first group is the value."""

    label: str
    pattern: str
    op: str
    target: float
    unit: str = ""
    value: Callable[[re.Match[str]], float] = lambda m: _float(m.group(1))

    def read(self, output: str) -> list[Figure]:
        match = re.search(self.pattern, output, re.MULTILINE)
        if match is None:
            return []
        return [Figure(self.label, self.value(match), self.op, self.target, self.unit)]


Parser = Callable[[str], list[Figure]]


@dataclass(frozen=True)
class Benchmark:
    """A script, the figures it must print, and how to make it small for ``--quick``."""

    script: str
    metrics: tuple[Metric, ...]
    parsers: tuple[Parser, ...] = ()
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] = ()
    quick_overrides: dict[str, object] = field(default_factory=dict)
    # Figures a parser must find at least this many of (the sched table has one row per bug).
    min_parsed: int = 0


def _float(text: str) -> float:
    return float(text.replace(",", ""))


def _number(value: float) -> str:
    if value == int(value) and abs(value) >= 100:
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


SCHED_ROW = re.compile(
    r"^(?P<bug>\S.*?)\s+(?P<ms>[\d.]+) ms\s+(?P<schedules>\d+)\s+(?P<stress>.+?)\s+(?P<ratio>\S+)$"
)


def sched_table(output: str) -> list[Figure]:
    """One figure per row of bench_sched's table: median time to catch the bug (< 100 ms)."""
    figures: list[Figure] = []
    lines = output.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("bug ") and "median" in line]
    if not headers:
        return figures
    for line in lines[headers[0] + 2 :]:  # skip the header and its rule
        if not line.strip():
            break
        match = SCHED_ROW.match(line)
        if match is not None:
            figures.append(Figure(f"catch: {match['bug']}", _float(match["ms"]), "<", 100.0, " ms"))
    return figures


def sched_cold(output: str) -> list[Figure]:
    """One figure per row of bench_sched's cold-start table: faultline's cold time to the first
    failing schedule over the fastest peer's (<= 1), when a peer was compared."""
    figures: list[Figure] = []
    lines = output.splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("bug ") and "best peer" in line]
    if not headers:
        return figures
    for line in lines[headers[0] + 2 :]:  # skip the header and its rule
        if not line.strip() or line.startswith("import ms"):
            break
        ratio = line.split()[-2]
        if ratio != "-":
            label = f"cold / best peer: {line[:26].strip()}"
            figures.append(Figure(label, _float(ratio), "<=", 1.0))
    return figures


def _lost(match: re.Match[str]) -> float:
    return _float(match.group(2)) - _float(match.group(1))


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "bench_import.py",
        (
            # The plugin imports the controller at every pytest start: was 10-11 ms on 3.12,
            # 6.5 ms of it building dataclasses.
            Metric(
                "import pytest_faultline.controller (median, pytest loaded)",
                r"import pytest_faultline\.controller: median .*?this ([\d.]+) ms",
                "<=",
                6.0,
                " ms",
            ),
        ),
        quick_args=("--runs", "3"),
    ),
    Benchmark(
        "bench_points.py",
        (Metric("disarmed point() / empty call", r"point overhead ratio: ([\d.]+)", "<=", 1.5),),
        quick_overrides={"NUMBER": 100_000, "REPEAT": 3},
    ),
    Benchmark(
        "bench_overhead.py",
        (
            Metric(
                "unused plugin on a 2,000-test suite",
                r"plugin overhead: (-?[\d.]+)%",
                "<",
                2.0,
                "%",
            ),
        ),
        quick_overrides={"FILES": 3, "ROUNDS": 1},
    ),
    Benchmark(
        "bench_proxy.py",
        (
            Metric(
                "proxy throughput / direct loopback",
                r"proxy throughput ratio: ([\d.]+)",
                ">=",
                0.9,
            ),
            Metric(
                "proxy added round trip (median)",
                r"proxy added rtt: (-?[\d.]+) us",
                "<=",
                20.0,
                " us",
            ),
            Metric(
                "connections lost or changed (of 200 concurrent)",
                r"concurrent connections: (\d+)/(\d+) intact",
                "==",
                0.0,
                value=_lost,
            ),
        ),
        quick_overrides={
            "BULK_BYTES": 8 << 20,
            "PING_ROUNDS": 300,
            "CONNECTIONS": 20,
            "REPEATS": 1,
            # Its servers' threads are joined with this bound at exit; see RESULTS.md.
            "TIMEOUT_S": 5.0,
        },
    ),
    Benchmark(
        "bench_sched.py",
        (
            Metric(
                "scheduling decisions per second",
                r"scheduling decisions per second: ([\d,.]+)",
                ">=",
                2000.0,
            ),
        ),
        parsers=(sched_table, sched_cold),
        min_parsed=1,
        quick_args=(
            "--seeds",
            "3",
            "--cold-seeds",
            "1",
            "--stress-cap",
            "0.3",
            "--stress-attempts",
            "1",
        ),
    ),
    Benchmark(
        "bench_lockorder.py",
        (
            Metric(
                "tracked lock / plain lock (watcher on)", r"lockorder on ratio: ([\d.]+)", "<=", 5.0
            ),
            Metric(
                "lock made after the watcher stopped / plain lock",
                r"lockorder off ratio: ([\d.]+)",
                "<=",
                1.05,
            ),
        ),
        quick_args=("--rounds", "1"),
        quick_overrides={"NUMBER": 20_000, "REPEAT": 2},
    ),
)

BENCHMARKS += (
    Benchmark(
        "bench_sweep.py",
        (
            Metric(
                "single-fault sweep of an example test (slowest)",
                r"single-fault sweep, slowest example: ([\d.]+) s",
                "<",
                5.0,
                " s",
            ),
        ),
        quick_args=("--rounds", "1"),
    ),
)

NOT_MEASURED = (
    "Each incident's buggy example caught in under 1 s: measured by the example suites' own "
    "run times, not by a script here.",
)


# -- running -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one script did."""

    bench: Benchmark
    command: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | failed | timed out | missing
    returncode: int | None = None
    elapsed: float = 0.0
    stdout: str = ""
    stderr: str = ""
    figures: list[Figure] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


ASYNC_ROW = re.compile(
    r"^(?P<race>\w+)\s+faultline\s+(?P<found>\d+)/(?P<runs>\d+)\s+(?P<cold>[\d.]+|-)"
)


def async_table(output: str) -> list[Figure]:
    """One figure per race of bench_async: cold seconds to the first failing schedule
    (< 0.1 s, the asyncio target of the design)."""
    figures: list[Figure] = []
    for line in output.splitlines():
        match = ASYNC_ROW.match(line)
        if match is None:
            continue
        cold = float("inf") if match["cold"] == "-" else _float(match["cold"]) * 1000
        figures.append(Figure(f"asyncio catch (cold): {match['race']}", cold, "<", 100.0, " ms"))
    return figures


BENCHMARKS = (
    *BENCHMARKS,
    Benchmark(
        "bench_async.py",
        (
            Metric(
                "task scheduling decisions per second",
                r"task scheduling decisions per second: ([\d,.]+)",
                ">=",
                2000.0,
            ),
        ),
        parsers=(async_table,),
        min_parsed=1,
        quick_args=("--repeat", "1"),
    ),
)


def run_one(bench: Benchmark, quick: bool, timeout: float) -> Outcome:
    outcome = Outcome(bench)
    path = HERE / bench.script
    if not path.is_file():
        outcome.status = "missing"
        outcome.problems.append(f"{bench.script} does not exist in {HERE}")
        return outcome
    args = bench.quick_args if quick else bench.args
    overrides = bench.quick_overrides if quick else {}
    outcome.command = [sys.executable, "-c", RUNNER, str(path), json.dumps(overrides), *args]
    env = dict(os.environ)
    # Measure this checkout, not whatever copy of the package happens to be installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    started = time.perf_counter()
    # A new session, so a time-out can end the script and anything it started.
    proc = subprocess.Popen(
        outcome.command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        outcome.stdout, outcome.stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        outcome.stdout, outcome.stderr = proc.communicate(timeout=30)
        outcome.status = "timed out"
        outcome.problems.append(f"{bench.script} did not finish within {timeout:g} s")
    outcome.elapsed = time.perf_counter() - started
    outcome.returncode = proc.returncode
    if outcome.status == "ok" and proc.returncode != 0:
        outcome.status = "failed"
        last = (outcome.stderr or outcome.stdout).strip().splitlines()[-1:] or ["(no output)"]
        outcome.problems.append(f"{bench.script} exited with {proc.returncode}: {last[0]}")
    read(outcome)
    return outcome


def read(outcome: Outcome) -> None:
    """Collect the figures; a figure the script did not print is a problem, not a pass."""
    bench = outcome.bench
    for metric in bench.metrics:
        found = metric.read(outcome.stdout)
        if not found:
            outcome.problems.append(f"{bench.script}: no figure for '{metric.label}' in its output")
        outcome.figures.extend(found)
    parsed = [figure for parser in bench.parsers for figure in parser(outcome.stdout)]
    if len(parsed) < bench.min_parsed:
        outcome.problems.append(f"{bench.script}: its results table is missing or unreadable")
    outcome.figures.extend(parsed)


def unknown_scripts() -> list[str]:
    known = {bench.script for bench in BENCHMARKS}
    return sorted(p.name for p in HERE.glob("bench_*.py") if p.name not in known)


# -- the machine ---------------------------------------------------------------------------------


def _proc_field(path: str, key: str) -> str | None:
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return None


def machine() -> list[tuple[str, str]]:
    cpu = _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    memory = f"{int(mem_kb.split()[0]) / (1 << 20):.1f} GiB" if mem_kb else "unknown"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cores = f"{os.cpu_count()}" + (f" ({usable} usable by this process)" if usable else "")
    return [
        ("CPU", cpu),
        ("cores", cores),
        ("memory", memory),
        ("OS", platform.platform()),
        ("Python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("switch interval", f"{sys.getswitchinterval()} s"),
    ]


def _load() -> str:
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def _git(*args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip()


# -- the report ----------------------------------------------------------------------------------


def report(
    outcomes: Sequence[Outcome],
    *,
    quick: bool,
    started: dt.datetime,
    load_before: str,
    load_after: str,
    note: str | None,
    extra: Sequence[str],
) -> str:
    figures = [(o, f) for o in outcomes for f in o.figures]
    missed = [f for _, f in figures if not f.met]
    problems = [p for o in outcomes for p in o.problems]
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    if _git("status", "--porcelain", "--", "src", "benchmarks/bench_*.py"):
        commit += " (with uncommitted changes)"
    out: list[str] = []
    add = out.append
    add("# Benchmark results")
    add("")
    command = "python benchmarks/run_all.py" + (" --quick" if quick else "")
    add(f"Written by `{command}`; do not edit by hand, run it again.")
    add("Figures are read from each script's output (below, in full).")
    add("")
    if quick:
        add("**Quick smoke pass**: sizes were shrunk, so the figures only show that every")
        add("benchmark runs; they are not measurements.")
        add("")
    add(f"- date: {started:%Y-%m-%d %H:%M} UTC")
    add(f"- commit: {commit}")
    for name, value in machine():
        add(f"- {name}: {value}")
    add(f"- load average (1, 5, 15 min) before: {load_before}; after: {load_after}")
    if note:
        add(f"- note: {note}")
    add("")
    add("## Summary")
    add("")
    verdict_parts = [f"{len(figures) - len(missed)} of {len(figures)} targets met"]
    if missed:
        verdict_parts.append(f"{len(missed)} NOT MET")
    if problems:
        verdict_parts.append(f"{len(problems)} problem(s) running or reading the benchmarks")
    add("**" + "; ".join(verdict_parts) + ".**")
    add("")
    add("| benchmark | figure | measured | target | result |")
    add("|---|---|---|---|---|")
    for outcome, figure in figures:
        result = "met" if figure.met else "**NOT MET**"
        add(
            f"| {outcome.bench.script} | {figure.label} | {figure.value_text()} "
            f"| {figure.target_text()} | {result} |"
        )
    add("")
    if problems or extra:
        add("## Problems")
        add("")
        for problem in [*problems, *extra]:
            add(f"- {problem}")
        add("")
    add("## Not measured here")
    add("")
    for line in NOT_MEASURED:
        add(f"- {line}")
    add("")
    add("## Raw output")
    for outcome in outcomes:
        add("")
        add(f"### {outcome.bench.script}")
        add("")
        code = "-" if outcome.returncode is None else str(outcome.returncode)
        add(f"{outcome.status}, exit code {code}, {outcome.elapsed:.1f} s")
        args = outcome.bench.quick_args if quick else outcome.bench.args
        if args:
            add(f"(arguments: `{' '.join(args)}`)")
        if outcome.stdout.strip():
            add("")
            add("```text")
            add(outcome.stdout.rstrip())
            add("```")
        if outcome.stderr.strip():
            add("")
            add("stderr:")
            add("")
            add("```text")
            add(outcome.stderr.rstrip())
            add("```")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke pass, not data")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write the report (default: {DEFAULT_OUTPUT.name} for a full run; "
        "a quick run only prints it unless this is given)",
    )
    parser.add_argument("--timeout", type=float, help="seconds each script may take")
    parser.add_argument(
        "--only", action="append", default=[], help="run only this script (repeatable)"
    )
    parser.add_argument("--note", help="a line for the report, e.g. what else loaded the machine")
    args = parser.parse_args(argv)
    timeout = args.timeout or (QUICK_TIMEOUT_S if args.quick else FULL_TIMEOUT_S)
    wanted = {name.removesuffix(".py") for name in args.only}
    known = {bench.script.removesuffix(".py") for bench in BENCHMARKS}
    if wanted - known:
        parser.error(f"unknown benchmark(s) {sorted(wanted - known)}; choose from {sorted(known)}")
    selected = [b for b in BENCHMARKS if not wanted or b.script.removesuffix(".py") in wanted]

    started = dt.datetime.now(dt.UTC)
    load_before = _load()
    outcomes: list[Outcome] = []
    for bench in selected:
        print(f"running {bench.script} ...", file=sys.stderr, flush=True)
        outcome = run_one(bench, args.quick, timeout)
        outcomes.append(outcome)
        print(f"  {outcome.status} in {outcome.elapsed:.1f} s", file=sys.stderr, flush=True)
    extra = [
        f"{name} is in benchmarks/ but run_all.py has no targets for it: add it to BENCHMARKS"
        for name in unknown_scripts()
    ]
    text = report(
        outcomes,
        quick=args.quick,
        started=started,
        load_before=load_before,
        load_after=_load(),
        note=args.note,
        extra=extra,
    )
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)
    if output is None:
        print(text)
    else:
        output.write_text(text)
        summary = text.split("## Summary", 1)[1].split("## Raw output", 1)[0]
        print(summary.strip())
        print(f"\nwritten to {output}")
    failed = any(o.problems for o in outcomes) or extra
    missed = any(not f.met for o in outcomes for f in o.figures)
    return 1 if failed or missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
