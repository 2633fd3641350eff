"""Sweeps: `--set key=v1,v2` grids, list-valued fields, names and tags, one-line errors (no torch)."""

from __future__ import annotations

import pytest

from engine.control.config import resolve_config
from engine.control.errors import ConfigError
from engine.control.sweep import MAX_POINTS, expand_sweep, parse_axis, split_alternatives

BASE = {"epochs": 2, "width": 8}


def test_grid_is_the_product_in_flag_order_last_key_fastest():
    sw = expand_sweep("acgan-wgangp", ["lr=1e-4,2e-4", "gen_every=1,2,5"], name="grid")
    assert len(sw.points) == 6
    assert [(p.config["lr"], p.config["gen_every"]) for p in sw.points] == [
        (1e-4, 1), (1e-4, 2), (1e-4, 5), (2e-4, 1), (2e-4, 2), (2e-4, 5)]
    assert [p.name for p in sw.points] == [f"grid-{i}" for i in range(6)]
    assert [p.config["name"] for p in sw.points] == [p.name for p in sw.points]
    assert sw.points[4].varied == {"lr": 2e-4, "gen_every": 2}
    assert sw.points[4].label() == "lr=0.0002 gen_every=2"
    assert sw.tags == ("sweep", "sweep:grid")
    assert sw.summary() == "sweep grid: 6 runs of acgan-wgangp over lr (2) x gen_every (3)"


def test_every_point_is_exactly_what_run_set_would_resolve():
    sw = expand_sweep("baseline", ["lr=1e-4,3e-4", "augment=true,false"], base=BASE, name="s")
    for p in sw.points:
        want = resolve_config("baseline", overrides={**BASE, "lr": p.config["lr"],
                                                     "augment": p.config["augment"], "name": p.name})
        assert p.config == want
    assert {p.config["augment"] for p in sw.points} == {True, False}


def test_single_valued_keys_are_fixed_not_varied():
    sw = expand_sweep("baseline", ["lr=1e-4,2e-4", "seed=7"], base=BASE, name="fixed")
    assert [p.config["seed"] for p in sw.points] == [7, 7]
    assert all(set(p.varied) == {"lr"} for p in sw.points)


@pytest.mark.parametrize("text, expected", [
    ("50,75|40,60", [[50, 75], [40, 60]]),
    ("[50,75]|[40,60]", [[50, 75], [40, 60]]),
    ("[50,75],[40,60]", [[50, 75], [40, 60]]),
    ("[50, 75]", [[50, 75]]),
    ("50,75", [[50, 75]]),  # no '|' and no brackets: one list, as `run --set` reads it
])
def test_list_valued_fields_have_an_unambiguous_syntax(text, expected):
    axis = parse_axis("baseline", f"lr_drop_epochs={text}")
    assert [list(v) for v in axis.values] == expected


def test_list_fields_sweep_together_with_their_partner():
    sw = expand_sweep("baseline", ["lr_drop_epochs=50,75|40,60", "lr_drop_factors=0.1,0.01"], base=BASE,
                      name="drops")
    assert [p.config["lr_drop_epochs"] for p in sw.points] == [[50, 75], [40, 60]]
    assert all(p.config["lr_drop_factors"] == [0.1, 0.01] for p in sw.points)
    assert sw.points[1].label() == "lr_drop_epochs=[40,60]"


def test_pipe_separates_scalar_alternatives_too():
    assert parse_axis("baseline", "lr=1e-4|2e-4").values == (1e-4, 2e-4)
    f = parse_axis("baseline", "dataset=synthetic|synthetic28")
    assert f.values == ("synthetic", "synthetic28")


@pytest.mark.parametrize("sets, base, words", [
    (["lr=1e-4,abc"], {}, "lr='abc' is not a number"),
    (["lrr=1e-4,2e-4"], {}, "unknown field 'lrr' for recipe baseline (did you mean 'lr'?)"),
    (["lr=1e-4,1e-4"], {}, "lists 0.0001 twice"),
    (["lr=1e-4,,2e-4"], {}, "has an empty alternative"),
    (["lr=1e-4", "lr=2e-4"], {}, "given twice"),
    (["width=8,16"], {"width": 8}, "set both by a flag and by --set width"),
    (["recipe=baseline,acgan-wgangp"], {}, "cannot be swept"),
    (["name=a,b"], {}, "give the sweep's name with --name"),
    (["lr"], {}, "must look like key=value"),
    (["lr_drop_epochs=[50,75],3"], {}, "lr_drop_epochs="),
])
def test_bad_input_is_a_one_line_error(sets, base, words):
    with pytest.raises(ConfigError) as e:
        expand_sweep("baseline", sets, base=base, name="bad")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_a_point_that_does_not_validate_refuses_the_whole_sweep():
    # [50] fits the default lr_drop_factors (two entries) for no point: the message names the point
    with pytest.raises(ConfigError, match=r"sweep point 1 \(lr_drop_epochs=\[40\]\): lr_drop_epochs \(1 entries\)"):
        expand_sweep("baseline", ["lr_drop_epochs=50,75|40"], base=BASE, name="bad")


def test_the_number_of_points_is_bounded_before_expanding():
    values = ",".join(str(i) for i in range(1, 101))
    with pytest.raises(ConfigError, match=r"the sweep has 10000 points \(100 x 100\); at most 256"):
        expand_sweep("baseline", [f"seed={values}", f"width={values}"], name="big")
    assert len(expand_sweep("baseline", [f"seed={values}"], name="ok").points) == 100 <= MAX_POINTS


def test_names_and_tags():
    sw = expand_sweep("baseline", [f"seed={','.join(str(i) for i in range(12))}"], name="pad")
    assert [p.name for p in sw.points][:2] == ["pad-00", "pad-01"] and sw.points[-1].name == "pad-11"
    default = expand_sweep("acgan-wgangp", ["lr=1e-4,2e-4"])
    assert default.name.startswith("acgan-wgangp-") and len(default.tag) <= 40
    assert all(len(p.name) <= 64 for p in default.points)
    for bad in ("", "-x", "has space", "x" * 35, "a/b"):
        with pytest.raises(ConfigError, match="sweep name"):
            expand_sweep("baseline", ["lr=1e-4"], name=bad)


def test_split_alternatives_keeps_the_run_set_meaning_for_lists():
    from engine.control.config import recipe_spec

    betas = recipe_spec("baseline").all_fields()["betas"]
    assert split_alternatives(betas, "0.5,0.999") == ["0.5,0.999"]
    assert split_alternatives(betas, "0.5,0.999|0,0.9") == ["0.5,0.999", "0,0.9"]
