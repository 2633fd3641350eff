"""The new-run / fork form as data: which inputs it has, their text from a config, and the checked request.

Pure (no Textual), so every rule is unit-tested and the screen only moves text in and errors out. All
checks go through `engine.control.config` (the same validation as the CLI and the worker): a value that
passes here passes there. Each error is one line and lands under the input it belongs to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.control.config import RECIPES, parse_assignments, parse_value, resolve_config
from engine.control.errors import BackendError, ConfigError
from engine.control.fork_epochs import fork_epochs_error
from engine.control.slurm_options import options_from_flags
from store.checks import BACKENDS, normalize_tags
from store.errors import StoreError

# (input key, label, placeholder); a key that is a config field is parsed by that field's type.
CONFIG_INPUTS: tuple[tuple[str, str, str], ...] = (
    ("dataset", "dataset", "synthetic | synthetic28 | synthetic64 | npz:PATH | imagefolder:PATH | cifar10 | mnist"),
    ("data_root", "data root", "folder of the cifar10/mnist files"),
    ("epochs", "epochs", ""),
    ("width", "width", "the recipe's default (acgan: 196, or 128)"),
    ("batch_size", "batch size", ""),
    ("lr", "learning rate", ""),
    ("seed", "seed", ""),
    ("device", "device", "auto | cpu | cuda | cuda:N"),
    ("name", "name", "default: recipe-dataset"),
)
META_INPUTS: tuple[tuple[str, str, str], ...] = (
    ("tags", "tags", "comma-separated"),
    ("notes", "note", "free text"),
    ("priority", "priority", "higher starts first"),
    ("extra", "other fields", "key=value ... (see `ganmgr recipes`)"),
)
FORK_INPUTS: tuple[tuple[str, str, str], ...] = (
    ("fork_epoch", "from epoch", "blank: the latest checkpoint"),
)
# The Slurm fields (shown when the backend is slurm): input key `slurm-<flag>`, where <flag> is the name of
# `ganmgr run`'s flag, so the form and the CLI go through one check (engine.control.slurm_options.options_from_flags).
SLURM_INPUTS: tuple[tuple[str, str, str], ...] = (
    ("slurm-partition", "partition", "blank: the cluster's default partition"),
    ("slurm-time", "time limit", "per job: MIN, H:MM:SS or D-HH:MM:SS (blank: the partition's limit)"),
    ("slurm-gres", "gres", "e.g. gpu:1 or gpu:a100:2"),
    ("slurm-account", "account", "account to charge"),
    ("slurm-qos", "qos", "quality of service"),
    ("slurm-cpus-per-task", "cpus per task", "CPUs for the worker"),
    ("slurm-mem", "memory", "e.g. 16G or 4000M"),
    ("slurm-grace", "grace (s)", "seconds before the limit at which the worker checkpoints (120)"),
    ("slurm-max-segments", "max segments",
     "jobs a run may span past wall-time limits (blank: the store's max_segments, 20)"),
    ("slurm-extra-sbatch", "extra sbatch", "more long options, e.g. --constraint=a100 --exclusive"),
)
SLURM_KEYS = tuple(k for k, _, _ in SLURM_INPUTS)
# The SlurmOptions field each Slurm input stands for (max segments is a run column, not an option).
SLURM_OPTION_OF = {"slurm-partition": "partition", "slurm-time": "time", "slurm-gres": "gres",
                   "slurm-account": "account", "slurm-qos": "qos", "slurm-cpus-per-task": "cpus_per_task",
                   "slurm-mem": "mem", "slurm-grace": "grace_s", "slurm-extra-sbatch": "extra"}
CONFIG_KEYS = tuple(k for k, _, _ in CONFIG_INPUTS)
GENERAL = "form"  # errors that belong to no single input
DATASET_SUGGESTIONS = ("synthetic", "synthetic28", "synthetic64", "cifar10", "mnist", "npz:", "imagefolder:")


@dataclass(frozen=True)
class RunRequest:
    """A checked form: what enqueue (new run) or fork_run (fork) needs."""

    recipe: str
    cfg: dict[str, Any]  # fully resolved and validated
    overrides: dict[str, Any]  # typed form values (for fork: only those that differ from the parent)
    assignments: tuple[str, ...]
    tags: tuple[str, ...]
    notes: str
    priority: int
    fork_epoch: int | None = None
    backend: str = "local"
    backend_options: dict[str, Any] | None = None  # as stored (validated by SlurmOptions.coerce)
    max_segments: int | None = None


@dataclass(frozen=True)
class FormCheck:
    request: RunRequest | None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.request is not None and not self.errors


def text_values(cfg: Mapping[str, Any]) -> dict[str, str]:
    """The inputs' text for a config (recipe defaults for a new run, the parent's config for a fork)."""
    out: dict[str, str] = {}
    for key in CONFIG_KEYS:
        out[key] = _text(cfg.get(key))
    return out


def slurm_text_values(defaults: Mapping[str, Any] | None) -> dict[str, str]:
    """The Slurm inputs' text for the store's `slurm_options` setting (the form starts from the defaults
    `ganmgr run --backend slurm` would use)."""
    defaults = defaults or {}
    out = {key: "" for key, _, _ in SLURM_INPUTS}
    for key, option in SLURM_OPTION_OF.items():
        value = defaults.get(option)
        if option == "extra" and isinstance(value, (list, tuple)):
            out[key] = " ".join(str(v) for v in value)
        elif value is not None:
            out[key] = str(value)
    return out


def check_backend(backend: str, values: Mapping[str, str],
                  defaults: Mapping[str, Any] | None = None) -> tuple[dict[str, Any] | None, int | None,
                                                                      dict[str, str]]:
    """(options as stored, max_segments, errors) for the chosen backend. The local backend takes no options
    (the Slurm inputs are then ignored). For slurm, every non-blank input is a flag of `ganmgr run` and goes
    through the CLI's own check; what the inputs already show of the store's `slurm_options` (`defaults`)
    is not added again, so a cleared input really drops that option."""
    if backend not in BACKENDS:
        return None, None, {"backend": f"backend {backend!r} is not one of {', '.join(BACKENDS)}"}
    if backend != "slurm":
        return None, None, {}

    given = {key.removeprefix("slurm-"): values.get(key, "").strip() for key in SLURM_KEYS}
    given = {flag: text for flag, text in given.items() if text}
    hidden = {k: v for k, v in (defaults or {}).items() if k not in SLURM_OPTION_OF.values()}
    try:
        options, max_segments = options_from_flags(hidden, given)
    except BackendError as e:
        return None, None, {slurm_error_field(str(e)): str(e)}
    return options, max_segments, {}


def slurm_error_field(message: str) -> str:
    """Which Slurm input a refusal belongs to ('--time ...', "slurm time='x' is not ...", 'extra sbatch
    option ...'); GENERAL when none does."""
    m = re.match(r"^--([a-z-]+)[ =]", message)
    if m and f"slurm-{m.group(1)}" in SLURM_KEYS:
        return f"slurm-{m.group(1)}"
    if message.startswith("extra sbatch option"):
        return "slurm-extra-sbatch"
    m = re.match(r"^slurm (\w+)=", message)
    if m:
        for key, option in SLURM_OPTION_OF.items():
            if option == m.group(1):
                return key
    return GENERAL


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return ",".join(_text(x) for x in v)
    return str(v)


def check_form(recipe: str, values: Mapping[str, str], *, base: Mapping[str, Any] | None = None,
               fork: bool = False, backend: str = "local",
               slurm_defaults: Mapping[str, Any] | None = None, fork_start: int | None = None) -> FormCheck:
    """Parse and validate every input; errors keyed by input (GENERAL for the rest).

    `base` is the parent's config when forking: fields the form does not show keep the parent's values.
    `backend` is where the run goes; for slurm the Slurm inputs are checked as `ganmgr run` checks its flags
    (`slurm_defaults`: the store's `slurm_options`, see check_backend). `fork_start`: the epoch a fork's
    latest checkpoint holds (the parent's epoch); its `epochs` must lie above the epoch the fork starts
    after (engine.control.submit.fork_epochs_error, the rule `ganmgr fork` applies), said in the form's words.
    """
    errors: dict[str, str] = {}
    spec = RECIPES.get(recipe)
    if spec is None:
        return FormCheck(None, {GENERAL: f"unknown recipe {recipe!r}; choose one of: {', '.join(RECIPES)}"})
    fields = spec.all_fields()
    typed: dict[str, Any] = {}
    for key in CONFIG_KEYS:
        try:
            typed[key] = parse_value(fields[key], values.get(key, ""))
        except ConfigError as e:
            errors[key] = str(e)
    if "data_root" in typed and typed["data_root"] == "":
        typed["data_root"] = None
    if "name" in typed and typed["name"] == "":
        typed["name"] = None
    tags: tuple[str, ...] = ()
    try:
        tags = normalize_tags(values.get("tags", ""))
    except StoreError as e:
        errors["tags"] = str(e)
    priority = 0
    ptext = values.get("priority", "").strip()
    if ptext:
        if re.fullmatch(r"[+-]?\d{1,9}", ptext):
            priority = int(ptext)
        else:
            errors["priority"] = f"priority={ptext!r} is not an integer"
    fork_epoch: int | None = None
    if fork:
        etext = values.get("fork_epoch", "").strip()
        if etext:
            if re.fullmatch(r"\d{1,9}", etext):
                fork_epoch = int(etext)
            else:
                errors["fork_epoch"] = f"from epoch={etext!r} must be a whole number of epochs (or blank)"
    assignments = tuple(values.get("extra", "").split())
    try:
        parse_assignments(assignments)
    except ConfigError as e:
        errors["extra"] = str(e).replace("--set ", "")
    notes = values.get("notes", "")
    backend_options, max_segments, backend_errors = check_backend(backend, values, slurm_defaults)
    errors.update(backend_errors)
    base_cfg = {k: v for k, v in (base or {}).items() if k not in ("recipe", "config_version")}
    # Each parsed input on its own against the recipe's rules, so every bad input is marked at once.
    for key, value in typed.items():
        try:
            resolve_config(recipe, {**base_cfg, key: value})
        except ConfigError as e:
            if error_field(str(e)) == key:
                errors[key] = str(e)
    start = fork_epoch if fork_epoch is not None else fork_start
    if fork and start is not None and isinstance(typed.get("epochs"), int) and "epochs" not in errors:
        refused = fork_epochs_error(typed["epochs"], start)
        if refused is not None:
            errors["epochs"] = refused.form_message
    if errors:
        return FormCheck(None, errors)

    try:
        cfg = resolve_config(recipe, {**base_cfg, **typed}, assignments)
    except ConfigError as e:
        return FormCheck(None, {error_field(str(e)): str(e)})
    overrides = dict(typed)
    if base is not None:
        overrides = {k: v for k, v in typed.items() if base.get(k) != v}
    return FormCheck(RunRequest(recipe, cfg, overrides, assignments, tags, notes, priority, fork_epoch,
                                backend=backend, backend_options=backend_options, max_segments=max_segments))


def error_field(message: str) -> str:
    """Which input a ConfigError (from validation or the data check) belongs to."""
    if message.startswith("unknown field"):
        return "extra"
    if "data-root" in message or message.startswith("data root"):
        return "data_root"
    if message.startswith("npz"):
        return "dataset"
    m = re.match(r"^(\w+)[= ]", message)
    if m:
        name = m.group(1)
        if name in CONFIG_KEYS:
            return name
        if any(name == f for spec in RECIPES.values() for f in spec.all_fields()):
            return "extra"
    return GENERAL
