"""The one way Infi holds rows out: a seeded permutation, its first share for validation."""

from __future__ import annotations

import numpy as np


def holdout_split(n: int, share: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held_out) row indices in permutation order; at least one row is held out.

    The student's early stopping, the session's held-out split and PRG's validation split all
    use it, so a seed means the same split everywhere.
    """
    perm = rng.permutation(n)
    n_held = max(1, int(round(share * n)))
    return perm[n_held:], perm[:n_held]
