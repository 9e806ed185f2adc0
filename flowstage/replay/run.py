"""One replay run: distinct replay keys from the store, each judged once by the engine under every policy set,
written as Parquet and published atomically with the views that join the verdicts back to the rows.

The CLI and notebooks call `load_inputs` then `replay`; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import flowstage
from flowstage import arrays
from flowstage.collector import fewer_collections
from flowstage.errors import FlowstageError
from flowstage.interrupt import interruptible
from flowstage.policy.loader import PolicyBundle, load_policies
from flowstage.policy.model import Direction, PolicySet
from flowstage.policy.sets import PolicySets, build_sets
from flowstage.policy.validate import Problem
from flowstage.replay import nets, parallel
from flowstage.replay.judge import verdict_columns
from flowstage.replay.keys import (
    ENDPOINT_ID_COLUMNS,
    REPLAY_KEY_COLUMN,
    key_columns,
    key_extraction_sql,
    rules_match_source_ports,
)
from flowstage.replay.views import SET_NAMES, VERDICT_FIELDS, all_views, published_file
from flowstage.store import Store

DATASET = "replay"


class PolicyProblemsError(FlowstageError):
    """The supplied policies have errors: the replay refuses to run on a model it cannot trust."""

    def __init__(self, problems: Sequence[Any]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(
            f"{len(self.problems)} policy error(s); fix them and run the replay again "
            f"(`flowstage policies lint PATH` lists them too):\n{lines}"
        )


@dataclass(frozen=True)
class InputFile:
    role: str  # policies / namespaces / pods
    path: str
    sha256: str


@dataclass(frozen=True)
class PolicyInputs:
    """Everything a replay judges with: the loaded objects, the three policy sets, and the files they came from."""

    bundle: PolicyBundle
    sets: PolicySets
    files: tuple[InputFile, ...]

    @property
    def errors(self) -> list[Problem]:
        return self.bundle.errors

    @property
    def warnings(self) -> list[Problem]:
        return self.bundle.warnings


def load_inputs(
    policies: Iterable[str | Path], namespaces: str | Path | None = None, pods: str | Path | None = None
) -> PolicyInputs:
    """Load policy files or folders and optional inventory files (kubectl `-o yaml` Lists); build the sets.

    Namespace and Pod objects found among the policy paths count as inventory too.
    """
    policy_paths = [Path(p) for p in policies]
    if not policy_paths:
        raise FlowstageError("no policies given: pass --policies with a policy file or folder")
    for path in [*policy_paths, *(Path(p) for p in (namespaces, pods) if p is not None)]:
        if not path.exists():
            raise FlowstageError(f"{path}: no such file or folder")
    inventory = [Path(p) for p in (namespaces, pods) if p is not None]
    with fewer_collections():
        bundle = load_policies(policy_paths, inventory=inventory)
        sets = build_sets(bundle)
        sets = dataclasses.replace(sets, proposed=promoted_as_staged(sets))
    files = [*_hashed("policies", policy_paths)]
    if namespaces is not None:
        files += _hashed("namespaces", [Path(namespaces)])
    if pods is not None:
        files += _hashed("pods", [Path(pods)])
    return PolicyInputs(bundle=bundle, sets=sets, files=tuple(files))


def promoted_as_staged(sets: PolicySets) -> PolicySet:
    """The proposed set with each promoted policy keeping its staged kind.

    The engine evaluates staged kinds as enforced in the proposed set, so the verdicts are the same; keeping
    the kind lets a verdict say its decider came from a staged object (`proposed_staged`) and lets an end of
    tier name the staged policy as its trigger, which is what a user deciding on promotion needs to see.
    """
    staged_kind = {id(step.promoted): step.staged.kind for step in sets.promotion if step.promoted is not None}
    proposed = sets.proposed
    policies = {
        tier: tuple(
            sorted(
                (dataclasses.replace(p, kind=staged_kind[id(p)]) if id(p) in staged_kind else p for p in members),
                key=lambda p: p.sort_key,
            )
        )
        for tier, members in proposed.policies.items()
    }
    return PolicySet(name=proposed.name, tiers=proposed.tiers, policies=policies, inventory=proposed.inventory)


def _hashed(role: str, paths: Iterable[Path]) -> list[InputFile]:
    found: list[InputFile] = []
    for path in paths:
        members = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for member in members:
            digest = hashlib.sha256(member.read_bytes()).hexdigest()
            found.append(InputFile(role=role, path=str(member.resolve()), sha256=digest))
    return found


@dataclass
class ReplaySummary:
    """What one replay found: the figures of the summary line, also the `--json` output."""

    run_id: str
    rows: int = 0
    keys: int = 0
    would_break_rows: int = 0
    would_break_bytes: int = 0
    newly_allowed_rows: int = 0
    unknown_rows: int = 0  # current or proposed verdict unknown
    current_unknown_rows: int = 0
    proposed_unknown_rows: int = 0
    kept_open_by_nets_rows: int = 0  # allowed after promotion only because a safety net allows them
    current_compared_rows: int = 0
    current_agree_rows: int = 0
    pending_compared_rows: int = 0
    pending_agree_rows: int = 0
    source_port_in_key: bool = False
    seconds: float = 0.0
    policies: dict[str, int] = field(default_factory=dict)
    safety_nets: list[str] = field(default_factory=list)
    decisions: int = 0  # engine calls: at most one per key and set, fewer where sets provably agree
    workers: int = 1  # processes that judged the keys
    timings: dict[str, float] = field(default_factory=dict)  # seconds: extract (SQL), judge (engine), publish

    @property
    def fidelity(self) -> float | None:
        """Share of rows whose logged action the current set reproduces (rows with a definite verdict)."""
        return self.current_agree_rows / self.current_compared_rows if self.current_compared_rows else None

    @property
    def pending_fidelity(self) -> float | None:
        return self.pending_agree_rows / self.pending_compared_rows if self.pending_compared_rows else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fidelity": self.fidelity, "pending_fidelity": self.pending_fidelity}

    def line(self) -> str:
        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{100 * x:.1f}%"

        text = (
            f"replayed {self.rows:,} rows ({self.keys:,} distinct keys): "
            f"{self.would_break_rows:,} would break ({_bytes(self.would_break_bytes)}), "
            f"{self.unknown_rows:,} unknown, fidelity {pct(self.fidelity)} current"
        )
        if self.pending_compared_rows:
            text += f" / {pct(self.pending_fidelity)} pending"
        if self.kept_open_by_nets_rows:
            text += f"; {self.kept_open_by_nets_rows:,} allowed after promotion only by a safety net"
        return text


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


ProgressCallback = Callable[[int, int], None]


KeySource = Callable[[str, Path, int], None]
"""Where key extraction runs: given the key-extraction SQL (DuckDB dialect), a path and a batch size, write the
keys the SQL gives, in its order, to that Parquet file in row groups of about that many rows. `replay` runs it on
DuckDB; flowstage.engines runs it on Spark."""

REPLAY_FILES = ("verdicts", "policies", "rules", "run")


def replay(
    store: Store,
    inputs: PolicyInputs,
    *,
    batch_keys: int = 4096,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> ReplaySummary:
    """Judge every distinct replay key of the store under the current, proposed and pending sets and publish.

    Publishing is one manifest swap: until it happens the previous replay's views stay visible, and a run that
    is interrupted leaves nothing visible. `workers`: judging processes (default: one per core once there are
    enough keys; 1 judges in this process). `on_progress(done_keys, total_keys)` is called after each batch.
    """
    staging = _staging_dir(store.root)
    try:

        def duckdb_keys(sql: str, path: Path, batch_rows: int) -> None:
            # The keys go to a file and the connection closes before judging: DuckDB gives its memory back,
            # and worker processes start from a small process.
            con = store.connect(read_only=False)  # the replay's own connection: it runs no user SQL
            try:
                target = str(path).replace("'", "''")
                # DuckDB would not notice Ctrl-C until the COPY ends (minutes on a large store)
                copy = f"COPY ({sql}) TO '{target}' (FORMAT parquet, ROW_GROUP_SIZE {int(batch_rows)})"
                interruptible(con, lambda: con.execute(copy))
            finally:
                con.close()

        summary, views = judge_keys(
            inputs, duckdb_keys, staging, batch_keys=batch_keys, workers=workers, on_progress=on_progress
        )
        published = time.perf_counter()
        store.publish(DATASET, [staging / f"{tag}.parquet" for tag in REPLAY_FILES], views)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    summary.timings["publish"] = time.perf_counter() - published
    summary.seconds += summary.timings["publish"]
    return summary


def judge_keys(
    inputs: PolicyInputs,
    keys: KeySource,
    staging: Path,
    *,
    batch_keys: int = 4096,
    workers: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> tuple[ReplaySummary, dict[str, str]]:
    """Judge every key `keys` extracts under every policy set and write the replay's files (REPLAY_FILES, as
    `<tag>.parquet`) into `staging`; returns the summary and the views to publish them with."""
    if inputs.errors:
        raise PolicyProblemsError(inputs.errors)
    if workers is not None and workers < 1:
        raise FlowstageError(f"--workers must be at least 1, got {workers}")
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    sets = inputs.sets
    with_source_port = rules_match_source_ports([sets.current, sets.proposed, sets.pending])
    columns = key_columns(with_source_port)
    summary = ReplaySummary(run_id=uuid.uuid4().hex, source_port_in_key=with_source_port)
    summary.policies = {s.name.value: sum(1 for _ in s.all_policies()) for s in (sets.current, sets.proposed, sets.pending)}
    summary.safety_nets = sorted(name for _, name in nets.net_ids(sets.current) | nets.net_ids(sets.proposed))

    judging: parallel.Judging | None = None
    try:
        keys_path = staging / "keys.parquet"
        keys(key_extraction_sql(columns), keys_path, batch_keys)
        batches = parallel.KeyBatches(keys_path, batch_keys)
        summary.timings["extract"] = time.perf_counter() - started
        with fewer_collections():
            judging = parallel.start(sets, with_source_port, batches.total, workers)
            summary.workers = judging.count
            _write_verdicts(judging, batches, staging / "verdicts.parquet", summary, on_progress)
            summary.decisions = judging.close()
    finally:
        if judging is not None:
            judging.terminate()
    summary.seconds = time.perf_counter() - started
    summary.timings["judge"] = summary.seconds - summary.timings["extract"]
    pq.write_table(_policies_table(inputs), staging / "policies.parquet")
    pq.write_table(_rules_table(inputs), staging / "rules.parquet")
    pq.write_table(_run_table(inputs, summary, columns, started_at), staging / "run.parquet")
    return summary, all_views(published_file(DATASET), columns)


def _write_verdicts(judging: parallel.Judging, batches: parallel.KeyBatches, path: Path, summary: ReplaySummary,
                    on_progress: ProgressCallback | None) -> None:
    """Each judged batch with its verdicts appended to the verdicts file and counted into the summary."""
    # No column statistics: the file is read whole, joined on its key columns, and computing them was a third
    # of the writing, done by the process that hands batches to the judging workers.
    writer: pq.ParquetWriter | None = None
    done = 0
    try:
        for batch, verdicts in judging.judged(batches):
            table = _verdict_table(batch, verdicts, summary)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd", write_statistics=False)
            writer.write_table(table)
            done += batch.num_rows
            if on_progress is not None:
                on_progress(done, batches.total)
        if writer is None:
            table = _verdict_table(batches.empty(), verdict_columns([]), summary)
            writer = pq.ParquetWriter(path, table.schema, compression="zstd", write_statistics=False)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _staging_dir(root: Path) -> Path:
    """A private folder in the store (same filesystem, so publish renames); clears those of dead replays."""
    for old in root.glob(".replay-*"):
        pid = old.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f".replay-{os.getpid()}-", dir=root))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _verdict_table(batch: pa.RecordBatch, verdicts: parallel.Verdicts, summary: ReplaySummary) -> pa.Table:
    """The key batch (without hashes) plus each set's verdict columns; counts the batch into the summary."""
    # Hashes are local to the engine that computed them: the file keeps the key columns, readers rehash them.
    kept = [name for name in batch.schema.names if name not in (*ENDPOINT_ID_COLUMNS, REPLAY_KEY_COLUMN)]
    columns = [batch.column(name) for name in kept] + [c.combine_chunks() for c in verdicts.columns]
    _count(summary, batch, {s: columns[len(kept) + j * len(VERDICT_FIELDS)] for j, s in enumerate(SET_NAMES)})
    return pa.Table.from_arrays(columns, names=kept + verdicts.column_names)


def _count(summary: ReplaySummary, batch: pa.RecordBatch, outcomes: dict[str, pa.Array]) -> None:
    """Adds a batch's keys to the summary figures (`outcomes`: each set's verdict column)."""

    def column(name: str) -> np.ndarray:
        return arrays.numbers(batch.column(name))

    def outcome(s: str, value: str) -> np.ndarray:
        return arrays.flags(pc.equal(outcomes[s], arrays.string_scalar(value)))

    rows, rows_allow, rows_deny = column("rows"), column("rows_allow"), column("rows_deny")
    current_allow, current_deny = outcome("current", "allow"), outcome("current", "deny")
    proposed_allow, proposed_deny = outcome("proposed", "allow"), outcome("proposed", "deny")
    current_unknown, proposed_unknown = outcome("current", "unknown"), outcome("proposed", "unknown")
    pending_allow, pending_deny = outcome("pending", "allow"), outcome("pending", "deny")
    pending_rows_allow, pending_rows_deny = column("rows_pending_allow"), column("rows_pending_deny")
    summary.keys += batch.num_rows
    summary.rows += int(rows.sum())
    summary.would_break_rows += int(rows_allow[proposed_deny].sum())
    summary.would_break_bytes += int(column("bytes_allow")[proposed_deny].sum())
    summary.newly_allowed_rows += int(rows_deny[proposed_allow].sum())
    summary.kept_open_by_nets_rows += int(rows[proposed_allow & outcome("proposed_without_nets", "deny")].sum())
    summary.unknown_rows += int(rows[current_unknown | proposed_unknown].sum())
    summary.current_unknown_rows += int(rows[current_unknown].sum())
    summary.proposed_unknown_rows += int(rows[proposed_unknown].sum())
    compared = current_allow | current_deny
    summary.current_compared_rows += int((rows_allow + rows_deny)[compared].sum())
    summary.current_agree_rows += int(rows_allow[current_allow].sum() + rows_deny[current_deny].sum())
    summary.pending_compared_rows += int((pending_rows_allow + pending_rows_deny)[pending_allow | pending_deny].sum())
    summary.pending_agree_rows += int(pending_rows_allow[pending_allow].sum() + pending_rows_deny[pending_deny].sum())


def _policy_sets(inputs: PolicyInputs) -> list[tuple[str, PolicySet]]:
    sets = inputs.sets
    return [("current", sets.current), ("proposed", sets.proposed), ("pending", sets.pending)]


def _log_ids(policy: Any, tier: str) -> list[str]:
    """The ids flow logs may name this policy by: `kind:[ns/]name`, and without a legacy `<tier>.` name prefix."""
    ids = [policy.flow_log_id]
    if policy.name.startswith(f"{tier}."):
        bare = policy.name[len(tier) + 1 :]
        ids.append(f"{policy.kind.short}:{policy.namespace + '/' if policy.namespace else ''}{bare}")
    return ids


def _policies_table(inputs: PolicyInputs) -> pa.Table:
    rows: list[dict[str, Any]] = []
    for set_name, policy_set in _policy_sets(inputs):
        for tier_position, tier in enumerate(policy_set.tiers):
            for position, p in enumerate(policy_set.tier_policies(tier.name)):
                rows.append(
                    {
                        "set_name": set_name,
                        "tier": tier.name,
                        "tier_position": tier_position,
                        "tier_order": tier.order,
                        "tier_default_action": tier.default_action.flow_log,
                        "position": position,
                        "policy": p.display_name,
                        "policy_kind": p.kind.short,
                        "kind": p.kind.value,
                        "namespace": p.namespace,
                        "name": p.name,
                        "staged": p.staged,
                        "order": p.order,
                        "types": sorted(d.value for d in p.types),
                        "selector": str(p.selector),
                        "ingress_rules": len(p.ingress),
                        "egress_rules": len(p.egress),
                        "log_ids": _log_ids(p, tier.name),
                        "safety_net": nets.is_safety_net(p),
                        "origin": str(p.origin) if p.origin is not None else None,
                    }
                )
    return arrays.table(rows, _POLICIES_SCHEMA)


_POLICIES_SCHEMA = pa.schema(
    [
        ("set_name", pa.string()),
        ("tier", pa.string()),
        ("tier_position", pa.int32()),
        ("tier_order", pa.float64()),
        ("tier_default_action", pa.string()),
        ("position", pa.int32()),
        ("policy", pa.string()),
        ("policy_kind", pa.string()),
        ("kind", pa.string()),
        ("namespace", pa.string()),
        ("name", pa.string()),
        ("staged", pa.bool_()),
        ("order", pa.float64()),
        ("types", pa.list_(pa.string())),
        ("selector", pa.string()),
        ("ingress_rules", pa.int32()),
        ("egress_rules", pa.int32()),
        ("log_ids", pa.list_(pa.string())),
        ("safety_net", pa.bool_()),
        ("origin", pa.string()),
    ]
)


def _rules_table(inputs: PolicyInputs) -> pa.Table:
    rows: list[dict[str, Any]] = []
    for set_name, policy_set in _policy_sets(inputs):
        for tier in policy_set.tiers:
            for p in policy_set.tier_policies(tier.name):
                for direction in (Direction.INGRESS, Direction.EGRESS):
                    for rule in p.rules(direction):
                        rows.append(
                            {
                                "set_name": set_name,
                                "tier": tier.name,
                                "policy": p.display_name,
                                "policy_kind": p.kind.short,
                                "staged": p.staged,
                                "direction": direction.value.lower(),
                                "rule": rule.index,
                                "action": rule.action.flow_log,
                                "allow_everything": nets.is_allow_everything(rule),
                                "path": rule.path,
                                "origin": str(p.origin) if p.origin is not None else None,
                            }
                        )
    return arrays.table(rows, _RULES_SCHEMA)


_RULES_SCHEMA = pa.schema(
    [
        ("set_name", pa.string()),
        ("tier", pa.string()),
        ("policy", pa.string()),
        ("policy_kind", pa.string()),
        ("staged", pa.bool_()),
        ("direction", pa.string()),
        ("rule", pa.int32()),
        ("action", pa.string()),
        ("allow_everything", pa.bool_()),
        ("path", pa.string()),
        ("origin", pa.string()),
    ]
)


def _run_table(inputs: PolicyInputs, summary: ReplaySummary, columns: Sequence[str], started_at: datetime) -> pa.Table:
    promotion = [
        {
            "policy": step.staged.display_name,
            "kind": step.staged.kind.short,
            "tier": step.staged.tier,
            "action": step.action.value,
            "target_kind": step.staged.kind.enforced.short,
            "description": str(step),
        }
        for step in inputs.sets.promotion
    ]
    row = {
        "run_id": summary.run_id,
        "started_at": started_at,
        "finished_at": datetime.now(UTC),
        "seconds": summary.seconds,
        "flowstage_version": flowstage.__version__,
        "duckdb_version": duckdb.__version__,
        "inputs": [asdict(f) for f in inputs.files],
        "policies": [{"set_name": k, "count": v} for k, v in summary.policies.items()],
        "promotion": promotion,
        "safety_nets": summary.safety_nets,
        "key_columns": list(columns),
        "rows": summary.rows,
        "keys": summary.keys,
        "would_break_rows": summary.would_break_rows,
        "would_break_bytes": summary.would_break_bytes,
        "newly_allowed_rows": summary.newly_allowed_rows,
        "unknown_rows": summary.unknown_rows,
        "kept_open_by_nets_rows": summary.kept_open_by_nets_rows,
        "fidelity": summary.fidelity,
        "pending_fidelity": summary.pending_fidelity,
    }
    return arrays.table([row], _RUN_SCHEMA)


_RUN_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("seconds", pa.float64()),
        ("flowstage_version", pa.string()),
        ("duckdb_version", pa.string()),
        ("inputs", pa.list_(pa.struct([("role", pa.string()), ("path", pa.string()), ("sha256", pa.string())]))),
        ("policies", pa.list_(pa.struct([("set_name", pa.string()), ("count", pa.int64())]))),
        (
            "promotion",
            pa.list_(
                pa.struct(
                    [
                        ("policy", pa.string()),
                        ("kind", pa.string()),
                        ("tier", pa.string()),
                        ("action", pa.string()),
                        ("target_kind", pa.string()),
                        ("description", pa.string()),
                    ]
                )
            ),
        ),
        ("safety_nets", pa.list_(pa.string())),
        ("key_columns", pa.list_(pa.string())),
        ("rows", pa.int64()),
        ("keys", pa.int64()),
        ("would_break_rows", pa.int64()),
        ("would_break_bytes", pa.int64()),
        ("newly_allowed_rows", pa.int64()),
        ("unknown_rows", pa.int64()),
        ("kept_open_by_nets_rows", pa.int64()),
        ("fidelity", pa.float64()),
        ("pending_fidelity", pa.float64()),
    ]
)
