"""What the Python API hands back where the library's own values need a notebook's conveniences: a report with
DataFrames and its renderings, an explanation as text, a promotion with the checks it overrode.

Each is the library's value (a subclass, or a holder of it), so the CLI's renderers take them unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowstage.replay.explain import Explanation as ReplayExplanation
from flowstage.report import build

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from flowstage.policy.promote import PromotionPlan


def _copy_fields(value: Any) -> dict[str, Any]:
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


@dataclass
class Report(build.Report):
    """A report over one replay: `summary` (the verdict's figures), one section per query, and the replay run.

    `df(name)` gives a section's rows as a pandas DataFrame; `markdown()`, `html()` and `to_json()` render the
    whole report as `flowstage report --format …` writes it. In a notebook the report shows as Markdown.
    """

    @classmethod
    def of(cls, report: build.Report) -> Report:
        return cls(**_copy_fields(report))

    @property
    def verdict(self) -> str:
        """The one-paragraph verdict the terminal report opens with."""
        return self.summary.verdict()

    @property
    def names(self) -> list[str]:
        """The reports this one holds, in report order."""
        return list(self.sections)

    def table(self, name: str) -> pa.Table:
        """The rows of report `name` that were kept (the first `top`), as Arrow."""
        return self._section(name).table

    def df(self, name: str) -> pd.DataFrame:
        """The rows of report `name` that were kept, as a pandas DataFrame (label maps as dicts)."""
        return self.table(name).to_pandas(maps_as_pydicts="lossy")

    def question(self, name: str) -> str:
        """The question report `name` answers."""
        return self._section(name).query.question

    def markdown(self) -> str:
        from flowstage.report.render import markdown

        return markdown(self)

    def html(self) -> str:
        """One self-contained HTML page with charts, as `--format html` writes it."""
        from flowstage.report.html import render_html

        return render_html(self)

    def to_json(self) -> str:
        from flowstage.report.render import to_json

        return to_json(self)

    def _repr_markdown_(self) -> str:
        return self.markdown()

    def __str__(self) -> str:
        return self.verdict

    def _section(self, name: str) -> build.Section:
        try:
            return self.sections[name]
        except KeyError:
            from flowstage.errors import UsageError

            raise UsageError(f"this report holds no {name!r}; it holds: {', '.join(self.sections)}") from None


@dataclass
class Explanation(ReplayExplanation):
    """How one stored flow was judged: the row, each set's verdict with its full trace, and the stored verdicts.

    `text()` is the plain-text form: the row in one line, then each set's trace, one step a line.
    """

    @classmethod
    def of(cls, explanation: ReplayExplanation) -> Explanation:
        return cls(**_copy_fields(explanation))

    def verdict(self, set_name: str) -> str:
        """One line for one set (`current`, `proposed`, `pending`): outcome and what decided it."""
        from flowstage.policy.engine import verdict_summary

        return verdict_summary(self.verdicts[set_name])

    def text(self) -> str:
        from flowstage.policy.engine import format_trace

        row = self.row
        port = f"{row.get('proto') or '?'}/{row.get('dest_port') if row.get('dest_port') is not None else '?'}"
        lines = [
            f"row {self.row_id}: {_endpoint(row, 'source')} → {_endpoint(row, 'dest')} {port}, "
            f"reported by {self.reporter}, logged {row.get('action')}",
            *self.notes,
        ]
        for set_name, verdict in self.verdicts.items():
            lines += ["", format_trace(verdict, title=set_name)]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()


def _endpoint(row: dict[str, Any], side: str) -> str:
    name = row.get(f"{side}_name") or row.get(f"{side}_name_aggr") or "?"
    namespace = row.get(f"{side}_namespace")
    return f"{namespace}/{name}" if namespace else name


@dataclass(frozen=True)
class Promotion:
    """What promoting every staged object would write (`plan`), and the failed checks `force` overrode."""

    plan: PromotionPlan
    overridden: tuple[str, ...] = ()

    def diff(self) -> str:
        """A unified diff of every file promotion changes, and of the deletions file."""
        return self.plan.diff()

    def write(self, overwrite: bool = False) -> list[Path]:
        """Write the promoted files (and the deletions file, if any) into the output folder; the paths written."""
        return self.plan.write(overwrite=overwrite)
