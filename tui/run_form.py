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

from engine.control.config import RECIPES, ConfigError, parse_assignments, parse_value, resolve_config
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
               fork: bool = False) -> FormCheck:
    """Parse and validate every input; errors keyed by input (GENERAL for the rest).

    `base` is the parent's config when forking: fields the form does not show keep the parent's values.
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

    from store.runs import normalize_tags  # SQLAlchemy behind it: imported on first use, not at startup

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
    seed_cfg = {k: v for k, v in (base or {}).items() if k not in ("recipe", "config_version")}
    # Each parsed input on its own against the recipe's rules, so every bad input is marked at once.
    for key, value in typed.items():
        try:
            resolve_config(recipe, {**seed_cfg, key: value})
        except ConfigError as e:
            if error_field(str(e)) == key:
                errors[key] = str(e)
    if errors:
        return FormCheck(None, errors)

    try:
        cfg = resolve_config(recipe, {**seed_cfg, **typed}, assignments)
    except ConfigError as e:
        return FormCheck(None, {error_field(str(e)): str(e)})
    overrides = dict(typed)
    if base is not None:
        overrides = {k: v for k, v in typed.items() if base.get(k) != v}
    return FormCheck(RunRequest(recipe, cfg, overrides, assignments, tags, notes, priority, fork_epoch))


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
