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


# --------------------------------------------------------------------------- the kernel distance (KID)

KID_SUBSETS = 100  # torch-fidelity's defaults: 100 random subsets of 1000 (capped at the sets' sizes)
KID_SUBSET_SIZE = 1000
KID_SEED = 2020  # numpy's own RandomState inside torch-fidelity: never the training RNG


def kernel_distance(a: np.ndarray, b: np.ndarray, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
                    seed: int = KID_SEED) -> tuple[float, float]:
    """KID between feature sets a [N, D] and b [M, D]: (mean, std) over `subsets` random subsets of
    min(subset_size, N, M) of each.

    Each subset's value is the unbiased MMD² estimate with the cubic polynomial kernel
    k(x, y) = (x·y / D + 1)³ (Binkowski et al. 2018), computed by torch-fidelity's `kid_features_to_metric`,
    the reference implementation. Unbiased: its expectation is 0 for two samples of one distribution at any
    n (it can dip below 0), which is why it is honest at small n where FD is biased upward."""
    import torch
    from torch_fidelity.metric_kid import kid_features_to_metric

    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need two [N, D] feature arrays of one D, got shapes {x.shape} and {y.shape}")
    size = min(subset_size, x.shape[0], y.shape[0])
    if size < 2:
        raise ValueError(f"KID needs at least 2 feature vectors in each set, got {x.shape[0]} and {y.shape[0]}")
    m = kid_features_to_metric(torch.from_numpy(x), torch.from_numpy(y), kid_subsets=subsets,
                               kid_subset_size=size, rng_seed=seed, verbose=False)
    return float(m["kernel_inception_distance_mean"]), float(m["kernel_inception_distance_std"])
