"""The torch-free side of visualization jobs: kinds, parameters with the course's defaults, job.json checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.control.run_dir import read_job, write_job
from engine.control.viz_spec import (
    FEATURE_LAYERS,
    VIZ_KINDS,
    VizSpecError,
    checkpoint_name,
    create_job_dir,
    make_job,
    primary_output,
    resolve_viz_params,
    validate_job,
)
from tests.helpers import ROOT


def test_defaults_are_the_courses():
    assert resolve_viz_params("perturb") == {"batch_size": 128, "gain": 8.0, "device": "auto", "threads": 0}
    ascent = resolve_viz_params("max_class")
    assert (ascent["lr"], ascent["weight_decay"], ascent["iterations"]) == (0.1, 0.001, 200)
    feats = resolve_viz_params("max_features")
    assert (feats["layer"], feats["features"]) == (8, 100)
    assert resolve_viz_params("progression") == {"count": 6, "epochs": []}
    assert resolve_viz_params("curves") == {}
    q = resolve_viz_params("quality")
    assert (q["n_per_class"], q["fid"]) == (100, True)
    assert resolve_viz_params("report")["feature_layers"] == [4, 8]
    assert FEATURE_LAYERS == (2, 3, 4, 6, 8)


def test_overrides_typed_and_from_strings():
    p = resolve_viz_params("max_features", {"iterations": 50}, ["layer=4", "lr=0.05", "weight_decay=0"])
    assert (p["layer"], p["iterations"], p["lr"], p["weight_decay"]) == (4, 50, 0.05, 0.0)
    assert resolve_viz_params("report", assignments=["feature_layers=2,6"])["feature_layers"] == [2, 6]
    assert resolve_viz_params("progression", assignments=["epochs=1,5,9"])["epochs"] == [1, 5, 9]


@pytest.mark.parametrize("kind, overrides, assignments, words", [
    ("perturb", {}, ["gian=3"], ["unknown parameter 'gian' for perturb", "did you mean 'gain'"]),
    ("curves", {"lr": 1}, [], ["unknown parameter 'lr' for curves", "takes no parameters"]),
    ("max_features", {}, ["layer=5"], ["layer=5", "2, 3, 4, 6, 8"]),
    ("max_features", {"layer": 1}, [], ["layer=1", "2, 3, 4, 6, 8"]),
    ("max_class", {}, ["lr=-0.1"], ["lr=-0.1 must be > 0"]),
    ("max_class", {}, ["iterations=2.5"], ["iterations='2.5' is not an integer"]),
    ("perturb", {}, ["gain=-1"], ["gain=-1.0 must be >= 0"]),
    ("report", {}, ["feature_layers=4,5"], ["feature_layers", "has 5"]),
    ("progression", {}, ["epochs=5,3"], ["strictly increasing"]),
    ("quality", {}, ["device=gpu"], ["device='gpu'", "auto, cpu, cuda"]),
    ("nope", {}, [], ["unknown visualization kind 'nope'"]),
    ("max_clas", {}, [], ["did you mean 'max_class'"]),
    ("perturb", {}, ["gain"], ["must look like key=value"]),
])
def test_bad_parameters_are_one_line_errors(kind, overrides, assignments, words):
    with pytest.raises(VizSpecError) as err:
        resolve_viz_params(kind, overrides, assignments)
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, msg


def test_kind_table_says_what_each_needs():
    assert set(VIZ_KINDS) == {"perturb", "max_class", "max_features", "progression", "curves", "quality", "report"}
    assert [k for k, v in VIZ_KINDS.items() if v.needs_baseline] == ["quality", "report"]
    assert not VIZ_KINDS["progression"].needs_checkpoint and not VIZ_KINDS["curves"].needs_checkpoint
    assert VIZ_KINDS["progression"].needs_generator and not VIZ_KINDS["perturb"].needs_generator
    assert primary_output("max_features", {"layer": 4}) == "max_features_layer4.png"
    assert primary_output("perturb", {}) == "jittered_images.png"
    assert primary_output("report", {}) == "report.html"


def test_checkpoint_names():
    assert checkpoint_name() == "checkpoints/final.pt"
    assert checkpoint_name(7) == "checkpoints/epoch_007.pt"
    assert checkpoint_name(1234) == "checkpoints/epoch_1234.pt"
    for bad in (0, -1, True, "3"):
        with pytest.raises(VizSpecError):
            checkpoint_name(bad)


def test_job_file_round_trip_and_refusals(tmp_path: Path):
    run = tmp_path / "runs" / "1-gan"
    run.mkdir(parents=True)
    job = make_job("quality", resolve_viz_params("quality"), run, baseline_run_dir=tmp_path / "runs" / "2-base")
    assert job["baseline_checkpoint"] == "checkpoints/final.pt" and job["run_dir"] == str(run.resolve())
    job_dir = create_job_dir(run, 12, "quality")
    assert job_dir == run.resolve() / "viz" / "12-quality" and (job_dir.stat().st_mode & 0o777) == 0o700
    write_job(job_dir, job)
    assert read_job(job_dir) == job
    assert (job_dir / "job.json").stat().st_mode & 0o777 == 0o600

    def refused(**changes) -> str:
        with pytest.raises(VizSpecError) as err:
            validate_job({**job, **changes})
        assert "\n" not in str(err.value)
        return str(err.value)

    assert "needs a baseline run" in refused(baseline_run_dir=None)
    assert "checkpoints/final.pt" in refused(checkpoint="../../etc/passwd.pt")
    assert "checkpoints/final.pt" in refused(checkpoint="checkpoints/epoch_1.pt/../../x.pt")
    assert "absolute path" in refused(run_dir="runs/1-gan")
    assert "unknown key 'extra'" in refused(extra=1)
    assert "unknown parameter 'layer' for quality" in refused(params={"layer": 4})
    with pytest.raises(VizSpecError, match="takes no baseline run"):
        make_job("perturb", {}, run, baseline_run_dir=run)
    with pytest.raises(FileExistsError):
        create_job_dir(run, 12, "quality")


def test_unreadable_job_file_names_the_file(tmp_path: Path):
    (tmp_path / "job.json").write_text("{not json")
    with pytest.raises(VizSpecError, match="job.json is unreadable"):
        read_job(tmp_path)
    with pytest.raises(VizSpecError, match="does not exist"):
        read_job(tmp_path / "nowhere")


def test_viz_spec_imports_no_torch():
    probe = ("import sys, engine.control.viz_spec as v; v.resolve_viz_params('report'); "
             "heavy = [m for m in ('torch', 'torchvision', 'matplotlib') if m in sys.modules]; "
             "assert not heavy, heavy; print('clean')")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "clean"
