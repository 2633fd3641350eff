"""Recipe configs: the course's defaults, overrides, and one-line errors for bad values."""

from __future__ import annotations

import pytest

from engine.control.config import config_diff, resolve_config, validate_config
from engine.control.errors import ConfigError


def test_baseline_defaults_are_the_seeds():
    cfg = resolve_config("baseline")
    assert cfg["lr"] == 1e-4 and cfg["batch_size"] == 128 and cfg["epochs"] == 100
    assert cfg["lr_drop_epochs"] == [50, 75] and cfg["lr_drop_factors"] == [0.1, 0.01]
    assert cfg["width"] == 196 and cfg["dataset"] == "synthetic"


def test_acgan_defaults_are_the_seeds():
    cfg = resolve_config("acgan-wgangp")
    assert cfg["betas"] == [0.0, 0.9] and cfg["lr"] == 1e-4 and cfg["gp_lambda"] == 10.0
    assert cfg["gen_every"] == 1 and cfg["n_z"] == 100 and cfg["save_noise_seed"] == 352
    assert cfg["batch_size"] == 128


def test_every_field_can_be_overridden_by_set_strings():
    cfg = resolve_config("acgan-wgangp", assignments=[
        "width=128", "epochs=3", "lr=2e-4", "betas=0.5,0.999", "augment=false", "gen_every=5",
        "device=cpu", "name=my.run-1", "data_root=none", "gp_lambda=1"])
    assert cfg["width"] == 128 and cfg["epochs"] == 3 and cfg["lr"] == 2e-4
    assert cfg["betas"] == [0.5, 0.999] and cfg["augment"] is False and cfg["gen_every"] == 5
    assert cfg["name"] == "my.run-1" and cfg["data_root"] is None and cfg["gp_lambda"] == 1.0


def test_json_list_syntax_and_int_from_exponent():
    cfg = resolve_config("baseline", assignments=["lr_drop_epochs=[10, 20]", "epochs=1e2"])
    assert cfg["lr_drop_epochs"] == [10, 20] and cfg["epochs"] == 100


@pytest.mark.parametrize("recipe,assignments,overrides,needle", [
    ("gan", [], {}, "unknown recipe 'gan'"),
    ("baseline", ["widht=3"], {}, "did you mean 'width'"),
    ("baseline", ["epochs=-1"], {}, "epochs=-1 must be >= 1"),
    ("baseline", ["width=0"], {}, "width=0 must be >= 1"),
    ("baseline", ["lr=0"], {}, "lr=0.0 must be > 0"),
    ("baseline", ["lr=nan"], {}, "finite"),
    ("baseline", ["batch_size=1"], {}, "batch_size=1 must be >= 2"),
    ("baseline", ["epochs=2.5"], {}, "not an integer"),
    ("baseline", ["betas=0.5"], {}, "exactly 2 values"),
    ("baseline", ["augment=maybe"], {}, "true or false"),
    ("baseline", ["device=gpu"], {}, "auto, cpu, cuda"),
    ("baseline", ["precision=fp8"], {}, "must be one of"),
    ("baseline", ["dataset=imagenet"], {}, "not a known data source"),
    ("baseline", ["dataset=cifar10"], {}, "needs --data-root"),
    ("baseline", ["name=../x"], {}, "name="),
    ("baseline", ["lr_drop_epochs=10"], {}, "equal length"),
    ("baseline", ["lr_drop_epochs=75,50", "lr_drop_factors=0.1,0.01"], {}, "strictly increasing"),
    ("acgan-wgangp", ["n_z=5"], {}, "n_z=5"),
    ("baseline", ["epochs"], {}, "key=value"),
    ("baseline", ["recipe=acgan-wgangp"], {}, "cannot be changed"),
    ("baseline", [], {"epochs": "3"}, "not an integer"),
    ("baseline", [], {"augment": 1}, "true or false"),
    ("baseline", [], {"bogus": 1}, "unknown field 'bogus'"),
])
def test_bad_values_are_one_line_errors(recipe, assignments, overrides, needle):
    with pytest.raises(ConfigError) as e:
        resolve_config(recipe, overrides, assignments)
    msg = str(e.value)
    assert needle in msg
    assert "\n" not in msg


def test_validate_round_trip_and_diff():
    cfg = resolve_config("baseline", assignments=["epochs=3"])
    assert validate_config(dict(cfg)) == cfg
    other = resolve_config("baseline", assignments=["epochs=4", "lr=1e-3"])
    assert config_diff(cfg, other) == {"epochs": (3, 4), "lr": (1e-4, 1e-3)}
    with pytest.raises(ConfigError, match="unknown field 'zzz'"):
        validate_config({**cfg, "zzz": 1})
