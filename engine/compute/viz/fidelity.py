"""FID and IS through torch-fidelity, only when its Inception weights are already on this machine.

Compute nodes are often offline: torch-fidelity would try to download the weights and hang or fail. So we
look before we leap: the package must be importable and its weights file must sit in torch hub's cache
(`$TORCH_HOME/hub/checkpoints/`, where torch-fidelity's own download puts it, e.g. after one run on an
online node). Otherwise the result carries `fid: null` and a note saying why it was skipped.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's inception-v3-compat
SKIPPED = "FID/IS skipped: no local Inception weights (torch-fidelity cache)"


def local_inception_weights() -> tuple[Path | None, str | None]:
    """(weights path, None) when FID/IS can run offline, else (None, the reason)."""
    if importlib.util.find_spec("torch_fidelity") is None:
        return None, "FID/IS skipped: no local Inception weights (torch-fidelity is not installed)"
    path = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS
    if not path.is_file():
        return None, SKIPPED
    return path, None


class _Uint8Images(torch.utils.data.Dataset):
    """What torch-fidelity reads: uint8 [3, H, W] tensors."""

    def __init__(self, images: torch.Tensor):
        x = images.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        self.x = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def fid_and_is(generated: torch.Tensor, real: torch.Tensor, device: torch.device) -> dict[str, Any]:
    """FID (generated vs real) and IS (generated); images in [-1, 1]. Never downloads."""
    weights, note = local_inception_weights()
    if weights is None:
        return {"fid": None, "inception_score": None, "inception_score_std": None, "note": note}
    try:
        import torch_fidelity

        m = torch_fidelity.calculate_metrics(
            input1=_Uint8Images(generated), input2=_Uint8Images(real), cuda=device.type == "cuda", fid=True,
            isc=True, verbose=False, cache=False, datasets_download=False,
            feature_extractor_weights_path=str(weights))
    except Exception as e:  # a broken install must not cost the offline scores
        return {"fid": None, "inception_score": None, "inception_score_std": None,
                "note": f"FID/IS failed: {type(e).__name__}: {' '.join(str(e).split())[:200]}"}
    return {"fid": float(m["frechet_inception_distance"]), "inception_score": float(m["inception_score_mean"]),
            "inception_score_std": float(m["inception_score_std"]), "note": f"FID/IS with {weights}"}
