"""Recipe configurations: every default in one place, parsed and validated without torch.

A run's config is a flat JSON object. Each recipe declares its fields (name, type, default, group, help,
bounds); `resolve_config` fills the defaults, applies overrides (`--set key=value`, CLI flags, a form),
and rejects unknown keys and impossible values with a one-line `ConfigError` before any work starts.
The TUI, the CLI and the worker all go through here, so a config that validates in one validates in all.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.control.errors import ConfigError

CONFIG_VERSION = 1


@dataclass(frozen=True)
class Field:
    """One config key: its type drives parsing from strings, its bounds drive validation."""

    name: str
    type: str  # "int" | "float" | "bool" | "str" | "ints" | "floats"
    default: Any
    group: str
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    optional: bool = False  # None allowed
    min_exclusive: bool = False
    length: int | None = None  # exact length for list types
    check: Callable[[Any], str | None] | None = field(default=None, compare=False)


DEVICE_RE = re.compile(r"^(auto|cpu|cuda|cuda:\d{1,2}|mps)$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _check_device(v: str) -> str | None:
    return None if DEVICE_RE.match(v) else "must be auto, cpu, cuda or cuda:N"


def _check_name(v: str | None) -> str | None:
    if v is None:
        return None
    if not NAME_RE.match(v):
        return "must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
    return None


def _check_dataset(v: str) -> str | None:
    from engine.control.datasets import dataset_syntax_error  # on first use: datasets imports numpy

    return dataset_syntax_error(v)


# --- health rules (engine/control/health_rules.py): an action per rule and its thresholds -------------

HEALTH_ACTIONS = ("off", "warn", "stop")


def _health_action(name: str, default: str, what: str) -> Field:
    return Field(name, "str", default, "health", f"{what}: off | warn (flag + notification) | stop (checkpoint, "
                 f"end as stopped)", choices=HEALTH_ACTIONS)


HEALTH_WINDOWS = Field("health_windows", "int", 3, "health", "consecutive train windows a window rule must see "
                       "before it acts", min=1, max=10**6)
HEALTH_CRITIC: tuple[Field, ...] = (
    _health_action("health_critic", "stop", "WGAN critic blow-up (|d_real_source - d_fake_source| or gp)"),
    Field("health_critic_gap", "float", 1e4, "health", "critic blow-up bound on |d_real_source - d_fake_source|",
          min=0.0, min_exclusive=True, max=1e30),
    Field("health_critic_gp", "float", 1e3, "health", "critic blow-up bound on the gradient penalty gp",
          min=0.0, min_exclusive=True, max=1e30),
    HEALTH_WINDOWS,
)
HEALTH_SATURATION: tuple[Field, ...] = (
    _health_action("health_saturation", "warn", "BCE discriminator saturation (D(x) high and D(G(z)) low)"),
    Field("health_saturation_real", "float", 0.99, "health", "saturation: mean D(x) above this", min=0.0, max=1.0),
    Field("health_saturation_fake", "float", 0.01, "health", "saturation: mean D(G(z)) below this", min=0.0,
          max=1.0),
    HEALTH_WINDOWS,
)
HEALTH_COLLAPSE: tuple[Field, ...] = (
    _health_action("health_collapse", "warn", "mode collapse (the epoch's diversity or class_spread signal)"),
    Field("health_collapse_below", "float", 0.1, "health", "mode collapse: the recipe's collapse signal below this",
          min=0.0, max=1e6),
    Field("health_collapse_epochs", "int", 3, "health", "consecutive epochs below health_collapse_below before "
          "the rule acts", min=1, max=10**6),    Field("health_collapse_after", "int", 5, "health", "epochs before the collapse rule looks (early epochs of a "
          "healthy GAN score low while its models learn)", min=0, max=10**6),
)
HEALTH_STALL = Field("health_stall_seconds", "float", 300.0, "health",
                     "the supervisor flags a live run `stalled` when metrics.jsonl gains nothing for max(this, 10x "
                     "its median record interval) seconds (0: never)", min=0.0, max=1e7)
# every health field: runtime settings, so a resume may change them (engine/compute/recipes/base.py)
HEALTH_KEYS = frozenset(f.name for f in (*HEALTH_CRITIC, *HEALTH_SATURATION, *HEALTH_COLLAPSE, HEALTH_STALL))

# --- evaluation during training (engine/compute/evaluation.py) ------------------------------------

EVAL_SAMPLES_MAX = 50_000
EVAL_SAMPLES_BY_DEVICE = {"cuda": 10_000, "cpu": 1_000}  # eval_samples unset: by the training device
EVAL_INCEPTION_METRICS = ("fid", "kid", "is")  # with the Inception weights (inception_weights)
EVAL_CLASSIFIER_METRICS = ("fd_clf", "kid_clf", "gan_test_acc")  # with a baseline classifier (eval_baseline)
EVAL_LOWER_BETTER = frozenset({"fid", "kid", "fd_clf", "kid_clf"})  # best_direction's auto mode
EVAL: tuple[Field, ...] = (
    Field("eval_every", "int", 0, "eval", "evaluate sample quality every k epochs in the worker (FID/KID/IS with "
          "the Inception weights, classifier scores with eval_baseline; 0: off)", min=0, max=10**6),
    Field("eval_samples", "int", None, "eval", "generated images per evaluation (default by device: "
          f"{EVAL_SAMPLES_BY_DEVICE['cuda']} on CUDA, {EVAL_SAMPLES_BY_DEVICE['cpu']} on CPU)", optional=True,
          min=2, max=EVAL_SAMPLES_MAX),
    # engine/control/inception_weights.py: resolved at enqueue from the store's settings (the worker has none)
    Field("inception_weights", "str", None, "eval", "set at enqueue from `ganmgr settings --inception-weights` "
          "(never by hand): the absolute path of the Inception weights, or null (FID/KID/IS off)", optional=True,
          check=lambda v: None if v is None or v.startswith("/") else "must be an absolute path"),
    Field("inception_uncalibrated", "bool", False, "eval", "set at enqueue: the weights are not the real file "
          "(sha256 not 6726825d..., allowed by --allow-uncalibrated); every FID/KID/IS is marked uncalibrated"),
)
EVAL_BASELINE: tuple[Field, ...] = (
    Field("eval_baseline", "str", None, "eval", "a completed baseline run (id or name) on the same data whose "
          "classifier scores the samples of each evaluation (fd_clf, kid_clf, gan_test_acc)", optional=True),
    Field("eval_baseline_ckpt", "str", None, "eval", "set at enqueue from eval_baseline (never by hand): the "
          "absolute path of that run's final checkpoint", optional=True),
)
# every evaluation field: runtime settings, so a resume may change them (engine/compute/recipes/base.py)
EVAL_KEYS = frozenset(f.name for f in (*EVAL, *EVAL_BASELINE))


# --- fields shared by every recipe, grouped as data / model / optimization / run -------------------

BEST_MODES = ("auto", "max", "min")

COMMON: tuple[Field, ...] = (
    # data
    Field("dataset", "str", "synthetic", "data",
          "synthetic | synthetic28 | synthetic64 | cifar10 | mnist | npz:PATH | imagefolder:PATH (see README)",
          check=_check_dataset),
    Field("data_root", "str", None, "data", "folder holding the torchvision data set files", optional=True),
    Field("download", "bool", False, "data", "let torchvision download the data set (online nodes only)"),
    Field("augment", "bool", True, "data", "random resized crop 0.7-1, flip, small colour jitter on train batches"),
    # model
    Field("width", "int", 196, "model", "feature channels of every conv layer (course: 196, or 128 for speed)",
          min=1, max=4096),
    # optimization
    Field("epochs", "int", 100, "optimization", "number of passes over the training set", min=1, max=100000),
    Field("batch_size", "int", 128, "optimization", "images per step (incomplete last batch is dropped)",
          min=2, max=65536),
    Field("lr", "float", 1e-4, "optimization", "Adam learning rate", min=0.0, max=10.0, min_exclusive=True),
    Field("betas", "floats", [0.9, 0.999], "optimization", "Adam betas", min=0.0, max=0.999999, length=2),
    # run
    Field("name", "str", None, "run", "run name (letters, digits, . _ -); default: recipe-dataset",
          optional=True, check=_check_name),
    Field("seed", "int", 0, "run", "seed of every random draw (data order, augmentation, noise, init)",
          min=0, max=2**31 - 1),
    Field("device", "str", "auto", "run", "auto | cpu | cuda | cuda:N", check=_check_device),
    Field("precision", "str", "auto", "run", "auto (bf16 on CUDA, fp32 on CPU) | fp32 | tf32 | bf16",
          choices=("auto", "fp32", "tf32", "bf16")),
    Field("compile", "bool", False, "run", "torch.compile the model forward passes (CUDA, measured first)"),
    Field("deterministic", "bool", False, "run", "deterministic kernels (slower; exact resume on CPU)"),
    Field("log_every", "int", 50, "run", "steps per train metrics record (averages over the window)",
          min=1, max=10**7),
    Field("log_seconds", "float", 2.0, "run", "a train metrics record at least this often, in seconds, "
          "whichever of log_every and log_seconds comes first (0: steps only)", min=0.0, max=86400.0),
    Field("keep_every", "int", 25, "run", "keep checkpoints/epoch_NNN.pt every k epochs (0: only last/final)",
          min=0, max=10**6),
    Field("threads", "int", 0, "run", "CPU threads for torch (0: torch's default)", min=0, max=1024),
    Field("best_metric", "str", None, "run",
          "epoch-record field that keeps checkpoints/best.pt (default test_acc with a classifier; none: no best.pt)",
          optional=True),
    Field("best_mode", "str", "auto", "run",
          "auto (max for accuracies and epoch signals, min for mean_ losses) | max | min: which best_metric wins",
          choices=BEST_MODES),
    HEALTH_STALL,
    # resources (engine/compute/resources.py, engine/control/gpu_packing.py)
    Field("resources_every", "float", 10.0, "run", "seconds between the worker's resources records (CPU, RSS, "
          "GPU memory and utilisation; 0: off)", min=0.0, max=86400.0),
    Field("gpu_mem", "float", None, "run", "GB of GPU memory the run needs: the supervisor starts it on a GPU "
          "whose free memory covers it, several runs per GPU when they fit (default: a whole GPU)",
          optional=True, min=0.0, min_exclusive=True, max=1e5),
)

BASELINE: tuple[Field, ...] = (
    Field("lr_drop_epochs", "ints", [50, 75], "optimization",
          "after these many epochs the lr is multiplied by the matching lr_drop_factors", min=1),
    Field("lr_drop_factors", "floats", [0.1, 0.01], "optimization",
          "lr multipliers (of the initial lr) that apply after each lr_drop_epochs entry", min=0.0,
          min_exclusive=True, max=1e6),
    Field("leaky_slope", "float", 0.01, "model", "LeakyReLU negative slope in the discriminator", min=0.0, max=1.0),
)

ACGAN: tuple[Field, ...] = (
    Field("n_z", "int", 100, "model", "generator noise size; the first 10 dims carry the one-hot class",
          min=1, max=100000),
    Field("leaky_slope", "float", 0.01, "model", "LeakyReLU negative slope in the discriminator", min=0.0, max=1.0),
    Field("gp_lambda", "float", 10.0, "loss", "gradient penalty weight (WGAN-GP)", min=0.0, max=1e6),
    Field("gen_every", "int", 1, "optimization", "train the generator every k steps (course: 1)", min=1, max=1000),
    Field("save_noise_seed", "int", 352, "run", "numpy seed of the fixed 10x10 sample noise (course: 352)",
          min=0, max=2**32 - 1),
    *EVAL,
    *EVAL_BASELINE,
    *HEALTH_CRITIC,
    *HEALTH_COLLAPSE,
)


# --- the simpler GANs of the other course texts (001 MLP GAN, 003 Lab 5, 004 DCGAN) --------------

def _n_z() -> Field:
    return Field("n_z", "int", 100, "model", "generator noise size (the texts: 100)", min=1, max=100000)


def _samples(n: int, text: str) -> Field:
    return Field("samples", "int", n, "run", f"fixed noise vectors rendered to samples/epoch_NNN.png every epoch "
                 f"({text}: {n})", min=1, max=400)


MLP_GAN: tuple[Field, ...] = (
    Field("width", "int", 300, "model", "hidden units: G 100-width-784, D 784-width-width/3-1 (001: 300)",
          min=3, max=65536),
    _n_z(),
    Field("leaky_slope", "float", 0.2, "model", "LeakyReLU negative slope in G and D (001: 0.2)", min=0.0, max=1.0),
    _samples(16, "001"),
    *EVAL,
    *HEALTH_SATURATION,
    *HEALTH_COLLAPSE,
)

LAB5_GAN: tuple[Field, ...] = (
    Field("width", "int", 256, "model", "G hidden layers width, 2*width, 4*width; D the reverse (003: 256)",
          min=1, max=65536),
    _n_z(),
    Field("leaky_slope", "float", 0.2, "model", "LeakyReLU negative slope in G and D", min=0.0, max=1.0),
    Field("classes", "ints", [], "data", "train only on these labels, e.g. 8 (003: start with one digit); "
          "empty: all", min=0, max=100000),
    _samples(64, "8x8 grid"),
    *EVAL,
    *HEALTH_SATURATION,
    *HEALTH_COLLAPSE,
)

DCGAN: tuple[Field, ...] = (
    Field("width", "int", 64, "model", "ngf = ndf: G channels 8w-4w-2w-w, D w-2w-4w-8w (004: 64)",
          min=1, max=4096),
    _n_z(),
    Field("leaky_slope", "float", 0.2, "model", "LeakyReLU negative slope in D (004: 0.2)", min=0.0, max=1.0),
    _samples(64, "004"),
    *EVAL,
    *HEALTH_SATURATION,
    *HEALTH_COLLAPSE,
)

# the ACGAN's train metrics, in the order its train_step returns them (engine/compute/recipes/acgan.py):
# the first five are the course's loss1..loss5 (the critic's terms, drawn as the losses), acc its acc1
ACGAN_METRICS = ("gp", "d_fake_source", "d_real_source", "d_real_class", "d_fake_class", "gen_source",
                 "gen_class", "acc")
ACGAN_LOSSES = ACGAN_METRICS[:5]
BCE_GAN_METRICS = ("d_loss", "g_loss", "d_real", "d_fake")
BCE_LOSSES = ("d_loss", "g_loss")  # the rest (D(x), D(G(z)): probabilities) share a chart with the signals
DCGAN_METRICS = (*BCE_GAN_METRICS, "d_fake_after")


@dataclass(frozen=True)
class RecipeSpec:
    """A recipe: its fields with the course's defaults, the module that trains it, the metrics it logs."""

    name: str
    summary: str
    module: str
    fields: tuple[Field, ...]
    defaults: Mapping[str, Any]  # overrides of COMMON defaults for this recipe
    train_metrics: tuple[str, ...]
    loss_metrics: tuple[str, ...]  # the subset drawn as the "losses" chart
    has_generator: bool
    check: Callable[[dict[str, Any]], str | None] | None = None
    # per-epoch signals the epoch record carries as top-level fields (e.g. the mode-collapse signal);
    # the run screen's loss chart draws them next to `loss_metrics`
    epoch_metrics: tuple[str, ...] = ()

    @property
    def has_classifier(self) -> bool:
        """Logs accuracies (`acc`, test_acc); a GAN without a class head does not."""
        return "acc" in self.train_metrics

    def probe_metrics(self) -> tuple[str, ...]:
        """What a recipe without a classifier draws where the accuracies would be: its train metrics that are
        not losses (D(x), D(G(z)) as probabilities) and its per-epoch signals, all on a 0-1 scale."""
        if self.has_classifier:
            return ()
        return (*[m for m in self.train_metrics if m not in self.loss_metrics], *self.epoch_metrics)

    def all_fields(self) -> dict[str, Field]:
        out: dict[str, Field] = {f.name: f for f in COMMON}
        for f in self.fields:
            out[f.name] = f
        return out

    def best_metrics(self) -> tuple[str, ...]:
        """The epoch-record fields `best_metric` may name (engine/compute/recipes/base.py `_epoch_end`)."""
        accs = ("test_acc", "train_acc") if self.has_classifier else ()
        return (*accs, *[f"mean_{m}" for m in self.train_metrics if m != "acc"], *self.epoch_metrics,
                *self.eval_metrics())

    def eval_metrics(self) -> tuple[str, ...]:
        """The `eval` record's values `best_metric` may also name (eval_every): a GAN's Inception metrics, and
        the classifier scores where the samples have classes (eval_baseline)."""
        if not self.has_generator:
            return ()
        return (*EVAL_INCEPTION_METRICS, *(EVAL_CLASSIFIER_METRICS if "eval_baseline" in self.all_fields() else ()))

    def default_config(self) -> dict[str, Any]:
        cfg = {name: _copy(f.default) for name, f in self.all_fields().items()}
        if self.has_classifier:  # a GAN without one keeps no best.pt until it has a quality metric
            cfg["best_metric"] = "test_acc"
        cfg.update({k: _copy(v) for k, v in self.defaults.items()})
        cfg["recipe"] = self.name
        return cfg


def _copy(v: Any) -> Any:
    return list(v) if isinstance(v, (list, tuple)) else v


def _check_baseline(cfg: dict[str, Any]) -> str | None:
    drops, factors = cfg["lr_drop_epochs"], cfg["lr_drop_factors"]
    if len(drops) != len(factors):
        return f"lr_drop_epochs ({len(drops)} entries) and lr_drop_factors ({len(factors)}) must have equal length"
    if list(drops) != sorted(set(drops)):
        return "lr_drop_epochs must be strictly increasing"
    return None


def _check_lab5(cfg: dict[str, Any]) -> str | None:
    classes = cfg["classes"]
    if len(set(classes)) != len(classes):
        return f"classes={classes} names a label twice"
    return None


def _check_acgan(cfg: dict[str, Any]) -> str | None:
    if cfg["n_z"] < 10:
        return f"n_z={cfg['n_z']} must be at least the 10 classes whose one-hot fills its first dims"
    return None


RECIPES: dict[str, RecipeSpec] = {
    "baseline": RecipeSpec(
        name="baseline",
        summary="the course's discriminator trained alone as a CIFAR-10 classifier (cross-entropy on fc10)",
        module="engine.compute.recipes.baseline",
        fields=BASELINE,
        defaults={"epochs": 100, "lr": 1e-4, "betas": [0.9, 0.999], "batch_size": 128},
        train_metrics=("loss", "acc"),
        loss_metrics=("loss",),
        has_generator=False,
        check=_check_baseline,
    ),
    "acgan-wgangp": RecipeSpec(
        name="acgan-wgangp",
        summary="the course's ACGAN generator + discriminator with the WGAN-GP loss (five D terms)",
        module="engine.compute.recipes.acgan",
        fields=ACGAN,
        defaults={"epochs": 500, "lr": 1e-4, "betas": [0.0, 0.9], "batch_size": 128},
        train_metrics=ACGAN_METRICS,
        loss_metrics=ACGAN_LOSSES,
        has_generator=True,
        check=_check_acgan,
        epoch_metrics=("class_spread",),
    ),
    "mlp-gan": RecipeSpec(
        name="mlp-gan",
        summary="001's fully-connected MNIST GAN (G 100-300-784 sigmoid, D 784-300-100-1), BCE with logits",
        module="engine.compute.recipes.mlp_gan",
        fields=MLP_GAN,
        defaults={"epochs": 20, "lr": 2e-4, "betas": [0.5, 0.999], "batch_size": 100, "augment": False,
                  "dataset": "synthetic28"},
        train_metrics=BCE_GAN_METRICS,
        loss_metrics=BCE_LOSSES,
        has_generator=True,
        epoch_metrics=("diversity",),
    ),
    "lab5-gan": RecipeSpec(
        name="lab5-gan",
        summary="003's Lab-5 GAN: LeakyReLU MLPs, G 256-512-1024 tanh, D 1024-512-256 sigmoid, BCE; classes=8 "
                "for one digit",
        module="engine.compute.recipes.lab5_gan",
        fields=LAB5_GAN,
        defaults={"epochs": 200, "lr": 2e-4, "betas": [0.9, 0.999], "batch_size": 100, "augment": False,
                  "dataset": "synthetic28"},
        train_metrics=BCE_GAN_METRICS,
        loss_metrics=BCE_LOSSES,
        has_generator=True,
        check=_check_lab5,
        epoch_metrics=("diversity",),
    ),
    "dcgan": RecipeSpec(
        name="dcgan",
        summary="004's 64x64 DCGAN (convT/BatchNorm/ReLU G, conv/BatchNorm/LeakyReLU D, N(0, 0.02) init), BCE",
        module="engine.compute.recipes.dcgan",
        fields=DCGAN,
        defaults={"epochs": 5, "lr": 2e-4, "betas": [0.5, 0.999], "batch_size": 128, "augment": False,
                  "dataset": "synthetic64"},
        train_metrics=DCGAN_METRICS,
        loss_metrics=BCE_LOSSES,
        has_generator=True,
        epoch_metrics=("diversity",),
    ),
}


def recipe_spec(name: str) -> RecipeSpec:
    try:
        return RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}{_suggest(name, RECIPES)}; "
                          f"choose one of: {', '.join(RECIPES)}") from None


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- parsing strings (CLI --set, form inputs) ------------------------------------------------------

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def parse_value(f: Field, text: str) -> Any:
    """Turn the text of `--set key=value` into the field's type, or raise ConfigError."""
    s = text.strip()
    if f.optional and s.lower() in {"none", "null", ""}:
        return None
    try:
        if f.type == "int":
            return _parse_int(s)
        if f.type == "float":
            return float(s)
        if f.type == "bool":
            low = s.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError
        if f.type == "str":
            return s
        if f.type in ("ints", "floats"):
            if s.startswith("["):
                items = json.loads(s)
                if not isinstance(items, list):
                    raise ValueError
            else:
                items = [p for p in s.split(",") if p.strip()] if s else []
            conv = _parse_int if f.type == "ints" else float
            return [conv(str(i).strip()) for i in items]
    except (ValueError, json.JSONDecodeError, RecursionError):  # RecursionError: '[' nested too deeply
        pass
    raise ConfigError(f"{f.name}={text[:60]!r} is not {_type_words(f)}")


def _parse_int(s: str) -> int:
    if re.fullmatch(r"[+-]?\d+", s):
        return int(s)
    v = float(s)  # accept 1e3 but not 2.5
    if not math.isfinite(v) or v != int(v):
        raise ValueError
    return int(v)


def _type_words(f: Field) -> str:
    return {
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "str": "text",
        "ints": "a comma-separated list of integers",
        "floats": "a comma-separated list of numbers",
    }[f.type]


def parse_assignments(items: Iterable[str]) -> list[tuple[str, str]]:
    """Split `key=value` strings; a missing '=' or empty key is a ConfigError."""
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} must look like key=value")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--set {item!r} has an empty key")
        out.append((key, value))
    return out


# --- validation ------------------------------------------------------------------------------------


def check_field(f: Field, v: Any) -> Any:
    """Type-check and bound-check one value (already parsed); returns the normalised value."""
    if v is None:
        if f.optional:
            return None
        raise ConfigError(f"{f.name} must be set ({_type_words(f)})")
    if f.type == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                raise ConfigError(f"{f.name}={v!r} is not {_type_words(f)}")
        _bounds(f, v)
    elif f.type == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{f.name}={v!r} is not {_type_words(f)}")
        v = float(v)
        if not math.isfinite(v):
            raise ConfigError(f"{f.name}={v!r} must be a finite number")
        _bounds(f, v)
    elif f.type == "bool":
        if not isinstance(v, bool):
            raise ConfigError(f"{f.name}={v!r} is not {_type_words(f)}")
    elif f.type == "str":
        if not isinstance(v, str):
            raise ConfigError(f"{f.name}={v!r} is not {_type_words(f)}")
        if "\x00" in v:
            raise ConfigError(f"{f.name} contains a NUL character")
        if len(v) > 4096:
            raise ConfigError(f"{f.name} is {len(v)} characters long; at most 4096")
        if f.choices and v not in f.choices:
            raise ConfigError(f"{f.name}={v!r}{_suggest(v, f.choices)} must be one of: {', '.join(f.choices)}")
    elif f.type in ("ints", "floats"):
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"{f.name}={v!r} is not {_type_words(f)}")
        sub = Field(f.name, f.type[:-1], None, f.group, f.help, f.min, f.max, min_exclusive=f.min_exclusive)
        v = [check_field(sub, x) for x in v]
        if f.length is not None and len(v) != f.length:
            raise ConfigError(f"{f.name} needs exactly {f.length} values, got {len(v)}")
    if f.check is not None:
        problem = f.check(v)
        if problem:
            raise ConfigError(f"{f.name}={v!r} {problem}")
    return v


def _bounds(f: Field, v: float) -> None:
    if f.min is not None and (v < f.min or (f.min_exclusive and v == f.min)):
        op = ">" if f.min_exclusive else ">="
        raise ConfigError(f"{f.name}={v!r} must be {op} {_num(f.min)}")
    if f.max is not None and v > f.max:
        raise ConfigError(f"{f.name}={v!r} must be <= {_num(f.max)}")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def resolve_config(recipe: str, overrides: Mapping[str, Any] | None = None,
                   assignments: Iterable[str] = ()) -> dict[str, Any]:
    """Defaults of `recipe`, then typed `overrides`, then `key=value` strings; validated as a whole.

    Raises ConfigError naming the first problem. The result is what config.json holds.
    """
    spec = recipe_spec(recipe)
    fields = spec.all_fields()
    cfg = spec.default_config()
    for key, value in (overrides or {}).items():
        if key in ("recipe", "config_version"):
            continue
        if key not in fields:
            raise ConfigError(f"unknown field {key!r} for recipe {recipe}{_suggest(key, fields)}")
        cfg[key] = value
    for key, text in parse_assignments(assignments):
        if key == "recipe":
            raise ConfigError("the recipe cannot be changed with --set; use --recipe")
        if key not in fields:
            raise ConfigError(f"unknown field {key!r} for recipe {recipe}{_suggest(key, fields)}")
        cfg[key] = parse_value(fields[key], text)
    return validate_config(cfg)


def validate_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check a complete config (e.g. read back from config.json); returns a normalised copy."""
    if not isinstance(cfg, Mapping):
        raise ConfigError("the config must be a JSON object")
    recipe = cfg.get("recipe")
    if not isinstance(recipe, str):
        raise ConfigError("the config has no 'recipe'")
    spec = recipe_spec(recipe)
    fields = spec.all_fields()
    unknown = [k for k in cfg if k not in fields and k not in ("recipe", "config_version")]
    if unknown:
        raise ConfigError(f"unknown field {unknown[0]!r} for recipe {recipe}{_suggest(unknown[0], fields)}")
    out: dict[str, Any] = {"recipe": recipe, "config_version": CONFIG_VERSION}
    defaults = spec.default_config()
    for name, f in fields.items():
        out[name] = check_field(f, cfg.get(name, defaults[name]))
    ds = out["dataset"]
    if ds in ("cifar10", "mnist") and not out["data_root"]:
        raise ConfigError(f"dataset {ds} needs --data-root (the folder holding its files)")
    if spec.check is not None:
        problem = spec.check(out)
        if problem:
            raise ConfigError(problem)
    metric = out["best_metric"]
    if metric is not None and metric not in spec.best_metrics():
        raise ConfigError(f"best_metric={metric!r}{_suggest(metric, spec.best_metrics())} is not in the epoch "
                          f"records of {recipe}; choose one of: {', '.join(spec.best_metrics())} (or none)")
    if metric in spec.eval_metrics() and not out["eval_every"]:
        raise ConfigError(f"best_metric={metric} is an evaluation value: set eval_every (epochs between evaluations)")
    if metric in EVAL_CLASSIFIER_METRICS and not out.get("eval_baseline"):
        raise ConfigError(f"best_metric={metric} needs eval_baseline (a completed baseline run to score samples)")
    return out


def best_direction(metric: str, mode: str = "auto") -> str:
    """'max' or 'min': which value of `metric` is the better one (`best_mode`, auto by the metric's kind)."""
    if mode in ("max", "min"):
        return mode
    return "min" if metric.startswith("mean_") or metric in EVAL_LOWER_BETTER else "max"


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose values differ between two configs (for `fork`, `resume` and the compare screen)."""
    keys = sorted(set(a) | set(b))
    return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}


def default_run_name(cfg: Mapping[str, Any]) -> str:
    ds = str(cfg.get("dataset", "data"))
    if ds.startswith("npz:"):
        ds = re.sub(r"\.npz$", "", ds.rsplit("/", 1)[-1]) or "npz"
    elif ds.startswith("imagefolder:"):
        ds = ds[len("imagefolder:"):].rstrip("/").rsplit("/", 1)[-1] or "images"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{cfg['recipe']}-{ds}").strip("-.")
    return slug[:64] or "run"
