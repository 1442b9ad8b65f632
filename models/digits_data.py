"""The digits split every example model uses (sklearn's shipped 8×8 digits, fixed seed)."""

from __future__ import annotations

import numpy as np

SEED = 0
TEST_FRACTION = 0.3


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test); x is [N, 1, 8, 8] float32 in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=TEST_FRACTION, random_state=SEED,
                                              stratify=y)
    return x_tr, y_tr, x_te, y_te
