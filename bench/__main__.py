"""The benchmark suite: every bench/bench_*.py at one size, each figure against its baseline from the same run,
written as Markdown with the machine, the date, the figures, the ratios and which targets were met.

  python -m bench --size quick              # `make bench-quick`: a few minutes; bench/out/RESULTS-quick.md
  python -m bench --size full               # `make bench`: 10M rows end to end, 100M replayed; bench/RESULTS.md
  python -m bench --size quick --only replay,spark
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psutil
import pyarrow

from bench.common import Result

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# The order a reader wants: the pipeline's stages, then the whole at scale, then the other engine.
ORDER = ("ingest", "selector", "policy_load", "engine", "synth", "replay", "report", "scale", "spark")
RESULTS = {"full": BENCH / "RESULTS.md", "quick": BENCH / "out" / "RESULTS-quick.md"}
_TARGET = re.compile(r"^\s*(<=|>=|<|>)\s*([\d,.]+)\s*(\S*)\s*$")


@dataclass
class Outcome:
    """One benchmark module's run: what it measured, how long it took, and its error if it failed."""

    name: str
    doc: str
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None


def modules() -> list[str]:
    found = sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))
    return [n for n in ORDER if n in found] + [n for n in found if n not in ORDER]


def run_module(name: str, size: str) -> Outcome:
    module = importlib.import_module(f"bench.bench_{name}")
    doc = (module.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    outcome = Outcome(name, doc)
    start = time.perf_counter()
    try:
        for result in module.run(size):
            outcome.results.append(result)
            print(result.line(), flush=True)
    except Exception as exc:  # one failing benchmark must not hide the others' figures
        outcome.error = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    outcome.seconds = time.perf_counter() - start
    return outcome


def meets(result: Result) -> bool | None:
    """Whether a result meets its target (`<= 1.5x` on the ratio, `< 2048 MiB` on the value); None if it has none."""
    if not result.target:
        return None
    match = _TARGET.match(result.target)
    if match is None:
        return None
    op, number, unit = match.group(1), float(match.group(2).replace(",", "")), match.group(3)
    value = result.ratio if unit == "x" else result.value
    if value is None:
        return None
    return {"<=": value <= number, "<": value < number, ">=": value >= number, ">": value > number}[op]


def _run(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=60).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), platform.processor())
    facts = {
        "CPU": f"{cpu or 'unknown'}, {os.cpu_count()} cores",
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "system": platform.platform(),
        "Python": platform.python_version(),
        "DuckDB": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
    }
    try:
        import pyspark

        from flowstage.engines.spark_session import find_java, java_version

        java = find_java()
        facts["pyspark"] = pyspark.__version__
        facts["Java"] = str(java_version(java)) if java else "none"
    except ImportError:
        facts["pyspark"] = "not installed"
    commit = _run(["git", "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    facts["commit"] = (commit or "unknown") + (" (with uncommitted changes)" if dirty else "")
    load = os.getloadavg()
    facts["load average at start"] = f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min)"
    return facts


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(size: str, outcomes: list[Outcome], facts: dict[str, str], started: dt.datetime, seconds: float,
             only: list[str] | None = None) -> str:
    if only:
        command = f"`python -m bench --size {size} --only {','.join(only)}`"
        ran = f"{'this benchmark' if len(only) == 1 else 'these benchmarks'} took"
    else:
        command = f"`python -m bench --size {size}` ({'`make bench`' if size == 'full' else '`make bench-quick`'})"
        ran = "the whole suite took"
    lines = [
        "# flowstage benchmark results",
        "",
        f"Written by {command} on {started:%Y-%m-%d %H:%M} UTC; {ran} {seconds / 60:.1f} minutes. Each figure is compared "
        "with a baseline measured in the same run on the same data; the ratio is figure / baseline.",
        "",
        "Times are wall-clock seconds of a single run unless a note says otherwise (best of N, CPU time). Peak memory "
        "is what each benchmark's note says; bench_scale and bench_spark sample the process tree every 50 ms and "
        "sum its PSS, Spark's JVM apart. The machine is shared: the load average below is part of the result.",
        "",
        "| machine | |",
        "|---|---|",
        *(f"| {k} | {_cell(v)} |" for k, v in facts.items()),
        "",
    ]
    targeted = [(o, r) for o in outcomes for r in o.results if meets(r) is not None]
    if targeted:
        lines += ["## Targets", "", "| figure | value | target | met |", "|---|---|---|---|"]
        for _, r in targeted:
            shown = f"{r.ratio:.2f}x" if r.target and r.target.strip().endswith("x") and r.ratio is not None \
                else f"{_number(r.value)} {r.unit}"
            lines.append(f"| {_cell(r.name)} | {shown} | {_cell(r.target or '')} | {'yes' if meets(r) else '**no**'} |")
        lines.append("")
    for o in outcomes:
        lines += [f"## {o.name} (bench/bench_{o.name}.py, {o.seconds:.0f} s)", "", _cell(o.doc), ""]
        if o.error:
            lines += [f"**Failed:** `{_cell(o.error[:500])}`", ""]
        if o.results:
            lines += ["| figure | value | baseline | baseline value | ratio | target | note |",
                      "|---|---|---|---|---|---|---|"]
            for r in o.results:
                ratio = f"{r.ratio:.2f}x" if r.ratio is not None else ""
                base = f"{_number(r.baseline_value)} {r.unit}" if r.baseline_value is not None else ""
                lines.append(
                    f"| {_cell(r.name)} | {_number(r.value)} {r.unit} | {_cell(r.baseline_name or '')} | {base} "
                    f"| {ratio} | {_cell(r.target or '')} | {_cell(r.note)} |"
                )
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("quick", "full"), default="quick")
    parser.add_argument("--only", help="comma-separated benchmarks to run (names after bench_), e.g. replay,spark")
    parser.add_argument("--results", type=Path, help="Markdown file to write (default: by size, see above)")
    args = parser.parse_args(argv)
    chosen = modules()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in chosen]
        if unknown:
            parser.error(f"no benchmark named {', '.join(unknown)}; known: {', '.join(chosen)}")
        chosen = [n for n in chosen if n in wanted]
    started = dt.datetime.now(dt.UTC)
    facts = machine()
    clock = time.perf_counter()
    outcomes = []
    for name in chosen:
        print(f"== {name} ({args.size})", flush=True)
        outcomes.append(run_module(name, args.size))
    seconds = time.perf_counter() - clock
    target = args.results or RESULTS[args.size]
    target.parent.mkdir(parents=True, exist_ok=True)
    only = chosen if args.only else None
    target.write_text(markdown(args.size, outcomes, facts, started, seconds, only) + "\n", encoding="utf-8")
    failed = [o.name for o in outcomes if o.error]
    print(f"== {len(outcomes)} benchmarks in {seconds / 60:.1f} min; results in {target}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
