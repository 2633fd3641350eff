"""Sweeps: `--set key=v1,v2 ...` expanded into a grid of validated run configs (torch-free).

Syntax of one `--set` (the same text means the same value as in `ganmgr run --set`; only the separators
below add alternatives):

- scalar fields (int, float, bool, text): commas separate alternatives, `lr=1e-4,2e-4`;
- `|` separates alternatives for every field, and when a value holds a `|` its commas are *not*
  separators, so list fields sweep as `lr_drop_epochs=50,75|40,60` (two values, [50, 75] and [40, 60]);
- list fields also take JSON lists, `lr_drop_epochs=[50,75],[40,60]` (two values) or `[50,75]` (one);
- a list field without `|` or JSON brackets is ONE value: `betas=0.5,0.999` is [0.5, 0.999], as in `run`.

A key may appear once. The grid is the Cartesian product in the order the keys were given, the last key
varying fastest. Every point goes through `resolve_config`, so a sweep with one bad point is refused as a
whole (one-line ConfigError naming the point) before any run exists. A sweep has a name (given, or
`<recipe>-<MMDD-HHMMSS>`); its runs are `<name>-<i>` and carry the tags `sweep` and `sweep:<name>`, which
is how the TUI and `ganmgr ls --tag` group them.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.control.config import (
    ConfigError,
    Field,
    parse_assignments,
    parse_value,
    recipe_spec,
    resolve_config,
)

MAX_POINTS = 256
# the tag `sweep:<name>` must fit the CLI's 40-character tags; `<name>-<i>` the 64-character run names
SWEEP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,33}$")
FORBIDDEN_KEYS = {"recipe": "the recipe is given with --recipe and cannot be swept",
                  "name": "a sweep names its runs <sweep>-<i>; give the sweep's name with --name"}


@dataclass(frozen=True)
class Axis:
    """One swept key and its values (parsed to the field's type), in the order given."""

    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class SweepPoint:
    index: int
    name: str  # the run's name
    config: dict[str, Any]  # resolved and validated: what config.json will hold
    varied: dict[str, Any]  # the values of the axes with more than one value, at this point

    def label(self) -> str:
        """`lr=0.0001 width=128`: for notes, the TUI's group view and `show`."""
        return " ".join(f"{k}={_show(v)}" for k, v in self.varied.items())


@dataclass(frozen=True)
class Sweep:
    name: str
    recipe: str
    axes: tuple[Axis, ...]
    points: tuple[SweepPoint, ...]

    @property
    def tag(self) -> str:
        return f"sweep:{self.name}"

    @property
    def tags(self) -> tuple[str, str]:
        return ("sweep", self.tag)

    def summary(self) -> str:
        varied = [a for a in self.axes if len(a.values) > 1]
        over = " x ".join(f"{a.key} ({len(a.values)})" for a in varied) or "no varied key"
        return f"sweep {self.name}: {len(self.points)} run{'s' * (len(self.points) != 1)} of {self.recipe} over {over}"


def split_alternatives(f: Field, text: str) -> list[str]:
    """The texts of the alternatives in one `--set` value (see the module docstring)."""
    s = text.strip()
    if "|" in s:
        parts = s.split("|")
    elif f.type in ("ints", "floats"):
        parts = _json_lists(f, s) if s.startswith("[") else [s]
    else:
        parts = s.split(",")
    if any(not p.strip() for p in parts) and not (len(parts) == 1 and f.type in ("ints", "floats", "str")):
        raise ConfigError(f"--set {f.name}={text!r} has an empty alternative")
    return [p.strip() for p in parts]


def _json_lists(f: Field, s: str) -> list[str]:
    try:
        items = json.loads(f"[{s}]")
    except (ValueError, RecursionError):  # RecursionError: '[' nested too deeply
        raise ConfigError(f"{f.name}={s[:60]!r} is not a JSON list or a comma-separated list of JSON lists") from None
    if all(isinstance(i, list) for i in items):
        return [json.dumps(i) for i in items]
    return [s]  # a mix such as `[50,75],3`: parse_value names the problem


def parse_axis(recipe: str, item: str) -> Axis:
    """`key=v1,v2` -> Axis(key, (v1, v2)) with each value parsed and checked against its field."""
    [(key, text)] = parse_assignments([item])
    if key in FORBIDDEN_KEYS:
        raise ConfigError(f"--set {key}=...: {FORBIDDEN_KEYS[key]}")
    fields = recipe_spec(recipe).all_fields()
    if key not in fields:
        close = difflib.get_close_matches(key, list(fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown field {key!r} for recipe {recipe}{hint}")
    f = fields[key]
    values = [parse_value(f, t) for t in split_alternatives(f, text)]
    seen: list[Any] = []
    for v in values:
        if v in seen:
            raise ConfigError(f"--set {key}=... lists {_show(v)} twice")
        seen.append(v)
    return Axis(key, tuple(values))


def default_sweep_name(recipe: str, now: float | None = None) -> str:
    stamp = time.strftime("%m%d-%H%M%S", time.localtime(now))
    return f"{re.sub(r'[^A-Za-z0-9._-]', '-', recipe)[:22]}-{stamp}"


def expand_sweep(recipe: str, sets: Iterable[str], *, base: Mapping[str, Any] | None = None,
                 name: str | None = None, max_points: int = MAX_POINTS) -> Sweep:
    """The grid of `sets` over `recipe`, on top of `base` (typed overrides from the other CLI flags).

    Raises ConfigError (one line) for a bad key or value, a key given twice (in `sets`, or in both `sets`
    and `base`), more than `max_points` points, or any point that does not validate.
    """
    recipe_spec(recipe)  # unknown recipe: its own error first
    name = name if name is not None else default_sweep_name(recipe)
    if not SWEEP_NAME_RE.match(name):
        raise ConfigError(f"sweep name {name!r} must be 1-34 characters of letters, digits, '.', '_' or '-', "
                          f"starting with a letter or digit")
    base = dict(base or {})
    for key in ("recipe", "config_version"):
        base.pop(key, None)
    if base.get("name") is not None:
        raise ConfigError(f"--set name: {FORBIDDEN_KEYS['name']}")
    base.pop("name", None)
    axes: list[Axis] = []
    for item in sets:
        axis = parse_axis(recipe, item)
        if any(a.key == axis.key for a in axes):
            raise ConfigError(f"--set {axis.key}=... is given twice; list every value in one --set")
        if axis.key in base:
            raise ConfigError(f"{axis.key} is set both by a flag and by --set {axis.key}=...; use one")
        axes.append(axis)
    total = math.prod(len(a.values) for a in axes)
    if total > max_points:
        raise ConfigError(f"the sweep has {total} points ({' x '.join(str(len(a.values)) for a in axes)}); "
                          f"at most {max_points}")
    width = len(str(max(total - 1, 0)))
    varied_keys = [a.key for a in axes if len(a.values) > 1]
    points = []
    for i, combo in enumerate(itertools.product(*(a.values for a in axes))):
        values = dict(zip((a.key for a in axes), combo))
        run_name = f"{name}-{i:0{width}d}"
        try:
            cfg = resolve_config(recipe, overrides={**base, **values, "name": run_name})
        except ConfigError as e:
            where = " ".join(f"{k}={_show(values[k])}" for k in varied_keys) or "the only point"
            raise ConfigError(f"sweep point {i} ({where}): {e}") from None
        points.append(SweepPoint(index=i, name=run_name, config=cfg,
                                 varied={k: values[k] for k in varied_keys}))
    return Sweep(name=name, recipe=recipe, axes=tuple(axes), points=tuple(points))


def _show(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_show(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v).lower() if isinstance(v, bool) else str(v)
