"""Which Inception weights FID/KID/IS use, and whether they are the real ones: torch-free, so the CLI, the
TUI's `doctor` and the enqueue path can answer without importing torch.

Compute nodes are offline and every GAN metrics library downloads its Inception weights at run time, so
ganmgr only ever reads a local file: the one named by `ganmgr settings --inception-weights PATH`, else the
file torch-fidelity's own download leaves in torch hub's cache. The file's name carries the first 8 hex
digits of its sha256 (torch hub's convention); a file whose hash does not start with them is not the
network FID is defined on, so its numbers are not comparable with anyone's. It is refused, unless the user
allows it (`--allow-uncalibrated`), and then every number computed with it says `uncalibrated`.

Loadability (torch's weights-only unpickler, the right tensor shapes) is checked in a child process,
`python -m engine.compute.inception_check PATH` (`engine.control.inception_enqueue.check_loadable`), the way
`fork`/`resume` check a checkpoint. This module imports nothing of the store: the worker imports it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

WEIGHTS_NAME = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's inception-v3-compat
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_NAME}"
SHA256_PREFIX = "6726825d"
MIN_BYTES = 1 << 20  # the real file is about 96 MB; anything under 1 MiB is a stub or a cut download
SETTING_PATH = "inception_weights"  # store setting: an absolute file path, or null (torch hub's cache)
SETTING_ALLOW = "inception_allow_uncalibrated"  # store setting: bool
# what the user runs on a node with internet access: downloads the file into the current folder and checks
# its sha256 prefix (download only: nothing is unpickled, unlike load_state_dict_from_url's default)
FETCH_COMMAND = ("python -c \"import torch; torch.hub.download_url_to_file('" + WEIGHTS_URL + "', '"
                 + WEIGHTS_NAME + "', hash_prefix='" + SHA256_PREFIX + "')\"")

_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def hub_weights_path() -> Path:
    """Where torch-fidelity's download puts the file: `torch.hub.get_dir()/checkpoints/`, computed the way
    torch does ($TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch) without importing torch."""
    torch_home = os.getenv("TORCH_HOME") or os.path.join(os.getenv("XDG_CACHE_HOME") or "~/.cache", "torch")
    return Path(os.path.expanduser(torch_home)) / "hub" / "checkpoints" / WEIGHTS_NAME


def fix_hint() -> str:
    """The one thing to do on a node with internet access, then how to bring the file here."""
    return (f"on a node with internet access run: {FETCH_COMMAND} ; copy the file it writes here (scp) and run "
            f"`ganmgr settings --inception-weights PATH` (or put it at {hub_weights_path()})")


def sha256_file(path: Path) -> str:
    """The file's sha256 (hex), cached per process by (path, size, mtime): ~0.1 s for the 96 MB file."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def file_problem(path: Path, allow_uncalibrated: bool) -> tuple[bool, str | None]:
    """(uncalibrated, None) when the file may be used, else (False, one line naming the file and what is
    wrong). Checks existence, size and hash; not loadability (that needs torch: `check_loadable`)."""
    try:
        if not path.is_file():
            return False, f"Inception weights {path}: no such file"
        size = path.stat().st_size
        if size < MIN_BYTES:
            return False, (f"Inception weights {path}: {size} bytes, truncated (the real file is about 96 MB; "
                           f"its sha256 starts with {SHA256_PREFIX})")
        digest = sha256_file(path)
    except OSError as e:
        return False, f"Inception weights {path}: cannot read it ({e.strerror or e})"
    if digest.startswith(SHA256_PREFIX):
        return False, None
    if allow_uncalibrated:
        return True, None
    return False, (f"Inception weights {path}: sha256 {digest[:8]}... is not {SHA256_PREFIX}... (not the file FID "
                   f"is defined on; --allow-uncalibrated accepts it, its numbers marked uncalibrated)")


def weights_status(path: str | Path | None, allow_uncalibrated: bool) -> tuple[str | None, bool, str | None]:
    """(resolved absolute path or None, uncalibrated, reason it cannot be used or None).

    `path` None means the file in torch hub's cache (`hub_weights_path()`), if it is there. Cheap: the hash
    is cached by (path, size, mtime) within the process. Does not load the file."""
    target = Path(os.path.expanduser(str(path))) if path else hub_weights_path()
    if not path and not target.is_file():
        return None, False, (f"no Inception weights: none set (`ganmgr settings --inception-weights PATH`) "
                             f"and none in torch hub's cache ({target})")
    uncalibrated, problem = file_problem(target, allow_uncalibrated)
    if problem:
        return None, False, problem
    return str(target.resolve()), uncalibrated, None


def config_fields(path: str | None, allow_uncalibrated: bool) -> dict[str, object]:
    """The run config's / job.json's `inception_weights` and `inception_uncalibrated`, resolved at enqueue
    from the store's settings: the worker cannot read the store, so the file travels by name."""
    resolved, uncalibrated, _ = weights_status(path, allow_uncalibrated)
    return {"inception_weights": resolved, "inception_uncalibrated": bool(uncalibrated and resolved)}
