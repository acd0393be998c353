"""Interpolation fusion: a weighted mean of the systems' scores, weights found on a simplex grid.

The grid holds every weight vector with entries ``0, step, 2 step, ..., 1`` that sums to one
(21 points for two systems at ``step=0.05``, 231 for three, 1771 for four). Each point is
scored on the development set and the best one wins; ties go to the most even weights.

The argmax metrics (macro-F1, UA, accuracy) are computed for all grid points at once, without a
loop over points, in three steps:

1. **Candidates.** A class that one of the systems' top classes beats in every system can
   never win, whatever the weights: it is dropped. Rows where all systems agree keep one
   candidate and are counted once, for every grid point.
2. **Line sweep.** Grid points that differ only in the last two weights form a line on which
   each candidate's fused score is linear in the step; the steps where candidate ``t`` beats
   every other candidate form an interval, found from the pairwise crossing points. Intervals
   become +1/-1 entries of a difference array (:func:`numpy.bincount`), whose cumulative sum
   gives the predicted-class counts and true positives of every grid point, the inputs of
   macro-F1, UA and accuracy (same formulas as :mod:`sermm.metrics`).
3. **Near ties.** Where two candidates' fused scores meet within rounding of a grid point, that
   point is re-decided by computing the fused scores exactly as :func:`weighted_mean` (and so
   ``predict``) does, so the grid objective equals the metric of the model it picks.

The work grows with rows x lines x candidate pairs rather than rows x points x classes, in
chunks of bounded size. Cross-entropy is scored by evaluating the fused posteriors in chunks of
grid points and rows. For attribute files each attribute gets its own weights by CCC, which for
a weighted mean is a ratio of quadratic forms in the weights, computed from the systems'
covariances.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sermm.estimator import Interval, Options, ParamError, register, state_array
from sermm.fusion.base import Fuser, row_chunks
from sermm.metrics import CATEGORICAL_METRICS, metric_by_option
from sermm.metrics import METRICS as METRIC_TABLE
from sermm.tables import log_posteriors, softmax

#: Objectives ``interp`` can maximise, by their option names: every decision metric of the metric
#: table (scored from per-class counts), cross-entropy (minimised) and CCC (attribute files).
METRICS = (*(METRIC_TABLE[key].option for key in CATEGORICAL_METRICS), "cross-entropy", "ccc")
DOMAINS = ("linear", "log")
#: Elements per temporary array in the grid search (bounded memory: a few MiB each).
CHUNK_ELEMENTS = 1 << 18
#: Rows per chunk when finding the candidate classes.
CANDIDATE_ROWS = 1 << 14
#: The most weight vectors a grid may have (a larger --step, or logreg --tied, for many systems).
MAX_GRID = 2_000_000
#: Objective values this close to the best count as ties (then the most even weights win).
TIE_TOLERANCE = 1e-12
#: Relative gap below which two candidates' fused scores are re-checked exactly.
NEAR_TIE = 1e-9


def steps_per_unit(step: float) -> int:
    """The number ``N`` of grid steps in 1; ``step`` must divide 1 (0.05 -> 20)."""
    if not 0 < step <= 1:
        raise ParamError("step", f"{{name}} must lie in (0, 1], got {step}")
    n = int(round(1.0 / step))
    if abs(n * step - 1.0) > 1e-9:
        raise ParamError("step", f"{{name}} {step} does not divide 1 (use e.g. 0.05, 0.1, 0.25)")
    return n


def grid_size(m: int, n: int) -> int:
    """How many weight vectors the grid of ``m`` systems with ``n`` steps has: C(n + m - 1, m - 1)."""
    return math.comb(n + m - 1, m - 1)


def simplex_lattice(m: int, n: int) -> np.ndarray:
    """Every vector of ``m`` non-negative integers summing to ``n``, in lexicographic order."""
    if grid_size(m, n) > MAX_GRID:
        raise ParamError(
            "step",
            f"{m} systems at {n} steps per unit give {grid_size(m, n):,} weight vectors (at most "
            f"{MAX_GRID:,}): use a larger {{name}}, or tied logistic-regression fusion (logreg, tied)",
        )
    if m == 1:
        return np.array([[n]], dtype=np.int64)
    parts = []
    for first in range(n + 1):
        rest = simplex_lattice(m - 1, n - first)
        parts.append(np.column_stack([np.full(len(rest), first, dtype=np.int64), rest]))
    return np.concatenate(parts)


def simplex_grid(m: int, step: float = 0.05) -> np.ndarray:
    """The weight grid: ``(G, m)`` float weights on the simplex, lexicographic order."""
    n = steps_per_unit(step)
    return simplex_lattice(m, n) / n


def pick_best(objective: np.ndarray, weights: np.ndarray) -> int:
    """Index of the best grid point (highest objective); ties go to the most even weights."""
    best = np.max(objective)
    tied = np.flatnonzero(objective >= best - TIE_TOLERANCE * max(1.0, abs(best)))
    m = weights.shape[1]
    unevenness = ((weights[tied] - 1.0 / m) ** 2).sum(axis=1)
    return int(tied[np.argmin(unevenness)])


def candidate_classes(X: np.ndarray, tops: list[np.ndarray] | None = None) -> np.ndarray:
    """Classes that may win the fused argmax for some weights: ``(R, k)`` mask (a superset).

    ``X`` is ``(m, R, k)``. Class ``j`` is dropped when one of the systems' top classes ``c``
    beats it in every system (``X[:, c] > X[:, j]``), or ties-or-beats it everywhere and has a
    lower index (argmax takes the first maximum): then ``j`` loses for every weight vector.
    ``tops`` are the systems' argmax classes of these rows, when already known.
    """
    m, R, k = X.shape
    rows = np.arange(R)[:, None]
    classes = np.arange(k)
    dominated = np.zeros((R, k), dtype=bool)
    for j in range(m):
        c = (np.argmax(X[j], axis=1) if tops is None else tops[j])[:, None]
        ge = np.ones((R, k), dtype=bool)
        gt = np.ones((R, k), dtype=bool)
        for i in range(m):
            best = X[i][rows, c]
            ge &= best >= X[i]
            gt &= best > X[i]
        dominated |= gt | (ge & (c < classes))
    return ~dominated


class _Lines:
    """The grid as lines: points sharing all weights but the last two, in grid order."""

    def __init__(self, lattice: np.ndarray, n: int) -> None:
        m = lattice.shape[1]
        starts = np.flatnonzero(lattice[:, m - 2] == 0)
        prefix = lattice[starts, : m - 2]
        self.start = starts
        self.length = n - prefix.sum(axis=1)
        # N * fused score of candidate t at (line p, step j) = A[p, t] + j * B[t], where
        # A = [prefix, 0, L] . X[:, t] and B = X[m-2, t] - X[m-1, t].
        self.base = np.column_stack([prefix, np.zeros(len(starts)), self.length]).astype(np.float64)


def _line_intervals(
    A: np.ndarray, B: np.ndarray, length: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[tuple[np.ndarray, ...]]]:
    """For each (candidate, line, row): the interval [lo, hi] of steps where that candidate wins.

    ``A`` is ``(T, P, R)``, ``B`` is ``(T, R)``, ``length`` is ``(P,)``. Candidate ``t`` beats
    ``u > t`` at step ``j`` when ``A_t + j B_t >= A_u + j B_u`` (ties go to the lower class).
    Also returns the near-ties: ``(line, row, first step, last step)`` arrays of the steps where
    two candidates are within rounding of each other, which the caller re-decides exactly as
    :func:`weighted_mean` computes them.
    """
    T, P, R = A.shape
    steps = length.astype(np.float64)[:, None]
    lo = np.zeros((T, P, R))
    hi = np.broadcast_to(steps, (T, P, R)).copy()
    tol = NEAR_TIE * (np.abs(A).max(axis=0) + steps * np.abs(B).max(axis=0))
    flat = 2.0 * tol.max(axis=0)
    near: list[tuple[np.ndarray, ...]] = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for t in range(T - 1):
            for u in range(t + 1, T):
                dA = A[u] - A[t]
                dB = B[t] - B[u]
                pos = dB > 0
                zero = dB == 0
                thr = dA * (1.0 / dB)
                # first step of the "upper" side [c, inf): t's side when dB > 0, u's when dB < 0
                c = np.where(pos, np.ceil(thr), np.floor(thr) + 1.0)
                if zero.any():  # parallel: one candidate wins the whole line
                    c[:, zero] = np.where(dA[:, zero] <= 0, -np.inf, np.inf)
                up = pos | zero
                # add -inf (or +inf) to switch a bound off: fmax/fmin also skip the nan of inf - inf
                off_low, off_high = np.where(up, 0.0, -np.inf), np.where(up, np.inf, 0.0)
                before = c - 1.0
                np.fmax(lo[t], c + off_low, out=lo[t])
                np.fmin(hi[t], before + off_high, out=hi[t])
                np.fmax(lo[u], c - off_high, out=lo[u])
                np.fmin(hi[u], before - off_low, out=hi[u])
                maybe = np.abs(thr - np.rint(thr)) * np.abs(dB) <= tol
                maybe[:, np.abs(dB) <= flat] = True
                if maybe.any():
                    near.append(_near_steps(maybe, dA, dB, tol, steps[:, 0]))
    np.clip(lo, 0.0, steps + 1.0, out=lo)
    np.clip(hi, -1.0, None, out=hi)
    return lo, hi, near


def _near_steps(
    maybe: np.ndarray, dA: np.ndarray, dB: np.ndarray, tol: np.ndarray, steps: np.ndarray
) -> tuple[np.ndarray, ...]:
    """(line, row, first, last) of the steps j with ``|dA - j dB| <= tol`` among flagged entries."""
    p_idx, r_idx = np.nonzero(maybe)
    a, b, width = dA[p_idx, r_idx], dB[r_idx], tol[p_idx, r_idx]
    with np.errstate(divide="ignore", invalid="ignore"):
        slack = np.sign(b) * width
        first = np.where(b == 0, np.where(np.abs(a) <= width, 0.0, np.inf), np.ceil((a - slack) / b))
        last = np.where(b == 0, steps[p_idx], np.floor((a + slack) / b))
    first = np.maximum(first, 0.0)
    last = np.minimum(last, steps[p_idx])
    keep = first <= last
    return p_idx[keep], r_idx[keep], first[keep], last[keep]


def argmax_counts(
    S: list[np.ndarray], y: np.ndarray, lattice: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted-class counts and true positives ``(G, k)`` for every grid point.

    ``S`` holds the systems' ``(rows, k)`` scores (posteriors, or log-posteriors for the log
    domain), ``y`` the true class indices, ``lattice`` the integer grid (weights = lattice / n).
    The prediction at a grid point is the argmax of ``sum_j w_j S_j`` as :func:`weighted_mean`
    computes it.
    """
    m, k, G = len(S), S[0].shape[1], len(lattice)
    decisions = [np.argmax(s, axis=1) for s in S]
    agree = np.ones(len(y), dtype=bool)
    for d in decisions[1:]:
        agree &= d == decisions[0]
    fixed = decisions[0][agree]
    base_pred = np.bincount(fixed, minlength=k)
    base_tp = np.bincount(fixed[fixed == y[agree]], minlength=k)
    rest = np.flatnonzero(~agree)
    diff = _Diff(G, k)
    if m > 1 and rest.size:
        lines = _Lines(lattice, n)
        for part in row_chunks(rest.size, CANDIDATE_ROWS):
            rows = rest[part]
            X = np.stack([s[rows] for s in S])
            keep = candidate_classes(X, [d[rows] for d in decisions])
            count = keep.sum(axis=1)
            for T in np.unique(count):
                sel = np.flatnonzero(count == T)
                cand = np.nonzero(keep[sel])[1].reshape(-1, T)
                Xt = np.take_along_axis(X[:, sel], cand[None], axis=2)
                _sweep(Xt, cand, y[rows[sel]], lines, lattice / n, diff)
    pred, tp = diff.totals()
    return pred + base_pred, tp + base_tp


class _Diff:
    """Difference arrays over grid points for predicted-class counts and true positives."""

    def __init__(self, G: int, k: int) -> None:
        self.G, self.k = G, k
        self.pred = np.zeros((G + 1) * k, dtype=np.int64)
        self.tp = np.zeros((G + 1) * k, dtype=np.int64)

    def add(self, first: np.ndarray, after: np.ndarray, hit: np.ndarray, sign: int = 1) -> None:
        """Count class ``c`` over grid points [g0, g1): codes ``g0 * k + c`` and ``g1 * k + c``."""
        size = len(self.pred)
        if sign > 0:
            self.pred += np.bincount(first, minlength=size) - np.bincount(after, minlength=size)
            self.tp += np.bincount(first[hit], minlength=size) - np.bincount(after[hit], minlength=size)
        else:
            self.pred -= np.bincount(first, minlength=size) - np.bincount(after, minlength=size)
            self.tp -= np.bincount(first[hit], minlength=size) - np.bincount(after[hit], minlength=size)

    def totals(self) -> tuple[np.ndarray, np.ndarray]:
        shape = (self.G + 1, self.k)
        return (
            np.cumsum(self.pred.reshape(shape), axis=0)[: self.G],
            np.cumsum(self.tp.reshape(shape), axis=0)[: self.G],
        )


def _sweep(
    Xt: np.ndarray, cand: np.ndarray, y: np.ndarray, lines: _Lines, weights: np.ndarray, diff: _Diff
) -> None:
    """Add the winners' intervals of rows with ``T`` candidates to the difference arrays.

    ``Xt`` is ``(m, R, T)``: the candidates' scores; ``cand`` ``(R, T)`` their classes.
    """
    m, R, T = Xt.shape
    k = diff.k
    scores = np.ascontiguousarray(Xt.transpose(0, 2, 1))  # (m, T, R)
    B = scores[m - 2] - scores[m - 1]
    hit_class = cand == y[:, None]
    n_lines = len(lines.start)
    line_block = max(1, min(n_lines, CHUNK_ELEMENTS // T))
    for lp in row_chunks(n_lines, line_block):
        n_p = lp.stop - lp.start
        start = lines.start[lp]
        for rp in row_chunks(R, CHUNK_ELEMENTS // (n_p * T)):
            base = lines.base[lp]
            A = base[None, :, 0, None] * scores[0, :, None, rp]
            for j in range(1, m):
                A += base[None, :, j, None] * scores[j, :, None, rp]
            lo, hi, near = _line_intervals(A, B[:, rp], lines.length[lp])
            valid = lo <= hi
            where = np.broadcast_to(start[None, :, None], valid.shape)[valid]
            cls = np.broadcast_to(cand[rp].T[:, None, :], valid.shape)[valid]
            hit = np.broadcast_to(hit_class[rp].T[:, None, :], valid.shape)[valid]
            first = (where + lo[valid].astype(np.int64)) * k + cls
            after = (where + hi[valid].astype(np.int64) + 1) * k + cls
            diff.add(first, after, hit)
            if near:
                _fix_near_ties(near, lo, hi, Xt[:, rp], cand[rp], y[rp], start, weights, diff)


def _fix_near_ties(
    near: list[tuple[np.ndarray, ...]],
    lo: np.ndarray,
    hi: np.ndarray,
    Xt: np.ndarray,
    cand: np.ndarray,
    y: np.ndarray,
    start: np.ndarray,
    weights: np.ndarray,
    diff: _Diff,
) -> None:
    """Re-decide grid points where two candidates nearly tie, exactly as predict computes them.

    ``lo``/``hi`` are ``(T, P, R)``; ``Xt`` is ``(m, R, T)``; ``start`` the lines' first grid points.
    """
    p_idx = np.concatenate([a[0] for a in near])
    r_idx = np.concatenate([a[1] for a in near])
    first = np.concatenate([a[2] for a in near]).astype(np.int64)
    last = np.concatenate([a[3] for a in near]).astype(np.int64)
    if not p_idx.size:
        return
    width = last - first + 1
    p_idx, r_idx = np.repeat(p_idx, width), np.repeat(r_idx, width)
    offsets = np.arange(width.sum()) - np.repeat(np.cumsum(width) - width, width)
    j_idx = np.repeat(first, width) + offsets
    rows, span = lo.shape[2], int(j_idx.max()) + 1
    key = np.unique((p_idx * rows + r_idx) * span + j_idx)
    p_idx, r_idx, j_idx = key // span // rows, key // span % rows, key % span
    g = start[p_idx] + j_idx
    w = weights[g]
    fused = np.zeros((len(g), Xt.shape[2]))
    for j in range(Xt.shape[0]):
        use = w[:, j] != 0.0
        fused[use] += w[use, j, None] * Xt[j, r_idx[use]]
    exact = cand[r_idx, np.argmax(fused, axis=1)]
    rows_lo, rows_hi = lo[:, p_idx, r_idx].T, hi[:, p_idx, r_idx].T
    inside = (rows_lo <= j_idx[:, None]) & (j_idx[:, None] <= rows_hi)
    swept_f, swept_t = np.nonzero(inside)
    swept = cand[r_idx[swept_f], swept_t]
    k = diff.k
    diff.add(g[swept_f] * k + swept, (g[swept_f] + 1) * k + swept, swept == y[r_idx[swept_f]], sign=-1)
    diff.add(g * k + exact, (g + 1) * k + exact, exact == y[r_idx])


def objective_from_counts(pred: np.ndarray, tp: np.ndarray, support: np.ndarray, metric: str) -> np.ndarray:
    """A decision metric (by option name) of every grid point from its predicted counts and true
    positives: the metric table's formula (:data:`sermm.metrics.METRICS`)."""
    return metric_by_option(metric).of_counts(tp, pred, support)


def cross_entropy_grid(S: list[np.ndarray], y: np.ndarray, weights: np.ndarray, domain: str) -> np.ndarray:
    """Mean cross-entropy (nats) of the fused posteriors at every grid point, ``(G,)``."""
    G, m = weights.shape
    n, k = S[0].shape
    total = np.zeros(G)
    tiny = np.finfo(np.float64).tiny
    if domain == "linear":
        true = np.stack([s[np.arange(n), y] for s in S])
        for rp in row_chunks(n, CHUNK_ELEMENTS // min(G, 1024)):
            for gp in row_chunks(G, 1024):
                fused = weights[gp] @ true[:, rp]
                total[gp] -= np.log(np.maximum(fused, tiny)).sum(axis=1)
        return total / n
    for rp in row_chunks(n, max(1, CHUNK_ELEMENTS // (k * min(G, 256)))):
        rows = np.arange(rp.start, rp.stop)
        X = np.stack([s[rp] for s in S], axis=-1)
        for gp in row_chunks(G, 256):
            fused = X @ weights[gp].T
            top = fused.max(axis=1, keepdims=True)
            lse = np.log(np.exp(fused - top).sum(axis=1)) + top[:, 0]
            total[gp] -= (fused[np.arange(len(rows)), y[rp]] - lse).sum(axis=0)
    return total / n


def grid_objective(
    S: list[np.ndarray], y: np.ndarray, lattice: np.ndarray, n: int, metric: str, domain: str
) -> np.ndarray:
    """The objective (higher is better; minus the cross-entropy) at every grid point."""
    weights = lattice / n
    if metric == "cross-entropy":
        return -cross_entropy_grid(S, y, weights, domain)
    pred, tp = argmax_counts(S, y, lattice, n)
    support = np.bincount(y, minlength=S[0].shape[1])
    return objective_from_counts(pred, tp, support, metric)


def ccc_grid(X: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """CCC of ``X @ w`` against ``y`` for every weight vector (population moments), ``(G,)``.

    ``X`` is ``(n, m)`` (one attribute, m systems). Uses the identity
    CCC(w) = 2 w.c / (var_y + w' S w + (mean_y - w.mu)^2) with S the systems' covariance
    and c their covariance with y.
    """
    mu = X.mean(axis=0)
    D = X - mu
    y_mean = y.mean()
    dy = y - y_mean
    n = len(y)
    cov_sys = D.T @ D / n
    cov_y = D.T @ dy / n
    var_y = dy @ dy / n
    num = 2.0 * (weights @ cov_y)
    den = var_y + np.einsum("gi,ij,gj->g", weights, cov_sys, weights) + (y_mean - weights @ mu) ** 2
    return np.divide(num, den, out=np.full(len(weights), -np.inf), where=den > 0)


def weights_shape(fuser: Fuser) -> tuple[int, ...]:
    """``(m,)`` for posteriors, ``(a, m)`` for attributes: one weight vector per attribute column."""
    m = len(fuser.systems_)
    return (len(fuser.columns_), m) if fuser.output_kind_ == "attribute" else (m,)


def weighted_mean(blocks: list[np.ndarray], weights: np.ndarray, domain: str) -> np.ndarray:
    """``sum_j w_j S_j`` (linear) or the normalised weighted geometric mean (log domain).

    ``weights`` is ``(m,)``, or ``(a, m)`` for one weight vector per attribute column.
    """
    out = np.zeros_like(blocks[0], dtype=np.float64)  # the inputs' memory layout: no strided passes
    for j, block in enumerate(blocks):
        if weights.ndim == 2:
            out += block * weights[:, j]
        elif weights[j] != 0.0:
            out += weights[j] * (log_posteriors(block) if domain == "log" else block)
    return softmax(out) if domain == "log" else out


@register
class InterpFuser(Fuser):
    """Weighted mean of the systems' posteriors (or attributes), weights by grid search on dev."""

    method = "interp"
    kinds = ("posterior", "attribute")
    keeps_prior = True
    _parameter_constraints = {
        "step": [Interval(float, 0, 1, closed="right")],
        "metric": [Options(None, *METRICS)],
        "domain": [Options(*DOMAINS)],
    }
    why_labels = "chooses its weights by the development metric (macro-F1 by default)"

    def __init__(self, step: float = 0.05, metric: str | None = None, domain: str = "linear") -> None:
        self.step = step
        self.metric = metric
        self.domain = domain

    def _fit(self, blocks: list[np.ndarray], y: np.ndarray | None, groups: Any) -> None:
        metric = self.metric_
        n = steps_per_unit(self.step)
        lattice = simplex_lattice(len(blocks), n)
        weights = lattice / n
        self.grid_size_ = len(lattice)
        if self.output_kind_ == "attribute":
            if self.domain != "linear":
                raise ParamError("domain", "{name} log applies to posteriors; attribute files fuse linearly")
            chosen, best = [], []
            for a in range(len(self.columns_)):
                X = np.column_stack([b[:, a] for b in blocks])
                objective = ccc_grid(X, y[:, a], weights)
                g = pick_best(objective, weights)
                chosen.append(weights[g])
                best.append(objective[g])
            self.weights_ = np.array(chosen)
            self.objective_ = np.array(best)
            return
        S = [log_posteriors(b) for b in blocks] if self.domain == "log" else blocks
        objective = grid_objective(S, y, lattice, n, metric, self.domain)
        g = pick_best(objective, weights)
        self.weights_ = weights[g]
        self.objective_ = np.array([-objective[g] if metric == "cross-entropy" else objective[g]])

    def describe(self) -> str:
        """The chosen weights and the objective they reached."""
        step = f"step {self.step:g}"
        if self.output_kind_ == "attribute":
            parts = [
                f"{a}: "
                + " ".join(f"{s}={w:.2f}" for s, w in zip(self.systems_, row, strict=True))
                + f" (CCC {obj:.4f})"
                for a, row, obj in zip(self.columns_, self.weights_, self.objective_, strict=True)
            ]
            return f"weights by CCC ({step}): " + "; ".join(parts)
        weights = " ".join(f"{s}={w:.2f}" for s, w in zip(self.systems_, self.weights_, strict=True))
        return f"weights {weights} ({self.domain} domain, {step}, {self.metric_} {self.objective_[0]:.4f})"

    @property
    def metric_(self) -> str:
        """The objective in use: ``metric``, or macro-F1 (posteriors) / CCC (attributes)."""
        kind = getattr(self, "output_kind_", "posterior")
        metric = self.metric or ("ccc" if kind == "attribute" else "macro-f1")
        if (metric == "ccc") != (kind == "attribute"):
            raise ParamError(
                "metric",
                "{name} ccc is for attribute files"
                if metric == "ccc"
                else f"attribute files are fused by CCC, not {metric}",
            )
        return metric

    def _fuse(self, blocks: list[np.ndarray]) -> np.ndarray:
        return weighted_mean(blocks, self.weights_, self.domain)

    def _state(self) -> dict:
        return {"weights": self.weights_, "objective": self.objective_, "metric": self.metric_}

    def _set_state(self, state: dict) -> None:
        self.weights_ = state_array(state, "weights", weights_shape(self))
        self.objective_ = np.asarray(state["objective"], dtype=np.float64)


@register
class MeanFuser(Fuser):
    """The plain average of the systems' posteriors (or attributes): the baseline to beat."""

    method = "mean"
    kinds = ("posterior", "attribute")
    needs_labels = False
    keeps_prior = True

    def _fit(self, blocks: list[np.ndarray], y: np.ndarray | None, groups: Any) -> None:
        m = len(blocks)
        self.weights_ = np.full(m, 1.0 / m)
        if self.output_kind_ == "attribute":
            self.weights_ = np.tile(self.weights_, (len(self.columns_), 1))

    def describe(self) -> str:
        """Equal weights."""
        return f"equal weights 1/{len(self.systems_)} (linear domain)"

    def _fuse(self, blocks: list[np.ndarray]) -> np.ndarray:
        return weighted_mean(blocks, self.weights_, "linear")

    def _state(self) -> dict:
        return {"weights": self.weights_}

    def _set_state(self, state: dict) -> None:
        self.weights_ = state_array(state, "weights", weights_shape(self))
