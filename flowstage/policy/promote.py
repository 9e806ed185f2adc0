"""Promotion: rewrite policy files as they would be with every staged object promoted, plus a deletions file.

Documents that change are round-tripped with ruamel.yaml (key order, comments, quotes, flow style kept); every
other document is copied byte for byte.
"""

from __future__ import annotations

import difflib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError as RuamelError
from ruamel.yaml.scalarstring import ScalarString

from flowstage.errors import FlowstageError, UsageError
from flowstage.policy.convert import ObjectKind
from flowstage.policy.loader import (
    POLICY_FILE_SUFFIXES,
    Identity,
    PolicyBundle,
    identify,
    load_policies,
    policy_files,
    read_documents,
)
from flowstage.policy.model import PolicyKind
from flowstage.policy.sets import PromotionAction, PromotionStep, build_sets
from flowstage.policy.validate import Problem

# Not .yaml: `kubectl apply -f DIR` (and flowstage) read only .yaml/.yml/.json from a directory, and applying
# these objects would create them, empty, instead of deleting them. `kubectl delete -f` reads any file named.
DELETIONS_FILE = "deletions.txt"
_KUBERNETES_API = "networking.k8s.io/v1"
_CALICO_API = "projectcalico.org/v3"


class PromotionError(FlowstageError):
    """The input cannot be promoted as it stands (it has errors); `problems` says why."""

    exit_code = 1

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


@dataclass(frozen=True)
class Deletion:
    """One enforced object to delete, named exactly as kubectl / calicoctl need it."""

    api_version: str
    kind: str
    namespace: str | None
    name: str
    step: PromotionStep

    @property
    def found(self) -> bool:
        """Whether the enforced object was among the inputs (it may still exist only in the cluster)."""
        return self.step.action is PromotionAction.DELETES


@dataclass(frozen=True)
class PromotedFile:
    source: Path
    target: Path
    before: str
    after: str | None  # None: every object in the file went away, so no file is written

    @property
    def changed(self) -> bool:
        return self.before != self.after


@dataclass
class PromotionPlan:
    """Everything `promote` would write, computed without touching the output directory."""

    output: Path
    files: list[PromotedFile]
    deletions: list[Deletion]
    deletions_file: Path
    steps: tuple[PromotionStep, ...]
    bundle: PolicyBundle
    warnings: list[Problem] = field(default_factory=list)

    def deletions_text(self) -> str:
        return render_deletions(self.deletions, self.deletions_file)

    def diff(self) -> str:
        """A unified diff of every file that promotion changes, and of the deletions file it would write."""
        chunks: list[str] = []
        for promoted in self.files:
            if not promoted.changed:
                continue
            chunks.extend(
                difflib.unified_diff(
                    promoted.before.splitlines(keepends=True),
                    (promoted.after or "").splitlines(keepends=True),
                    fromfile=str(promoted.source),
                    tofile=str(promoted.target) if promoted.after is not None else "/dev/null",
                )
            )
        if self.deletions:
            chunks.extend(
                difflib.unified_diff(
                    [], self.deletions_text().splitlines(keepends=True), "/dev/null", str(self.deletions_file)
                )
            )
        return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)

    def write(self, overwrite: bool = False) -> list[Path]:
        """Write the promoted files (and the deletions file, if any); returns the paths written."""
        if self.output.exists() and not self.output.is_dir():
            raise UsageError(f"--output {self.output} is a file; give a directory")
        if self.output.is_dir() and any(self.output.iterdir()) and not overwrite:
            raise UsageError(
                f"--output {self.output} is not empty; choose a new directory, or pass --overwrite to write "
                "over the files there"
            )
        written: list[Path] = []
        for promoted in self.files:
            if promoted.after is not None:
                _write_atomically(promoted.target, promoted.after)
                written.append(promoted.target)
        if self.deletions:
            _write_atomically(self.deletions_file, self.deletions_text())
            written.append(self.deletions_file)
        elif overwrite and self.deletions_file.is_file():
            self.deletions_file.unlink()  # a stale list from an earlier run would delete the wrong things
        return written


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------------------
# Deciding what happens to each object
# ---------------------------------------------------------------------------------------------------------


class _Decisions:
    """For each object identity in the input: promote it, drop it, or keep it as it is."""

    def __init__(self, steps: Iterable[PromotionStep]) -> None:
        self.by_staged: dict[tuple[PolicyKind, str | None, str], PromotionStep] = {}
        self.superseded: set[tuple[PolicyKind, str | None, str]] = (
            set()
        )  # enforced objects replaced or deleted
        for step in steps:
            staged = step.staged
            self.by_staged[(staged.kind, staged.namespace, staged.name)] = step
            if step.action in (PromotionAction.REPLACES, PromotionAction.DELETES):
                self.superseded.add(staged.identity)

    def action(self, identity: Identity | None) -> str:
        """What to do with the object: `promote`, `drop` or `keep`."""
        if identity is None or identity.kind.policy_kind is None:
            return "keep"
        policy_kind = identity.kind.policy_kind
        key = (policy_kind, identity.namespace, identity.name)
        if policy_kind.staged:
            step = self.by_staged.get(key)
            if step is None:
                return "keep"
            return "promote" if step.action in (PromotionAction.ADDS, PromotionAction.REPLACES) else "drop"
        return "drop" if key in self.superseded else "keep"


def _typed_view(item: Mapping[str, Any], list_kind: str | None, list_api: Any) -> Mapping[str, Any]:
    if item.get("kind") is None and list_kind is not None:
        return {"kind": list_kind, "apiVersion": list_api, **item}
    return item


def _set_text(mapping: MutableMapping[str, Any], key: str, value: str) -> None:
    """Replace a scalar, keeping its quoting style."""
    old = mapping.get(key)
    mapping[key] = type(old)(value) if isinstance(old, ScalarString) else value


def _drop_staged_action(spec: Any) -> None:
    if not isinstance(spec, MutableMapping) or "stagedAction" not in spec:
        return
    keys = list(spec.keys())
    position = keys.index("stagedAction")
    following: list[str] = []
    comments = getattr(spec, "ca", None)
    if comments is not None:
        tokens = comments.items.pop("stagedAction", None)
        # ruamel files the full-line comments below a key under that key's end-of-line comment; the
        # key's own end-of-line comment goes with it, the lines below belong to the next key.
        if tokens and len(tokens) > 2 and tokens[2] is not None:
            _, _, rest = tokens[2].value.partition("\n")
            following = [line for line in rest.splitlines() if line.strip()]
    del spec["stagedAction"]
    if following and position < len(keys) - 1 and isinstance(spec, CommentedMap):
        indent = len(following[0]) - len(following[0].lstrip())
        text = "\n".join(line.strip().removeprefix("#").removeprefix(" ") for line in following)
        spec.yaml_set_comment_before_after_key(keys[position + 1], before=text, indent=indent)


def _promote_object(obj: MutableMapping[str, Any], kind: ObjectKind) -> None:
    """A staged object becomes its enforced kind; `stagedAction` goes; nothing else changes."""
    policy_kind = kind.policy_kind
    assert policy_kind is not None and policy_kind.staged
    if "kind" in obj:
        _set_text(obj, "kind", _enforced_yaml_kind(policy_kind))
    if policy_kind is PolicyKind.STAGED_KUBERNETES_NETWORK_POLICY and "apiVersion" in obj:
        _set_text(obj, "apiVersion", _KUBERNETES_API)
    _drop_staged_action(obj.get("spec"))


def _enforced_yaml_kind(kind: PolicyKind) -> str:
    return "NetworkPolicy" if kind.enforced is PolicyKind.KUBERNETES_NETWORK_POLICY else kind.enforced.value


def _apply(
    value: Any, decisions: _Decisions, list_kind: str | None = None, list_api: Any = None
) -> tuple[Any, bool]:
    """Promote / drop the objects in one document in place; returns (what remains or None, changed)."""
    if isinstance(value, list):
        changed = False
        for index in reversed(range(len(value))):
            remaining, item_changed = _apply(value[index], decisions, list_kind, list_api)
            changed |= item_changed
            if remaining is None:
                del value[index]
        return (value if value or not changed else None), changed
    if not isinstance(value, MutableMapping):
        return value, False
    kind = value.get("kind")
    if (
        isinstance(kind, str)
        and (kind == "List" or kind.endswith("List"))
        and isinstance(value.get("items"), list)
    ):
        item_kind = kind[: -len("List")] if kind != "List" else None
        remaining, changed = _apply(value["items"], decisions, item_kind, value.get("apiVersion"))
        if remaining is None:
            return None, True
        if item_kind is not None and item_kind.startswith("Staged") and changed:
            staged = ObjectKind(item_kind)
            assert staged.policy_kind is not None
            _set_text(value, "kind", _enforced_yaml_kind(staged.policy_kind) + "List")
            if staged is ObjectKind.STAGED_KUBERNETES_NETWORK_POLICY:
                _set_text(value, "apiVersion", _KUBERNETES_API)
        return value, changed
    identity = identify(_typed_view(value, list_kind, list_api))
    action = decisions.action(identity)
    if action == "drop":
        return None, True
    if action == "promote":
        assert identity is not None
        _promote_object(value, identity.kind)
        return value, True
    return value, False


# ---------------------------------------------------------------------------------------------------------
# Files: JSON as a whole, YAML document by document
# ---------------------------------------------------------------------------------------------------------

_SEQUENCE_ITEM = re.compile(r"^( *)- ")
_MAPPING_KEY = re.compile(r"^( *)[^\s#-][^:]*:(\s|$)")


def _guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) for ruamel, from how the text indents nested mappings and lists."""
    mapping_steps: dict[int, int] = {}
    sequence_offsets: dict[int, int] = {}
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    for parent, child in zip(lines, lines[1:], strict=False):
        parent_key = _MAPPING_KEY.match(parent)
        if not parent_key or not parent.rstrip().endswith(":"):
            continue
        parent_indent = len(parent_key.group(1))
        item = _SEQUENCE_ITEM.match(child)
        if item:
            offset = len(item.group(1)) - parent_indent
            sequence_offsets[offset] = sequence_offsets.get(offset, 0) + 1
            continue
        key = _MAPPING_KEY.match(child)
        if key and len(key.group(1)) > parent_indent:
            step = len(key.group(1)) - parent_indent
            mapping_steps[step] = mapping_steps.get(step, 0) + 1
    mapping = max(mapping_steps, key=lambda k: mapping_steps[k]) if mapping_steps else 2
    offset = max(sequence_offsets, key=lambda k: sequence_offsets[k]) if sequence_offsets else 0
    return mapping, max(offset + 2, mapping if offset else 2), offset


def _round_trip(text: str, decisions: _Decisions) -> tuple[str | None, bool]:
    """One YAML document's text after promotion (None when nothing of it remains), and whether it changed."""
    mapping, sequence, offset = _guess_indent(text)
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = 1_000_000  # never re-wrap long selectors
    rt.indent(mapping=mapping, sequence=sequence, offset=offset)
    data = rt.load(text)
    remaining, changed = _apply(data, decisions)
    if not changed:
        return text, False
    if remaining is None:
        return None, True
    out = io.StringIO()
    stripped = [line.strip() for line in text.splitlines()]
    rt.explicit_start = any(line.startswith("---") for line in stripped if line and not line.startswith("#"))
    rt.dump(remaining, out)
    return out.getvalue(), True


def _document_regions(text: str) -> list[str]:
    """The file's text cut into one piece per YAML document (comments before a `---` go with the previous one)."""
    starts: list[int] = []
    for event in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
        if isinstance(event, yaml.DocumentStartEvent):
            starts.append(event.start_mark.line)
    lines = text.splitlines(keepends=True)
    if not starts:
        return [text]
    starts[0] = 0
    bounds = [*starts, len(lines)]
    return ["".join(lines[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


def promote_text(text: str, decisions: _Decisions, is_json: bool) -> str | None:
    """A whole file's text after promotion; None when no object of it remains."""
    if is_json:
        data = json.loads(text)
        remaining, changed = _apply(data, decisions)
        if not changed:
            return text
        if remaining is None:
            return None
        indent = re.search(r"\n( +)\S", text)
        return json.dumps(remaining, indent=len(indent.group(1)) if indent else 2) + "\n"
    pieces: list[str] = []
    any_changed = False
    for region in _document_regions(text):
        # The fast safe parse says whether anything in the document changes; only then is it worth
        # ruamel's (much slower) round trip.
        documents, _ = read_documents(region, "")
        if not any(_apply(document.root, decisions)[1] for document in documents):
            pieces.append(region)
            continue
        result, changed = _round_trip(region, decisions)
        any_changed |= changed
        if result is not None:
            pieces.append(result)
    if not any_changed:
        return text
    if not pieces:
        return None
    return "".join(p if p.endswith("\n") else p + "\n" for p in pieces)


def _targets(paths: Iterable[str | Path], output: Path) -> list[tuple[Path, Path]]:
    """(input file, output file) for every file promotion reads: directory trees keep their layout."""
    pairs: list[tuple[Path, Path]] = []
    claimed: dict[Path, Path] = {}
    for given in paths:
        root = Path(given)
        for path, problem in policy_files([root]):
            if problem is not None:
                continue
            relative = path.relative_to(root) if root.is_dir() else Path(path.name)
            target = output / relative
            if target in claimed:
                raise UsageError(
                    f"{path} and {claimed[target]} would both be written to {target}; promote them separately"
                )
            claimed[target] = path
            pairs.append((path, target))
    return pairs


def _deletion(step: PromotionStep) -> Deletion:
    kind = step.staged.kind.enforced
    if kind is PolicyKind.KUBERNETES_NETWORK_POLICY:
        return Deletion(_KUBERNETES_API, "NetworkPolicy", step.staged.namespace, step.staged.name, step)
    return Deletion(_CALICO_API, kind.value, step.staged.namespace, step.staged.name, step)


def render_deletions(deletions: Iterable[Deletion], path: Path) -> str:
    """Multi-document YAML naming each object to delete, for `kubectl delete -f` / `calicoctl delete -f`."""
    parts = [
        "# Objects to delete to complete the promotion: each staged object with stagedAction Delete names one.\n"
        f"# Delete them with: kubectl delete -f {path}  (or calicoctl delete -f {path})\n"
        "# Do not apply this file: that would create these objects, empty, instead of deleting them.\n"
    ]
    for index, deletion in enumerate(deletions):
        origin = deletion.step.staged.origin
        lines = [] if index == 0 else ["---\n"]
        lines.append(f"# from {origin}\n" if origin else "")
        if not deletion.found:
            lines.append("# not among the inputs: it may exist only in the cluster\n")
        meta = {"name": deletion.name, **({"namespace": deletion.namespace} if deletion.namespace else {})}
        body = {"apiVersion": deletion.api_version, "kind": deletion.kind, "metadata": meta}
        lines.append(yaml.safe_dump(body, sort_keys=False, default_flow_style=False))
        parts.append("".join(lines))
    return "".join(parts)


def plan_promotion(
    paths: Iterable[str | Path], output: str | Path, deletions_file: str | Path | None = None
) -> PromotionPlan:
    """What promoting every staged object in `paths` writes to `output`.

    The output mirrors the input files: staged Set objects become their enforced kind in place, enforced
    objects they replace and staged Delete / Learn / Ignore objects are left out, and everything else is
    copied unchanged, so the output directory is the whole policy set after promotion. Objects to delete
    go to a deletions file. Raises PromotionError when the input has errors.
    """
    paths = list(paths)
    output = Path(output)
    bundle = load_policies(paths)
    if bundle.errors:
        raise PromotionError(
            f"{len(bundle.errors)} error(s) in the input; fix them before promoting "
            f"(see `flowstage policies lint {' '.join(map(str, paths))}`)",
            bundle.errors,
        )
    sets = build_sets(bundle)
    decisions = _Decisions(sets.promotion)
    files: list[PromotedFile] = []
    for source, target in _targets(paths, output):
        text = source.read_bytes().decode("utf-8-sig")
        is_json = source.suffix.lower() == ".json" or (
            source.suffix.lower() in POLICY_FILE_SUFFIXES and _is_json(text)
        )
        try:
            after = promote_text(text, decisions, is_json)
        except RuamelError as err:
            # e.g. a key written twice: which value counts is ambiguous, so the file must say it once
            problem = " ".join(str(err).split())
            raise PromotionError(f"{source}: cannot rewrite it keeping its formatting: {problem}") from None
        files.append(PromotedFile(source, target, text, after))
    deletions = [
        _deletion(step)
        for step in sets.promotion
        if step.action in (PromotionAction.DELETES, PromotionAction.DELETE_MISSING)
    ]
    deletions_path = Path(deletions_file) if deletions_file is not None else output / DELETIONS_FILE
    inside_output = deletions_path.resolve().is_relative_to(output.resolve())
    if inside_output and deletions_path.suffix.lower() in POLICY_FILE_SUFFIXES:
        raise UsageError(
            f"--deletions {deletions_path}: a .yaml/.yml/.json file inside {output} would be applied with the "
            "rest of it (creating the objects instead of deleting them); use another suffix or a path outside it"
        )
    return PromotionPlan(output, files, deletions, deletions_path, sets.promotion, bundle, bundle.warnings)


def _is_json(text: str) -> bool:
    if text.lstrip()[:1] not in ("{", "["):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
