"""Visualization job kinds and their parameters, parsed and validated without torch.

A visualization job runs one kind (`perturb`, `max_class`, ...) on a saved checkpoint of a run. Its
parameters are declared here with the course's defaults (course text 002, Part 2) using the same `Field`
machinery as the recipe configs, so the CLI (`--set key=value`), the TUI's launcher form and the worker
(`python -m engine.compute.viz JOB_DIR`) accept and refuse exactly the same values, each refusal one line.

The job contract (what a caller writes, what the worker reads) is `job.json` in the job's folder:

    {"kind": K, "params": {...resolved...}, "run_dir": ABS, "checkpoint": "checkpoints/final.pt",
     "baseline_run_dir": ABS | null, "baseline_checkpoint": "checkpoints/final.pt" | null}

`make_job` builds it from loose input and `validate_job` checks one read back; both raise `VizSpecError`.
The file itself is written and read by engine/control/run_dir.py (`write_job`, `read_job`).

Which checkpoint a job (or a fork) reads is one rule, here: `checkpoint_choice` turns the user's
`--checkpoint best|last|final|epoch:N` (or `--epoch N`, its synonym) into a file name, `checkpoint_path` keeps
it inside the run folder, `available_checkpoints` lists what a run has and `missing_checkpoint_message`
says so in one line. The CLI (`viz`, `report`, `fork`) and the TUI's launcher all go through them.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.control.config import DEVICE_RE, Field, check_field, parse_assignments, parse_value
from engine.control.errors import ConfigError
from engine.control.paths import METRICS_FILE, PathError, ensure_inside
from engine.control.records import BEST_WHAT, last_artifact

# The conv layers the course visualizes (002, "Synthetic Features Maximizing Features at Various Layers")
FEATURE_LAYERS: tuple[int, ...] = (2, 3, 4, 6, 8)
# (healthy.pt: kept by a health rule, engine/compute/health.py; reached by `fork --from-healthy`)
CHECKPOINT_RE = re.compile(r"^checkpoints/(final|last|best|healthy|epoch_\d{3,})\.pt$")
FINAL_CHECKPOINT = "checkpoints/final.pt"
# `--checkpoint` takes these names or epoch:N; best.pt is kept by the run's best_metric (config)
NAMED_CHECKPOINTS = ("best", "last", "final")
EPOCH_CHOICE_RE = re.compile(r"^epoch:([1-9]\d{0,8})$")
CHOICE_WORDS = "best, last, final or epoch:N"
JOB_DIR_RE = re.compile(r"^[1-9]\d*-[a-z_]+$")
EPOCH_CKPT_RE = re.compile(r"^epoch_(\d+)\.pt$")


class VizSpecError(ConfigError):
    """A bad job kind, parameter or job file; the message is one line naming the problem."""


def _check_device(v: str) -> str | None:
    return None if DEVICE_RE.match(v) else "must be auto, cpu, cuda or cuda:N"


def _check_layer(v: int) -> str | None:
    if v in FEATURE_LAYERS:
        return None
    return f"is not a visualized layer; choose one of {', '.join(map(str, FEATURE_LAYERS))}"


def _check_layers(v: list[int]) -> str | None:
    if not v:
        return "needs at least one layer"
    bad = [x for x in v if x not in FEATURE_LAYERS]
    if bad:
        return f"has {bad[0]}, not a visualized layer; choose from {', '.join(map(str, FEATURE_LAYERS))}"
    return None


def _check_epochs(v: list[int]) -> str | None:
    return "must be strictly increasing" if list(v) != sorted(set(v)) else None


# --- the parameters, one Field per key (shared names mean the same thing in every kind) --------------

DEVICE = Field("device", "str", "auto", "run", "auto | cpu | cuda | cuda:N (auto: CUDA when present)",
               check=_check_device)
THREADS = Field("threads", "int", 0, "run", "CPU threads for torch (0: torch's default)", min=0, max=1024)
BATCH_SIZE = Field("batch_size", "int", 128, "perturb",
                   "images in the test batch (the first of the test split, in order); the first 100 are drawn",
                   min=1, max=4096)
GAIN = Field("gain", "float", 8.0, "perturb",
             "sign-step size in grey levels: every pixel moves gain/127.5 in [-1, 1] (course: 8)",
             min=0.0, max=255.0)
LR = Field("lr", "float", 0.1, "ascent", "step size of the gradient ascent on the image (course: 0.1)",
           min=0.0, max=1e4, min_exclusive=True)
WEIGHT_DECAY = Field("weight_decay", "float", 0.001, "ascent",
                     "pull toward grey: X -= weight_decay * X * |X| per iteration (course: 0.001)",
                     min=0.0, max=1.0)
ITERATIONS = Field("iterations", "int", 200, "ascent", "gradient-ascent iterations (course: 200)",
                   min=1, max=100000)
LAYER = Field("layer", "int", 8, "ascent", "conv layer whose pooled features are maximized: 2, 3, 4, 6 or 8",
              check=_check_layer)
FEATURES = Field("features", "int", 100, "ascent",
                 "how many of the layer's features to draw, the first N (at most the model's width)",
                 min=1, max=1024)
COUNT = Field("count", "int", 6, "progression", "how many evenly spaced epochs to show (first and last included)",
              min=1, max=100)
EPOCHS = Field("epochs", "ints", [], "progression",
               "exact epochs to show instead of `count` evenly spaced ones (empty: evenly spaced)",
               min=1, check=_check_epochs)
N_PER_CLASS = Field("n_per_class", "int", 100, "quality", "generated images per class to score",
                    min=1, max=100000)
SEED = Field("seed", "int", 0, "quality", "seed of the generator's noise", min=0, max=2**31 - 1)
FID = Field("fid", "bool", True, "quality",
            "also FID, KID and IS (torch-fidelity) with the Inception weights of `ganmgr settings "
            "--inception-weights` or torch hub's cache; never downloaded")
FEATURE_LAYERS_FIELD = Field("feature_layers", "ints", [4, 8], "report",
                             "layers of the max-feature grids in the report (course: at least two)",
                             check=_check_layers)

ASCENT = (LR, WEIGHT_DECAY, ITERATIONS)


@dataclass(frozen=True)
class VizKind:
    """A job kind: its parameters, what it needs from the run(s), and the files it writes."""

    name: str
    summary: str
    fields: tuple[Field, ...]
    needs_checkpoint: bool  # reads model weights (else only the run's files: samples, metrics)
    needs_generator: bool  # the run must be a GAN run (its checkpoint holds G, or it has sample grids)
    needs_baseline: bool  # a second run (a classifier) is required: `baseline_run_dir`
    outputs: tuple[str, ...]  # file names it writes into the job folder; "{layer}" is filled from params

    def field_map(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    def defaults(self) -> dict[str, Any]:
        return {f.name: (list(f.default) if isinstance(f.default, list) else f.default) for f in self.fields}


VIZ_KINDS: dict[str, VizKind] = {
    k.name: k
    for k in (
        VizKind("perturb", "perturbed real images: sign step toward label (y+1) mod 10; accuracy before and after",
                (BATCH_SIZE, GAIN, DEVICE, THREADS), needs_checkpoint=True, needs_generator=False,
                needs_baseline=False, outputs=("real_images.png", "gradient_image.png", "jittered_images.png")),
        VizKind("max_class", "images from the mean test image that maximize each class output (fc10)",
                (*ASCENT, DEVICE, THREADS), needs_checkpoint=True, needs_generator=False, needs_baseline=False,
                outputs=("max_class.png",)),
        VizKind("max_features", "images that maximize the first 100 pooled features of one conv layer",
                (LAYER, FEATURES, *ASCENT, DEVICE, THREADS), needs_checkpoint=True, needs_generator=False,
                needs_baseline=False, outputs=("max_features_layer{layer}.png",)),
        VizKind("progression", "montage of the fixed-noise sample grids at evenly spaced epochs",
                (COUNT, EPOCHS), needs_checkpoint=False, needs_generator=True, needs_baseline=False,
                outputs=("progression.png",)),
        VizKind("curves", "plots of the loss terms, the generator terms and the accuracies",
                (), needs_checkpoint=False, needs_generator=False, needs_baseline=False,
                outputs=("losses.png", "generator.png", "accuracy.png")),
        VizKind("quality", "a baseline classifier's accuracy on generated images and the Frechet distance "
                           "of its features (FID/KID/IS with local Inception weights)",
                (N_PER_CLASS, SEED, FID, DEVICE, THREADS), needs_checkpoint=True, needs_generator=True,
                needs_baseline=True, outputs=("samples.png", "class_accuracy.png")),
        VizKind("report", "one self-contained HTML page with everything the course asks to turn in",
                (COUNT, BATCH_SIZE, GAIN, *ASCENT, FEATURE_LAYERS_FIELD, N_PER_CLASS, SEED, FID, DEVICE, THREADS),
                needs_checkpoint=True, needs_generator=True, needs_baseline=True, outputs=("report.html",)),
    )
}


def viz_kind(name: str) -> VizKind:
    try:
        return VIZ_KINDS[name]
    except (KeyError, TypeError):
        raise VizSpecError(f"unknown visualization kind {name!r}{_suggest(str(name), VIZ_KINDS)}; "
                           f"choose one of: {', '.join(VIZ_KINDS)}") from None


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(kind: VizKind, key: str) -> VizSpecError:
    names = kind.field_map()
    known = f"; its parameters: {', '.join(names)}" if names else "; it takes no parameters"
    return VizSpecError(f"unknown parameter {key!r} for {kind.name}{_suggest(key, names)}{known}")


def validate_viz_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check typed parameters (e.g. read back from job.json); missing keys take their defaults."""
    spec = viz_kind(kind)
    if not isinstance(params, Mapping):
        raise VizSpecError("params must be a JSON object")
    fields = spec.field_map()
    for key in params:
        if key not in fields:
            raise _unknown(spec, key)
    out = spec.defaults()
    try:
        for name, f in fields.items():
            out[name] = check_field(f, params.get(name, out[name]))
    except VizSpecError:
        raise
    except ConfigError as e:
        raise VizSpecError(str(e)) from None
    return out


def resolve_viz_params(kind: str, overrides: Mapping[str, Any] | None = None,
                       assignments: Iterable[str] = ()) -> dict[str, Any]:
    """Defaults of `kind`, then typed `overrides`, then `key=value` strings (`--set`); validated as a whole.

    Raises VizSpecError naming the first problem; the result is what job.json's "params" holds.
    """
    spec = viz_kind(kind)
    fields = spec.field_map()
    params = spec.defaults()
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise _unknown(spec, key)
        params[key] = value
    try:
        for key, text in parse_assignments(assignments):
            if key not in fields:
                raise _unknown(spec, key)
            params[key] = parse_value(fields[key], text)
    except VizSpecError:
        raise
    except ConfigError as e:
        raise VizSpecError(str(e)) from None
    return validate_viz_params(kind, params)


def checkpoint_name(epoch: int | None = None) -> str:
    """The checkpoint a job reads: the final one by default, `epoch_NNN.pt` for a kept epoch."""
    if epoch is None:
        return FINAL_CHECKPOINT
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise VizSpecError(f"--epoch {epoch!r} must be a positive integer")
    return f"checkpoints/epoch_{epoch:03d}.pt"


def checkpoint_choice(choice: str | None = None, epoch: int | None = None, *, default: str = "final") -> str:
    """`--checkpoint best|last|final|epoch:N` (or `--epoch N`, the same as epoch:N) as the file it names,
    relative to the run folder; neither given: `default`. VizSpecError (exit 2) for anything else."""
    if choice is not None and epoch is not None:
        raise VizSpecError("give --checkpoint or --epoch, not both (--epoch N is --checkpoint epoch:N)")
    if epoch is not None:
        return checkpoint_name(epoch)
    text = default if choice is None else choice
    if text in NAMED_CHECKPOINTS:
        return f"checkpoints/{text}.pt"
    m = EPOCH_CHOICE_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise VizSpecError(f"--checkpoint {text!r} must be {CHOICE_WORDS} (N: a kept epoch)")
    return checkpoint_name(int(m.group(1)))


def choice_of(checkpoint: str) -> str:
    """The `--checkpoint` spelling of a file name: checkpoints/epoch_007.pt -> epoch:7, checkpoints/best.pt -> best."""
    name = checkpoint.removeprefix("checkpoints/")
    m = EPOCH_CKPT_RE.match(name)
    return f"epoch:{int(m.group(1))}" if m else name.removesuffix(".pt")


def checkpoint_path(run_dir: Path, checkpoint: str) -> Path:
    """RUN_DIR/checkpoint, refused unless it is a checkpoint name that stays inside the run folder (a
    symlink out of it included)."""
    _check_checkpoint(checkpoint, "checkpoint")
    try:
        return ensure_inside(run_dir, run_dir / checkpoint)
    except PathError:
        raise VizSpecError(f"{checkpoint} of run {run_dir.name} leads outside its folder; refusing it") from None


def kept_epochs(run_dir: Path) -> list[int]:
    ckpts = run_dir / "checkpoints"
    if not ckpts.is_dir():
        return []
    return sorted(int(m.group(1)) for p in ckpts.iterdir() if (m := EPOCH_CKPT_RE.match(p.name)))


def available_checkpoints(run_dir: Path) -> list[str]:
    """The `--checkpoint` choices this run folder has: best, last, final (those present), then epoch:N."""
    ckpts = run_dir / "checkpoints"
    named = [n for n in NAMED_CHECKPOINTS if (ckpts / f"{n}.pt").is_file()]
    return [*named, *(f"epoch:{e}" for e in kept_epochs(run_dir))]


def best_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """What checkpoints/best.pt holds, from its newest `artifact` record: `epoch`, `metric`, `value`, `mode`
    (None when the run has no best.pt)."""
    if not (run_dir / "checkpoints" / "best.pt").is_file():
        return None
    rec = last_artifact(run_dir / METRICS_FILE, BEST_WHAT)
    if rec is None or isinstance(rec.get("epoch"), bool) or not isinstance(rec.get("epoch"), int):
        return None
    return rec


def checkpoint_epoch(run_dir: Path, checkpoint: str) -> int | None:
    """The epoch a checkpoint's weights are from, where the file name or the records say it (epoch_NNN,
    best); None for last and final (the run's own epoch counter says it)."""
    m = EPOCH_CKPT_RE.match(checkpoint.removeprefix("checkpoints/"))
    if m:
        return int(m.group(1))
    if checkpoint.endswith("/best.pt"):
        best = best_checkpoint(run_dir)
        return best["epoch"] if best else None
    return None


def missing_checkpoint_message(run_dir: Path, checkpoint: str) -> str:
    """Why the checkpoint is not there and which ones the run has instead (one line)."""
    kept = kept_epochs(run_dir)
    kept_text = (f"kept epoch checkpoints: {', '.join(map(str, kept))}" if kept
                 else "it kept no epoch checkpoints")
    wanted = checkpoint.removeprefix("checkpoints/").removesuffix(".pt")
    others = [n for n in NAMED_CHECKPOINTS
              if n != wanted and (run_dir / "checkpoints" / f"{n}.pt").is_file()]
    alternatives = ([] if not kept or wanted.startswith("epoch_") else ["--epoch E for a kept epoch checkpoint"])
    if others:
        alternatives.append(f"--checkpoint {' or '.join(others)}")
    hint = "pass " + ", or ".join(alternatives) if alternatives else ""
    where = f"run {run_dir.name} has no {checkpoint}"
    if wanted == "final":
        return f"{where}: it has not completed; {hint or 'wait for it to finish'} ({kept_text})"
    if wanted == "last":
        return f"{where}: it never finished an epoch; {hint or 'it has no checkpoint yet'} ({kept_text})"
    if wanted == "best":
        return (f"{where}: best.pt is kept only by a best_metric (config) once an epoch ends; "
                f"{hint or 'it has no checkpoint yet'} ({kept_text})")
    if kept:
        hint = "pass one of those epochs" + (f", or --checkpoint {' or '.join(others)}" if others else "")
    else:
        hint = hint or "it has no checkpoint yet"
    return f"{where}: that epoch was not kept (keep_every); {hint} ({kept_text})"


def job_dir_name(job_id: int, kind: str) -> str:
    """`<job_id>-<kind>`: the job's folder under RUN_DIR/viz/."""
    viz_kind(kind)
    return f"{int(job_id)}-{kind}"


def primary_output(kind: str, params: Mapping[str, Any]) -> str:
    """The file to show first when the job completes (relative to the job folder)."""
    spec = viz_kind(kind)
    main = spec.outputs[-1] if kind == "perturb" else spec.outputs[0]
    return main.format(layer=params.get("layer", LAYER.default))


def viz_argv(job_dir: Path) -> list[str]:
    """The worker's argv (a list: never a shell string)."""
    return [sys.executable, "-m", "engine.compute.viz", str(job_dir)]


def _check_checkpoint(value: Any, key: str) -> str:
    if not isinstance(value, str) or not CHECKPOINT_RE.match(value):
        raise VizSpecError(f"{key}={value!r} must be checkpoints/final.pt, checkpoints/last.pt, "
                           f"checkpoints/best.pt or checkpoints/epoch_NNN.pt")
    return value


def _check_run_dir(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise VizSpecError(f"{key} must be the absolute path of a run folder")
    if not Path(value).is_absolute():
        raise VizSpecError(f"{key}={value!r} must be an absolute path")
    return value


def make_job(kind: str, params: Mapping[str, Any], run_dir: Path | str, checkpoint: str = FINAL_CHECKPOINT,
             baseline_run_dir: Path | str | None = None,
             baseline_checkpoint: str | None = None, inception_weights: str | None = None,
             inception_uncalibrated: bool = False) -> dict[str, Any]:
    """A validated job.json object; paths are made absolute, the baseline's checkpoint defaults to final.
    `inception_*`: the weights FID/KID/IS use, resolved at submit (engine.control.inception_enqueue)."""
    obj = {
        "kind": kind, "params": dict(params), "run_dir": str(Path(run_dir).resolve()), "checkpoint": checkpoint,
        "baseline_run_dir": None if baseline_run_dir is None else str(Path(baseline_run_dir).resolve()),
        "baseline_checkpoint": baseline_checkpoint if baseline_run_dir is None or baseline_checkpoint
        else FINAL_CHECKPOINT,
        "inception_weights": inception_weights, "inception_uncalibrated": bool(inception_uncalibrated),
    }
    return validate_job(obj)


def validate_job(obj: Any) -> dict[str, Any]:
    """Check a job.json object: known kind, valid params, absolute run folders, checkpoint names."""
    if not isinstance(obj, Mapping):
        raise VizSpecError("job.json must hold a JSON object")
    allowed = {"kind", "params", "run_dir", "checkpoint", "baseline_run_dir", "baseline_checkpoint",
               "inception_weights", "inception_uncalibrated"}
    extra = sorted(set(obj) - allowed)
    if extra:
        raise VizSpecError(f"job.json has an unknown key {extra[0]!r}; keys: {', '.join(sorted(allowed))}")
    spec = viz_kind(obj.get("kind"))
    out: dict[str, Any] = {"kind": spec.name, "params": validate_viz_params(spec.name, obj.get("params") or {})}
    out["run_dir"] = _check_run_dir(obj.get("run_dir"), "run_dir")
    out["checkpoint"] = _check_checkpoint(obj.get("checkpoint", FINAL_CHECKPOINT), "checkpoint")
    base = obj.get("baseline_run_dir")
    if base is None:
        if spec.needs_baseline:
            raise VizSpecError(f"{spec.name} needs a baseline run (its classifier scores the generator): "
                               f"set baseline_run_dir")
        out["baseline_run_dir"] = None
        out["baseline_checkpoint"] = None
    else:
        if not spec.needs_baseline:
            raise VizSpecError(f"{spec.name} takes no baseline run; leave baseline_run_dir null")
        out["baseline_run_dir"] = _check_run_dir(base, "baseline_run_dir")
        out["baseline_checkpoint"] = _check_checkpoint(obj.get("baseline_checkpoint") or FINAL_CHECKPOINT,
                                                       "baseline_checkpoint")
    weights = obj.get("inception_weights")  # absent in older job.json files: FID/KID/IS off
    if weights is not None and (not isinstance(weights, str) or not weights.startswith("/") or "\x00" in weights):
        raise VizSpecError(f"inception_weights must be an absolute file path or null, not {weights!r}")
    if not isinstance(obj.get("inception_uncalibrated", False), bool):
        raise VizSpecError("inception_uncalibrated must be true or false")
    out["inception_weights"] = weights
    out["inception_uncalibrated"] = bool(obj.get("inception_uncalibrated", False)) and weights is not None
    return out


def describe_kinds() -> list[dict[str, Any]]:
    """Every kind with its parameters (name, type, default, help): what `ganmgr viz --help` and the form show."""
    return [
        {"kind": k.name, "summary": k.summary, "needs_checkpoint": k.needs_checkpoint,
         "needs_generator": k.needs_generator, "needs_baseline": k.needs_baseline, "outputs": list(k.outputs),
         "params": [{"name": f.name, "type": f.type, "default": f.default, "help": f.help} for f in k.fields]}
        for k in VIZ_KINDS.values()
    ]


def create_job_dir(run_dir: Path, job_id: int, kind: str) -> Path:
    """RUN_DIR/viz/<job_id>-<kind>/, readable by its owner only; an existing folder is an error."""
    viz = run_dir / "viz"
    viz.mkdir(mode=0o700, exist_ok=True)
    path = ensure_inside(run_dir, viz / job_dir_name(job_id, kind))
    path.mkdir(mode=0o700)
    path.chmod(0o700)  # mkdir's mode is filtered by the umask
    return path
