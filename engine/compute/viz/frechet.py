"""The Fréchet distance between two feature sets, each summarized as a Gaussian (mean, covariance).

    FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr( (S1 S2)^(1/2) )

FID computes this on Inception features; `quality` also computes it on a baseline classifier's pooled
features, which needs no download. The trace of the matrix square root needs no scipy: S1 S2 has the same
eigenvalues as R S2 R with R = S1^(1/2) (eigenvalues of AB and BA agree), and R S2 R is symmetric positive
semi-definite, so tr (S1 S2)^(1/2) = sum of sqrt(eigvalsh(R S2 R)) — two symmetric eigendecompositions in
float64, stable where the general (non-symmetric) sqrtm is not. Tiny negative eigenvalues from rounding
are clipped to zero.
"""

from __future__ import annotations

import numpy as np


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors as an [N, D] array, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_stats(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    r = _psd_sqrt(np.atleast_2d(s1))
    m = r @ np.atleast_2d(s2) @ r
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum())
    diff = np.atleast_1d(mu1) - np.atleast_1d(mu2)
    fd = float(diff @ diff + np.trace(np.atleast_2d(s1)) + np.trace(np.atleast_2d(s2)) - 2.0 * tr_sqrt)
    return max(fd, 0.0)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """FD between the Gaussians fitted to feature sets a [N, D] and b [M, D]."""
    mu1, s1 = gaussian_stats(a)
    mu2, s2 = gaussian_stats(b)
    return frechet_distance_from_stats(mu1, s1, mu2, s2)
