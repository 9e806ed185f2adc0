"""flowstage: replay Calico flow logs against staged policies and see what promotion would break.

The public Python API: every `flowstage` command is one call here, and the command is a thin skin over it.
Importing flowstage loads nothing heavy; each function imports what it needs when it runs.

The whole loop on the committed sample, from the repository root (`tmp` is an empty folder):

>>> import flowstage
>>> lesson = tmp / "lesson-store"
>>> flowstage.ingest_logs("sample_logs/logs", lesson).stored
3168
>>> flowstage.replay_flows(lesson, "sample_logs/policies/lesson.yaml",
...                        namespaces="sample_logs/inventory/namespaces.yaml",
...                        pods="sample_logs/inventory/pods.yaml").rows
3168
>>> report = flowstage.run_report(lesson, "would_break")
>>> top = report.df("would_break").iloc[0]
>>> top["dest_namespace"], top["dest_workload"], top["top_source"], top["denied_by_policy"]
('prod', 'backend', 'prod/frontend', 'backend-lockdown-staged')
>>> flowstage.sql(lesson, "SELECT count(*) FROM replay WHERE would_break").fetchall()
[(144,)]

The examples of each function below take `flowstage` as imported, `store` as a store replayed like `lesson`, and
`tmp` as an empty folder. Results come back as the library's own values (`IngestSummary`, `ReplaySummary`,
`CheckResult`), as DuckDB relations (`.df()` for pandas, `.arrow()` for Arrow, `.fetchall()` for tuples), or as
`flowstage.results` objects with `.df()` and text. Bad input raises a `flowstage.errors.FlowstageError` whose
message says what to fix.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from flowstage.options import INGEST_BATCH_ROWS, LOCK_TIMEOUT

if TYPE_CHECKING:
    import duckdb

    from flowstage.ingest import IngestSummary
    from flowstage.replay import PolicyInputs, ReplaySummary
    from flowstage.report import CheckResult
    from flowstage.results import Explanation, Promotion, Report
    from flowstage.store import Store

    StoreRef: TypeAlias = str | os.PathLike[str] | Store
    PathRef: TypeAlias = str | os.PathLike[str]
    Paths: TypeAlias = PathRef | Iterable[PathRef]

__version__ = "0.1.0"

__all__ = [
    "check",
    "connect",
    "explain",
    "ingest_logs",
    "load_policies",
    "open_store",
    "promote",
    "replay_flows",
    "run_report",
    "sql",
]

ProgressCallback = Callable[[int, int], None]  # (done, total): bytes for ingest, distinct keys for replay


def _paths(paths: Paths) -> list[str]:
    if isinstance(paths, str | os.PathLike):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def _location(store: StoreRef) -> str:
    """A store reference as a path or URI text (a `Store` by its folder)."""
    from flowstage.store import Store

    return os.fspath(store.root if isinstance(store, Store) else store)


def open_store(path: PathRef, create: bool = False) -> Store:
    """The store folder at `path`; with `create`, an empty store is made there when there is none yet.

    >>> flowstage.open_store(tmp / "new-store", create=True).manifest()["datasets"]["flows"]
    {'files': []}
    >>> flowstage.open_store(tmp / "missing")
    Traceback (most recent call last):
    ...
    flowstage.errors.StoreError: no store at ...: run `flowstage ingest LOGS --store ...` to create one
    """
    from flowstage.store import Store

    return Store.open(path, create=create)


def connect(store: StoreRef) -> duckdb.DuckDBPyConnection:
    """A read-only DuckDB connection with a view per dataset: `flows`, `quarantine`, and after a replay `replay`,
    `verdicts`, `connections`, `fidelity`, `replay_info`, `replay_policies`, `replay_rules`.

    `selector_match(selector, labels)` is registered on it. The connection reads only the store's committed
    files and writes nothing; keep it for many queries, close it when done.

    >>> con = flowstage.connect(store)
    >>> con.sql("SELECT format, count(*) AS n FROM flows GROUP BY ALL ORDER BY n DESC").fetchall()
    [('felix', 2423), ('goldmane', 314), ('elastic', 261), ('whisker', 170)]
    >>> con.close()
    """
    from flowstage.store import Store

    opened = store if isinstance(store, Store) else Store.open(store)
    return opened.connect(read_only=True)


def ingest_logs(
    paths: Paths,
    store: StoreRef,
    *,
    format: str = "auto",
    batch_rows: int = INGEST_BATCH_ROWS,
    lock_timeout: float = LOCK_TIMEOUT,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> IngestSummary:
    """Read flow logs (files, folders, globs, or `-` for stdin) into `store`, created if missing.

    Formats are detected per file unless `format` names one. Records that cannot be read go to the store's
    `quarantine` view with file, line and reason; a second run adds only what is new. `progress(done, total)`
    is called with bytes of input read. Large inputs are read by `workers` processes at once (default: one per
    CPU core; 1 reads in this process only), with the same result.

    >>> summary = flowstage.ingest_logs(["sample_logs/logs/goldmane"], tmp / "goldmane-store")
    >>> summary.read, summary.stored, sum(summary.quarantined.values())
    (314, 314, 0)
    >>> flowstage.ingest_logs(["sample_logs/logs/goldmane"], tmp / "goldmane-store").stored
    0
    """
    from flowstage.ingest import ingest
    from flowstage.store import Store

    target = store if isinstance(store, Store) else Store.open(store, create=True)
    return ingest(_paths(paths), target, format=format, batch_rows=batch_rows, lock_timeout=lock_timeout,
                  progress=progress, workers=workers)


def load_policies(policies: Paths, namespaces: PathRef | None = None, pods: PathRef | None = None) -> PolicyInputs:
    """Load policy files or folders (YAML, JSON, List wrappers) and optional inventory (`kubectl get namespaces
    -o yaml`, `kubectl get pods -A -o yaml`), and build the current, proposed and pending sets.

    Problems come back as values (`.errors`, `.warnings`, each naming file, line, object and field); the
    replay refuses inputs with errors.

    >>> inputs = flowstage.load_policies("sample_logs/policies/lesson.yaml")
    >>> inputs.errors
    []
    >>> [p.name for p in inputs.sets.current.all_policies()]
    ['database-allow-from-backend']
    >>> [p.name for p in inputs.sets.proposed.all_policies()]
    ['backend-lockdown-staged', 'database-allow-from-backend']
    """
    from flowstage.replay import load_inputs

    return load_inputs(_paths(policies), namespaces=namespaces, pods=pods)


def _inputs(policies: Paths | PolicyInputs, namespaces: PathRef | None, pods: PathRef | None) -> PolicyInputs:
    from flowstage.errors import UsageError
    from flowstage.replay import PolicyInputs

    if isinstance(policies, PolicyInputs):
        if namespaces is not None or pods is not None:
            raise UsageError("pass namespaces and pods to load_policies() along with the policies, not here")
        return policies
    return load_policies(policies, namespaces=namespaces, pods=pods)


def replay_flows(
    store: StoreRef,
    policies: Paths | PolicyInputs,
    namespaces: PathRef | None = None,
    pods: PathRef | None = None,
    *,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> ReplaySummary:
    """Judge every stored flow under the current, proposed and pending policy sets and publish the verdicts.

    `policies`: policy files or folders, or what `load_policies` returned. Each distinct replay key is judged
    once (`workers` processes; default one per core once there are enough keys) and `progress(done, total)` is
    called with keys judged. A new replay replaces the previous one atomically. With `engine="spark"` Apache
    Spark extracts the keys from a store folder or URI. Raises `PolicyProblemsError` on policy errors.

    The lesson's safety net keeps everything open; the summary names it:

    >>> netted = tmp / "netted-store"
    >>> _ = flowstage.ingest_logs("sample_logs/logs/felix", netted)
    >>> summary = flowstage.replay_flows(
    ...     netted, ["sample_logs/policies/lesson.yaml", "sample_logs/policies/safety-net.yaml"],
    ...     namespaces="sample_logs/inventory/namespaces.yaml", pods="sample_logs/inventory/pods.yaml")
    >>> summary.would_break_rows, summary.safety_nets
    (0, ['zzz-final-allow-everything'])
    >>> summary.line()
    'replayed 2,423 rows (... distinct keys): 0 would break (0 B), ...; 223 allowed after promotion only by a safety net'
    """
    from flowstage.engines import SPARK, check_engine
    from flowstage.replay import PolicyProblemsError

    inputs = _inputs(policies, namespaces, pods)
    if inputs.errors:
        raise PolicyProblemsError(inputs.errors)
    if check_engine(engine) == SPARK:
        from flowstage.engines import spark

        return spark.replay(spark.local_or_uri(_location(store)), inputs, master=spark_master, workers=workers,
                            on_progress=progress)
    from flowstage.replay import replay
    from flowstage.store import Store

    opened = store if isinstance(store, Store) else Store.open(store)
    return replay(opened, inputs, workers=workers, on_progress=progress)


def run_report(
    store: StoreRef,
    names: str | Iterable[str] | None = None,
    top: int | None = None,
    *,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> Report:
    """Run the reports in `queries/` (all, or the ones named) over a replayed store, keeping `top` rows of each.

    The result holds the verdict paragraph's figures (`.summary`, `.verdict`) and each report's rows
    (`.df(name)`, `.table(name)`); `.markdown()`, `.html()` and `.to_json()` render it whole.

    >>> report = flowstage.run_report(store, top=5)
    >>> report.verdict.startswith("Promoting 1 staged policy would break 118,938 flows (1.7 GiB) to 2 services")
    True
    >>> report.names[:3]
    ['would_break', 'would_break_by_source', 'lockout_risk']
    >>> report.df("would_break_matrix")[["source_namespace", "dest_namespace", "flows"]].values.tolist()
    [['prod', 'prod', 116945], ['monitoring', 'prod', 1993]]
    """
    from flowstage.engines import SPARK, check_engine
    from flowstage.report import build_report, open_replay
    from flowstage.results import Report

    chosen = [names] if isinstance(names, str) else list(names or [])
    if check_engine(engine) == SPARK:
        from flowstage.engines import spark

        con: Any = spark.open_replay(spark.local_or_uri(_location(store)), master=spark_master)
    else:
        con = open_replay(_location(store))
    try:
        return Report.of(build_report(con, names=chosen or None, top=top))
    finally:
        con.close()


def sql(
    store: StoreRef | duckdb.DuckDBPyConnection, query: str, params: Mapping[str, Any] | None = None
) -> duckdb.DuckDBPyRelation:
    """Run one read-only query over a store (or over a connection from `connect`) and return a DuckDB relation:
    `.df()` for pandas, `.arrow()` for Arrow, `.fetchall()` for tuples, or more SQL on top of it.

    `query` is SQL in DuckDB's dialect, or the name of a file in `queries/` (`would_break`, `fidelity.sql`) whose
    `$name` parameters are bound from `params` (missing ones are NULL). Plain SQL may use `$name` parameters too.
    `selector_match('<Calico selector>', labels)` tests a label map with Calico's selector language.

    >>> flowstage.sql(store, "would_break", {"top": 1}).df()["top_source"].tolist()
    ['prod/frontend']
    >>> flowstage.sql(store, '''SELECT DISTINCT dest_name_aggr FROM flows
    ...                         WHERE selector_match('app == "backend"', dest_labels)''').fetchall()
    [('backend-f54rdbfd2q-*',)]
    >>> flowstage.sql(store, "SELECT DISTINCT dest_name_aggr FROM flows WHERE dest_port = $port ORDER BY 1",
    ...               {"port": 9187}).fetchall()
    [('database-0',), ('database-1',)]
    >>> flowstage.sql(store, "DROP VIEW flows")
    Traceback (most recent call last):
    ...
    flowstage.errors.UsageError: flowstage sql is read-only: DROP statements are refused; use SELECT
    """
    import duckdb

    from flowstage import adhoc

    con = store if isinstance(store, duckdb.DuckDBPyConnection) else connect(store)
    return adhoc.run(con, query, params)


def explain(
    store: StoreRef,
    *,
    line: str | None = None,
    row: str | None = None,
    policies: Paths | PolicyInputs | None = None,
    namespaces: PathRef | None = None,
    pods: PathRef | None = None,
) -> Explanation:
    """How one stored flow is judged under each policy set: every tier entered, policy tried and rule matched.

    Name the row by `line="FILE:LINE"` (a path suffix is enough when unique) or by `row`, the `row_id` column of
    the `replay` view. The policies and inventory of the last replay are used unless `policies` is given.

    >>> [(row,)] = flowstage.sql(store, "SELECT min(row_id) FROM replay WHERE would_break "
    ...                                 "AND source_name_aggr LIKE 'frontend-%'").fetchall()
    >>> explained = flowstage.explain(store, row=row)
    >>> explained.verdict("current")
    'allow by profile pro:kns.prod rule 0'
    >>> explained.verdict("proposed")
    'deny by end of tier default (default action; trigger sgnp:backend-lockdown-staged, staged)'
    >>> print(explained.text())
    row ...: prod/frontend-... → prod/backend-... tcp/8080, reported by ..., logged allow
    ...
    proposed: deny by end of tier default (default action; trigger sgnp:backend-lockdown-staged, staged)
    ...
    """
    from flowstage.replay import PolicyProblemsError
    from flowstage.replay import explain as explain_row
    from flowstage.results import Explanation
    from flowstage.store import Store

    opened = store if isinstance(store, Store) else Store.open(store)
    inputs = None if policies is None else _inputs(policies, namespaces, pods)
    if inputs is not None and inputs.errors:
        raise PolicyProblemsError(inputs.errors)
    return Explanation.of(explain_row(opened, line=line, row_id=row, inputs=inputs))


def check(
    store: StoreRef,
    *,
    max_would_break: int = 0,
    max_unknown: int | None = None,
    allow_lockout: bool = False,
    junit: PathRef | None = None,
) -> CheckResult:
    """The promotion gate: is promoting the staged policies safe by these thresholds? Judges the same figures as
    the report: would-break flows, flows unknown after promotion (`max_unknown=None`: no limit), lockout risk.

    `.passed`, `.exit_code` (0 or 1, what `flowstage check` exits with), `.verdict`, and one outcome per check
    with the rows behind a failure. `junit` also writes the result as JUnit XML there.

    >>> result = flowstage.check(store, max_would_break=0)
    >>> result.passed, result.exit_code, [o.name for o in result.failures]
    (False, 1, ['would-break'])
    >>> flowstage.check(store, max_would_break=200_000).passed
    True
    """
    from pathlib import Path

    from flowstage.report import Thresholds, open_replay, run_check
    from flowstage.report.check import write_junit

    con = open_replay(_location(store))
    try:
        result, _ = run_check(
            con, Thresholds(max_would_break=max_would_break, max_unknown=max_unknown, allow_lockout=allow_lockout)
        )
    finally:
        con.close()
    if junit is not None:
        write_junit(result, Path(junit))
    return result


def promote(
    paths: Paths,
    output: PathRef,
    *,
    store: StoreRef | None = None,
    force: bool = False,
    deletions: PathRef | None = None,
) -> Promotion:
    """Plan the promotion of every staged object in `paths` into the folder `output`; nothing is written until
    `.write()`. `.diff()` shows what would change.

    Staged Set objects become their enforced kind, keeping comments and key order; objects to delete go to a
    deletions file (`output/deletions.txt` unless `deletions` says). With `store`, the store's replay must have
    judged these very files and `check` must pass, else `CheckFailed`; `force` promotes anyway and the result
    lists what it overrode in `.overridden`.

    >>> promotion = flowstage.promote("sample_logs/policies/lesson.yaml", tmp / "promoted")
    >>> print(promotion.diff())
    --- sample_logs/policies/lesson.yaml
    +++ .../promoted/lesson.yaml
    ...
    -kind: StagedGlobalNetworkPolicy
    +kind: GlobalNetworkPolicy
    ...
    >>> [p.name for p in promotion.write()]
    ['lesson.yaml']
    >>> flowstage.promote("sample_logs/policies/lesson.yaml", tmp / "gated", store=store)
    Traceback (most recent call last):
    ...
    flowstage.report.check.CheckFailed: refusing to promote, the check on ... fails:
    ...
    """
    from pathlib import Path

    from flowstage.policy.promote import plan_promotion
    from flowstage.report.check import gate_promotion
    from flowstage.results import Promotion

    sources = [Path(p) for p in _paths(paths)]
    overridden: list[str] = []
    if store is not None:
        overridden = gate_promotion(Path(_location(store)), sources, force=force)
    plan = plan_promotion(sources, output, deletions)
    return Promotion(plan=plan, overridden=tuple(overridden))
