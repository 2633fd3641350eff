"""Visualization jobs through the queue: `ganmgr viz/jobs/report` -> the store -> the supervisor ->
`python -m engine.compute.viz`, with real processes, a real SQLite file and tiny runs trained by the real worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from engine.control.procs import is_alive
from engine.control.submit import SubmitError
from engine.control.viz_jobs import VizFold, submit_viz
from engine.control.viz_spec import VizSpecError
from store import runs as store_runs
from store import viz_jobs as store_viz
from store.db import dispose_engines
from tests.helpers import ROOT, cli_argv, tiny_npz

pytestmark = pytest.mark.slow
JOB_TIMEOUT = 600  # a tiny job on a busy 2-core machine


def ganmgr(home: Path, *args: str, timeout: float = JOB_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(cli_argv("--home", str(home), *args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> SimpleNamespace:
    """One store with a tiny completed baseline run (epoch 1 kept) and a tiny completed ACGAN run."""
    base = tmp_path_factory.mktemp("vizq")
    home = base / "store"
    npz = tiny_npz(base / "tiny.npz", n_train=256, n_test=128)
    common = ["--dataset", f"npz:{npz}", "--width", "8", "--batch-size", "32", "--device", "cpu",
              "--set", "threads=1"]
    ids = {}
    for recipe, name, extra in (("baseline", "base", ["--epochs", "2", "--set", "keep_every=1"]),
                                ("acgan-wgangp", "gan", ["--epochs", "2"])):
        out = ganmgr(home, "run", "--headless", "--recipe", recipe, "--name", name, *common, *extra)
        assert out.returncode == 0, out.stderr[-2000:]
        ids[name] = store_runs.find_run(home, name).id
    yield SimpleNamespace(home=home, base=ids["base"], gan=ids["gan"], tmp=base)
    _stop_supervisor(home)
    dispose_engines()


def _stop_supervisor(home: Path) -> None:
    from engine.control.supervisor_lock import lock_is_held

    for _ in range(200):  # it exits by itself once idle
        if not lock_is_held(home):
            return
        time.sleep(0.1)


def wait_status(home: Path, job_id: int, statuses: tuple[str, ...], timeout: float = JOB_TIMEOUT,
                pred=lambda j: True):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = store_viz.get_viz_job(home, job_id)
        if job is not None and job.status in statuses and pred(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not {statuses} after {timeout}s: {store_viz.get_viz_job(home, job_id)}")


def png_ok(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        im.load()
        return im.size


# ------------------------------------------------------------------------------------------ the happy path


def test_viz_wait_runs_the_job_and_prints_its_files(store) -> None:
    out = ganmgr(store.home, "viz", str(store.base), "perturb", "--set", "device=cpu", "--wait")
    assert out.returncode == 0, out.stderr
    first, *paths = out.stdout.strip().splitlines()
    assert first.startswith("viz job ") and "perturb" in first
    files = [Path(p) for p in paths if p.startswith("/")]
    assert [f.name for f in files] == ["real_images.png", "gradient_image.png", "jittered_images.png"]
    for f in files:
        png_ok(f)
        assert f.stat().st_mode & 0o077 == 0, f"{f} is readable by others"
    job_id = int(first.split()[2])
    job = store_viz.get_viz_job(store.home, job_id)
    assert job.status == "completed" and job.exit_code == 0 and job.progress == 1.0
    assert job.checkpoint == "checkpoints/final.pt" and job.run_id == store.base
    assert list(job.outputs) == ["real_images.png", "gradient_image.png", "jittered_images.png"]
    assert job.message.startswith("completed in ")
    run_dir = Path(store_runs.get_run(store.home, store.base).run_dir)
    assert Path(job.job_dir) == run_dir / "viz" / f"{job_id}-perturb"
    listing = ganmgr(store.home, "jobs", str(store.base), "--json")
    assert listing.returncode == 0
    assert job_id in [j["id"] for j in json.loads(listing.stdout)]


def test_an_epoch_checkpoint_and_the_run_listing(store) -> None:
    out = ganmgr(store.home, "viz", str(store.base), "max_class", "--epoch", "1", "--set", "iterations=5",
                 "--set", "device=cpu", "--wait", "-q")
    assert out.returncode == 0, out.stderr
    job_id, path = out.stdout.strip().splitlines()
    assert Path(path).name == "max_class.png"
    png_ok(Path(path))
    assert store_viz.get_viz_job(store.home, int(job_id)).checkpoint == "checkpoints/epoch_001.pt"
    listing = ganmgr(store.home, "viz", str(store.base))
    assert listing.returncode == 0
    assert any(line.split()[:3] == [job_id, str(store.base), "max_class"] for line in listing.stdout.splitlines())
    shown = ganmgr(store.home, "show", str(store.base), "--json")
    assert shown.returncode == 0
    assert int(job_id) in [j["id"] for j in json.loads(shown.stdout)["viz_jobs"]]
    text = ganmgr(store.home, "show", str(store.base)).stdout
    assert f"#{job_id}" in text.split("viz jobs")[1] and "max_class.png" in text


def test_report_writes_one_valid_html_file(store) -> None:
    target = store.tmp / "report.html"
    out = ganmgr(store.home, "report", str(store.gan), "--baseline", str(store.base), "-o", str(target),
                 "--set", "iterations=3", "--set", "n_per_class=4", "--set", "feature_layers=4,8",
                 "--set", "device=cpu", "--set", "fid=false")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"report written: {target.resolve()}"
    html = target.read_text()

    class Check(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []
            self.imgs = 0
            self.gifs = 0
            self.headings: list[str] = []
            self._h = False

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.imgs += 1
                src = dict(attrs)["src"]
                # PNGs, and the sample grids' animation as one GIF
                assert src.startswith("data:image/png;base64,") or src.startswith("data:image/gif;base64,")
                self.gifs += src.startswith("data:image/gif;base64,")
            elif tag not in ("meta", "br", "hr", "link", "col"):
                self.stack.append(tag)
                self._h = tag in ("h2",)

        def handle_endtag(self, tag):
            assert self.stack and self.stack[-1] == tag, (tag, self.stack[-3:])
            self.stack.pop()
            self._h = False

        def handle_data(self, data):
            if self._h:
                self.headings.append(data.strip())

    check = Check()
    check.feed(html)
    assert check.stack == [] and check.imgs >= 10 and check.gifs == 1
    assert "failed" not in " ".join(check.headings).lower()


# ------------------------------------------------------------------------------------- refused before anything


@pytest.mark.parametrize("args, words", [
    (("max_features", "--set", "layer=5"), "not a visualized layer"),
    (("perturb", "--set", "gian=2"), "did you mean 'gain'"),
    (("perturb", "--epoch", "7"), "epoch was not kept"),
    (("quality",), "needs a GAN run"),
    (("curves", "--epoch", "1"), "drop --epoch"),
    (("perturb", "--baseline", "1"), "takes no --baseline"),
    (("blur",), "invalid choice"),
])
def test_bad_jobs_are_one_line_errors_and_create_nothing(store, args, words) -> None:
    before = store_viz.list_viz_jobs(store.home)
    run_dir = Path(store_runs.get_run(store.home, store.base).run_dir)
    folders = sorted(p.name for p in (run_dir / "viz").iterdir()) if (run_dir / "viz").is_dir() else []
    out = ganmgr(store.home, "viz", str(store.base), *args)
    assert out.returncode == 2, out
    assert len(out.stderr.strip().splitlines()) == 1 and words in out.stderr, out.stderr
    assert store_viz.list_viz_jobs(store.home) == before
    assert (sorted(p.name for p in (run_dir / "viz").iterdir()) if (run_dir / "viz").is_dir() else []) == folders


def test_gan_kinds_need_a_baseline_run_of_the_baseline_recipe(store) -> None:
    with pytest.raises(SubmitError, match="needs --baseline"):
        submit_viz(store.home, store.gan, "quality", start_supervisor=False)
    with pytest.raises(SubmitError, match="must be a baseline run"):
        submit_viz(store.home, store.gan, "quality", baseline_id=store.gan, start_supervisor=False)
    with pytest.raises(VizSpecError, match="unknown visualization kind"):
        submit_viz(store.home, store.gan, "qualty", start_supervisor=False)
    with pytest.raises(SubmitError, match="no run with id 999"):
        submit_viz(store.home, 999, "curves", start_supervisor=False)


# ------------------------------------------------------------------------------------------ when things break


def test_a_corrupt_checkpoint_fails_the_job_with_a_clear_message(store, tmp_path) -> None:
    run_dir = Path(store_runs.get_run(store.home, store.base).run_dir)
    final = run_dir / "checkpoints" / "final.pt"
    kept = run_dir / "checkpoints" / "epoch_002.pt"
    kept.write_bytes(b"not a checkpoint" * 10)
    saved = final.read_bytes()
    try:
        out = ganmgr(store.home, "viz", str(store.base), "perturb", "--epoch", "2", "--set", "device=cpu", "--wait")
    finally:
        kept.unlink()
    assert out.returncode == 1, out
    assert "failed" in out.stderr and "epoch_002.pt" in out.stderr, out.stderr
    job = store_viz.list_viz_jobs(store.home, run_id=store.base)[-1]
    assert job.status == "failed" and job.exit_code == 1 and "epoch_002.pt" in job.message
    assert final.read_bytes() == saved  # nothing saved was touched
    assert not list(Path(job.job_dir).glob("*.png"))


def test_cancel_a_running_job_shows_progress_then_stops_it(store) -> None:
    job = submit_viz(store.home, store.base, "max_features",
                     assignments=["iterations=100000", "device=cpu", "threads=1"])
    running = wait_status(store.home, job.id, ("running",),
                          pred=lambda j: j.progress is not None and j.progress > 0)
    assert "ascent iterations" in running.message and running.pid is not None
    out = ganmgr(store.home, "jobs", "--cancel", str(job.id))
    assert out.returncode == 0 and "cancel requested" in out.stdout
    done = wait_status(store.home, job.id, ("cancelled", "killed"))
    assert done.status == "cancelled" and not is_alive(running.pid, running.pid_start)
    assert not (Path(done.job_dir) / "max_features_layer8.png").exists()
    assert not [p for p in Path(done.job_dir).iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_a_job_outlives_its_supervisor(store) -> None:
    """kill -9 of the supervisor mid-job: the next command's supervisor adopts the job and records its end."""
    job = submit_viz(store.home, store.base, "max_class", assignments=["iterations=150", "device=cpu"])
    running = wait_status(store.home, job.id, ("running",), pred=lambda j: j.pid is not None)
    sup = [int(p) for p in subprocess.run(["pgrep", "-f", f"engine.supervisor --home {store.home}"],
                                          capture_output=True, text=True).stdout.split()]
    assert sup, "no supervisor process found"
    for pid in sup:
        os.kill(pid, signal.SIGKILL)
    assert is_alive(running.pid, running.pid_start)
    out = ganmgr(store.home, "jobs")  # reconciles and starts a new supervisor
    assert out.returncode == 0
    done = wait_status(store.home, job.id, ("completed", "failed", "lost"))
    assert done.status == "completed", done
    assert done.outputs == ("max_class.png",)


def test_a_job_killed_while_no_supervisor_watches_is_lost(store) -> None:
    job = submit_viz(store.home, store.base, "max_class", assignments=["iterations=100000", "device=cpu"])
    running = wait_status(store.home, job.id, ("running",), pred=lambda j: j.pid is not None)
    for pid in [int(p) for p in subprocess.run(["pgrep", "-f", f"engine.supervisor --home {store.home}"],
                                               capture_output=True, text=True).stdout.split()]:
        os.kill(pid, signal.SIGKILL)
    os.killpg(running.pid, signal.SIGKILL)
    for _ in range(100):
        if not is_alive(running.pid, running.pid_start):
            break
        time.sleep(0.05)
    out = ganmgr(store.home, "jobs", str(store.base))
    assert out.returncode == 0
    job = store_viz.get_viz_job(store.home, job.id)
    assert job.status == "lost" and "vanished" in job.error


# ------------------------------------------------------------------------------------------------ the fold


def test_the_fold_composes_report_progress_from_parts() -> None:
    fold = VizFold()
    fold.fold({"kind": "progress", "done": 2, "total": 10, "what": "max_class_gan"})
    assert fold.progress == pytest.approx(0.2) and fold.message == "max_class_gan (3/10)"
    fold.fold({"kind": "progress", "done": 50, "total": 200, "what": "ascent iterations", "part": "max_class_gan"})
    assert fold.progress == pytest.approx((2 + 0.25) / 10)
    assert fold.message == "max_class_gan (3/10): 50/200 ascent iterations"
    fold.fold({"kind": "artifact", "path": "max_class_gan/max_class.png"})
    fold.fold({"kind": "result", "part": "max_class_gan", "accuracy": 90.0})
    assert fold.result is None and fold.outputs == ["max_class_gan/max_class.png"]
    fold.fold({"kind": "progress", "done": "x", "total": 0})  # malformed: ignored
    assert fold.progress == pytest.approx(0.225)
