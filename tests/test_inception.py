"""FID/KID/IS offline through torch-fidelity (issue 15, items 1 and 5): the weights file's checks, the
uncalibrated mark, the real-set cache, and the settings/doctor commands.

No test here has the real Inception weights: a file in torch-fidelity's format is made from a seeded, randomly
initialised InceptionV3 (its sha256 is not 6726825d..., so it is only accepted with allow_uncalibrated and
every number it gives is marked). Inception at 299x299 on a CPU is slow: the sets are 8-16 images.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch

from engine.compute.inception import (
    Inception,
    InceptionWeightsError,
    inception_cache_dir,
    inception_metrics,
    real_stats,
    weights_status,
)
from engine.control.data_fingerprint import data_fingerprint
from engine.control.inception_weights import SHA256_PREFIX, WEIGHTS_NAME, config_fields
from engine.control.quality_text import quality_lines
from engine.control.viz_spec import VizSpecError, validate_job
from tests.helpers import ganmgr, random_inception_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return random_inception_weights(tmp_path_factory.mktemp("inception") / "random-inception.pth")


@pytest.fixture(autouse=True)
def no_hub_cache(tmp_path, monkeypatch):
    """torch hub's cache of this test: empty unless a test puts the file there."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def images(seed: int, n: int, channels: int = 3, size: int = 32, scale: float = 1.0, shift: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    return ((torch.rand(n, channels, size, size, generator=g) * 2 - 1) * scale + shift).clamp(-1, 1)


# ----------------------------------------------------------------------------------- the file's checks


def test_a_file_that_is_not_the_real_one_is_refused_unless_allowed_and_then_marked(weights):
    path, uncalibrated, why = weights_status(str(weights), False)
    assert path is None and not uncalibrated
    assert why is not None and "\n" not in why and str(weights) in why and f"{SHA256_PREFIX}..." in why
    assert "--allow-uncalibrated" in why
    path, uncalibrated, why = weights_status(str(weights), True)
    assert (path, uncalibrated, why) == (str(weights.resolve()), True, None)
    assert config_fields(str(weights), True) == {"inception_weights": str(weights.resolve()),
                                                 "inception_uncalibrated": True}
    assert config_fields(str(weights), False) == {"inception_weights": None, "inception_uncalibrated": False}


def test_missing_tiny_truncated_and_code_carrying_files_are_refused_with_one_line(weights, tmp_path):
    missing = tmp_path / "nope.pth"
    assert "no such file" in weights_status(str(missing), True)[2]
    tiny = tmp_path / "tiny.pth"
    tiny.write_bytes(weights.read_bytes()[:1000])
    assert "truncated" in weights_status(str(tiny), True)[2]
    cut = tmp_path / "cut.pth"
    cut.write_bytes(weights.read_bytes()[: 3 << 20])  # past the size floor: only loading tells
    assert weights_status(str(cut), True)[2] is None
    with pytest.raises(InceptionWeightsError) as e:
        Inception.load(cut, True, "cpu")
    assert "\n" not in str(e.value) and str(cut) in str(e.value) and "truncated or corrupt" in str(e.value)

    class Payload:  # what torch.load(weights_only=False), torch-fidelity's own loader, would run
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    evil = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(1 << 19), "x": Payload()}, evil)  # 2 MB: past the size floor
    with pytest.raises(InceptionWeightsError) as e:
        Inception.load(evil, True, "cpu")
    assert "weights-only" in str(e.value) and not (tmp_path / "pwned").exists()


def test_a_state_dict_of_another_network_is_refused(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2 << 20)}, other)  # 8 MB of tensors with the wrong names
    with pytest.raises(InceptionWeightsError, match="not torch-fidelity's InceptionV3"):
        Inception.load(other, True, "cpu")


def test_without_a_setting_the_file_in_torch_hubs_cache_is_used(weights, tmp_path):
    path, _, why = weights_status(None, True)
    assert path is None and "none set" in why and WEIGHTS_NAME in why
    hub = tmp_path / "torch-home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / WEIGHTS_NAME).symlink_to(weights)
    path, uncalibrated, why = weights_status(None, True)
    assert why is None and uncalibrated and path == str(weights.resolve())
    assert weights_status(None, False)[0] is None  # its name promises the real file; the hash decides


def test_the_real_files_hash_needs_no_permission_and_is_not_marked(weights, monkeypatch):
    """The calibrated branch, proven with the random file by making its own hash the expected one."""
    from engine.control import inception_weights

    monkeypatch.setattr(inception_weights, "SHA256_PREFIX", inception_weights.sha256_file(weights)[:8])
    assert weights_status(str(weights), False) == (str(weights.resolve()), False, None)
    assert weights_status(str(weights), True) == (str(weights.resolve()), False, None)  # allowed, not needed


def test_a_new_run_gets_the_weights_from_the_settings_or_is_refused_when_they_went_bad(weights, home, tmp_path):
    from engine.control.errors import ConfigError
    from engine.control.inception_enqueue import resolve_inception
    from store import settings as store_settings

    cfg = {"inception_weights": "/typed/by/hand.pth", "inception_uncalibrated": False, "eval_every": 1}
    assert resolve_inception(home, cfg)["inception_weights"] is None  # no store, no hub file: FID off
    copy = tmp_path / "w.pth"
    copy.write_bytes(weights.read_bytes())
    store_settings.set_setting(home, "inception_weights", str(copy))  # as `settings` stores it once checked
    store_settings.set_setting(home, "inception_allow_uncalibrated", True)
    assert resolve_inception(home, cfg) == {**cfg, "inception_weights": str(copy), "inception_uncalibrated": True}
    assert resolve_inception(home, {**cfg, "eval_every": 0})["inception_weights"] is None
    assert resolve_inception(home, {"eval_every": 1}) == {"eval_every": 1}  # a recipe without the fields
    copy.write_bytes(weights.read_bytes()[:1000])  # cut since it was set
    with pytest.raises(ConfigError, match="truncated") as e:
        resolve_inception(home, cfg)
    assert "--inception-weights default" in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------- the path


@pytest.mark.slow
def test_fid_kid_is_through_torch_fidelity_marked_uncalibrated_with_the_real_set_cached(weights, tmp_path):
    inc = Inception.load(weights, True, "cpu")
    assert inc.uncalibrated and inc.weights_id == inc.sha256[:12]
    a, a2 = images(1, 16), images(2, 16)
    grey = images(3, 16, channels=1, size=28, scale=0.3, shift=0.5)  # another distribution, grey, 28 px
    calls: list[int] = []

    def real_a():
        calls.append(1)
        return a

    cache = inception_cache_dir(tmp_path / "runs")
    first = real_stats(inc, "set-a", real_a, cache)
    again = real_stats(inc, "set-a", real_a, cache)
    assert calls == [1] and not first.cached and again.cached and first.n == again.n == 16
    assert (again.mu == first.mu).all() and (again.sigma == first.sigma).all()
    [cached] = list(cache.iterdir())
    assert cached.stat().st_mode & 0o777 == 0o600 and cache.stat().st_mode & 0o777 == 0o700
    assert inc.weights_id in cached.name

    same = inception_metrics(inc, a, again)
    assert abs(same["fid"]) < 1e-6 and abs(same["kid"]) < 1e-3
    assert same["uncalibrated"] is True and same["weights"] == inc.weights_id and same["n"] == 16
    assert same["precision"] == same["recall"] == 1.0
    near = inception_metrics(inc, a2, again)  # another draw of the same distribution
    real_grey = real_stats(inc, "set-grey", lambda: grey, cache)
    far = inception_metrics(inc, grey, again)
    back = inception_metrics(inc, a, real_grey)
    assert far["fid"] > 10 * max(near["fid"], 1e-3) > 0
    assert far["kid"] > 0.01 > abs(near["kid"])
    assert far["fid"] == pytest.approx(back["fid"], rel=1e-6)  # FID is symmetric
    assert far["kid"] == pytest.approx(back["kid"], rel=1e-4)  # KID too (subsets = the whole 16; float32)
    assert far["kid_subset_size"] == 16 and far["is_splits"] == 8 and far["is"] >= 1.0


@pytest.mark.slow
def test_features_leave_the_training_rng_alone(weights):
    inc = Inception.load(weights, True, "cpu")
    torch.manual_seed(7)
    before = torch.get_rng_state()
    inc.features(images(4, 2))
    assert torch.equal(before, torch.get_rng_state())


# ------------------------------------------------------------------------------------- the viz jobs' side


def viz_job(tmp_path: Path, weights: str | None, uncalibrated: bool):
    from engine.compute.viz.job import Job
    from engine.control.records import MetricsWriter

    run_dir = tmp_path / "runs" / "1-gan"
    run_dir.mkdir(parents=True, exist_ok=True)
    return Job(kind="quality", params={"device": "cpu"}, run_dir=run_dir, checkpoint="checkpoints/final.pt",
               baseline_run_dir=None, baseline_checkpoint=None, out_dir=tmp_path, root_dir=tmp_path,
               metrics=MetricsWriter(tmp_path / "metrics.jsonl"), inception_weights=weights,
               inception_uncalibrated=uncalibrated)


def test_a_viz_job_without_usable_weights_skips_fid_with_one_line(weights, tmp_path):
    from engine.compute.viz.fidelity import inception_scores

    never = lambda: pytest.fail("the real images are not needed when FID is skipped")  # noqa: E731
    out = inception_scores(viz_job(tmp_path, None, False), images(1, 4), never, "k")
    assert out["fid"] is None and out["inception_score"] is None and out["inception_kid"] is None
    assert out["note"].startswith("FID/IS skipped") and "ganmgr doctor" in out["note"] and "\n" not in out["note"]
    out = inception_scores(viz_job(tmp_path, str(weights), False), images(1, 4), never, "k")
    assert out["fid"] is None and "is not 6726825d" in out["note"]  # the file changed since it was allowed


@pytest.mark.slow
def test_a_viz_job_with_weights_reports_fid_kid_is_marked_and_caches_the_real_set(weights, tmp_path):
    from engine.compute.viz.fidelity import inception_scores, real_test_fingerprint

    job = viz_job(tmp_path, str(weights), True)
    key = real_test_fingerprint({"dataset": "synthetic"}, 8, [3, 32, 32])
    out = inception_scores(job, images(5, 8), lambda: images(6, 8), key)
    assert out["fid"] > 0 and out["inception_kid"] is not None and out["inception_score"] >= 1.0
    assert out["uncalibrated"] is True and (out["fid_n"], out["fid_n_real"]) == (8, 8) and "computed" in out["note"]
    assert list((tmp_path / "runs" / ".cache" / "inception").glob(f"{key}-*.npz"))
    assert quality_lines(out)[-1].endswith("(uncalibrated)")


# ------------------------------------------------------------------------------------ torch-free parts


def test_the_data_fingerprint_changes_with_the_file_split_and_n(tmp_path):
    npz = tmp_path / "d.npz"
    npz.write_bytes(b"x" * 10)
    key = data_fingerprint(f"npz:{npz}", None, "train", 100)
    assert key == data_fingerprint(f"npz:{npz}", None, "train", 100)
    assert key != data_fingerprint(f"npz:{npz}", None, "test", 100)
    assert key != data_fingerprint(f"npz:{npz}", None, "train", 99)
    assert key != data_fingerprint(f"npz:{npz}", None, "train", 100, shape=[3, 32, 32])
    npz.write_bytes(b"x" * 11)
    assert key != data_fingerprint(f"npz:{npz}", None, "train", 100)


def test_job_json_carries_the_weights_as_an_absolute_path_or_null(tmp_path):
    job = {"kind": "curves", "params": {}, "run_dir": str(tmp_path), "checkpoint": "checkpoints/final.pt",
           "baseline_run_dir": None, "baseline_checkpoint": None}
    assert validate_job(job)["inception_weights"] is None  # a job.json from before: FID off
    out = validate_job({**job, "inception_weights": "/w.pth", "inception_uncalibrated": True})
    assert (out["inception_weights"], out["inception_uncalibrated"]) == ("/w.pth", True)
    with pytest.raises(VizSpecError, match="absolute"):
        validate_job({**job, "inception_weights": "w.pth"})


def test_printed_numbers_carry_the_uncalibrated_mark():
    result = {"accuracy": 50.0, "fd": 1.5, "fid": 12.3456, "inception_kid": 0.01234, "inception_kid_std": 0.001,
              "inception_score": 1.5, "inception_score_std": 0.1, "fid_n": 100, "fid_n_real": 500}
    [_, line] = quality_lines({**result, "uncalibrated": True})
    assert line.startswith("inception: FID 12.35  KID 0.0123 ± 0.0010  IS 1.50 ± 0.10") and "n=100" in line
    assert line.endswith("(uncalibrated)")
    assert "uncalibrated" not in quality_lines(result)[1]
    skipped = {"accuracy": 50.0, "fid": None, "note": "FID/IS skipped (KID too): no Inception weights"}
    assert quality_lines(skipped)[1] == skipped["note"]


# ---------------------------------------------------------------------------------- settings and doctor


def settings_rows(home: Path) -> list:
    if not (home / "ganmgr.db").exists():
        return []
    with sqlite3.connect(home / "ganmgr.db") as con:
        return con.execute("select key, value_json from settings order by key").fetchall()


def test_settings_refuses_a_bad_weights_file_with_one_line_and_changes_nothing(weights, home, tmp_path, capsys):
    from tui.cli.main import main

    assert main(["--home", str(home), "settings", "--max-concurrent", "2"]) == 0
    before = settings_rows(home)
    cut = tmp_path / "tiny.pth"
    cut.write_bytes(weights.read_bytes()[:5000])
    capsys.readouterr()
    for args, said in ((["--inception-weights", str(tmp_path / "nope.pth")], "no such file"),
                       (["--inception-weights", str(weights)], "is not 6726825d"),
                       (["--inception-weights", str(cut), "--allow-uncalibrated"], "truncated"),
                       (["--allow-uncalibrated"], "goes with --inception-weights")):
        code = main(["--home", str(home), "settings", *args])
        err = capsys.readouterr().err
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and said in err, (args, err)
        assert settings_rows(home) == before


@pytest.mark.slow
def test_settings_loads_the_file_once_then_doctor_and_new_runs_see_it(weights, home, tmp_path):
    env = {"TORCH_HOME": str(tmp_path / "torch-home")}
    out = ganmgr(home, "doctor", "--no-load", env=env)
    assert out.returncode == 1 and "FID/KID/IS: no" in out.stdout and "download_url_to_file" in out.stdout
    cut = tmp_path / "cut.pth"
    cut.write_bytes(weights.read_bytes()[: 3 << 20])  # passes size and (allowed) hash; loading refuses it
    out = ganmgr(home, "settings", "--inception-weights", str(cut), "--allow-uncalibrated", env=env)
    assert out.returncode == 2 and "truncated or corrupt" in out.stderr and settings_rows(home) == []
    out = ganmgr(home, "settings", "--inception-weights", str(weights), "--allow-uncalibrated", "--json", env=env)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["inception_weights"] == str(weights.resolve()) and shown["inception_allow_uncalibrated"] is True
    out = ganmgr(home, "doctor", "--json", env=env)
    report = json.loads(out.stdout)["inception"]
    assert out.returncode == 0 and report["usable"] and report["uncalibrated"] and report["path"] == shown[
        "inception_weights"]
    out = ganmgr(home, "settings", env=env)
    assert "(uncalibrated" in out.stdout

    from engine.control.inception_enqueue import resolve_inception

    cfg = {"inception_weights": "/typed/by/hand.pth", "inception_uncalibrated": False, "eval_every": 1}
    assert resolve_inception(home, cfg)["inception_weights"] == str(weights.resolve())
    assert resolve_inception(home, cfg)["inception_uncalibrated"] is True
    assert resolve_inception(home, {**cfg, "eval_every": 0})["inception_weights"] is None


@pytest.mark.slow
def test_viz_quality_wait_prints_fid_kid_is_with_n_marked_uncalibrated(weights, store_home, tmp_path):
    """The issue's "done when": with a weights file set, `ganmgr viz RUN quality --wait` prints FID, KID and
    IS with n; without it, the classifier's scores and one line saying why FID is skipped."""
    from tests.helpers import tiny_npz

    home, env = store_home, {"TORCH_HOME": str(tmp_path / "torch-home")}
    npz = tiny_npz(tmp_path / "d.npz", n_train=64, n_test=20)
    common = ["--dataset", f"npz:{npz}", "--epochs", "1", "--width", "8", "--batch-size", "32", "--device", "cpu",
              "--set", "threads=1"]
    for recipe, name in (("baseline", "clf"), ("acgan-wgangp", "gan")):
        out = ganmgr(home, "run", "--headless", "--recipe", recipe, "--name", name, *common, env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
    quality = ["viz", "gan", "quality", "--baseline", "clf", "--wait", "--set", "n_per_class=1", "--set",
               "device=cpu", "--set", "threads=1"]
    out = ganmgr(home, *quality, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    skipped = [ln for ln in out.stdout.splitlines() if ln.startswith("FID/IS skipped")]
    assert len(skipped) == 1 and "ganmgr doctor" in skipped[0] and "GAN-test accuracy" in out.stdout

    assert ganmgr(home, "settings", "--inception-weights", str(weights), "--allow-uncalibrated",
                  env=env).returncode == 0
    out = ganmgr(home, *quality, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    [line] = [ln for ln in out.stdout.splitlines() if ln.startswith("inception: ")]
    assert "FID " in line and "KID " in line and "IS " in line and "n=10 generated vs 20 real" in line
    assert line.endswith("(uncalibrated)")
