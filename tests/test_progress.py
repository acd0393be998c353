"""Long work shows progress on stderr, only where stderr is a terminal."""

from __future__ import annotations

import io

import numpy as np
from scipy.special import softmax

from sermm.fusion.cv import cross_val_fuse, make_folds
from sermm.fusion.logreg import LogRegFuser


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def systems(n: int = 200) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n)
    return [softmax(np.eye(3)[y] + rng.standard_normal((n, 3)), axis=1) for _ in range(2)], y


def test_cross_validation_and_C_auto_show_progress_on_a_terminal(monkeypatch):
    S, y = systems()
    shown = Terminal()
    monkeypatch.setattr("sys.stderr", shown)
    cross_val_fuse(LogRegFuser(), S, y, make_folds(y, n_splits=3))
    LogRegFuser(C="auto").fit(S, y)
    assert "logreg: cross-validation folds" in shown.getvalue()
    assert "logreg: choosing C" in shown.getvalue()


def test_no_progress_where_stderr_is_a_file(monkeypatch):
    S, y = systems()
    written = io.StringIO()
    monkeypatch.setattr("sys.stderr", written)
    cross_val_fuse(LogRegFuser(), S, y, make_folds(y, n_splits=3))
    assert written.getvalue() == ""
