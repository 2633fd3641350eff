"""FID, KID, IS (and precision/recall) through torch-fidelity, from a local Inception weights file only.

torch-fidelity is the reference implementation; we use its network (`FeatureExtractorInceptionV3`, the
TF-compatible InceptionV3 with its TF1 resize) and its metric functions (`metric_fid`, `metric_kid`,
`metric_isc`, `metric_prc`) as they are. Two things we do differently, on purpose:
- the weights are read with `torch.load(..., weights_only=True)` by us (torch-fidelity's own loader uses
  `weights_only=False`, which would execute a pickle), then put into torch-fidelity's layer layout with a
  strict `load_state_dict`; nothing is ever downloaded;
- the real set's statistics are cached on disk by a fingerprint of the data and the weights' hash, so an
  evaluation during training only generates and embeds its own samples.

A file whose sha256 does not start with 6726825d (the name's promise) is not the network FID is defined on:
refused, unless allowed, and then every result says `"uncalibrated": true`.

Callers (the worker's evaluation, the `quality` viz job):

    path, uncal, why = weights_status(cfg["inception_weights"], cfg["inception_uncalibrated"])
    inc = Inception.load(path, uncal, device)                        # once per process
    real = real_stats(inc, fingerprint, lambda: real_images, cache_dir)
    metrics = inception_metrics(inc, generated_images, real)          # images in [-1, 1]
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import (
    BasicConv2d,
    FeatureExtractorInceptionV3,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionD,
    InceptionE_1,
    InceptionE_2,
)
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from engine.control.inception_weights import file_problem, sha256_file
from engine.control.inception_weights import weights_status as _weights_status
from engine.control.paths import write_bytes_atomic

__all__ = ["FEATURES", "Inception", "InceptionWeightsError", "RealStats", "inception_cache_dir",
           "inception_metrics", "real_stats", "weights_status"]

FEATURES = ("2048", "logits_unbiased")  # FID/KID/PRC features and IS logits, as torch-fidelity picks them
KID_SUBSETS = 100  # torch-fidelity's defaults: 100 subsets of 1000 (capped at n), cubic polynomial kernel
KID_SUBSET_SIZE = 1000
IS_SPLITS = 10
PRC_NEIGHBORHOOD = 3
RNG_SEED = 2020  # torch-fidelity's seed for KID subsets and the IS shuffle: numpy's own, not the training RNG
REAL_SAMPLE_MAX = 10_000  # real features kept for KID and precision/recall (float32: 82 MB at most)
CACHE_VERSION = 1


class InceptionWeightsError(Exception):
    """The weights cannot be used: one line naming the file and what is wrong."""


def weights_status(path: str | None, allow_uncalibrated: bool) -> tuple[str | None, bool, str | None]:
    """(resolved path or None, uncalibrated, reason-if-unusable). `path` None -> torch hub's cache file
    weights-inception-2015-12-05-6726825d.pth if present. Cheap: no torch, the sha256 is cached per process
    by (path, size, mtime). Does not load the file (`Inception.load` does). Same as
    `engine.control.inception_weights.weights_status`, which torch-free callers use."""
    return _weights_status(path, allow_uncalibrated)


def inception_cache_dir(runs_root: Path) -> Path:
    """Where real-set statistics are cached: `<runs_root>/.cache/inception` (a run folder's parent is its
    runs root; the cache is shared by every run and viz job on the same data)."""
    return Path(runs_root) / ".cache" / "inception"


class _InceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's InceptionV3 (its forward, its TF1 resize), built without its loader: the layer layout
    of `FeatureExtractorInceptionV3.__init__`, then our weights-only state dict, loaded strictly (a file
    with other names or shapes is refused, so a change of layout upstream cannot go unnoticed)."""

    def __init__(self, state_dict: dict[str, torch.Tensor] | None):
        FeatureExtractorBase.__init__(self, "inception-v3-compat", list(FEATURES))
        self.feature_extractor_internal_dtype = torch.float32
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.MaxPool_1 = torch.nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.MaxPool_2 = torch.nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE_1(1280)
        self.Mixed_7c = InceptionE_2(2048)
        self.AvgPool = torch.nn.AdaptiveAvgPool2d(output_size=(1, 1))
        self.fc = torch.nn.Linear(2048, 1008)
        if state_dict is not None:  # None: torch's random init (tests build an uncalibrated file from it)
            self.load_state_dict(state_dict)  # strict
        self.requires_grad_(False)
        self.eval()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors, read with torch's weights-only unpickler; InceptionWeightsError (one line) if it is
    not a readable torch file of tensors (truncated, corrupt, a pickle that would run code)."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a bad file (UnpicklingError, RuntimeError, EOFError)
        words = " ".join(str(e).split())
        if "Weights only load failed" in words or "Unsupported global" in words:
            words = "it holds Python objects beyond tensors (refused by torch's weights-only loader)"
        elif "central directory" in words or "zip archive" in words or isinstance(e, EOFError):
            words = "truncated or corrupt (not a complete torch file)"
        raise InceptionWeightsError(f"Inception weights {path}: cannot be loaded: {words[:200]}") from None
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InceptionWeightsError(f"Inception weights {path}: not a state dict of tensors "
                                    f"(torch-fidelity's weights-inception-2015-12-05 format)")
    return sd


def build_network(sd: dict[str, torch.Tensor], path: Path) -> _InceptionV3:
    """torch-fidelity's network holding `sd`; InceptionWeightsError if names or shapes do not fit."""
    try:
        return _InceptionV3(sd)
    except RuntimeError as e:
        first = " ".join(str(e).split())[:200]
        raise InceptionWeightsError(f"Inception weights {path}: not torch-fidelity's InceptionV3 "
                                    f"({first})") from None


@dataclass
class Inception:
    """The loaded network on a device; load once per process (~1 s on CPU, 96 MB)."""

    net: _InceptionV3
    path: Path
    sha256: str
    uncalibrated: bool
    device: torch.device

    @classmethod
    def load(cls, path: str | Path, uncalibrated: bool, device: torch.device | str) -> Inception:
        """Check the file again (it may have changed since enqueue: size, sha256; `uncalibrated` allows a
        file that is not the real one), read it weights-only and build the network on `device`.
        Raises InceptionWeightsError with one line. `uncalibrated` of the result is the file's truth: the
        real file gives False even when allowed."""
        p = Path(path)
        flagged, problem = file_problem(p, bool(uncalibrated))
        if problem:
            raise InceptionWeightsError(problem)
        net = build_network(read_state_dict(p), p).to(torch.device(device))
        return cls(net=net, path=p, sha256=sha256_file(p), uncalibrated=flagged, device=torch.device(device))

    @property
    def weights_id(self) -> str:
        """The sha256 prefix that names these weights in results and cache keys."""
        return self.sha256[:12]

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(pool_2048 [N, 2048], logits_unbiased [N, 1008]), both float64 on the CPU.

        `images`: float in [-1, 1], [N, 1 or 3, H, W], any size, on any device: quantised to uint8 as a saved
        PNG would be, grey repeated to RGB, resized to 299 by torch-fidelity's TF1-compatible bilinear. The
        logits are the unbiased ones torch-fidelity's IS uses. Consumes no random numbers (evaluation during
        training leaves the training RNG alone) and runs with autocast off (fp32, as the reference)."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must be [N, 1 or 3, H, W], not {list(images.shape)}")
        step = batch or (200 if self.device.type == "cuda" else 16)
        pools, logits = [], []
        with torch.autocast(self.device.type, enabled=False):
            for i in range(0, images.shape[0], step):
                x = images[i:i + step].to(self.device, non_blocking=True).float()
                x = x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
                if x.shape[1] == 1:
                    x = x.expand(-1, 3, -1, -1)
                pool, logit = self.net(x.contiguous())
                pools.append(pool.double().cpu())
                logits.append(logit.double().cpu())
        if not pools:
            return torch.zeros(0, 2048, dtype=torch.float64), torch.zeros(0, 1008, dtype=torch.float64)
        return torch.cat(pools), torch.cat(logits)


@dataclass
class RealStats:
    """The real set as FID/KID/PRC need it: mean and covariance of all n pool features (float64), and up to
    REAL_SAMPLE_MAX of the features themselves (float32, a seeded random subset) for KID and PRC."""

    mu: np.ndarray
    sigma: np.ndarray
    sample: np.ndarray
    n: int
    key: str
    cached: bool  # read from the cache (real_images() was not called)


def _cache_path(cache_dir: Path, fingerprint: str, inc: Inception) -> Path:
    safe = "".join(c for c in fingerprint if c.isalnum() or c in "-_")[:80] or "data"
    return Path(cache_dir) / f"{safe}-{inc.weights_id}-v{CACHE_VERSION}.npz"


def _read_cache(path: Path) -> RealStats | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            mu, sigma, sample, n = z["mu"], z["sigma"], z["sample"], int(z["n"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None  # absent or damaged: computed again
    if mu.shape != (2048,) or sigma.shape != (2048, 2048) or sample.ndim != 2 or sample.shape[1] != 2048:
        return None
    return RealStats(mu=mu, sigma=sigma, sample=sample, n=n, key=path.stem, cached=True)


_CACHE_LOCK = threading.Lock()


def real_stats(inc: Inception, fingerprint: str, real_images: Callable[[], torch.Tensor],
               cache_dir: Path) -> RealStats:
    """mu, sigma (and a bounded feature sample for KID/PRC) of the real set, cached on disk under `cache_dir`
    (file 600, folders 700) keyed by `fingerprint` (engine.control.data_fingerprint: source, split, n,
    preprocessing) + the weights' sha256; a second call with the same key does not call `real_images()`.
    `real_images()` returns the real images in [-1, 1] ([N, 1 or 3, H, W], N >= 2)."""
    path = _cache_path(cache_dir, fingerprint, inc)
    with _CACHE_LOCK:
        hit = _read_cache(path)
        if hit is not None:
            return hit
        images = real_images()
        if images.shape[0] < 2:
            raise ValueError(f"the real set has {images.shape[0]} images; FID needs at least 2")
        pool, _ = inc.features(images)
        stats = fid_features_to_statistics(pool)
        rng = np.random.RandomState(RNG_SEED)
        keep = rng.permutation(pool.shape[0])[:REAL_SAMPLE_MAX]
        sample = pool.numpy()[keep].astype(np.float32)
        n = int(pool.shape[0])
        os.makedirs(path.parent, mode=0o700, exist_ok=True)
        buf = io.BytesIO()
        np.savez(buf, mu=stats["mu"], sigma=stats["sigma"], sample=sample, n=np.int64(n))
        write_bytes_atomic(path, buf.getbuffer())  # mkstemp: 600
        return RealStats(mu=stats["mu"], sigma=stats["sigma"], sample=sample, n=n, key=path.stem, cached=False)


def inception_metrics(inc: Inception, generated: torch.Tensor, real: RealStats) -> dict[str, Any]:
    """FID, KID, IS and precision/recall of `generated` (in [-1, 1], n >= 2) against `real`, by torch-fidelity:

    {"fid", "kid", "kid_std", "is", "is_std", "precision", "recall", "n", "n_real", "kid_subset_size",
     "is_splits", "uncalibrated": bool, "weights": sha256 prefix}.
    KID is the unbiased MMD² estimator averaged over KID_SUBSETS random subsets (size min(1000, n, real
    sample)), mean ± std, so it is honest at small n; IS uses min(10, n // 2) splits; precision/recall
    (k = 3) compare the n generated with n real features (absent below 4 of either)."""
    n = int(generated.shape[0])
    if n < 2:
        raise ValueError(f"FID needs at least 2 generated images, not {n}")
    pool, logits = inc.features(generated)
    fid = fid_statistics_to_metric(fid_features_to_statistics(pool), {"mu": real.mu, "sigma": real.sigma},
                                   verbose=False)["frechet_inception_distance"]
    real_feats = torch.from_numpy(real.sample.astype(np.float64))
    subset = min(KID_SUBSET_SIZE, n, real_feats.shape[0])
    # float32 features, as torch-fidelity's extractor hands them to its KID (and half the CPU time of float64)
    kid = kid_features_to_metric(pool.float(), real_feats.float(), kid_subsets=KID_SUBSETS,
                                 kid_subset_size=subset, rng_seed=RNG_SEED, verbose=False)
    splits = max(1, min(IS_SPLITS, n // 2))
    isc = isc_features_to_metric(logits, splits=splits, shuffle=True, rng_seed=RNG_SEED)
    out: dict[str, Any] = {
        "fid": float(fid), "kid": kid["kernel_inception_distance_mean"],
        "kid_std": kid["kernel_inception_distance_std"], "is": isc["inception_score_mean"],
        "is_std": isc["inception_score_std"], "n": n, "n_real": real.n, "kid_subset_size": subset,
        "is_splits": splits, "uncalibrated": inc.uncalibrated, "weights": inc.weights_id,
    }
    m = min(n, real_feats.shape[0])
    if m > PRC_NEIGHBORHOOD:
        dev = inc.device  # pairwise distances of n x n features: on the accelerator when there is one
        prc = prc_features_to_metric(pool[:m].to(dev, torch.float32), real_feats[:m].to(dev, torch.float32),
                                     prc_neighborhood=PRC_NEIGHBORHOOD, prc_batch_size=10_000, save_cpu_ram=False,
                                     verbose=False)
        out["precision"], out["recall"] = float(prc["precision"]), float(prc["recall"])
    return out
