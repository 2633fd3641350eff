"""Visualization jobs on small models trained for real by the worker on a slice of the synthetic set.

The models are trained once per module: a width-16 baseline classifier that learns the shapes (>80% test
accuracy; ~99% after its 310 steps), a width-8 ACGAN trained for 4 epochs (248 steps, the course's
optimizer settings), the same ACGAN left untrained (two steps at lr 1e-9), and a width-100 baseline (two
steps) for the 10x10 feature grids, which need 100 channels.
Jobs run through the real entry point: `python -m engine.compute.viz JOB_DIR` as a subprocess where exit codes,
stderr or signals matter, and its `main()` in-process elsewhere (the same code without the start-up cost).
"""

from __future__ import annotations

import base64
import io
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from engine.control.run_dir import write_job
from engine.control.viz_spec import VIZ_KINDS, make_job, resolve_viz_params
from tests.helpers import ROOT, make_run_dir, records, run_worker, tiny_npz

pytestmark = pytest.mark.slow

GRID_PX = (10 * 34 + 2) * 2  # engine.compute.imaging's 10x10 grid of 32px images, 2px padding, drawn at 2x


def train(base: Path, recipe: str, *assignments: str) -> Path:
    run_dir = make_run_dir(base, recipe, "device=cpu", "threads=1", "log_every=10", *assignments)
    out = run_worker(run_dir, timeout=1200)
    assert out.returncode == 0, out.stderr[-2000:]
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> SimpleNamespace:
    base = tmp_path_factory.mktemp("viz-runs")
    npz = tiny_npz(base / "shapes.npz", n_train=4000, n_test=500)
    small = tiny_npz(base / "small.npz", n_train=64, n_test=100)
    data = f"dataset=npz:{npz}"
    baseline = train(base / "baseline", "baseline", data, "width=16", "lr=1e-3", "batch_size=64", "epochs=5",
                     "augment=false", "keep_every=2")
    gan = train(base / "gan", "acgan-wgangp", data, "width=8", "batch_size=64", "epochs=4", "keep_every=0")
    untrained = train(base / "untrained", "acgan-wgangp", f"dataset=npz:{small}", "width=8", "lr=1e-9",
                      "batch_size=32", "epochs=1", "keep_every=0")
    wide = train(base / "wide", "baseline", f"dataset=npz:{small}", "width=100", "batch_size=32", "epochs=1",
                 "keep_every=0")
    test_acc = records(baseline, "epoch")[-1]["test_acc"]
    assert test_acc >= 80.0, f"the test baseline did not learn the shapes: {test_acc}%"
    return SimpleNamespace(baseline=baseline, gan=gan, untrained=untrained, wide=wide, base=base)


def job_dir_for(tmp_path: Path, kind: str, run_dir: Path, *sets: str, baseline: Path | None = None,
                checkpoint: str = "checkpoints/final.pt", name: str | None = None) -> Path:
    fields = VIZ_KINDS[kind].field_map()
    runtime = [s for s in ("device=cpu", "threads=1") if s.split("=")[0] in fields]
    job_dir = tmp_path / (name or kind)
    job_dir.mkdir(mode=0o700)
    params = resolve_viz_params(kind, {}, [*runtime, *sets])
    write_job(job_dir, make_job(kind, params, run_dir, checkpoint, baseline_run_dir=baseline))
    return job_dir


def run_inprocess(job_dir: Path) -> tuple[int, dict]:
    from engine.compute.viz.__main__ import main

    code = main([str(job_dir)])
    recs = records(job_dir)
    assert recs[0]["kind"] == "start" and recs[-1]["kind"] == "end"
    results = [r for r in recs if r["kind"] == "result" and "part" not in r]
    return code, (results[-1] if results else {})


def run_subprocess(job_dir: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.compute.viz", str(job_dir)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        im.load()
        return im.size


# ------------------------------------------------------------------------------------------ the course's part 2

def test_perturb_lowers_the_accuracy_of_a_classifier_that_learned(runs, tmp_path):
    job_dir = job_dir_for(tmp_path, "perturb", runs.baseline)
    code, result = run_inprocess(job_dir)
    assert code == 0, records(job_dir)[-1]
    assert result["batch_size"] == 128 and result["step"] == pytest.approx(8 / 127.5)
    assert result["accuracy_before"] >= 70.0, result
    assert result["accuracy_after"] < result["accuracy_before"], result
    assert result["to_alternative"] >= 10.0, result  # the step goes toward (y+1) mod 10, not just anywhere
    arts = [r["path"] for r in records(job_dir, "artifact")]
    assert arts == ["real_images.png", "gradient_image.png", "jittered_images.png"]
    for name in arts:
        assert png_size(job_dir / name) == (GRID_PX, GRID_PX)
    assert records(job_dir)[-1] == {**records(job_dir)[-1], "kind": "end", "status": "completed"}


def test_a_zero_gain_changes_nothing(runs, tmp_path):
    """The control: with gain 0 the images are the real ones, so the accuracy cannot move."""
    code, result = run_inprocess(job_dir_for(tmp_path, "perturb", runs.baseline, "gain=0", "batch_size=64"))
    assert code == 0
    assert result["accuracy_after"] == result["accuracy_before"] and result["batch_size"] == 64


def test_max_class_images_are_classified_as_their_class(runs, tmp_path):
    job_dir = job_dir_for(tmp_path, "max_class", runs.baseline)
    code, result = run_inprocess(job_dir)
    assert code == 0, records(job_dir)[-1]
    assert result["classified_as_target"] >= 8, result
    assert len(result["per_class_confidence"]) == 10 and len(result["predicted"]) == 10
    hits = sum(p == c for p, c in zip(result["predicted"], result["per_class_confidence"]))
    assert hits == result["classified_as_target"]
    w, h = png_size(job_dir / "max_class.png")
    assert w > h > 200  # a 2x5 labelled figure


def test_max_features_writes_a_10x10_grid_for_every_allowed_layer(runs, tmp_path):
    for layer in (2, 3, 4, 6, 8):
        job_dir = job_dir_for(tmp_path, "max_features", runs.wide, f"layer={layer}", "iterations=2",
                              name=f"layer{layer}")
        code, result = run_inprocess(job_dir)
        assert code == 0, records(job_dir)[-1]
        assert result["features"] == 100 and result["grid"] == [10, 10]
        assert result["mean_activation_end"] > result["mean_activation_start"], result
        assert png_size(job_dir / f"max_features_layer{layer}.png") == (GRID_PX, GRID_PX)


def test_max_features_on_a_narrow_model_draws_what_it_has(runs, tmp_path):
    code, result = run_inprocess(job_dir_for(tmp_path, "max_features", runs.baseline, "layer=4", "iterations=1"))
    assert code == 0 and result["features"] == 16 and result["grid"] == [2, 10]


# ------------------------------------------------------------------------------------------ runs' own files

def test_progression_and_curves_of_a_gan_run(runs, tmp_path):
    code, result = run_inprocess(job_dir_for(tmp_path, "progression", runs.gan, "count=3"))
    assert code == 0 and result["epochs"] == [1, 3, 4]
    png_size(tmp_path / "progression" / "progression.png")
    code, result = run_inprocess(job_dir_for(tmp_path, "curves", runs.gan))
    assert code == 0
    assert set(result["losses"]) == {"gp", "d_fake_source", "d_real_source", "d_real_class", "d_fake_class"}
    assert all(n > 0 for n in result["losses"].values()) and set(result["generator"]) == {"gen_source", "gen_class"}
    assert result["signals"] == {"class_spread": 4}  # the mode-collapse signal, one point per epoch
    assert [r["path"] for r in records(tmp_path / "curves", "artifact")] == ["losses.png", "generator.png",
                                                                           "signals.png", "accuracy.png"]


def test_curves_of_a_baseline_run(runs, tmp_path):
    job_dir = job_dir_for(tmp_path, "curves", runs.baseline)
    code, result = run_inprocess(job_dir)
    assert code == 0 and set(result["losses"]) == {"loss"} and "generator" not in result
    assert result["last_test_acc"] == records(runs.baseline, "epoch")[-1]["test_acc"]
    assert sorted(p.name for p in job_dir.glob("*.png")) == ["accuracy.png", "losses.png"]


def test_quality_scores_a_trained_generator_above_an_untrained_one(runs, tmp_path):
    """"Above" = a lower Fréchet distance between the baseline's features of the samples and of the real
    test images. An untrained generator draws one flat image whatever the noise (zero feature covariance,
    a mean far from the real one). At the size a test can afford the trained ACGAN has not learned
    class-conditional shapes yet, so the baseline's accuracy on both sample sets sits at chance (10%) and
    cannot rank them: that part is only checked to be a valid percentage per class."""
    scores = {}
    for name in ("gan", "untrained"):
        job_dir = job_dir_for(tmp_path, "quality", getattr(runs, name), "n_per_class=50", baseline=runs.baseline,
                              name=name)
        code, result = run_inprocess(job_dir)
        assert code == 0, records(job_dir)[-1]
        assert result["n_generated"] == 500 and len(result["per_class_accuracy"]) == 10
        assert result["fd"] > result["fd_real_halves"] >= 0
        assert result["fid"] is None and result["note"].startswith("FID/IS skipped")
        assert png_size(job_dir / "samples.png") == (GRID_PX, GRID_PX)
        scores[name] = result
    trained, untrained = scores["gan"], scores["untrained"]
    assert trained["fd"] < untrained["fd"], (trained["fd"], untrained["fd"])
    for r in (trained, untrained):
        acc = r["per_class_accuracy"].values()
        assert all(0 <= a <= 100 for a in acc) and r["accuracy"] == pytest.approx(sum(acc) / 10)
    assert trained["scorer_accuracy_real"] == untrained["scorer_accuracy_real"] >= 80.0


# ------------------------------------------------------------------------------------------ the report

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class StrictHTML(HTMLParser):
    """Every non-void element closed in order, nothing closed that is not open, ids unique."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.tags: set[str] = set()
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if "src" in a:
            self.srcs.append(a["src"])
        if "href" in a:
            self.hrefs.append(a["href"])
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag not in VOID:
            self.errors.append(f"self-closed <{tag}/>")
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.errors.append(f"end tag of void element </{tag}>")
        elif not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def check_html(text: str) -> StrictHTML:
    p = StrictHTML()
    p.feed(text)
    p.close()
    assert p.doctype, "no <!DOCTYPE html>"
    assert not p.errors, p.errors[:5]
    assert not p.stack, f"unclosed: {p.stack}"
    assert len(p.ids) == len(set(p.ids)), "duplicate ids"
    return p


def test_the_strict_checker_catches_broken_html():
    with pytest.raises(AssertionError):
        check_html("<!DOCTYPE html><html><body><section><p>x</section></body></html>")
    with pytest.raises(AssertionError):
        check_html("<!DOCTYPE html><html><body><div></body></html>")
    check_html("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><p>a<br>b</p></body></html>")


def test_report_has_every_section_and_is_valid_self_contained_html(runs, tmp_path):
    job_dir = job_dir_for(tmp_path, "report", runs.gan, "iterations=30", "n_per_class=20", "count=3",
                          baseline=runs.baseline)
    code, result = run_inprocess(job_dir)
    assert code == 0, records(job_dir)[-1]
    assert result["failed_parts"] == {} and result["accuracy_after"] < result["accuracy_before"]
    text = (job_dir / "report.html").read_text(encoding="utf-8")
    page = check_html(text)
    expected = ["progression", "perturb", "max-class", "max-features", "accuracy", "quality", "curves", "configs"]
    assert [i for i in page.ids if i in expected] == expected
    assert {"html", "head", "body", "table", "img", "figure"} <= page.tags
    assert not {"script", "link", "iframe", "object"} & page.tags
    assert all(h.startswith("#") and h[1:] in page.ids for h in page.hrefs)
    # 1 progression + 3 perturb + 2 max-class + 4 max-features + 2 quality + 6 curves (GAN: losses,
    # generator, signals, accuracy; baseline: losses, accuracy), and the samples' animation (issue 16)
    assert len(page.srcs) == 19
    pngs = [src for src in page.srcs if src.startswith("data:image/png;base64,")]
    gifs = [src for src in page.srcs if src.startswith("data:image/gif;base64,")]
    assert len(pngs) == 18 and len(gifs) == 1
    for src in pngs:
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.verify()
    with Image.open(io.BytesIO(base64.b64decode(gifs[0].split(",", 1)[1]))) as im:
        assert im.n_frames == len(list((runs.gan / "samples").glob("epoch_*.png"))) == 4  # one per epoch
    assert "http://" not in text and "https://" not in text
    for number in (result["accuracy_before"], result["accuracy_after"]):
        assert f"{number:.1f}%" in text
    assert f"{result['test_acc_baseline']:.2f}%" in text and f"{result['test_acc_gan']:.2f}%" in text
    parts = {r["part"] for r in records(job_dir, "result") if "part" in r}
    assert {"perturb", "quality", "max_class_gan", "max_features_baseline_layer8", "curves_baseline"} <= parts
    for r in records(job_dir, "artifact"):
        assert (job_dir / r["path"]).is_file()


def test_a_report_on_a_baseline_run_is_refused(runs, tmp_path):
    job_dir = job_dir_for(tmp_path, "report", runs.baseline, baseline=runs.baseline)
    out = run_subprocess(job_dir)
    assert out.returncode == 1
    assert "no generator" in out.stderr and not (job_dir / "report.html").exists()


# ------------------------------------------------------------------------------------------ failures

def test_a_run_without_the_checkpoint_fails_with_a_clear_message(runs, tmp_path):
    """A copy of the baseline run minus final.pt: what a run in progress looks like (epochs 2, 4 kept)."""
    partial = tmp_path / "runs" / "5-in-progress"
    shutil.copytree(runs.baseline, partial)
    (partial / "checkpoints" / "final.pt").unlink()
    cases = [
        ("perturb", "checkpoints/final.pt", "has no checkpoints/final.pt: it has not completed; pass --epoch E"),
        ("max_class", "checkpoints/epoch_005.pt", "that epoch was not kept"),
    ]
    for kind, ckpt, words in cases:
        job_dir = job_dir_for(tmp_path, kind, partial, checkpoint=ckpt)
        out = run_subprocess(job_dir)
        assert out.returncode == 1, out.stderr
        assert words in out.stderr and "kept epoch checkpoints: 2, 4" in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        end = records(job_dir)[-1]
        assert end["kind"] == "end" and end["status"] == "failed" and words in end["error"]
    code, _ = run_inprocess(job_dir_for(tmp_path, "perturb", partial, checkpoint="checkpoints/epoch_004.pt",
                                        name="kept"))
    assert code == 0  # the kept epoch works


def test_kinds_refuse_runs_of_the_wrong_recipe(runs, tmp_path):
    job_dir = job_dir_for(tmp_path, "progression", runs.baseline)
    code, _ = run_inprocess(job_dir)
    assert code == 1 and "baseline run: it has no generator" in records(job_dir)[-1]["error"]
    job_dir = job_dir_for(tmp_path, "quality", runs.baseline, baseline=runs.baseline)
    code, _ = run_inprocess(job_dir)
    assert code == 1 and "no generator" in records(job_dir)[-1]["error"]


def test_a_job_killed_mid_write_leaves_no_broken_png(runs, tmp_path):
    """SIGKILL while a report writes its PNGs, the moment a new file shows up after three complete ones.
    fsync is slowed down in the child so that a write lasts long enough to be caught (nothing else is
    changed): an atomic writer's new file is its temp file, a plain writer's would be the half-written PNG."""
    job_dir = job_dir_for(tmp_path, "report", runs.gan, "iterations=2", "n_per_class=10", "count=3",
                          baseline=runs.baseline)
    prelude = ("import os, sys, time\n_fsync = os.fsync\n"
               "def slow(fd):\n    time.sleep(0.5)\n    _fsync(fd)\n"
               "os.fsync = slow\nfrom engine.compute.viz.__main__ import main\nsys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", prelude, str(job_dir)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)

    def image_files() -> set[Path]:
        return {p for p in job_dir.rglob("*") if p.name.endswith((".png", ".tmp"))}

    caught: set[Path] = set()
    try:
        before = image_files()
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            now = image_files()
            new = now - before
            if new and len([p for p in before if p.suffix == ".png"]) >= 3:
                proc.send_signal(signal.SIGKILL)
                caught = new
                break
            before = now
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=60)
    assert caught, f"the job ended before a write was caught: {proc.stderr.read()[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    pngs = list(job_dir.rglob("*.png"))
    assert len(pngs) >= 3
    for png in pngs:
        png_size(png)  # raises on a truncated or empty file
    assert all(p.name.endswith(".tmp") for p in caught), caught  # the write in progress was a temp file
    assert any(p.exists() for p in caught)  # ...which the kill left behind, unfinished
    assert not (job_dir / "report.html").exists()
    assert records(job_dir)[-1]["kind"] != "end"


def test_sigterm_cancels_a_job(runs, tmp_path):
    job_dir = job_dir_for(tmp_path, "max_class", runs.baseline, "iterations=100000")
    proc = subprocess.Popen([sys.executable, "-m", "engine.compute.viz", str(job_dir)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (job_dir / "metrics.jsonl").exists():
            time.sleep(0.1)
        while time.monotonic() < deadline and '"start"' not in (job_dir / "metrics.jsonl").read_text():
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM
    end = records(job_dir)[-1]
    assert end["kind"] == "end" and end["status"] == "cancelled"
    assert not list(job_dir.glob("*.png"))
