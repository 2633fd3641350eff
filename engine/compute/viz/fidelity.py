"""FID, KID, IS (and precision/recall) for the viz jobs, through `engine.compute.inception` (torch-fidelity).

The `quality` result names them `fid`, `inception_kid` (+ `_std`), `inception_score` (+ `_std`),
`precision`, `recall` (its `fd`/`kid` are the classifier's); the eval records of training use the short
names of `inception_metrics` (fid, kid, is). The weights are the ones job.json names (`inception_weights`, resolved from the store's settings when the
job was submitted); nothing is downloaded. Without them the scores are `None` and `note` is one line saying
why and what fixes it. The real set's statistics are cached under `<runs_root>/.cache/inception`, keyed by a
fingerprint of the data and the weights, so a second job on the same data only embeds its samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from engine.compute.inception import (
    Inception,
    InceptionWeightsError,
    inception_cache_dir,
    inception_metrics,
    real_stats,
    weights_status,
)
from engine.compute.viz.job import Job
from engine.control.data_fingerprint import data_fingerprint

SKIPPED = "FID/IS skipped (KID too)"
# inception_metrics' name -> the quality result's
SCORE_KEYS = {"fid": "fid", "kid": "inception_kid", "kid_std": "inception_kid_std", "is": "inception_score",
              "is_std": "inception_score_std", "precision": "precision", "recall": "recall"}


def skipped(reason: str) -> dict[str, Any]:
    """The result's Inception fields when they cannot be computed: None, and one line saying why."""
    return {**dict.fromkeys(SCORE_KEYS.values()), "note": f"{SKIPPED}: {reason}"}


def real_test_fingerprint(cfg: Mapping[str, Any], n: int, shape: Sequence[int]) -> str:
    """The Inception cache key of the `n` test images of a run's data, as the run's models see them (`shape`
    [C, H, W] after conforming; `classes` kept). The `quality` job and training's evaluation both score
    against the test split and use this key, so they share one cache entry and their FIDs are comparable."""
    return data_fingerprint(str(cfg.get("dataset", "")), cfg.get("data_root"), "test", n,
                            shape=list(shape), classes=cfg.get("classes"))


def load_inception(job: Job) -> tuple[Inception | None, str | None]:
    """(the network, None), loaded once per job (report parts share it), or (None, why not)."""
    if "inception" in job.cache:
        return job.cache["inception"]
    path, uncalibrated, problem = weights_status(job.inception_weights, job.inception_uncalibrated)
    if job.inception_weights is None:
        loaded: tuple[Inception | None, str | None] = (
            None, "no Inception weights on the machine that queued the job (`ganmgr doctor` says how to get them)")
    elif problem or path is None:
        loaded = None, problem or "no Inception weights"
    else:
        try:
            loaded = Inception.load(path, uncalibrated, job.device), None
        except InceptionWeightsError as e:
            loaded = None, str(e)
    job.cache["inception"] = loaded
    return loaded


def inception_scores(job: Job, generated: torch.Tensor, real_images: Callable[[], torch.Tensor],
                     fingerprint: str) -> dict[str, Any]:
    """{"fid", "inception_kid", "inception_kid_std", "inception_score", "inception_score_std", "precision",
    "recall", "fid_n", "fid_n_real", "uncalibrated", "inception_weights", "note"} of `generated` (in [-1, 1]) against the real images
    `real_images()` returns (called only when the cache misses); the scores are None and `note` says why
    when the weights are missing or unusable."""
    inc, why = load_inception(job)
    if inc is None:
        return skipped(why or "no Inception weights")
    runs_root = Path(job.run_dir).parent
    try:
        real = real_stats(inc, fingerprint, real_images, inception_cache_dir(runs_root))
        m = inception_metrics(inc, generated, real)
    except (InceptionWeightsError, ValueError) as e:
        return skipped(" ".join(str(e).split())[:300])
    out = {name: m.get(k) for k, name in SCORE_KEYS.items()}
    mark = " (uncalibrated: not comparable with published numbers)" if m["uncalibrated"] else ""
    out.update({"fid_n": m["n"], "fid_n_real": m["n_real"], "uncalibrated": m["uncalibrated"],
                "inception_weights": m["weights"],
                "note": f"FID/KID/IS by torch-fidelity's InceptionV3, weights sha256 {m['weights']}...{mark}; "
                        f"{m['n']} generated vs {m['n_real']} real ({'cached' if real.cached else 'computed'})"})
    return out
