"""Hard voting: majority, the tie rule, and vote shares whose argmax is the decision."""

from __future__ import annotations

import numpy as np
import pytest

from sermm.errors import SermmError
from sermm.fusion.vote import TIE_EPSILON, VoteFuser, vote_shares


def one_hot_ish(decisions: list[int], k: int = 3) -> np.ndarray:
    """Posteriors whose argmax is each given class (0.6 on it, the rest shared)."""
    P = np.full((len(decisions), k), 0.4 / (k - 1))
    P[np.arange(len(decisions)), decisions] = 0.6
    return P


def test_majority_wins_and_shares_are_vote_fractions():
    a, b, c = one_hot_ish([0, 1]), one_hot_ish([0, 2]), one_hot_ish([1, 2])
    shares = vote_shares([a, b, c], tie_break=0)
    assert np.allclose(shares, [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])


def test_tie_goes_to_the_tie_break_system():
    a, b = one_hot_ish([0, 2]), one_hot_ish([1, 1])
    for judge, expected in ((0, [0, 2]), (1, [1, 1])):
        shares = vote_shares([a, b], tie_break=judge)
        assert shares.argmax(axis=1).tolist() == expected
        assert np.allclose(shares.sum(axis=1), 1.0)
        assert np.allclose(shares, 0.5 * (shares > 0.25), atol=2 * TIE_EPSILON)
        winner = shares[0, expected[0]]
        assert winner == pytest.approx((0.5 + TIE_EPSILON) / (1 + TIE_EPSILON))


def test_tie_among_classes_the_judge_did_not_vote_for():
    """Five systems: two vote 0, two vote 1, the judge votes 2. The judge's posterior decides
    between the tied classes 0 and 1."""
    votes = [one_hot_ish([0]), one_hot_ish([0]), one_hot_ish([1]), one_hot_ish([1])]
    judge = np.array([[0.2, 0.3, 0.5]])
    shares = vote_shares([*votes, judge], tie_break=4)
    assert shares.argmax() == 1
    assert np.allclose(shares.sum(), 1.0)


def test_default_tie_break_is_the_best_system_with_labels_else_the_first():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    good = one_hot_ish(list(y))
    poor = one_hot_ish(list(rng.integers(0, 3, 60)))
    fuser = VoteFuser().fit([poor, good], y)
    assert fuser.tie_break_system_ == "system2"
    assert "best dev macro-F1" in fuser.describe()
    fuser = VoteFuser().fit([poor, good])
    assert fuser.tie_break_system_ == "system1"
    assert (fuser.predict([poor, good]) == poor.argmax(axis=1)).all()  # every row is a 1-1 tie or agrees


def test_tie_break_by_name():
    a, b = one_hot_ish([0]), one_hot_ish([1])
    fuser = VoteFuser(tie_break="system2").fit([a, b])
    assert fuser.predict([a, b]).tolist() == [1]
    with pytest.raises(SermmError, match="tie_break nope: no such system"):
        VoteFuser(tie_break="nope").fit([a, b])
