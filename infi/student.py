"""ConceptStudent: an ensemble of sparse one-vs-rest logistic models on concept scores.

After InFiConD (Huang et al., IEEE VIS 2024): ``k`` members, each fitted on bootstrap weights;
each member and class minimizes binary cross-entropy against the teacher's soft probability plus
an L1 penalty. All members and classes train together as one batched problem
(``X @ W.reshape(K, k*C)``), solved by FISTA with adaptive restart, where the proximal step of
``λ|w| + box(lower, upper)`` is ``clip(soft_threshold(v, λ/L), lower, upper)``: the same solver
refits under the box bounds that tuning actions create.

Fitting runs in two stages. The pooled problem (every fit row at its own weight) is solved first:
it has one member instead of k, so an iteration costs about a twentieth, and it is where a
first-order method spends most of its iterations on correlated concepts. Each member then starts
from the pooled solution and takes ``member_iter`` steps on its bootstrap weights; bootstrap
optima sit close to the pooled one, so a few steps reach them.

At scale (say 100k rows, 584 concepts, 100 classes, 20 members) the cost follows what is
non-zero. With ``nec`` the path runs on at most ``PATH_ROWS`` rows; the pooled problem at the λ
found is then solved on every fit row on a working set of concepts (``_working_set_solve``:
solve on a few columns per class, check optimality on all K, let violators in), and the members
are solved on that support (``SupportDesign``: each class multiplies only its own columns).
Classes are solved a block at a time (``_class_blocks``), so no [N, k, C] tensor is made. A
refit is a working-set solve too, and never standardizes or copies X.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.utils._param_validation import Interval, InvalidParameterError
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from infi.errors import ConfigError, InputError
from infi.splits import holdout_split

_EPS = 1e-7
ZERO = 1e-6  # a weight below this in magnitude counts as zero (NEC, explanations)


# Sizes that keep stage 2, refits and the NEC path within memory and cache.
BLOCK_ELEMS = 1 << 24  # a class block holds about this many rows x classes x max(members, columns)
CHUNK_ELEMS = 1 << 20  # rows per chunk of a support solve so its [classes, rows, k] fits in cache
PATH_ROWS = 20_000  # the NEC path runs on at most this many fit rows (see ``ConceptStudent``)
FULL_ROWS_ITER = 100  # iterations of each working-set round of the pooled re-solve on every row
KKT_ROUNDS = 4  # working-set rounds (solve, then check every concept) before settling
KKT_MARGIN = 1e-3  # a zero weight enters the working set when |gradient| > λ(1 + this)


@dataclass
class SolverResult:
    W: torch.Tensor  # [k, K, C] (dense) or [C, m, k] (support)
    b: torch.Tensor  # [k, C] (dense) or [C, 1, k] (support)
    n_iter: int


def _lipschitz(X: torch.Tensor, sw: torch.Tensor, iters: int = 25, seed: int = 0) -> float:
    """0.25 * the largest eigenvalue over members of [X,1]^T diag(sw_m) [X,1] / N (power method)."""
    n, d = X.shape
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(d + 1, sw.shape[0], generator=gen, dtype=X.dtype)
    eig = torch.ones(sw.shape[0], dtype=X.dtype)
    for _ in range(iters):
        v = v / v.norm(dim=0, keepdim=True).clamp_min(1e-12)
        xv = X @ v[:d] + v[d]  # [N, k]
        wxv = xv * sw.T
        u = torch.cat([X.T @ wxv, wxv.sum(0, keepdim=True)]) / n
        eig = (u * v).sum(0)
        v = u
    return 0.25 * float(eig.max()) * 1.05 + 1e-6


def _soft_threshold(v: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    return torch.sign(v) * torch.clamp(v.abs() - t, min=0.0)


def _bce_grad(X, T, sw, W, b):
    """Mean weighted BCE-with-logits per member and class, and its gradients."""
    n, kdim = X.shape
    k, _, c = W.shape
    Z = (X @ W.permute(1, 0, 2).reshape(kdim, k * c)).reshape(n, k, c) + b
    P = torch.sigmoid(Z)
    R = (P - T[:, None, :]) * (sw.T[:, :, None] / n)  # [N, k, C]
    gW = (X.T @ R.reshape(n, k * c)).reshape(kdim, k, c).permute(1, 0, 2)
    gb = R.sum(0)
    loss = (sw.T[:, :, None] / n * torch.nn.functional.binary_cross_entropy_with_logits(
        Z, T[:, None, :].expand_as(Z), reduction="none")).sum(0)  # [k, C]
    return loss, gW, gb


class SupportDesign:
    """The linear part of a one-vs-rest problem in which class c sees only the concepts ``idx[c]``.

    ``Xg`` [C, m+1, N] holds, for each class of a block, its standardized concept columns as
    rows, padded to a common width m with zero rows (``idx == K`` there; their weights are
    pinned to 0), then a row of ones for the intercept (``FitRows.design`` builds it). Weights
    live as [C, m, k] and intercepts as [C, 1, k], so logits are one ``bmm`` and the gradient
    one ``bmm`` back: a class with 8 concepts costs 9 rows, not K + 1. Concepts as rows keep
    both products fast when k is small (the pooled problem has k = 1). Rows of X go in chunks
    whose [C, k, rows] tensors stay in cache, so no [N, k, C] tensor is ever made.
    """

    def __init__(self, Xg: torch.Tensor, idx: torch.Tensor, n_concepts: int):
        self.Xg, self.idx, self.n_concepts = Xg, idx, n_concepts

    def gather(self, full: torch.Tensor, pad: float = 0.0) -> torch.Tensor:
        """[k, K, C] (weights or bounds) to the support layout [C, m, k]; pads get ``pad``."""
        k, K, C = full.shape
        src = torch.cat([full.permute(2, 1, 0), torch.full((C, 1, k), pad, dtype=full.dtype)], 1)
        return torch.gather(src, 1, self.idx[:, :, None].expand(-1, -1, k)).contiguous()

    def scatter(self, W: torch.Tensor) -> torch.Tensor:
        """Support-layout weights [C, m, k] back to [k, K, C], zero off the support."""
        C, _, k = W.shape
        out = torch.zeros((C, self.n_concepts + 1, k), dtype=W.dtype)
        out.scatter_(1, self.idx[:, :, None].expand(-1, -1, k), W)
        return out[:, :self.n_concepts].permute(2, 1, 0).contiguous()

    def chunks(self, k: int) -> list[tuple[int, int]]:
        """Row ranges of about ``CHUNK_ELEMS`` classes x rows x max(members, columns)."""
        C, m1, n = self.Xg.shape
        rows = max(256, CHUNK_ELEMS // max(1, C * max(k, m1)))
        return [(s, min(n, s + rows)) for s in range(0, n, rows)]

    def loss(self, T: torch.Tensor, sw: torch.Tensor) -> SupportLoss:
        """The mean weighted BCE against ``T`` [N, C] with row weights ``sw`` [k, N]."""
        return SupportLoss(self, T, sw)

    def lipschitz(self, sw: torch.Tensor, iters: int = 20, rtol: float = 1e-3) -> torch.Tensor:
        """Per class and member [C, 1, k]: 0.25 * the largest eigenvalue of [Xg_c,1]^T diag(sw_j)
        [Xg_c,1] / N, by power steps from the top eigenvector of the pooled (member-mean) matrix,
        which bootstrap weights barely move: at scale two or three steps settle it (``rtol``).
        A step per class and member is much longer than one step for all K concepts: a support
        of 8 is far better conditioned."""
        C, m1, n = self.Xg.shape
        k = sw.shape[0]
        w = sw.mean(0)
        A = torch.zeros((C, m1, m1), dtype=torch.float64)
        for s, e in self.chunks(1):
            Xc = self.Xg[:, :, s:e]
            A += torch.bmm(Xc * w[s:e], Xc.transpose(1, 2)).double()
        v = torch.linalg.eigh(A / n)[1][:, :, -1].float()  # [C, m+1]
        v = v[:, :, None].expand(C, m1, k).contiguous()
        swn = sw / n  # [k, N]
        eig = torch.ones((C, 1, k))
        for _ in range(iters):
            v = v / v.norm(dim=1, keepdim=True).clamp_min(1e-12)
            u = torch.zeros_like(v)
            for s, e in self.chunks(k):
                Xc = self.Xg[:, :, s:e]
                u.baddbmm_(Xc, torch.bmm(v.transpose(1, 2), Xc).mul_(swn[:, s:e]).transpose(1, 2))
            prev, eig = eig, (u * v).sum(1, keepdim=True)
            v = u
            if float(((eig - prev).abs() / eig.abs().clamp_min(1e-12)).max()) < rtol:
                break
        return 0.25 * eig.clamp_min(0) * 1.05 + 1e-6


class SupportLoss:
    """Gradients of the mean weighted BCE of a ``SupportDesign`` against fixed targets."""

    def __init__(self, design: SupportDesign, T: torch.Tensor, sw: torch.Tensor):
        self.design = design
        self.T = T.T.contiguous()[:, None, :]  # [C, 1, N]
        self.swn = (sw / T.shape[0]).contiguous()  # [k, N]

    def grad(self, W: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None,
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(gW [C, m, k], gb [C, 1, k]); with ``out`` [C, k, N] the residuals
        (sigmoid(z) - t) * sw / N are kept there too (for a KKT check)."""
        Xg = self.design.Xg
        m = Xg.shape[1] - 1
        Wx = torch.cat([W, b], 1)  # [C, m+1, k]
        WxT = Wx.transpose(1, 2)
        g = torch.zeros_like(Wx)
        for s, e in self.design.chunks(W.shape[2]):
            Xc = Xg[:, :, s:e]
            Z = torch.bmm(WxT, Xc).sigmoid_().sub_(self.T[:, :, s:e]).mul_(self.swn[:, s:e])  # [C, k, r]
            g.baddbmm_(Xc, Z.transpose(1, 2))
            if out is not None:
                out[:, :, s:e] = Z
        return g[:, :m], g[:, m:]


class FitRows:
    """The standardized fit rows ``(X[rows] - mean) / scale`` without copying X.

    Columns are gathered on demand into a ``SupportDesign``, and the gradient on every concept
    is X^T R on the raw scores with the mean and scale correction; the whole standardized matrix
    is made only for a solve on every concept (``standardized``).
    """

    def __init__(self, X: np.ndarray, rows: np.ndarray, mean: np.ndarray, scale: np.ndarray):
        self.X, self.rows, self.mean, self.scale = X, rows, mean, scale
        self.n, self.n_concepts = len(rows), X.shape[1]
        self._dense: torch.Tensor | None = None

    def columns(self, cols: np.ndarray) -> np.ndarray:
        """Standardized columns ``cols`` of the rows, as float32 [n, len(cols)]."""
        return ((self.X[np.ix_(self.rows, cols)] - self.mean[cols]) / self.scale[cols]).astype(np.float32)

    def standardized(self) -> torch.Tensor:
        """All standardized columns [n, K] (made once, for a solve on every concept)."""
        if self._dense is None:
            self._dense = torch.from_numpy(self.columns(np.arange(self.n_concepts)))  # [n, K]
        return self._dense

    def design(self, support: torch.Tensor) -> SupportDesign:
        """The ``SupportDesign`` of the support mask [K, C] of a class block."""
        K, C = support.shape
        m = max(1, int(support.sum(0).max()) if C else 1)
        idx = np.full((C, m), K)
        for c in range(C):
            cols = np.flatnonzero(support[:, c].numpy())
            idx[c, :len(cols)] = cols
        used = np.unique(idx[idx < K])
        Xu = np.empty((len(used) + 2, self.n), np.float32)  # the used columns, a zero pad, ones
        Xu[:-2] = self.columns(used).T
        Xu[-2], Xu[-1] = 0.0, 1.0
        pos = np.where(idx < K, np.searchsorted(used, np.minimum(idx, K - 1)), len(used))
        pos = np.concatenate([pos, np.full((C, 1), len(used) + 1)], 1)  # [C, m+1]
        return SupportDesign(torch.from_numpy(Xu)[torch.from_numpy(pos)], torch.from_numpy(idx), K)

    def gradient(self, R: torch.Tensor) -> torch.Tensor:
        """Gradient [k, K, C] on every standardized concept from residuals R [C, k, n]."""
        C, k, n = R.shape
        Rn = R.permute(2, 1, 0).reshape(n, k * C)
        if self._dense is not None:
            G = self._dense.T @ Rn
        else:
            full = torch.zeros((len(self.X), k * C))
            full[torch.from_numpy(self.rows)] = Rn
            XtR = torch.from_numpy(self.X).T @ full
            G = (XtR - torch.from_numpy(self.mean)[:, None] * Rn.sum(0)[None, :]) \
                / torch.from_numpy(self.scale)[:, None]
        return G.reshape(-1, k, C).permute(1, 0, 2)


def fista(X: torch.Tensor | SupportDesign, T: torch.Tensor, sw: torch.Tensor, W: torch.Tensor,
          b: torch.Tensor, alpha: float, lower: torch.Tensor | None = None,
          upper: torch.Tensor | None = None, max_iter: int = 300, tol: float = 1e-4,
          step: float | torch.Tensor | None = None, monitor=None,
          check_every: int = 10) -> SolverResult:
    """Minimize mean BCE + alpha * |W|_1 within [lower, upper] for all members and classes at once.

    ``X`` is the linear part: a dense [N, K] tensor (every class sees every concept; W [k, K, C],
    b [k, C]) or a ``SupportDesign`` (class c sees its own columns; W [C, m, k], b [C, 1, k]).
    Dense solves take one step 1/L and drop the momentum when the objective rises (adaptive
    restart, O'Donoghue & Candès); support solves take a step per class and member and restart
    each of those independent problems on the gradient test of the same paper, which needs no
    loss: the elementwise work per iteration is then a sigmoid and two in-place updates.

    ``monitor(W, b)`` is called every ``check_every`` iterations and returns True to stop (early
    stopping on a validation split); the solver also stops when the relative change of the weights
    falls below ``tol``.
    """
    support = isinstance(X, SupportDesign)
    if step is None:
        step = X.lipschitz(sw) if support else _lipschitz(X, sw)
    lr = 1.0 / step

    def project(w):
        if lower is not None:
            w = torch.maximum(w, lower)
        if upper is not None:
            w = torch.minimum(w, upper)
        return w

    if support:
        support_loss = X.loss(T, sw)

        def grad(W_, b_):
            return (None, *support_loss.grad(W_, b_))
    else:
        def grad(W_, b_):
            return _bce_grad(X, T, sw, W_, b_)

    W = project(W.clone())
    b = b.clone()
    Y_W, Y_b = W.clone(), b.clone()
    t: float | torch.Tensor = torch.ones(b.shape) if support else 1.0
    prev_obj = math.inf
    it = 0
    for it in range(1, max_iter + 1):
        loss, gW, gb = grad(Y_W, Y_b)
        W_new = project(_soft_threshold(Y_W - lr * gW, lr * alpha))
        b_new = Y_b - lr * gb
        if support:  # per problem: restart where the step went against the momentum
            t_new = 0.5 * (1 + torch.sqrt(1 + 4 * t * t))
            restart = (((Y_W - W_new) * (W_new - W)).sum(1, keepdim=True)
                       + (Y_b - b_new) * (b_new - b)) > 0
            t_new = torch.where(restart, 1.0, t_new)
            beta = torch.where(restart, 0.0, (t - 1) / t_new)
            Y_W = project(W_new + beta * (W_new - W))
            Y_b = b_new + beta * (b_new - b)
        else:
            obj = float(loss.sum()) + alpha * float(Y_W.abs().sum())
            t_new = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
            if obj > prev_obj:  # adaptive restart (O'Donoghue & Candès): drop the momentum
                t_new = 1.0
                Y_W, Y_b = W_new, b_new
            else:
                beta = (t - 1) / t_new
                Y_W = project(W_new + beta * (W_new - W))
                Y_b = b_new + beta * (b_new - b)
            prev_obj = obj
        change = float((W_new - W).norm()) / max(float(W.norm()), 1e-8)
        W, b, t = W_new, b_new, t_new
        if change < tol and it > 5:
            break
        if monitor is not None and it % check_every == 0 and monitor(W, b):
            break
    return SolverResult(W, b, it)


def _class_blocks(classes: Sequence[int], n: int, k: int,
                  widths: torch.Tensor | None = None) -> list[list[int]]:
    """Consecutive blocks of ``classes`` with at most ``BLOCK_ELEMS`` rows x classes x
    max(members, columns) each (``widths``: the columns of each class, for support designs).
    One-vs-rest classes are independent problems, so solving a block at a time bounds memory."""
    blocks: list[list[int]] = []
    cur: list[int] = []
    cur_w = 0
    for c in classes:
        w = max(k, int(widths[c]) + 1 if widths is not None else 0)
        if cur and n * (len(cur) + 1) * max(cur_w, w) > BLOCK_ELEMS:
            blocks.append(cur)
            cur, cur_w = [], 0
        cur.append(int(c))
        cur_w = max(cur_w, w)
    return blocks + [cur] if cur else blocks


def _working_set_solve(rows: FitRows, T: torch.Tensor, sw: torch.Tensor, W: torch.Tensor,
                       b: torch.Tensor, lower: torch.Tensor | None, upper: torch.Tensor | None,
                       alpha: float, max_iter: int, tol: float, work: torch.Tensor,
                       dense_step: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``fista`` on every concept, solved on a working set of concepts per class.

    Each block of classes is solved on its ``work`` [K, C] columns (``SupportDesign``); then one
    gradient on every concept checks optimality: a weight outside the set is optimal at 0 while
    |gradient| <= λ or its bounds stop it from moving that way. Violators join the set and the
    block is re-solved, for at most ``KKT_ROUNDS`` rounds. A block where some class's set spans
    over half the concepts is solved on every concept instead (step ``dense_step``).
    W [k, K, C], b [k, C], T [n, C]; returns (W, b, iterations).
    """
    k, K, C = W.shape
    lo = torch.full_like(W, -torch.inf) if lower is None else lower
    hi = torch.full_like(W, torch.inf) if upper is None else upper
    W, b = torch.minimum(torch.maximum(W, lo), hi), b.clone()
    work = work & ~((lo == 0) & (hi == 0)).all(0)  # pinned at zero: nothing to solve
    thr = alpha * (1 + KKT_MARGIN)
    n_iter = 0
    widths = work.sum(0)
    order = np.argsort(widths.numpy(), kind="stable").tolist()  # similar widths share a block
    for blk in _class_blocks(order, rows.n, k, widths):
        Tb, lob, hib, wb = T[:, blk], lo[:, :, blk], hi[:, :, blk], work[:, blk].clone()
        Wb, bb, its = W[:, :, blk], b[:, blk], 0
        for _ in range(KKT_ROUNDS):
            if 2 * int(wb.sum(0).max()) > K:  # mostly dense: one shared X beats a copy per class
                Xd = rows.standardized()
                res = fista(Xd, Tb, sw, Wb, bb, alpha, lob, hib, max_iter=max_iter, tol=tol, step=dense_step)
                Wb, bb, its = res.W, res.b, its + res.n_iter
                break
            op = rows.design(wb)
            res = fista(op, Tb, sw, op.gather(Wb), bb.T[:, None, :].contiguous(), alpha,
                        op.gather(lob), op.gather(hib), max_iter=max_iter, tol=tol)
            its += res.n_iter
            Wb, bb = op.scatter(res.W), res.b[:, 0, :].T.contiguous()
            R = torch.empty((len(blk), k, rows.n))
            op.loss(Tb, sw).grad(res.W, res.b, out=R)
            del op
            G = rows.gradient(R)
            enter = (((G > thr) & (lob < 0)) | ((G < -thr) & (hib > 0))).any(0) & ~wb
            if not enter.any():
                break
            wb |= enter
        W[:, :, blk], b[:, blk] = Wb, bb
        n_iter = max(n_iter, its)
    return W, b, n_iter


class InvalidStudentParameter(ConfigError, InvalidParameterError):
    """A ``ConceptStudent`` parameter of the wrong type or outside its range."""


class ConceptStudent(ClassifierMixin, BaseEstimator):
    """Ensemble of sparse one-vs-rest logistic models that mimics a teacher on concept scores.

    Parameters
    ----------
    n_members : int, default=20
        Ensemble size k; each member sees Poisson(1) bootstrap weights of the rows.
    alpha : float, default=1e-4
        L1 strength λ on the weights of standardized concepts; ignored when ``nec`` is set.
    nec : float or None, default=None
        Target number of effective concepts per class (the mean count of non-zero weights per
        class, as VLG-CBM reports it). λ is then found along a warm-started regularisation path
        and kept as ``alpha_``, so a refit keeps the same λ. With more than ``PATH_ROWS`` fit
        rows the path runs on a uniform sample of that many (the loss is a mean over rows, so λ
        means the same on a sample), then the pooled problem at that λ is re-solved on every
        fit row, where concepts may still enter or leave: the NEC can differ from the sample's
        by a few tenths. The members refine on every fit row, on the support found.
    max_iter : int, default=500
        Iteration bound of the pooled stage.
    member_iter : int, default=60
        Iterations each member refines the pooled solution on its own bootstrap weights.
    tol : float, default=1e-4
        Stop when the relative change of the weights falls below this.
    early_stopping : bool, default=True
        Hold out ``validation_fraction`` of the rows and stop the pooled stage when their BCE
        stops improving for ``n_iter_no_change`` checks.
    validation_fraction : float, default=0.1
        Share of rows held out for early stopping.
    n_iter_no_change : int, default=10
        Patience of early stopping, in checks ten iterations apart.
    random_state : int or None, default=None
        Seed of the bootstrap weights and the early-stopping split.

    Attributes
    ----------
    coef_ : ndarray of shape (k, K, C)
        Weights per member on standardized concepts.
    intercept_ : ndarray of shape (k, C)
    mean_, scale_ : ndarray of shape (K,)
        The standardization of each concept over the fit rows.
    classes_ : ndarray of shape (C,)
    alpha_ : float
        The λ the student was fitted with (``alpha``, or the one the NEC search found).
    path_ : list of dict
        With ``nec``: each λ tried along the path with its NEC and its top-1 agreement with the
        teacher on the early-stopping rows (``fidelity``), for choosing a NEC.
    n_iter_ : int
    n_features_in_ : int
    """

    _parameter_constraints: dict = {
        "n_members": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "nec": [Interval(Real, 0, None, closed="neither"), None],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "member_iter": [Interval(Integral, 0, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_members: int = 20, *, alpha: float = 1e-4, nec: float | None = None,
                 max_iter: int = 500,
                 member_iter: int = 60, tol: float = 1e-4, early_stopping: bool = True,
                 validation_fraction: float = 0.1, n_iter_no_change: int = 10,
                 random_state: int | None = None):
        self.n_members = n_members
        self.alpha = alpha
        self.nec = nec
        self.max_iter = max_iter
        self.member_iter = member_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state

    # --- fitting ---------------------------------------------------------------------------

    def _targets(self, y) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected; "
                          "it is raveled", DataConversionWarning, stacklevel=3)
            y = y.ravel()
        if y.ndim == 2 and y.dtype.kind == "f":
            if not np.isfinite(y).all():
                raise InputError("y: teacher probabilities contain NaN or inf")
            if (y < 0).any() or (y > 1).any():
                raise InputError("y: teacher probabilities must lie in [0, 1]")
            self.classes_ = np.arange(y.shape[1])
            self._soft_ = True
            return y.astype(np.float32)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        self._soft_ = False
        return np.eye(len(self.classes_), dtype=np.float32)[codes]

    def _check_params(self) -> None:
        """Every parameter against ``_parameter_constraints``; the error names the parameter."""
        try:
            self._validate_params()
        except InvalidParameterError as err:
            raise InvalidStudentParameter(str(err)) from None

    def fit(self, X, y, sample_weight=None) -> ConceptStudent:
        """Fit the ensemble to a teacher.

        Parameters
        ----------
        X : array-like of shape (N, K)
            Concept scores.
        y : array-like of shape (N,) or (N, C)
            Class labels, or the teacher's probabilities (soft targets).
        sample_weight : array-like of shape (N,), default=None
            Non-negative row weights, multiplied into every member's bootstrap weights.

        Returns
        -------
        self : ConceptStudent
        """
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float32, multi_output=True,
                             y_numeric=False, reset=True)
        T = self._targets(y)
        if len(self.classes_) < 2 and not self._soft_:
            raise InputError("y: the student needs at least two classes, got one class")
        n = len(X)
        rng = np.random.default_rng(self.random_state)
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 1e-8, scale, 1.0).astype(np.float32)
        Tt = torch.from_numpy(T)
        base = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
        if base.shape != (n,) or not np.isfinite(base).all() or (base < 0).any():
            raise InputError("sample_weight: must be finite, non-negative and one per sample")
        if not base.any():
            raise InputError("sample_weight: all sample weights are zero")

        fit_idx, val_idx = np.arange(n), None
        if self.early_stopping and n >= 20:
            fit_idx, val_idx = holdout_split(n, self.validation_fraction, rng)
        weights = rng.poisson(1.0, size=(self.n_members, len(fit_idx))).astype(np.float32)
        weights *= base[fit_idx][None, :].astype(np.float32)
        weights /= np.maximum(weights.mean(axis=1, keepdims=True), 1e-8)
        sw = torch.from_numpy(weights)
        pooled = base[fit_idx][None, :].astype(np.float32)
        pooled = torch.from_numpy(pooled / max(float(pooled.mean()), 1e-8))
        K, C = X.shape[1], T.shape[1]
        Tf = Tt[fit_idx]
        prior = Tf.mean(0).clamp(1e-4, 1 - 1e-4)
        b0 = torch.log(prior / (1 - prior))[None, :]
        Xv, Tv = (self._standardize_rows(X, val_idx), Tt[val_idx]) if val_idx is not None else (None, None)

        # stage 1: the pooled problem, one "member" at a twentieth of the cost per iteration
        if self.nec is None:
            Xf = self._standardize_rows(X, fit_idx)
            step = _lipschitz(Xf, pooled)
            self.alpha_, self.path_ = float(self.alpha), []
            monitor = self._early_stopper(Xv, Tv) if val_idx is not None else None
            res = fista(Xf, Tf, pooled, torch.zeros(1, K, C), b0, self.alpha_, max_iter=self.max_iter,
                        tol=self.tol, monitor=monitor, step=step)
            W, b, n_iter = res.W, res.b, res.n_iter
            # stage 2: every member refines the pooled solution on its bootstrap weights
            self._step_ = _lipschitz(Xf, sw)
            W, b, member_iter = self._members_dense(Xf, Tf, sw, W, b)
        else:
            # λ for the target NEC along a warm-started path of pooled solves, on at most
            # PATH_ROWS rows; the members then share the support found there, so the ensemble has
            # that NEC, not the union of k.
            sub = _path_rows(len(fit_idx), rng)
            scaled = len(sub) < len(fit_idx)
            Xp = self._standardize_rows(X, fit_idx[sub])
            Tp = Tf[sub] if scaled else Tf
            pooled_p = pooled[:, sub] / pooled[:, sub].mean().clamp_min(1e-8) if scaled else pooled
            step = _lipschitz(Xp, pooled_p)
            check = (Xv, Tv) if val_idx is not None else (Xp, Tp)
            self.alpha_, W, b, self.path_ = _nec_path(Xp, Tp, pooled_p, b0, float(self.nec), step, check)
            n_iter = sum(int(r["n_iter"]) for r in self.path_)
            self._step_ = _lipschitz(Xp, sw[:, sub] if scaled else sw)
            del Xp, Tp
            rows = FitRows(X, fit_idx, self.mean_, self.scale_)
            if scaled:  # the pooled solution at that λ on every fit row: concepts may enter or leave
                W, b, it = _working_set_solve(rows, Tf, pooled, W, b, None, None, self.alpha_,
                                              FULL_ROWS_ITER, 1e-5, W[0] != 0, step)
                n_iter += it
            # stage 2 on every fit row, restricted to the support (off-support weights stay 0)
            W, b, member_iter = self._members_support(rows, Tf, sw, W, b)
        self.coef_ = W.numpy().copy()
        self.intercept_ = b.numpy().copy()
        self.n_iter_ = n_iter + member_iter
        self._fit_rows_ = fit_idx
        self._sample_weights_ = weights
        return self

    def _standardize_rows(self, X: np.ndarray, rows: np.ndarray) -> torch.Tensor:
        """Standardized ``X[rows]`` (only those rows: the whole X is never copied)."""
        return torch.from_numpy(((X[rows] - self.mean_) / self.scale_).astype(np.float32))

    def _members_dense(self, Xf: torch.Tensor, Tf: torch.Tensor, sw: torch.Tensor, W: torch.Tensor,
                       b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Stage 2 on every concept: the members start from the pooled (W, b) [1, K, C], [1, C]
        and take ``member_iter`` steps, a block of classes at a time."""
        k, (_, K, C) = self.n_members, W.shape
        W, b = W.expand(k, K, C).clone(), b.expand(k, C).clone()
        if self.member_iter == 0:
            return W, b, 0
        n_iter = 0
        for blk in _class_blocks(range(C), len(Xf), k):
            res = fista(Xf, Tf[:, blk], sw, W[:, :, blk], b[:, blk], self.alpha_,
                        max_iter=self.member_iter, tol=self.tol, step=self._step_)
            W[:, :, blk], b[:, blk] = res.W, res.b
            n_iter = max(n_iter, res.n_iter)
        return W, b, n_iter

    def _members_support(self, rows: FitRows, Tf: torch.Tensor, sw: torch.Tensor, W: torch.Tensor,
                         b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Stage 2 on the support of the pooled (W, b) [1, K, C], [1, C]: off-support weights
        are pinned to 0, so each class is solved on its own few columns (``SupportDesign``), a
        block of classes at a time."""
        k, (_, K, C) = self.n_members, W.shape
        if self.member_iter == 0:
            return W.expand(k, K, C).clone(), b.expand(k, C).clone(), 0
        support = W[0].abs() > ZERO  # [K, C]
        widths = support.sum(0)
        order = np.argsort(widths.numpy(), kind="stable").tolist()  # similar widths share a block
        coef, icpt = torch.zeros(k, K, C), torch.zeros(k, C)
        n_iter = 0
        for blk in _class_blocks(order, rows.n, k, widths):
            op = rows.design(support[:, blk])
            pad = (op.idx == K)[:, :, None]
            lo, hi = torch.where(pad, 0.0, -torch.inf), torch.where(pad, 0.0, torch.inf)
            Wb = op.gather(W[:, :, blk]).expand(-1, -1, k)
            bb = b[:, blk].T[:, None, :].expand(-1, -1, k)
            res = fista(op, Tf[:, blk], sw, Wb, bb, self.alpha_, lo, hi, max_iter=self.member_iter, tol=self.tol)
            coef[:, :, blk] = op.scatter(res.W)
            icpt[:, blk] = res.b[:, 0, :].T
            n_iter = max(n_iter, res.n_iter)
        return coef, icpt, n_iter

    def refit(self, X, y, lower: np.ndarray, upper: np.ndarray, class_indices: Sequence[int] | None = None,
              max_iter: int = 60, tol: float = 1e-3) -> ConceptStudent:
        """Re-solve some classes under box bounds on their weights, warm-started.

        Classes are independent one-vs-rest problems, so untouched classes keep their weights
        exactly; the same fit rows and bootstrap weights are reused, so an edit changes the
        solution only as far as the bounds demand.

        The solve runs on a working set (``_working_set_solve``): the concepts non-zero in some
        member or forced non-zero by the bounds, plus those that the optimality check on every
        concept lets in. The result is the all-concept solution at the cost of a few columns per
        class; X is neither standardized nor copied.

        Parameters
        ----------
        X : array-like of shape (N, K)
            The concept scores given to ``fit`` (same rows, same width).
        y : array-like
            The targets given to ``fit``.
        lower, upper : ndarray of shape (k, K, C)
            Box bounds on every weight (``-inf`` / ``inf`` where free).
        class_indices : sequence of int, default=None
            The classes to refit; all when None.
        max_iter : int, default=60
            Iteration bound of each solve.
        tol : float, default=1e-3

        Returns
        -------
        self : ConceptStudent
        """
        check_is_fitted(self, "coef_")
        n_fit = int(self._fit_rows_.max()) + 1 if len(self._fit_rows_) else 0
        if np.ndim(X) != 2 or np.shape(X)[1] != self.n_features_in_:
            raise InputError(f"X: refit needs the {self.n_features_in_} concepts the student was "
                             f"fitted on, got an array of shape {np.shape(X)}")
        if np.shape(X)[0] < n_fit:
            raise InputError(f"X: refit needs the rows given to fit (at least {n_fit}), got {np.shape(X)[0]}")
        if np.shape(lower) != self.coef_.shape or np.shape(upper) != self.coef_.shape:
            raise InputError(f"lower/upper: bounds must have the weights' shape {self.coef_.shape}")
        check_is_fitted(self, ("coef_", "intercept_", "mean_", "scale_"))
        X = validate_data(self, X, dtype=np.float32, reset=False)
        T = self._targets_like_fit(y)
        classes = list(range(len(self.classes_))) if class_indices is None else [int(c) for c in class_indices]
        if any(not 0 <= c < len(self.classes_) for c in classes):
            raise InputError(f"class_indices: {classes} outside 0..{len(self.classes_) - 1}")
        if not classes:
            return self
        rows = self._fit_rows_
        lo = torch.from_numpy(np.asarray(lower, np.float32)[:, :, classes])
        hi = torch.from_numpy(np.asarray(upper, np.float32)[:, :, classes])
        W = torch.from_numpy(self.coef_[:, :, classes])
        work = ((W != 0) | (lo > 0) | (hi < 0)).any(0)  # non-zero now, or forced non-zero
        W, b, n_iter = _working_set_solve(
            FitRows(X, rows, self.mean_, self.scale_), torch.from_numpy(T[np.ix_(rows, classes)]),
            torch.from_numpy(self._sample_weights_), W, torch.from_numpy(self.intercept_[:, classes]),
            lo, hi, self.alpha_, max_iter, tol, work, self._step_)
        self.coef_ = self.coef_.copy()
        self.intercept_ = self.intercept_.copy()
        self.coef_[:, :, classes] = W.numpy()
        self.intercept_[:, classes] = b.numpy()
        self.n_iter_ = n_iter
        return self

    def _targets_like_fit(self, y) -> np.ndarray:
        y = np.asarray(y)
        if self._soft_:
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise InputError("y: refit needs the teacher probabilities given to fit")
            return y.astype(np.float32)
        codes = np.searchsorted(self.classes_, y)
        return np.eye(len(self.classes_), dtype=np.float32)[codes]

    def _early_stopper(self, Xv: torch.Tensor, Tv: torch.Tensor):
        """Stops after ``n_iter_no_change`` checks (ten iterations apart) in which validation BCE
        did not improve; the solver keeps its last iterate, as SGDClassifier does.

        Restoring the lowest-BCE snapshot was tried and cost 1.4 points of fidelity: validation
        BCE bottoms out while top-1 agreement is still climbing.
        """
        patience = self.n_iter_no_change

        class Monitor:
            best_loss = math.inf
            bad = 0

            def __call__(self, W, b):
                P = _ensemble_proba(Xv, W, b)
                loss = float(torch.nn.functional.binary_cross_entropy(
                    P.clamp(_EPS, 1 - _EPS), Tv))
                if loss < self.best_loss - 1e-6:
                    self.best_loss, self.bad = loss, 0
                else:
                    self.bad += 1
                return self.bad >= patience

        return Monitor()

    # --- prediction ------------------------------------------------------------------------

    def _standardize(self, X) -> torch.Tensor:
        check_is_fitted(self, ("coef_", "intercept_", "mean_", "scale_"))
        X = validate_data(self, X, dtype=np.float32, reset=False)
        return torch.from_numpy(((X - self.mean_) / self.scale_).astype(np.float32))

    def predict_proba(self, X) -> np.ndarray:
        """Member-mean of sigmoid scores, normalized over classes.

        Parameters
        ----------
        X : array-like of shape (N, K)

        Returns
        -------
        proba : ndarray of shape (N, C)
        """
        P = self.class_scores(X)
        return P / np.maximum(P.sum(1, keepdims=True), 1e-12)

    def class_scores(self, X, classes: Sequence[int] | None = None) -> np.ndarray:
        """Member-mean sigmoid scores of some classes, before ``predict_proba`` normalizes them
        over classes: a caller that keeps scores per class recomputes only those an edit changed.

        Parameters
        ----------
        X : array-like of shape (N, K)
        classes : sequence of int, default=None
            Class indices; all classes when None.

        Returns
        -------
        scores : ndarray of shape (N, len(classes))
        """
        # float64 at prediction: a row's answer must not depend on which rows share its batch
        Xs = self._standardize(X).double()
        cols = np.arange(len(self.classes_)) if classes is None else np.asarray(classes, dtype=int)
        out = np.empty((len(Xs), len(cols)))
        for blk in _class_blocks(range(len(cols)), len(Xs), self.coef_.shape[0]):  # bounded memory
            c = cols[blk]
            out[:, blk] = _ensemble_proba(Xs, torch.from_numpy(self.coef_[:, :, c]).double(),
                                          torch.from_numpy(self.intercept_[:, c]).double()).numpy()
        return out

    def predict(self, X) -> np.ndarray:
        """The class with the highest ensemble probability, as an array of shape (N,)."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    def explain(self, X, class_index: int) -> np.ndarray:
        """Per-concept contributions to one class's score.

        Parameters
        ----------
        X : array-like of shape (N, K)
        class_index : int

        Returns
        -------
        contributions : ndarray of shape (N, K)
            ``w_mean * x_std``: the member-mean weight times the standardized score.
        """
        Xs = self._standardize(X).numpy()
        return Xs * self.coef_[:, :, class_index].mean(axis=0)[None, :]

    @property
    def weights_(self) -> np.ndarray:
        """Member-mean weights [K, C] on standardized concepts."""
        check_is_fitted(self, "coef_")
        return self.coef_.mean(axis=0)

    @property
    def spread_(self) -> np.ndarray:
        """Standard deviation of each weight across members [K, C]."""
        check_is_fitted(self, "coef_")
        return self.coef_.std(axis=0)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = False
        return tags


def effective_concepts(W: np.ndarray | torch.Tensor) -> float:
    """NEC: the mean number of non-zero weights per class of ``W`` [K, C] (or [1, K, C])."""
    W = W.numpy() if isinstance(W, torch.Tensor) else np.asarray(W)
    W = W.reshape(-1, W.shape[-1]) if W.ndim == 2 else W.reshape(-1, W.shape[-2], W.shape[-1]).mean(0)
    return float((np.abs(W) > ZERO).sum(0).mean())


def _nec_path(X: torch.Tensor, T: torch.Tensor, sw: torch.Tensor, b0: torch.Tensor, target: float,
              step: float, check: tuple[torch.Tensor, torch.Tensor], ratio: float = 0.6,
              path_iter: int = 50, refine_iter: int = 100, refine: int = 5,
              ) -> tuple[float, torch.Tensor, torch.Tensor, list[dict]]:
    """λ for a target NEC on the pooled problem, along a warm-started regularisation path.

    Starts at λ_max (the smallest λ at which every weight is zero: the largest gradient at W = 0)
    and lowers λ geometrically with short solves, each starting from the previous solution, until
    the NEC reaches the target; then bisects λ in log space between the last two points with
    longer solves, until the NEC is within half a concept of the target. Returns
    (λ, W, b, path) with the solution at λ to warm-start the full fit.
    """
    n, K = X.shape
    C = T.shape[1]
    P0 = torch.sigmoid(b0).expand(n, C)
    grad = (X * sw.T).T @ (P0 - T) / n
    lam_max = float(grad.abs().max()) * 1.0001
    W, b = torch.zeros(1, K, C), b0.clone()
    path: list[dict] = []

    def solve(lam: float, W: torch.Tensor, b: torch.Tensor, iters: int = path_iter):
        res = fista(X, T, sw, W, b, lam, max_iter=iters, tol=1e-5, step=step)
        nec = effective_concepts(res.W)
        agree = float((_ensemble_proba(check[0], res.W, res.b).argmax(1) == check[1].argmax(1)).float().mean())
        path.append({"alpha": lam, "nec": nec, "fidelity": agree, "n_iter": res.n_iter})
        return res.W, res.b, nec

    hi_lam, hi_W, hi_b = lam_max, W, b  # fewer concepts than the target
    lam = lam_max
    while True:
        lam *= ratio
        W, b, nec = solve(lam, hi_W, hi_b)
        if nec >= target or lam < lam_max * 1e-6:
            break
        hi_lam, hi_W, hi_b = lam, W, b
    lo_lam, lo_W, lo_b, lo_nec = lam, W, b, nec  # at least the target
    for _ in range(refine):
        if abs(lo_nec - target) <= 0.5:
            break
        mid = float(np.sqrt(hi_lam * lo_lam))
        W, b, nec = solve(mid, hi_W, hi_b, refine_iter)
        if nec >= target:
            lo_lam, lo_W, lo_b, lo_nec = mid, W, b, nec
        else:
            hi_lam, hi_W, hi_b = mid, W, b
    path.sort(key=lambda r: -r["alpha"])
    return lo_lam, lo_W, lo_b, path


def _path_rows(n_fit: int, rng: np.random.Generator) -> np.ndarray:
    """Positions among the fit rows that the NEC path runs on: all of them up to ``PATH_ROWS``,
    else a sorted uniform sample of ``PATH_ROWS``."""
    if n_fit <= PATH_ROWS:
        return np.arange(n_fit)
    return np.sort(rng.choice(n_fit, PATH_ROWS, replace=False))


def _ensemble_proba(Xs: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Member-mean sigmoid scores [N, C] (not normalized): what BCE compares with targets."""
    return torch.sigmoid(torch.einsum("nd,kdc->knc", Xs, W) + b[:, None, :]).mean(0)


_STATE_ARRAYS = ("coef_", "intercept_", "mean_", "scale_", "_fit_rows_", "_sample_weights_")


def student_to_arrays(student: ConceptStudent) -> tuple[dict[str, np.ndarray], dict]:
    """A fitted student as plain arrays plus a JSON-ready dict: no pickling anywhere."""
    check_is_fitted(student, "coef_")
    arrays = {name.strip("_"): np.asarray(getattr(student, name)) for name in _STATE_ARRAYS}
    meta = {"params": student.get_params(), "classes": student.classes_.tolist(),
            "soft": bool(student._soft_), "step": float(student._step_),
            "n_iter": int(student.n_iter_), "n_features_in": int(student.n_features_in_),
            "alpha": float(student.alpha_), "path": list(student.path_)}
    return arrays, meta


def student_from_arrays(arrays: dict[str, np.ndarray], meta: dict) -> ConceptStudent:
    student = ConceptStudent(**meta["params"])
    for name in _STATE_ARRAYS:
        setattr(student, name, np.array(arrays[name.strip("_")]))
    student.classes_ = np.asarray(meta["classes"])
    student._soft_ = bool(meta["soft"])
    student._step_ = float(meta["step"])
    student.n_iter_ = int(meta["n_iter"])
    student.n_features_in_ = int(meta["n_features_in"])
    student.alpha_ = float(meta.get("alpha", student.alpha))  # bundles before 0.2 had no search
    student.path_ = [{k: float(v) for k, v in r.items()} for r in meta.get("path", [])]
    return student
