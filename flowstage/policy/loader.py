"""Reading policy and inventory files: YAML/JSON files and directories, multi-document YAML, List wrappers.

Every object is dispatched by kind, validated, and converted; whatever is wrong becomes a Problem, never an exception.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flowstage.errors import FlowstageError
from flowstage.policy import convert, validate
from flowstage.policy.convert import ObjectKind
from flowstage.policy.model import (
    HostEndpoint,
    Inventory,
    Namespace,
    NetworkSet,
    Pod,
    Policy,
    PolicyKind,
    Profile,
    SourceRef,
    StagedAction,
    Tier,
)
from flowstage.policy.validate import ObjectReport, Problem, Severity

POLICY_FILE_SUFFIXES = (".yaml", ".yml", ".json")
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_DEPTH = 100  # Kubernetes objects nest a few dozen levels at most
# Values a document may expand to beyond its own size: YAML aliases re-use content, and an "alias bomb"
# re-uses it exponentially. Legitimate files stay far below this.
EXTRA_VALUES_ALLOWED = 250_000

CALICO_API_VERSIONS = ("projectcalico.org/v3",)
CALICO_STORAGE_API_VERSION = "crd.projectcalico.org/v1"
_CALICO_KINDS = {
    kind.value: kind
    for kind in ObjectKind
    if kind not in (ObjectKind.KUBERNETES_NETWORK_POLICY, ObjectKind.NAMESPACE, ObjectKind.POD)
}
_KUBERNETES_KINDS = {
    ("networking.k8s.io/v1", "NetworkPolicy"): ObjectKind.KUBERNETES_NETWORK_POLICY,
    ("v1", "Namespace"): ObjectKind.NAMESPACE,
    ("v1", "Pod"): ObjectKind.POD,
}
INVENTORY_KINDS = frozenset(
    {
        ObjectKind.NAMESPACE,
        ObjectKind.POD,
        ObjectKind.WORKLOAD_ENDPOINT,
        ObjectKind.HOST_ENDPOINT,
        ObjectKind.PROFILE,
        ObjectKind.NETWORK_SET,
        ObjectKind.GLOBAL_NETWORK_SET,
    }
)
# Inventory is a cluster dump: a later dump of the same object replaces the earlier one.
_REPLACEABLE_KINDS = frozenset({ObjectKind.NAMESPACE, ObjectKind.POD, ObjectKind.WORKLOAD_ENDPOINT})


# ---------------------------------------------------------------------------------------------------------
# YAML with line numbers, bounded work, and Kubernetes' scalar rules
# ---------------------------------------------------------------------------------------------------------

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader with Go YAML's scalars: no base-60 numbers (`80:90` stays a port range), no dates."""


_DROPPED_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
        r"|[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)

_STR, _NULL, _BOOL = "tag:yaml.org,2002:str", "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool"
_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_MAP, _SEQ, _MERGE = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:merge"


class LineDict(dict):
    """A mapping read from YAML, remembering the line each key's value starts on."""

    __slots__ = ("lines",)


class LineList(list):
    """A sequence read from YAML, remembering the line each item starts on."""

    __slots__ = ("lines",)


class _ReadError(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _short_tag(tag: str) -> str:
    return "!!" + tag[len("tag:yaml.org,2002:") :] if tag.startswith("tag:yaml.org,2002:") else tag


class _NodeReader:
    """Turns composed YAML nodes into plain data, refusing tags, cycles and expansion beyond a budget."""

    def __init__(self, loader: Any, budget: int) -> None:
        self.loader = loader
        self.budget = budget
        self.duplicates: list[tuple[str, int]] = []
        self._open: set[int] = set()

    def read(self, node: yaml.Node, depth: int = 0) -> Any:
        self.budget -= 1
        line = node.start_mark.line + 1
        if self.budget < 0:
            raise _ReadError(
                "the document expands to far more values than it is long: YAML aliases repeat the same "
                "content (an 'alias bomb'?); write the content out instead of using anchors",
                line,
            )
        if depth > MAX_DEPTH:
            raise _ReadError(f"the document nests more than {MAX_DEPTH} levels deep", line)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, line)
        if id(node) in self._open:
            raise _ReadError("a YAML alias refers to a value that contains it (a cycle)", line)
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
                items = LineList()
                items.lines = []
                for child in node.value:
                    items.append(self.read(child, depth + 1))
                    items.lines.append(child.start_mark.line + 1)
                return items
            if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
                return self._mapping(node, depth)
        finally:
            self._open.discard(id(node))
        raise _ReadError(
            f"unsupported YAML tag {_short_tag(node.tag)}: flowstage reads plain YAML data only", line
        )

    def _scalar(self, node: yaml.ScalarNode, line: int) -> Any:
        if node.tag == _STR:
            return node.value
        if node.tag == _NULL:
            return None
        if node.tag == _BOOL:
            return self.loader.construct_yaml_bool(node)
        if node.tag == _INT:
            return self.loader.construct_yaml_int(node)
        if node.tag == _FLOAT:
            return self.loader.construct_yaml_float(node)
        raise _ReadError(
            f"unsupported YAML tag {_short_tag(node.tag)}: flowstage reads plain YAML data only", line
        )

    def _mapping(self, node: yaml.MappingNode, depth: int) -> LineDict:
        result = LineDict()
        result.lines = {}
        merged: list[tuple[str, Any, int]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.extend(self._merge_entries(value_node, depth))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise _ReadError("mapping keys must be plain text", key_node.start_mark.line + 1)
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in result:
                self.duplicates.append((key, line))
            result[key] = self.read(value_node, depth + 1)
            result.lines[key] = line
        for key, value, line in merged:
            if key not in result:
                result[key] = value
                result.lines[key] = line
        return result

    def _merge_entries(self, node: yaml.Node, depth: int) -> list[tuple[str, Any, int]]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        entries: list[tuple[str, Any, int]] = []
        for source in sources:
            value = self.read(source, depth + 1)
            if not isinstance(value, LineDict):
                raise _ReadError("a YAML merge key (<<) must refer to a mapping", source.start_mark.line + 1)
            entries.extend((k, v, value.lines.get(k, 0)) for k, v in value.items())
        return entries


def line_of(root: Any, path: Iterable[str | int]) -> int | None:
    """The line where the deepest existing part of `path` starts, for documents read from YAML."""
    line = None
    node = root
    for step in path:
        lines = getattr(node, "lines", None)
        try:
            if lines is not None:
                line = lines[step]
            node = node[step]
        except (KeyError, IndexError, TypeError):
            break
    return line


@dataclass(frozen=True)
class Document:
    number: int  # 1-based position in the file
    root: Any
    line: int | None = None


def read_documents(text: str, display: str, json_first: bool = False) -> tuple[list[Document], list[Problem]]:
    """All documents of one file's text (JSON or YAML), and the problems that stopped part of it being read."""
    problems: list[Problem] = []
    if json_first or text.lstrip()[:1] in ("{", "["):
        try:
            return [Document(1, json.loads(text), 1)], problems
        except RecursionError:
            return [], [Problem(display, None, "", "", f"the JSON nests more than {MAX_DEPTH} levels deep")]
        except json.JSONDecodeError as err:
            if json_first:
                return [], [
                    Problem(
                        display,
                        None,
                        "",
                        "",
                        f"not valid JSON: {err.msg} (column {err.colno})",
                        line=err.lineno,
                    )
                ]
    documents: list[Document] = []
    loader = _Loader(text)
    reader = _NodeReader(loader, EXTRA_VALUES_ALLOWED + len(text))
    number = 0
    try:
        while loader.check_node():
            number += 1
            node = loader.get_node()
            if node is None:
                continue
            documents.append(Document(number, reader.read(node), node.start_mark.line + 1))
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        what = " ".join(part for part in (err.context, err.problem) if part)
        problems.append(
            Problem(
                display,
                number or None,
                "",
                "",
                f"not valid YAML: {what}",
                line=mark.line + 1 if mark else None,
            )
        )
    except yaml.YAMLError as err:
        problems.append(Problem(display, number or None, "", "", f"not valid YAML: {err}"))
    except _ReadError as err:
        problems.append(Problem(display, number, "", "", str(err), line=err.line))
    finally:
        loader.dispose()
    for key, line in reader.duplicates:
        problems.append(
            Problem(
                display,
                None,
                "",
                "",
                f"key '{key}' appears twice in one mapping; the last one is used",
                Severity.WARNING,
                line,
            )
        )
    return documents, problems


def read_file(path: Path, display: str | None = None) -> tuple[list[Document], list[Problem]]:
    display = display or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            message = (
                f"file is {size / 2**20:.0f} MiB, above the {MAX_FILE_BYTES // 2**20} MiB limit; split "
                "it (e.g. one file per namespace)"
            )
            return [], [Problem(display, None, "", "", message)]
        raw = path.read_bytes()
    except OSError as err:
        return [], [Problem(display, None, "", "", f"cannot read the file: {err.strerror or err}")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return [], [Problem(display, None, "", "", f"not UTF-8 text (byte {err.start}); save it as UTF-8")]
    return read_documents(text, display, json_first=path.suffix.lower() == ".json")


def policy_files(paths: Iterable[str | Path]) -> Iterator[tuple[Path, Problem | None]]:
    """Each file named, and every .yaml/.yml/.json file under each directory named (hidden ones skipped)."""
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and p.suffix.lower() in POLICY_FILE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                yield (
                    path,
                    Problem(
                        str(path),
                        None,
                        "",
                        "",
                        "no .yaml, .yml or .json files in this directory",
                        Severity.WARNING,
                    ),
                )
            for file in found:
                yield file, None
        elif path.exists():
            yield path, None
        else:
            yield path, Problem(str(path), None, "", "", "no such file or directory")


# ---------------------------------------------------------------------------------------------------------
# Objects: List wrappers, kind dispatch, metadata
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawObject:
    """One Kubernetes-style object found in a document, with where it sits in that document."""

    doc: Mapping[str, Any]
    file: str
    document: int
    base_path: tuple[str | int, ...]  # e.g. ("items", 3) inside a List
    root: Any

    def locate(self, path: Iterable[str | int]) -> int | None:
        return line_of(self.root, (*self.base_path, *path))


def objects_in(document: Document, file: str) -> tuple[list[RawObject], list[Problem]]:
    """The objects of one document: itself, the items of a List / *List, or the entries of a top-level array."""
    found: list[RawObject] = []
    problems: list[Problem] = []

    def visit(value: Any, path: tuple[str | int, ...], list_kind: str | None, list_api: Any) -> None:
        if isinstance(value, list) and not path:  # a top-level array of objects (some dump tools write that)
            for index, item in enumerate(value):
                visit(item, (index,), list_kind, list_api)
            return
        if not isinstance(value, Mapping):
            problems.append(
                Problem(
                    file,
                    document.number,
                    "",
                    validate.format_path(path),
                    f"expected a Kubernetes object (a mapping with apiVersion and kind), found "
                    f"{validate.type_name(value)}",
                    line=line_of(document.root, path) or document.line,
                )
            )
            return
        kind = value.get("kind")
        if kind is None and list_kind is not None:
            # kubectl leaves kind and apiVersion off the items of a typed list (NamespaceList, PodList, ...)
            value = {"kind": list_kind, "apiVersion": list_api, **value}
        if isinstance(kind, str) and (kind == "List" or kind.endswith("List")) and "items" in value:
            items = value.get("items")
            if items is None:
                return
            if not isinstance(items, list):
                problems.append(
                    Problem(
                        file,
                        document.number,
                        kind,
                        "items",
                        "expected a list of objects",
                        line=line_of(document.root, (*path, "items")),
                    )
                )
                return
            item_kind = kind[: -len("List")] if kind != "List" else None
            for index, item in enumerate(items):
                visit(item, (*path, "items", index), item_kind, value.get("apiVersion"))
            return
        found.append(RawObject(value, file, document.number, path, document.root))

    if document.root is not None:
        visit(document.root, (), None, None)
    return found, problems


@dataclass(frozen=True)
class Identity:
    """What an object is: its kind, namespace (None for global kinds) and name."""

    kind: ObjectKind
    namespace: str | None
    name: str

    @property
    def label(self) -> str:
        return f"{self.kind.value} {self.name if self.namespace is None else f'{self.namespace}/{self.name}'}"


def resolve_kind(doc: Mapping[str, Any]) -> tuple[ObjectKind | None, str | None, Severity | None]:
    """(kind, message, severity): the modelled kind, or None with why (severity None: simply not modelled)."""
    kind = doc.get("kind")
    api_version = doc.get("apiVersion")
    if kind is not None and not isinstance(kind, str):
        return None, f"kind must be text such as GlobalNetworkPolicy, found {validate.type_name(kind)}", Severity.ERROR
    if not isinstance(kind, str) or not kind:
        # Stray YAML (Helm values, tool settings) sits next to manifests; kubectl would refuse it, flowstage skips it.
        return None, "not a Kubernetes object (no kind): skipped", Severity.WARNING
    if api_version is None:
        if kind == "NetworkPolicy":
            return (
                None,
                (
                    "apiVersion is missing, and NetworkPolicy exists both as projectcalico.org/v3 and "
                    "networking.k8s.io/v1: write which one"
                ),
                Severity.ERROR,
            )
        if kind in _CALICO_KINDS:
            return (
                _CALICO_KINDS[kind],
                "apiVersion is missing; read as projectcalico.org/v3",
                Severity.WARNING,
            )
        for (version, k8s_kind), modelled in _KUBERNETES_KINDS.items():
            if k8s_kind == kind:
                return modelled, f"apiVersion is missing; read as {version}", Severity.WARNING
        return None, None, None
    if (api_version, kind) in _KUBERNETES_KINDS:
        return _KUBERNETES_KINDS[(api_version, kind)], None, None
    if api_version in CALICO_API_VERSIONS and kind in _CALICO_KINDS:
        return _CALICO_KINDS[kind], None, None
    if api_version == CALICO_STORAGE_API_VERSION and kind in _CALICO_KINDS:
        return (
            _CALICO_KINDS[kind],
            (
                "crd.projectcalico.org/v1 is Calico's internal storage form; read as "
                "projectcalico.org/v3 (export with calicoctl or the Calico API server "
                "instead)"
            ),
            Severity.WARNING,
        )
    known = kind in _CALICO_KINDS or any(k == kind for _, k in _KUBERNETES_KINDS)
    if known and (
        str(api_version).startswith(("projectcalico.org/", "networking.k8s.io/")) or api_version == "v1"
    ):
        return None, f"unsupported apiVersion {api_version!r} for kind {kind}", Severity.ERROR
    return None, None, None


def identify(doc: Mapping[str, Any]) -> Identity | None:
    """The identity an object has once loaded (namespaced kinds default to `default`), or None if not modelled."""
    kind, _, severity = resolve_kind(doc)
    meta = doc.get("metadata")
    if kind is None or severity is Severity.ERROR or not isinstance(meta, Mapping):
        return None
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return None
    namespace = meta.get("namespace") if kind.namespaced else None
    if kind.namespaced and not (isinstance(namespace, str) and namespace):
        namespace = "default"
    return Identity(kind, namespace, name)


# ---------------------------------------------------------------------------------------------------------
# The bundle
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkippedObject:
    """An object of a kind flowstage does not model (Service, Deployment, ...): listed, not an error."""

    file: str
    document: int
    kind: str
    api_version: str
    name: str


@dataclass
class PolicyBundle:
    """Everything loaded from a set of files: model values, and the problems and skipped objects found."""

    policies: list[Policy] = field(default_factory=list)  # enforced and staged, in file order
    tiers: list[Tier] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    network_sets: list[NetworkSet] = field(default_factory=list)
    host_endpoints: list[HostEndpoint] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)
    pods: list[Pod] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[SkippedObject] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    # A staged Set/Learn/Ignore policy's enforced form, keyed by the staged policy's (kind, namespace, name):
    # what the object becomes once promoted (a StagedKubernetesNetworkPolicy gains the API server's defaults).
    promoted: dict[tuple[PolicyKind, str | None, str], Policy] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]

    def promoted_form(self, staged: Policy) -> Policy:
        """The policy a staged Set/Learn/Ignore object would become if promoted."""
        return self.promoted[(staged.kind, staged.namespace, staged.name)]

    def inventory(self) -> Inventory:
        """Cluster facts loaded alongside the policies; namespaces and pods are None when none were given."""
        return Inventory(
            namespaces={ns.name: ns for ns in self.namespaces} if self.namespaces else None,
            pods=tuple(self.pods) if self.pods else None,
            network_sets=tuple(self.network_sets),
            host_endpoints=tuple(self.host_endpoints),
            profiles={p.name: p for p in self.profiles},
        )


def _label(kind: ObjectKind | None, doc: Mapping[str, Any]) -> str:
    """`Kind namespace/name` as far as the object says it, for problems found before it is fully read."""
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
    name, namespace = meta.get("name"), meta.get("namespace")
    given = doc.get("kind")
    kind_text = kind.value if kind is not None else given if isinstance(given, str) and given else "object"
    if not isinstance(name, str) or not name:
        return kind_text
    if kind is not None and kind.namespaced:
        namespace = namespace if isinstance(namespace, str) and namespace else "default"
    elif kind is not None:
        namespace = None
    return f"{kind_text} {name}" if not isinstance(namespace, str) else f"{kind_text} {namespace}/{name}"


class _Collector:
    def __init__(self) -> None:
        self.bundle = PolicyBundle()
        self._seen: dict[Identity, SourceRef] = {}
        self._slots: dict[Identity, int] = {}  # inventory identity -> index in its bundle list

    def add_file(self, path: Path, display: str, inventory_only: bool) -> None:
        self.bundle.files.append(display)
        documents, problems = read_file(path, display)
        self.bundle.problems.extend(problems)
        for document in documents:
            objects, problems = objects_in(document, display)
            self.bundle.problems.extend(problems)
            for raw in objects:
                self.add_object(raw, inventory_only)

    def add_object(self, raw: RawObject, inventory_only: bool) -> None:
        doc = raw.doc
        kind, message, severity = resolve_kind(doc)
        report = ObjectReport(raw.file, raw.document, _label(kind, doc), raw.locate)
        if message is not None and severity is not None:
            report.add(("apiVersion",) if isinstance(doc.get("kind"), str) and doc["kind"] else ("kind",), message, severity)
        if kind is None:
            if severity is not Severity.ERROR:
                meta = doc.get("metadata") if isinstance(doc.get("metadata"), Mapping) else {}
                self.bundle.skipped.append(
                    SkippedObject(
                        raw.file,
                        raw.document,
                        str(doc.get("kind") or "(no kind)"),
                        str(doc.get("apiVersion") or ""),
                        str(meta.get("name") or ""),
                    )
                )
            self.bundle.problems.extend(report.problems)
            return
        identity = self._metadata(kind, doc, report)
        if identity is None:
            self.bundle.problems.extend(report.problems)
            return
        if inventory_only and kind not in INVENTORY_KINDS:
            report.warning((), f"{kind.value} in an inventory file is ignored: pass it with the policies")
            self.bundle.problems.extend(report.problems)
            return
        validate.check_object(kind, doc, identity.name, report)
        origin = SourceRef(raw.file, raw.document, identity.label)
        if not report.has_errors:
            previous = self._seen.get(identity)
            if previous is None:
                self._seen[identity] = origin
                self._store(kind, doc, identity, origin, report)
            elif kind in _REPLACEABLE_KINDS:
                report.warning(
                    (), f"{identity.label} is also listed in {previous}; this later listing is used"
                )
                self._store(kind, doc, identity, origin, report)
            else:
                report.error(
                    (),
                    f"duplicate: {identity.label} is already defined in {previous}; the first "
                    "definition is used",
                )
        self.bundle.problems.extend(report.problems)

    def _metadata(self, kind: ObjectKind, doc: Mapping[str, Any], report: ObjectReport) -> Identity | None:
        meta = doc.get("metadata")
        if meta is None or not isinstance(meta, Mapping):
            report.error(("metadata",), "every object needs metadata with a name")
            return None
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            report.error(("metadata", "name"), "every object needs a name (metadata.name)")
            return None
        namespace = meta.get("namespace")
        if not kind.namespaced:
            if namespace:
                report.warning(
                    ("metadata", "namespace"), f"{kind.value} is not namespaced: the namespace is ignored"
                )
            return Identity(kind, None, name)
        if namespace is None or namespace == "":
            report.warning(("metadata",), "no namespace: read as namespace 'default', as kubectl would")
            namespace = "default"
        elif not isinstance(namespace, str) or not validate.TIER_NAME.match(namespace):
            report.error(("metadata", "namespace"), f"invalid namespace {namespace!r}")
            return None
        return Identity(kind, namespace, name)

    def _store(
        self,
        kind: ObjectKind,
        doc: Mapping[str, Any],
        identity: Identity,
        origin: SourceRef,
        report: ObjectReport,
    ) -> None:
        try:
            self._convert(kind, doc, identity, origin)
        except (ValueError, FlowstageError) as err:
            # Validation should have caught it; if not, the object is still only a problem, never a crash.
            report.error((), f"cannot be read into the model: {err}")

    def _convert(
        self, kind: ObjectKind, doc: Mapping[str, Any], identity: Identity, origin: SourceRef
    ) -> None:
        bundle = self.bundle
        ns = identity.namespace
        policy_kind = kind.policy_kind
        if policy_kind is not None:
            policy = convert.policy(policy_kind, doc, ns, origin)
            if policy_kind.staged and policy.staged_action is not StagedAction.DELETE:
                promoted = convert.policy(policy_kind.enforced, doc, ns, origin)
                bundle.promoted[(policy.kind, policy.namespace, policy.name)] = promoted
            bundle.policies.append(policy)
            return
        if kind is ObjectKind.TIER:
            bundle.tiers.append(convert.tier(doc, origin))
        elif kind is ObjectKind.PROFILE:
            bundle.profiles.append(convert.profile(doc, origin))
        elif kind in (ObjectKind.NETWORK_SET, ObjectKind.GLOBAL_NETWORK_SET):
            bundle.network_sets.append(convert.network_set(doc, ns, origin))
        elif kind is ObjectKind.HOST_ENDPOINT:
            bundle.host_endpoints.append(convert.host_endpoint(doc, origin))
        elif kind is ObjectKind.NAMESPACE:
            self._put(bundle.namespaces, identity, convert.namespace(doc, origin))
        elif kind is ObjectKind.POD:
            assert ns is not None
            self._put(bundle.pods, Identity(ObjectKind.POD, ns, identity.name), convert.pod(doc, ns, origin))
        elif kind is ObjectKind.WORKLOAD_ENDPOINT:
            assert ns is not None
            pod = convert.workload_endpoint(doc, ns, origin)
            self._put(bundle.pods, Identity(ObjectKind.POD, ns, pod.name), pod)

    def _put(self, items: list[Any], identity: Identity, value: Any) -> None:
        """Add an inventory value, or replace the earlier value with the same identity (a later dump wins)."""
        slot = self._slots.get(identity)
        if slot is not None:
            items[slot] = value
            return
        self._slots[identity] = len(items)
        items.append(value)


def load_policies(paths: Iterable[str | Path], inventory: Iterable[str | Path] = ()) -> PolicyBundle:
    """Load every object under `paths` (files or directories), plus inventory-only files (`--pods`, ...).

    Never raises for bad input: unreadable files, invalid objects and duplicates are `bundle.problems`;
    objects with errors are left out of the model, objects with only warnings are kept.
    """
    collector = _Collector()
    for group, inventory_only in ((paths, False), (inventory, True)):
        for path, problem in policy_files(group):
            if problem is not None:
                collector.bundle.problems.append(problem)
                continue
            collector.add_file(path, str(path), inventory_only)
    return collector.bundle
