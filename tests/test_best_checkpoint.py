"""checkpoints/best.pt and the checkpoint choice (`--checkpoint best|last|final|epoch:N`, issue 14 item 4).

The unit tests check the one rule (engine.control.viz_spec), the config field and the keeper with real files;
the slow one trains a tiny baseline run with the real worker and drives `ganmgr show`, `viz` and `fork` on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.control.config import RECIPES, best_direction, resolve_config
from engine.control.errors import ConfigError
from engine.control.records import MetricsWriter, last_artifact
from engine.control.viz_spec import (
    VizSpecError,
    available_checkpoints,
    best_checkpoint,
    checkpoint_choice,
    checkpoint_epoch,
    checkpoint_path,
    choice_of,
    missing_checkpoint_message,
)
from tests.helpers import ROOT, ganmgr, records, tiny_npz, wait_status

# ------------------------------------------------------------------------------------ the choice rule


@pytest.mark.parametrize("choice, epoch, file", [
    (None, None, "checkpoints/final.pt"),
    ("best", None, "checkpoints/best.pt"),
    ("last", None, "checkpoints/last.pt"),
    ("final", None, "checkpoints/final.pt"),
    ("epoch:7", None, "checkpoints/epoch_007.pt"),
    ("epoch:1234", None, "checkpoints/epoch_1234.pt"),
    (None, 3, "checkpoints/epoch_003.pt"),  # --epoch N is --checkpoint epoch:N
])
def test_a_choice_names_one_file(choice, epoch, file) -> None:
    assert checkpoint_choice(choice, epoch) == file
    assert checkpoint_choice(choice_of(file)) == file


@pytest.mark.parametrize("choice, epoch, words", [
    ("bset", None, "must be best, last, final or epoch:N"),
    ("epoch:0", None, "must be best, last, final or epoch:N"),
    ("epoch_3", None, "must be best, last, final or epoch:N"),
    ("../../etc/passwd", None, "must be best, last, final or epoch:N"),
    ("best", 3, "not both"),
])
def test_a_bad_choice_is_one_line(choice, epoch, words) -> None:
    with pytest.raises(VizSpecError, match=words) as e:
        checkpoint_choice(choice, epoch)
    assert "\n" not in str(e.value)


def test_the_default_differs_for_a_fork() -> None:
    assert checkpoint_choice(None, None, default="last") == "checkpoints/last.pt"


def _run_folder(base: Path, *names: str) -> Path:
    run_dir = base / "7-run"
    (run_dir / "checkpoints").mkdir(parents=True)
    for n in names:
        (run_dir / "checkpoints" / n).write_bytes(b"x")
    return run_dir


def test_what_a_run_has_and_what_the_refusal_says(tmp_path: Path) -> None:
    run_dir = _run_folder(tmp_path, "last.pt", "best.pt", "epoch_002.pt", "epoch_004.pt")
    assert available_checkpoints(run_dir) == ["best", "last", "epoch:2", "epoch:4"]
    msg = missing_checkpoint_message(run_dir, "checkpoints/final.pt")
    assert "has not completed" in msg and "--checkpoint best or last" in msg and "2, 4" in msg
    msg = missing_checkpoint_message(run_dir, "checkpoints/epoch_003.pt")
    assert "that epoch was not kept" in msg and "--checkpoint best or last" in msg
    empty = _run_folder(tmp_path / "e")
    assert available_checkpoints(empty) == []
    assert "no checkpoint yet" in missing_checkpoint_message(empty, "checkpoints/best.pt")


def test_a_checkpoint_never_leads_outside_the_run_folder(tmp_path: Path) -> None:
    run_dir = _run_folder(tmp_path, "last.pt")
    outside = tmp_path / "secret.pt"
    outside.write_bytes(b"x")
    os.symlink(outside, run_dir / "checkpoints" / "best.pt")
    assert checkpoint_path(run_dir, "checkpoints/last.pt").is_file()
    with pytest.raises(VizSpecError, match="outside its folder"):
        checkpoint_path(run_dir, "checkpoints/best.pt")
    with pytest.raises(VizSpecError, match="must be checkpoints/final.pt"):
        checkpoint_path(run_dir, "../secret.pt")


def test_the_newest_best_record_is_found_backward(tmp_path: Path) -> None:
    run_dir = _run_folder(tmp_path, "best.pt")
    writer = MetricsWriter(run_dir / "metrics.jsonl")
    for epoch in range(1, 400):
        writer.write({"kind": "epoch", "epoch": epoch, "test_acc": float(epoch)})
        if epoch in (3, 50):
            writer.write({"kind": "artifact", "what": "best", "path": "checkpoints/best.pt", "epoch": epoch,
                          "metric": "test_acc", "value": float(epoch), "mode": "max"})
        writer.write({"kind": "train", "epoch": epoch, "note": "best"})  # a look-alike that is no artifact
    writer.close()
    assert last_artifact(run_dir / "metrics.jsonl", "best", chunk_bytes=97)["epoch"] == 50
    assert best_checkpoint(run_dir)["value"] == 50.0
    assert checkpoint_epoch(run_dir, "checkpoints/best.pt") == 50
    assert checkpoint_epoch(run_dir, "checkpoints/epoch_012.pt") == 12
    assert checkpoint_epoch(run_dir, "checkpoints/last.pt") is None
    assert last_artifact(run_dir / "nothing.jsonl", "best") is None


# ------------------------------------------------------------------------------------- the config field


def test_best_metric_defaults_by_recipe_and_is_checked() -> None:
    for name, spec in RECIPES.items():
        assert resolve_config(name)["best_metric"] == ("test_acc" if spec.has_classifier else None)
    assert resolve_config("mlp-gan", assignments=["best_metric=diversity"])["best_metric"] == "diversity"
    assert resolve_config("baseline", assignments=["best_metric=none"])["best_metric"] is None
    with pytest.raises(ConfigError, match=r"best_metric='tset_acc' \(did you mean 'test_acc'\?\)") as e:
        resolve_config("baseline", assignments=["best_metric=tset_acc"])
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="not in the epoch records of mlp-gan"):
        resolve_config("mlp-gan", assignments=["best_metric=test_acc"])
    with pytest.raises(ConfigError, match="best_mode='up'"):
        resolve_config("baseline", assignments=["best_mode=up"])
    assert best_direction("test_acc") == "max" and best_direction("mean_loss") == "min"
    assert best_direction("mean_loss", "max") == "max"


def test_the_keeper_only_replaces_best_with_better_even_after_a_resume(tmp_path: Path) -> None:
    import torch

    from engine.compute.checkpoint import BestKeeper, load_checkpoint

    cfg = resolve_config("baseline")
    state = {"config": cfg, "models": {"D": {"w": torch.zeros(2)}}}
    keeper = BestKeeper(cfg, tmp_path)
    assert keeper.offer({"epoch": 1, "test_acc": 40.0}, lambda: state)["epoch"] == 1
    assert keeper.offer({"epoch": 2, "test_acc": float("nan")}, lambda: state) is None
    assert keeper.offer({"epoch": 3, "test_acc": 55.0}, lambda: state)["value"] == 55.0
    again = BestKeeper(cfg, tmp_path)  # a resumed worker reads the best so far back from best.pt
    assert again.offer({"epoch": 4, "test_acc": 50.0}, lambda: state) is None
    assert load_checkpoint(tmp_path / "best.pt")["best"]["epoch"] == 3
    assert again.offer({"epoch": 5, "test_acc": 56.0}, lambda: state)["epoch"] == 5
    losses = BestKeeper(resolve_config("baseline", assignments=["best_metric=mean_loss"]), tmp_path / "l")
    (tmp_path / "l").mkdir()
    assert losses.offer({"epoch": 1, "mean_loss": 2.0}, lambda: state) is not None
    assert losses.offer({"epoch": 2, "mean_loss": 3.0}, lambda: state) is None  # min wins for a loss
    none = BestKeeper(resolve_config("mlp-gan"), tmp_path / "n")
    assert none.offer({"epoch": 1, "diversity": 1.0}, lambda: state) is None
    assert not (tmp_path / "n" / "best.pt").exists()


# ------------------------------------------------------------------------------ the TUI's launcher


def test_the_launcher_lists_best_and_last_and_asks_for_them_by_name(home: Path) -> None:
    from tests.tui_helpers import make_run
    from tui.forms.viz_form import check_viz_form, checkpoints_for

    run = make_run(home, "cancelled", recipe="baseline", name="stopped", epochs=6, epoch=3)
    run_dir = Path(run.run_dir)
    assert checkpoints_for(run) == []
    for name in ("last.pt", "best.pt", "epoch_002.pt"):
        (run_dir / "checkpoints" / name).write_bytes(b"x")
    writer = MetricsWriter(run_dir / "metrics.jsonl")
    writer.write({"kind": "artifact", "what": "best", "path": "checkpoints/best.pt", "epoch": 2,
                  "metric": "test_acc", "value": 61.25, "mode": "max"})
    writer.close()
    assert checkpoints_for(run) == [("best (epoch 2, test_acc 61.25)", "best"), ("last (epoch 3)", "last"),
                                    ("epoch 2", "2")]
    best = check_viz_form("max_class", {}, "best", None)
    assert best.ok and (best.request.checkpoint, best.request.epoch) == ("best", None)
    kept = check_viz_form("max_class", {}, "2", None)
    assert kept.ok and (kept.request.checkpoint, kept.request.epoch) == (None, 2)
    assert "must be best, last, final" in check_viz_form("max_class", {}, "bogus", None).errors["checkpoint"]


# --------------------------------------------------------------------------- a real run, viz and fork


@pytest.mark.slow
def test_best_pt_follows_test_acc_and_viz_and_fork_read_the_chosen_file(store_home: Path, tmp_path: Path) -> None:
    from engine.compute.checkpoint import load_checkpoint
    from engine.control.viz_jobs import cancel_viz, submit_viz
    from store import runs as store_runs
    from store import viz_jobs as store_viz

    home = store_home
    # 16 steps an epoch at width 16: enough for test_acc to rise and dip over 6 epochs (about 4 s of CPU)
    npz = tiny_npz(tmp_path / "t.npz", n_train=512, n_test=128)
    out = ganmgr(home, "run", "--headless", "--recipe", "baseline", "--dataset", f"npz:{npz}", "--epochs", "6",
                 "--width", "16", "--batch-size", "32", "--lr", "0.001", "--device", "cpu", "--name", "best",
                 "--set", "threads=1", "--set", "augment=false", "--set", "keep_every=2")
    assert out.returncode == 0, out.stderr[-2000:]
    run = store_runs.find_run(home, "best")
    run_dir = Path(run.run_dir)

    accs = [r["test_acc"] for r in records(run_dir, "epoch")]
    best_epoch = accs.index(max(accs)) + 1  # the first epoch that reached the highest test accuracy
    state = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert state["epoch"] == best_epoch and state["best"] == {
        "metric": "test_acc", "value": max(accs), "epoch": best_epoch, "mode": "max"}
    bests = [r for r in records(run_dir, "artifact") if r["what"] == "best"]
    assert [r["epoch"] for r in bests][-1] == best_epoch and all(r["path"] == "checkpoints/best.pt" for r in bests)
    improved = [i + 1 for i, a in enumerate(accs) if a > max(accs[:i], default=-1.0)]
    assert [r["epoch"] for r in bests] == improved  # written exactly when test_acc improved
    [row] = [a for a in store_runs.list_artifacts(home, run.id) if a.path == "checkpoints/best.pt"]
    assert (row.kind, row.epoch) == ("best", best_epoch)

    shown = ganmgr(home, "show", str(run.id))
    assert f"checkpoints/best.pt: epoch {best_epoch}, test_acc {max(accs):.2f}" in shown.stdout, shown.stdout
    assert json.loads(ganmgr(home, "show", str(run.id), "--json").stdout)["best"]["epoch"] == best_epoch

    # viz: the job.json names the chosen file; a run without final.pt (stopped early) is read through last
    (run_dir / "checkpoints" / "final.pt").unlink()
    jobs = {c: submit_viz(home, run.id, "perturb", checkpoint=c, assignments=["device=cpu", "threads=1"],
                          start_supervisor=False) for c in ("best", "last")}
    for choice, job in jobs.items():
        cancel_viz(home, job.id)  # queued: cancelled at once, its folder stays for the run by hand below
        assert json.loads((Path(job.job_dir) / "job.json").read_text())["checkpoint"] == f"checkpoints/{choice}.pt"
        assert job.checkpoint == f"checkpoints/{choice}.pt"
    done = subprocess.run([sys.executable, "-m", "engine.compute.viz", jobs["last"].job_dir], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (Path(jobs["last"].job_dir) / "jittered_images.png").is_file()

    before = store_viz.list_viz_jobs(home)
    for args, words in ((["--checkpoint", "final"], "--checkpoint best or last"),
                        (["--checkpoint", "bset"], "must be best, last, final or epoch:N"),
                        (["--checkpoint", "best", "--epoch", "2"], "not allowed with")):
        bad = ganmgr(home, "viz", str(run.id), "perturb", *args)
        assert bad.returncode == 2 and words in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 or "usage:" in bad.stderr
    assert store_viz.list_viz_jobs(home) == before

    # fork: from best.pt; the child's row and its start record name the parent's best epoch
    bad = ganmgr(home, "fork", str(run.id), "--checkpoint", "epoch:9")
    assert bad.returncode == 2 and "no checkpoint of epoch 9" in bad.stderr, bad.stderr
    assert "it has --checkpoint best, last, epoch:2, epoch:4, epoch:6" in bad.stderr, bad.stderr
    forked = ganmgr(home, "fork", str(run.id), "--checkpoint", "best", "--set", f"epochs={best_epoch + 1}")
    assert forked.returncode == 0, forked.stderr
    assert f"after epoch {best_epoch} (checkpoints/best.pt)" in forked.stdout, forked.stdout
    child = next(r for r in store_runs.list_runs(home) if r.parent_id == run.id)
    assert child.parent_epoch == best_epoch
    assert (Path(child.run_dir) / "checkpoints" / "init.pt").read_bytes() == \
        (run_dir / "checkpoints" / "best.pt").read_bytes()
    done = wait_status(home, child.id, {"completed", "failed", "lost", "killed", "cancelled", "diverged"})
    assert done.status == "completed", done.error
    start = records(Path(child.run_dir), "start")[0]
    assert start["epoch"] == best_epoch and start["forked_from"].endswith("init.pt")
    assert [r["epoch"] for r in records(Path(child.run_dir), "epoch")] == [best_epoch + 1]
