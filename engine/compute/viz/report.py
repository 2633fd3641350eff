"""`report`: one self-contained HTML page with everything the course asks to turn in (002, "what to turn in").

The job runs the other kinds itself, in-process, each into a subfolder of the job folder (so every figure
also exists as a PNG beside the page), then writes `report.html` with the figures embedded as base64 data
URIs: no external file, script, font or style, so the page can be mailed or opened offline.

Sections: training progression (GAN samples), perturbed real images with both accuracies (the baseline
classifier, as in the course), max-class images of both discriminators, max-feature images of both for
each `feature_layers` entry, both discriminators' test accuracies (from their metrics.jsonl), the sample
quality scores, the training curves of both runs, and both configs. A part that fails does not cost the
others: its section shows the error, and the job ends `failed` after the page is written.
"""

from __future__ import annotations

import base64
import html
import json
import time
from pathlib import Path
from typing import Any

from engine.compute.viz import run_kind
from engine.compute.viz.job import Cancelled, Job, JobFailed
from engine.compute.viz.loading import epoch_test_accuracy, load_run, read_config, read_metrics
from engine.control.paths import write_bytes_atomic
from engine.control.viz_spec import VIZ_KINDS, validate_viz_params

SECTIONS = (
    ("progression", "Training progression"),
    ("perturb", "Perturbed real images"),
    ("max-class", "Synthetic images maximizing the class output"),
    ("max-features", "Synthetic images maximizing features"),
    ("accuracy", "Test accuracy of the two discriminators"),
    ("quality", "Sample quality"),
    ("curves", "Training curves"),
    ("configs", "Configurations"),
)

REPORT_GIF_FRAMES = 120  # the animation's frames at most (evenly spaced epochs)

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em;
margin-top: 2em; } h3 { margin-bottom: 0.3em; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; image-rendering: pixelated; }
figcaption { font-size: 0.9em; color: #555; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.diff td { background: #fff6d6; }
.error { color: #a00; font-weight: bold; } .note { color: #555; font-size: 0.92em; }
.meta { color: #555; }
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _inception_rows(q: dict[str, Any]) -> list[list[str]]:
    """FID, KID and IS rows of the quality table, each marked "(uncalibrated)" when the weights were not the
    real file (engine/compute/inception.py), with n generated vs real."""
    mark = " (uncalibrated)" if q.get("uncalibrated") else ""
    n = f", {q['fid_n']} generated vs {q['fid_n_real']} real" if q.get("fid_n") else ""

    def pm(key: str, digits: int) -> str:
        std = q.get(f"{key}_std")
        return _num(q.get(key), digits) + (f" ± {std:.{digits}f}" if isinstance(std, float) else "")

    return [[f"FID (Inception{n}){mark}", _num(q.get("fid"), 2)],
            [f"KID (Inception, unbiased){mark}", pm("inception_kid", 4)],
            [f"Inception score{mark}", pm("inception_score", 2)]]


def _num(v: Any, digits: int = 2, suffix: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}{suffix}"
    return f"{v}{suffix}"


class Page:
    """The HTML being built; every text goes through `html.escape`."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, s: str) -> None:
        self.parts.append(s)

    def text(self, tag: str, s: Any, cls: str | None = None) -> None:
        c = f' class="{cls}"' if cls else ""
        self.add(f"<{tag}{c}>{_e(s)}</{tag}>")

    def figure(self, path: Path, caption: str, width: int | None = None) -> None:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        w = f' style="width:{width}px"' if width else ""
        self.add(f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}"{w}>'
                 f"<figcaption>{_e(caption)}</figcaption></figure>")

    def table(self, header: list[str], rows: list[list[Any]], row_classes: list[str] | None = None) -> None:
        self.add("<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>")
        for i, row in enumerate(rows):
            cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
            cells = "".join(f'<td class="num">{_e(v)}</td>' if isinstance(v, (int, float)) or _is_number(v)
                            else f"<td>{_e(v)}</td>" for v in row)
            self.add(f"<tr{cls}>{cells}</tr>")
        self.add("</tbody></table>")

    def html(self, title: str) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
                + "\n".join(self.parts) + "\n</body>\n</html>\n")


def _is_number(v: Any) -> bool:
    return isinstance(v, str) and v.rstrip("%").replace(".", "", 1).lstrip("-").isdigit()


def _params_for(kind: str, report_params: dict[str, Any], **fixed: Any) -> dict[str, Any]:
    names = VIZ_KINDS[kind].field_map()
    chosen = {k: v for k, v in report_params.items() if k in names}
    chosen.update(fixed)
    return validate_viz_params(kind, chosen)


class Parts:
    """Runs report parts, keeping each one's result, files or error."""

    def __init__(self, job: Job, total: int):
        self.job = job
        self.total = total  # parts to run: the report's own progress is parts done / total
        self.results: dict[str, dict[str, Any]] = {}
        self.files: dict[str, list[Path]] = {}
        self.errors: dict[str, str] = {}

    def run(self, part: str, kind: str, run_dir: Path, checkpoint: str, *, baseline: tuple[Path, str] | None = None,
            **fixed: Any) -> None:
        job = self.job
        job.progress(len(self.files), self.total, part, force=True)
        sub = job.sub(part, kind, _params_for(kind, job.params, **fixed), run_dir=run_dir, checkpoint=checkpoint,
                      baseline_run_dir=baseline[0] if baseline else None,
                      baseline_checkpoint=baseline[1] if baseline else None)
        start = time.perf_counter()
        try:
            result = run_kind(sub)
        except Cancelled:
            raise
        except JobFailed as e:
            self.errors[part] = str(e)
        except Exception as e:  # one broken part must not cost the rest of the page
            self.errors[part] = f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
        else:
            result["seconds"] = round(time.perf_counter() - start, 3)
            sub.write_result(result)
            self.results[part] = result
        self.files[part] = list(sub.outputs)
        job.log(f"report: {part} {'failed: ' + self.errors[part] if part in self.errors else 'done'} "
                f"({time.perf_counter() - start:.1f}s)")

    def show(self, page: Page, part: str, captions: dict[str, str] | None = None, width: int | None = None,
             widths: dict[str, int | None] | None = None) -> bool:
        """The part's figures (at `width` px unless `widths` names the file), or its error; False if it failed."""
        if part in self.errors:
            page.text("p", f"{part} failed: {self.errors[part]}", "error")
            return False
        for path in self.files.get(part, []):
            w = (widths or {}).get(path.name, width)
            page.figure(path, (captions or {}).get(path.name, path.name), w)
        return True


def run(job: Job) -> dict[str, Any]:
    if job.baseline_run_dir is None:
        raise JobFailed("report needs a baseline run (the discriminator trained without the generator)")
    base_ckpt = job.baseline_checkpoint or "checkpoints/final.pt"
    gan = load_run(job, job.run_dir, job.checkpoint)  # fail early, before minutes of work, on a wrong pairing
    base = load_run(job, job.baseline_run_dir, base_ckpt)
    if gan.G is None:
        raise JobFailed(f"run {gan.name} is a {gan.recipe} run with no generator: a report is made for a GAN run, "
                        f"with the baseline run given as --baseline")
    g, b = (job.run_dir, job.checkpoint), (job.baseline_run_dir, base_ckpt)
    parts = Parts(job, total=7 + 2 * len(job.params["feature_layers"]))
    parts.run("progression", "progression", *g)
    parts.run("perturb", "perturb", *b)
    parts.run("max_class_baseline", "max_class", *b)
    parts.run("max_class_gan", "max_class", *g)
    for layer in job.params["feature_layers"]:
        parts.run(f"max_features_baseline_layer{layer}", "max_features", *b, layer=layer)
        parts.run(f"max_features_gan_layer{layer}", "max_features", *g, layer=layer)
    parts.run("quality", "quality", *g, baseline=b)
    parts.run("curves_gan", "curves", *g)
    parts.run("curves_baseline", "curves", *b)

    acc = {"gan": epoch_test_accuracy(_metrics(job.run_dir), gan.epoch),
           "baseline": epoch_test_accuracy(_metrics(job.baseline_run_dir), base.epoch)}
    configs = {"gan": _config(job.run_dir), "baseline": _config(job.baseline_run_dir)}
    page = build_page(job, parts, acc, configs, gan, base)
    path = job.path("report.html")
    write_bytes_atomic(path, page.encode("utf-8"))
    job.artifact(path, "report")

    perturb = parts.results.get("perturb", {})
    quality = parts.results.get("quality", {})
    return {
        "sections": [s for s, _ in SECTIONS], "parts": sorted(parts.results), "failed_parts": parts.errors,
        "gan_run": gan.name, "baseline_run": base.name, "gan_epoch": gan.epoch, "baseline_epoch": base.epoch,
        "test_acc_gan": acc["gan"]["test_acc"], "test_acc_baseline": acc["baseline"]["test_acc"],
        "accuracy_before": perturb.get("accuracy_before"), "accuracy_after": perturb.get("accuracy_after"),
        "quality_accuracy": quality.get("accuracy"), "fd": quality.get("fd"), "fid": quality.get("fid"),
        "fid_uncalibrated": quality.get("uncalibrated"), "bytes": path.stat().st_size,
    }


def animation(page: Page, run_dir: Path) -> None:
    """The sample grids over the epochs as the animated GIF `ganmgr export --format gif` writes (at most
    REPORT_GIF_FRAMES frames, evenly spaced, first and last included, so a long run's page stays mailable)."""
    from engine.compute.viz.progression import pick_epochs
    from engine.control.export.gif import gif_bytes
    from engine.control.sample_grids import sample_grids

    grids = sample_grids(run_dir)
    if not grids:
        return
    picked = pick_epochs(list(grids), REPORT_GIF_FRAMES)
    try:
        data = base64.b64encode(gif_bytes({e: grids[e] for e in picked})).decode("ascii")
    except (OSError, ValueError) as e:  # a grid unreadable: the page still comes
        page.text("p", f"animation failed: {type(e).__name__}: {e}", "error")
        return
    what = f"all {len(grids)} epochs" if len(picked) == len(grids) else f"{len(picked)} of {len(grids)} epochs"
    caption = f"the samples over the epochs ({what}, one frame each)"
    page.add(f'<figure><img src="data:image/gif;base64,{data}" alt="{_e(caption)}">'
             f"<figcaption>{_e(caption)}</figcaption></figure>")


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    try:
        return read_metrics(run_dir)
    except JobFailed:
        return []


def _config(run_dir: Path) -> dict[str, Any] | str:
    try:
        return read_config(run_dir)
    except JobFailed as e:
        return str(e)


def build_page(job: Job, parts: Parts, acc: dict[str, dict[str, Any]], configs: dict[str, Any], gan, base) -> str:
    page = Page()
    title = f"ganmgr report: {gan.name} with baseline {base.name}"
    page.text("h1", title)
    page.text("p", f"GAN run {gan.name} ({gan.recipe}, {gan.checkpoint}, epoch {gan.epoch}); baseline run "
                   f"{base.name} ({base.recipe}, {base.checkpoint}, epoch {base.epoch}); written "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S')}.", "meta")
    page.add("<nav><ul>" + "".join(f'<li><a href="#{sid}">{_e(name)}</a></li>' for sid, name in SECTIONS)
             + "</ul></nav>")

    def section(sid: str) -> None:
        page.add(f'<section id="{sid}">')
        page.text("h2", dict(SECTIONS)[sid])

    section("progression")
    page.text("p", "The generator's samples from the same fixed noise after evenly spaced epochs; each column "
                   "is one class.")
    parts.show(page, "progression", {"progression.png": "fixed-noise samples at evenly spaced epochs"})
    animation(page, job.run_dir)
    page.add("</section>")

    section("perturb")
    p = parts.results.get("perturb")
    page.text("p", "The baseline classifier on its first test batch; every pixel moved by gain/127.5 against the "
                   "sign of the gradient of the cross-entropy of the label (y+1) mod 10.")
    if parts.show(page, "perturb", {"real_images.png": "real images", "gradient_image.png": "gradients "
                                    "(min-max scaled)", "jittered_images.png": "perturbed images"}, width=340):
        page.table(["", "value"], [["accuracy before", _num(p["accuracy_before"], 1, "%")],
                                   ["accuracy after", _num(p["accuracy_after"], 1, "%")],
                                   ["classified as the alternative label after", _num(p["to_alternative"], 1, "%")],
                                   ["batch", p["batch_size"]], ["gain (grey levels)", _num(p["gain"], 1)]])
    page.add("</section>")

    section("max-class")
    for part, who in (("max_class_baseline", f"discriminator trained without the generator ({base.name})"),
                      ("max_class_gan", f"discriminator trained with the generator ({gan.name})")):
        page.text("h3", who)
        if parts.show(page, part, {"max_class.png": who}):
            r = parts.results[part]
            page.text("p", f"The model classifies {r['classified_as_target']} of {len(r['predicted'])} images as "
                           f"their target class ({_num(r['accuracy'], 0, '%')}).")
    page.add("</section>")

    section("max-features")
    for layer in job.params["feature_layers"]:
        page.text("h3", f"layer {layer}")
        for who, part in (("without the generator", f"max_features_baseline_layer{layer}"),
                          ("with the generator", f"max_features_gan_layer{layer}")):
            parts.show(page, part, {f"max_features_layer{layer}.png": f"layer {layer}, discriminator trained {who}"},
                       width=440)
    page.add("</section>")

    section("accuracy")
    rows = []
    for key, run in (("baseline", base), ("gan", gan)):
        a = acc[key]
        rows.append([f"{run.name} ({run.recipe})", a["at_epoch"] if a["at_epoch"] is not None else "n/a",
                     _num(a["test_acc"], 2, "%"), _num(a["best_test_acc"], 2, "%"),
                     a["best_epoch"] if a["best_epoch"] is not None else "n/a", a["epochs"]])
    page.table(["discriminator", "epoch", "test accuracy", "best", "best epoch", "epochs logged"], rows)
    page.text("p", "Test accuracy of fc10 on the whole test split, from each run's epoch records, at the epoch of "
                   "the checkpoint used here.", "note")
    page.add("</section>")

    section("quality")
    q = parts.results.get("quality")
    if parts.show(page, "quality", {"samples.png": "generated samples (one column per class)",
                                    "class_accuracy.png": "baseline classifier accuracy per class"}, width=480):
        page.table(["score", "value"], [
            [f"accuracy of {q['scorer']} on {q['n_generated']} generated images", _num(q["accuracy"], 1, "%")],
            [f"accuracy of {q['scorer']} on {q['n_real']} real test images", _num(q["scorer_accuracy_real"], 1, "%")],
            [f"Fréchet distance, conv-{q['feature_layer']} features ({q['feature_dim']}-dim), n={q.get('n')} "
             f"generated vs n real", _num(q["fd"], 3)],
            [f"the same between two disjoint sets of n={q.get('n')} real test images (the floor at this n)",
             _num(q["fd_real_halves"], 3)],
            ["KID on the same features (unbiased), and its floor", f"{_num(q.get('kid'), 4)} / "
             f"{_num(q.get('kid_floor'), 4)}"],
            ["class_spread of the GAN's own discriminator on these samples (1: even)", _num(q.get("class_spread"), 3)],
            *_inception_rows(q),
        ])
        page.table(["class", "classified as its class"],
                   [[c, _num(v, 1, "%")] for c, v in q["per_class_accuracy"].items()])
        if q.get("note"):
            page.text("p", q["note"], "note")
    page.add("</section>")

    section("curves")
    for part, run in (("curves_gan", gan), ("curves_baseline", base)):
        page.text("h3", run.name)
        parts.show(page, part, {"losses.png": "loss terms", "generator.png": "generator terms",
                                "accuracy.png": "train accuracy per window, test accuracy per epoch"},
                   widths={"losses.png": None}, width=520)
    page.add("</section>")

    section("configs")
    ga, ba = configs["gan"], configs["baseline"]
    if isinstance(ga, dict) and isinstance(ba, dict):
        keys = sorted(set(ga) | set(ba))
        rows = [[k, _show(ga.get(k, "")), _show(ba.get(k, ""))] for k in keys]
        page.table(["field", gan.name, base.name], rows,
                   ["diff" if ga.get(k) != ba.get(k) else "" for k in keys])
        page.text("p", "Highlighted rows differ between the two runs.", "note")
    else:
        for cfg in (ga, ba):
            if isinstance(cfg, str):
                page.text("p", cfg, "error")
    page.add("</section>")
    return page.html(title)


def _show(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None else str(v)
