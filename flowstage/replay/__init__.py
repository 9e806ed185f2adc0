"""Replay: every flow in the store judged under the current, proposed and pending policy sets.

`load_inputs` + `replay` publish the verdicts and the `replay`, `connections` and `fidelity` views; `explain`
re-evaluates one stored row with the engine's full trace.
"""

from flowstage.replay.explain import Explanation, explain
from flowstage.replay.run import PolicyInputs, PolicyProblemsError, ReplaySummary, load_inputs, replay

__all__ = [
    "Explanation",
    "PolicyInputs",
    "PolicyProblemsError",
    "ReplaySummary",
    "explain",
    "load_inputs",
    "replay",
]
