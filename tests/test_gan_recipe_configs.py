"""The configs of the simpler GAN recipes (mlp-gan, lab5-gan, dcgan): defaults from the course texts, one-line
errors, overrides, data checks before any work, the new-run form, and the networks a config rebuilds."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch

from engine.compute.recipes.bce_gan import build_gan_models
from engine.control.config import RECIPES, default_run_name, resolve_config
from engine.control.datasets import check_dataset_available, dataset_syntax_error
from engine.control.errors import ConfigError
from tests.helpers import ROOT, cli_argv

BCE_RECIPES = ("mlp-gan", "lab5-gan", "dcgan")


def test_defaults_come_from_the_texts():
    mlp = resolve_config("mlp-gan")
    assert (mlp["width"], mlp["n_z"], mlp["batch_size"], mlp["betas"], mlp["lr"], mlp["epochs"], mlp["samples"]) \
        == (300, 100, 100, [0.5, 0.999], 2e-4, 20, 16)
    lab5 = resolve_config("lab5-gan")
    assert (lab5["width"], lab5["classes"], lab5["epochs"], lab5["samples"]) == (256, [], 200, 64)
    dc = resolve_config("dcgan")
    assert (dc["width"], dc["n_z"], dc["lr"], dc["betas"], dc["batch_size"], dc["samples"]) \
        == (64, 100, 2e-4, [0.5, 0.999], 128, 64)
    for name in BCE_RECIPES:
        cfg = resolve_config(name)
        assert cfg["augment"] is False  # the texts feed plain ToTensor/Normalize data
        assert RECIPES[name].epoch_metrics == ("diversity",) and RECIPES[name].has_generator
    assert mlp["dataset"] == lab5["dataset"] == "synthetic28" and dc["dataset"] == "synthetic64"
    assert RECIPES["acgan-wgangp"].epoch_metrics == ("class_spread",)
    assert RECIPES["dcgan"].train_metrics == ("d_loss", "g_loss", "d_real", "d_fake", "d_fake_after")


@pytest.mark.parametrize("recipe, sets, message", [
    ("lab5-gan", ["classes=8,8"], "names a label twice"),
    ("lab5-gan", ["classes=-1"], "classes=-1 must be >= 0"),
    ("lab5-gan", ["classes=eight"], "is not a comma-separated list of integers"),
    ("mlp-gan", ["width=2"], "width=2 must be >= 3"),
    ("mlp-gan", ["classes=8"], "unknown field 'classes' for recipe mlp-gan"),
    ("dcgan", ["samples=0"], "samples=0 must be >= 1"),
    ("dcgan", ["dataset=imagefolder"], "not a known data source"),
])
def test_bad_values_are_one_line_errors(recipe, sets, message):
    with pytest.raises(ConfigError) as e:
        resolve_config(recipe, assignments=sets)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_every_field_can_be_overridden():
    cfg = resolve_config("lab5-gan", assignments=["classes=1,7", "width=8", "n_z=12", "leaky_slope=0.1",
                                                  "samples=9", "lr=1e-3", "betas=0.5,0.9", "augment=true"])
    assert cfg["classes"] == [1, 7] and cfg["width"] == 8 and cfg["n_z"] == 12 and cfg["samples"] == 9
    assert cfg["betas"] == [0.5, 0.9] and cfg["augment"] is True


def test_dataset_names():
    for ok in ("synthetic", "synthetic28", "synthetic64", "imagefolder:/data/celeba", "npz:x.npz", "mnist"):
        assert dataset_syntax_error(ok) is None
    assert "imagefolder:PATH" in dataset_syntax_error("celeba")
    assert default_run_name({"recipe": "dcgan", "dataset": "imagefolder:/data/celeba/"}) == "dcgan-celeba"


def test_classes_are_checked_against_the_data_before_any_work(tmp_path):
    cfg = resolve_config("lab5-gan", assignments=["classes=3,10"])
    with pytest.raises(ConfigError, match="dataset synthetic28 has labels 0..9, not 10"):
        check_dataset_available(cfg)
    npz = tmp_path / "two.npz"
    x = np.zeros((4, 1, 28, 28), np.uint8)
    np.savez(npz, x_train=x, y_train=np.array([1, 1, 2, 2], np.uint8), x_test=x, y_test=np.zeros(4, np.uint8))
    cfg = resolve_config("lab5-gan", assignments=[f"dataset=npz:{npz}", "classes=2,5"])
    with pytest.raises(ConfigError, match="no training images of label 5 .labels present: 1, 2."):
        check_dataset_available(cfg)
    check_dataset_available(resolve_config("lab5-gan", assignments=[f"dataset=npz:{npz}", "classes=2"]))


def test_cli_refuses_bad_data_in_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    cases = [
        (["--recipe", "dcgan", "--dataset", f"imagefolder:{tmp_path / 'empty'}"], "holds no images"),
        (["--recipe", "lab5-gan", "--set", "classes=12"], "has labels 0..9, not 12"),
        (["--recipe", "mlp-gan", "--dataset", f"npz:{tmp_path / 'missing.npz'}"], "does not exist"),
    ]
    for args, message in cases:
        out = subprocess.run(cli_argv("--home", str(tmp_path / "store"), "run", *args), cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], out.stderr


def test_new_run_form_takes_the_new_recipes():
    from tui.forms.run_form import check_form, text_values

    for name in BCE_RECIPES:
        values = text_values(RECIPES[name].default_config())
        check = check_form(name, values)
        assert check.ok, check.errors
        assert check.request.cfg["recipe"] == name and check.request.cfg["width"] == RECIPES[name].defaults.get(
            "width", RECIPES[name].all_fields()["width"].default)
    bad = check_form("lab5-gan", {**text_values(RECIPES["lab5-gan"].default_config()), "extra": "classes=4,4"})
    assert not bad.ok and "names a label twice" in " ".join(bad.errors.values())


def test_build_gan_models_refuses_what_it_cannot_build():
    with pytest.raises(ValueError, match="not one of the BCE GANs"):
        build_gan_models("acgan-wgangp", resolve_config("acgan-wgangp"), 3, 32)
    with pytest.raises(ValueError, match="64x64 images, not 32x32"):
        build_gan_models("dcgan", resolve_config("dcgan"), 3, 32)
    g, _d = build_gan_models("lab5-gan", resolve_config("lab5-gan", assignments=["width=4"]), 1, 28)
    assert g(torch.randn(3, 100)).shape == (3, 1, 28, 28)
