"""Hard voting: each system votes for its argmax class; the majority wins, a tie goes to one system.

The written scores are the vote shares (votes / systems). Where several classes share the most
votes, the tie-break system decides among them (its highest posterior among the tied classes)
and that class's share is raised by :data:`TIE_EPSILON` (then the row is renormalised), so the
argmax of the written file is always the vote decision and each row still sums to 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sermm.estimator import TEXT, Options, ParamError, register
from sermm.fusion.base import Fuser, evaluate

#: Added to the tie-break system's choice on tied rows, so that argmax reproduces the decision.
TIE_EPSILON = 1e-6


def vote_shares(blocks: list[np.ndarray], tie_break: int) -> np.ndarray:
    """Vote shares ``(n, k)`` with ties resolved toward system ``tie_break`` (see module doc)."""
    n, k = blocks[0].shape
    rows = np.arange(n)
    decisions = [np.argmax(block, axis=1) for block in blocks]
    votes = np.zeros((n, k))
    for decision in decisions:
        votes += decision[:, None] == np.arange(k)
    top = votes[rows, decisions[0]]
    for decision in decisions[1:]:
        np.maximum(top, votes[rows, decision], out=top)
    leaders = votes == top[:, None]
    tied = np.flatnonzero(np.count_nonzero(leaders, axis=1) > 1)
    shares = votes / len(blocks)
    if tied.size:
        judge = np.where(leaders[tied], blocks[tie_break][tied], -np.inf)
        choice = np.argmax(judge, axis=1)
        shares[tied, choice] += TIE_EPSILON
        shares[tied] /= 1.0 + TIE_EPSILON
    return shares


@register
class VoteFuser(Fuser):
    """Majority vote of the systems' decisions; ties go to the designated (or best) system."""

    method = "vote"
    needs_labels = False
    keeps_prior = True
    takes_decisions = True
    _parameter_constraints = {"tie_break": [Options(None), TEXT]}

    def __init__(self, tie_break: str | None = None) -> None:
        self.tie_break = tie_break

    def _fit(self, blocks: list[np.ndarray], y: np.ndarray | None, groups: Any) -> None:
        self.tie_break_reason_ = "chosen"
        if self.tie_break is not None:
            if self.tie_break not in self.systems_:
                raise ParamError(
                    "tie_break",
                    f"{{name}} {self.tie_break}: no such system (systems: {', '.join(self.systems_)})",
                )
            self.tie_break_ = self.systems_.index(self.tie_break)
        elif y is not None:
            scores = [evaluate(b, y, "posterior")["macro_f1"] for b in blocks]
            self.tie_break_ = int(np.argmax(scores))
            self.tie_break_reason_ = f"best dev macro-F1, {scores[self.tie_break_]:.4f}"
        else:
            self.tie_break_ = 0
            self.tie_break_reason_ = "first input; no labels"

    @property
    def tie_break_system_(self) -> str:
        """The name of the system that breaks ties."""
        return self.systems_[self.tie_break_]

    def describe(self) -> str:
        """Which system breaks ties, and why."""
        why = self.tie_break_reason_
        return f"majority vote; ties go to {self.tie_break_system_} ({why})"

    def _fuse(self, blocks: list[np.ndarray]) -> np.ndarray:
        return vote_shares(blocks, self.tie_break_)

    def _state(self) -> dict:
        return {
            "tie_break": self.tie_break_,
            "tie_break_system": self.tie_break_system_,
            "reason": getattr(self, "tie_break_reason_", "chosen"),
        }

    def _set_state(self, state: dict) -> None:
        self.tie_break_ = int(state["tie_break"])
        if not 0 <= self.tie_break_ < len(self.systems_):
            raise ValueError(f"state 'tie_break' must index one of the {len(self.systems_)} systems")
        self.tie_break_reason_ = state.get("reason", "chosen")
