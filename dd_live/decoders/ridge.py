"""Ridge regression from a flattened, time-binned window to a vector (closed form, NumPy at run time).

Training (:func:`fit_ridge`) is scikit-learn's ``RidgeCV``: the regularisation ``alpha`` is
picked on a log grid by cross-validation whose folds are split by image (``GroupKFold``), so a
repeat of a validation image is never in its fold's training part. The fitted weights are
stored as arrays; running the decoder is one matrix product (no scikit-learn needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dd_live.decoders.base import check_window, load_arrays, pooled_features, read_meta, save_arrays
from dd_live.errors import ConfigError

KIND = "ridge"
#: The alpha grid ``RidgeCV`` searches (features are standardised EEG samples), and its folds.
ALPHAS = tuple(float(a) for a in np.logspace(0, 7, 8))
CV_FOLDS = 3


def fit_ridge(features: np.ndarray, targets: np.ndarray, groups: Sequence[int],
              alphas: Sequence[float] = ALPHAS, n_folds: int = CV_FOLDS) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit ``targets ~ features @ weight + bias`` with ``RidgeCV``, folds grouped by image.

    Args:
        features: ``[n, n_features]``.
        targets: ``[n, dim]``.
        groups: ``[n]`` the image of each row (rows of one image stay in one fold).

    Returns:
        ``(weight [n_features, dim] float32, bias [dim] float32, alpha)``.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold

    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ConfigError(f"ridge needs at least 2 images to cross-validate, got {n_groups}")
    folds = list(GroupKFold(n_splits=min(n_folds, n_groups)).split(features, targets, groups))
    model = RidgeCV(alphas=list(alphas), cv=folds, fit_intercept=True)
    model.fit(np.asarray(features, np.float32), np.asarray(targets, np.float32))
    weight = np.asarray(model.coef_, np.float32).reshape(targets.shape[1], -1).T  # [F, D]
    bias = np.asarray(model.intercept_, np.float32).reshape(targets.shape[1])
    return np.ascontiguousarray(weight), bias, float(model.alpha_)


class RidgeDecoder:
    """``[n_channels, n_times]`` window -> ``[dim]`` vector: pooled features @ weight + bias.

    Args:
        weight: ``[n_channels * (n_times // pool), dim]``; bias: ``[dim]``.
        config: ``{"n_channels", "n_times", "pool", "dim", "alpha"}``.
    """

    kind = KIND

    def __init__(self, weight: np.ndarray, bias: np.ndarray, config: dict[str, Any]) -> None:
        self.weight = np.ascontiguousarray(weight, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.config = dict(config)
        self.n_channels, self.n_times = int(config["n_channels"]), int(config["n_times"])
        self.pool, self.dim = int(config["pool"]), int(config["dim"])
        n_features = self.n_channels * (self.n_times // self.pool)
        if self.weight.shape != (n_features, self.dim) or self.bias.shape != (self.dim,):
            raise ConfigError(f"ridge weights {list(self.weight.shape)} / bias {list(self.bias.shape)} "
                              f"do not fit {self.n_channels} ch x {self.n_times} (bins of {self.pool}) "
                              f"-> {self.dim}")

    @classmethod
    def fit(cls, eeg: np.ndarray, targets: np.ndarray, groups: Sequence[int], pool: int,
            alphas: Sequence[float] = ALPHAS, n_folds: int = CV_FOLDS) -> RidgeDecoder:
        """Fit on windows ``eeg [n, n_channels, n_times]`` and ``targets [n, dim]``."""
        weight, bias, alpha = fit_ridge(pooled_features(eeg, pool), targets, groups, alphas, n_folds)
        return cls(weight, bias, {"n_channels": int(eeg.shape[1]), "n_times": int(eeg.shape[2]),
                                  "pool": int(pool), "dim": int(targets.shape[1]), "alpha": alpha})

    @property
    def n_parameters(self) -> int:
        return int(self.weight.size + self.bias.size)

    def predict(self, eeg: np.ndarray) -> np.ndarray:
        """``[n, n_channels, n_times]`` -> ``[n, dim]`` float32 (or one window -> ``[dim]``)."""
        return pooled_features(eeg, self.pool) @ self.weight + self.bias

    def encode(self, eeg: np.ndarray) -> np.ndarray:
        """One window ``[n_channels, n_times]`` -> ``[dim]`` float32."""
        return self.predict(check_window(eeg, self.n_channels, self.n_times))

    def save(self, folder: str | Path) -> Path:
        return save_arrays(folder, KIND, self.config, {"weight": self.weight, "bias": self.bias})

    @classmethod
    def load(cls, folder: str | Path) -> RidgeDecoder:
        _, config = read_meta(folder, (KIND,))
        arrays = load_arrays(folder, {"weight", "bias"})
        return cls(arrays["weight"], arrays["bias"], config)

    def __repr__(self) -> str:
        return (f"<RidgeDecoder: {self.n_channels} ch x {self.n_times} (bins of {self.pool}) -> "
                f"{self.dim} | alpha {self.config.get('alpha', float('nan')):.3g}>")
