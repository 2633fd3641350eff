"""`python -m bench.inception_fid [--n 10000] [--n-real 10000] [--device cuda] [--weights PATH] [--repeats 2]`:
what one FID/KID/IS evaluation costs (engine/compute/inception.py through torch-fidelity).

Prints one JSON line per phase, then a summary line:
- `load`: the weights read weights-only and the network built on the device;
- `real_stats_miss`: the real set embedded and its statistics written to the cache (once per data set);
- `real_stats_hit`: the same call answered from the cache;
- `features`: n generated images embedded (the part that scales with n);
- `fid`, `kid`, `is`, `prc`: torch-fidelity's metric functions on those features (FID's eigenvalue
  decomposition of a 2048x2048 product runs on the CPU whatever n is);
- `evaluation`: one whole `inception_metrics` call (features + every metric), repeated `--repeats` times.

The images are uniform noise at 32x32 (the cost does not depend on what they show: every image is resized
to 299x299). Without `--weights` a randomly initialised network in torch-fidelity's format is used: the same
layers, so the same cost, and its numbers are uncalibrated (meaningless as quality, fine for timing).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from engine.compute.inception import (
    Inception,
    _InceptionV3,
    inception_metrics,
    real_stats,
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(name: str, fn, device: torch.device, **extra):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    seconds = time.perf_counter() - t0
    print(json.dumps({"phase": name, "seconds": round(seconds, 3), **extra}), flush=True)
    return out, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="generated images per evaluation")
    ap.add_argument("--n-real", type=int, default=10_000, help="real images whose statistics are cached")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--weights", help="the real weights file (default: a random one in its format)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(args.weights) if args.weights else Path(tmp) / "random.pth"
        if not args.weights:
            torch.manual_seed(0)
            torch.save(_InceptionV3(None).state_dict(), weights)
        inc, _ = timed("load", lambda: Inception.load(weights, True, device), device)
        g = torch.Generator().manual_seed(1)
        real = torch.rand(args.n_real, 3, 32, 32, generator=g) * 2 - 1
        fake = (torch.rand(args.n, 3, 32, 32, generator=g) * 2 - 1).to(device)
        cache = Path(tmp) / "cache"
        stats, miss = timed("real_stats_miss", lambda: real_stats(inc, "bench", lambda: real, cache), device,
                            n_real=args.n_real)
        _, hit = timed("real_stats_hit", lambda: real_stats(inc, "bench", lambda: real, cache), device)
        (pool, logits), feat = timed("features", lambda: inc.features(fake), device, n=args.n)

        from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
        from torch_fidelity.metric_isc import isc_features_to_metric
        from torch_fidelity.metric_kid import kid_features_to_metric
        from torch_fidelity.metric_prc import prc_features_to_metric

        real_feats = torch.from_numpy(stats.sample).double()
        timed("fid", lambda: fid_statistics_to_metric(fid_features_to_statistics(pool),
                                                      {"mu": stats.mu, "sigma": stats.sigma}, False), device)
        k = min(1000, args.n, real_feats.shape[0])
        timed("kid", lambda: kid_features_to_metric(pool, real_feats, kid_subsets=100, kid_subset_size=k,
                                                    verbose=False), device, subset=k)
        timed("is", lambda: isc_features_to_metric(logits, splits=10), device)
        m = min(args.n, real_feats.shape[0])
        timed("prc", lambda: prc_features_to_metric(pool[:m].float(), real_feats[:m].float(), verbose=False),
              device, n=m)
        whole = []
        for i in range(args.repeats):
            _, s = timed("evaluation", lambda: inception_metrics(inc, fake, stats), device, n=args.n, repeat=i)
            whole.append(s)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(json.dumps({"summary": True, "device": name, "n": args.n, "n_real": args.n_real,
                      "evaluation_s": round(min(whole), 3), "features_s": round(feat, 3),
                      "features_share": round(feat / min(whole), 3), "real_stats_miss_s": round(miss, 3),
                      "real_stats_hit_s": round(hit, 3), "images_per_s": round(args.n / feat, 1),
                      "calibrated": bool(args.weights)}), flush=True)


if __name__ == "__main__":
    main()
