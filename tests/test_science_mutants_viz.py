"""The course's Part 2 computations pinned exactly, so a one-line change of the science fails a test (issue 19).

Two kinds of reference, never a loose "it went down":
- a linear classifier, whose input gradient is known in closed form: d CE(Wx + b, t) / dx = W^T (softmax - e_t),
  so the perturbation's direction and every ascent update are exact;
- a small transcription of the course text's own loops (002, Part 2: "Perturb Real Images", "Synthetic Images
  Maximizing Classification Output", "... Features") run on the real (tiny) discriminator.
Each test is in-process (mutation testing mutates the imported code) and takes well under a second.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from engine.compute.data.device_data import DeviceData, to_unit_range
from engine.compute.data.splits import Splits
from engine.compute.models.acgan import ACGANDConfig, ACGANDiscriminator
from engine.compute.viz import max_class, max_features, perturb
from engine.compute.viz.ascent import ascend
from engine.compute.viz.job import Job
from engine.compute.viz.loading import LoadedRun
from engine.compute.viz.perturb import perturb_batch
from engine.compute.viz.render import save_image_grid
from engine.control.records import MetricsWriter, read_all


class LinearClassifier(nn.Module):
    """logits = W x + b, returned like the ACGAN discriminator's (source, logits)."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.w, self.b = w, b

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = x.flatten(1) @ self.w.T + self.b
        return logits[:, 0], logits


def closed_form_input_gradient(model: LinearClassifier, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """d CE(Wx + b, target) / dx = W^T (softmax(Wx + b) - onehot(target)), per sample."""
    with torch.no_grad():
        logits = x.flatten(1) @ model.w.T + model.b
        residual = torch.softmax(logits, 1) - F.one_hot(target, model.w.shape[0]).to(logits.dtype)
        return (residual @ model.w).view_as(x)


@pytest.fixture
def linear_case():
    g = torch.Generator().manual_seed(3)
    classes, shape = 4, (1, 3, 3)
    w = torch.randn(classes, 9, generator=g)
    w[:, 4] = 0.0  # the centre pixel has no influence: its gradient is exactly 0, so it must not move
    model = LinearClassifier(w, torch.randn(classes, generator=g))
    x = torch.rand(8, *shape, generator=g) * 1.8 - 0.9
    x[0] = 0.95  # every pixel near the top: whatever the signs, the step crosses +1 somewhere ...
    x[1] = -0.95  # ... and -1 somewhere, so the clamp to [-1, 1] is exercised on both sides
    y = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])  # label 3 = classes - 1 wraps to 0
    return model, x, y, classes


# ------------------------------------------------------------------------------------------ perturbation

def test_perturbation_follows_the_closed_form_gradient_toward_y_plus_one(linear_case):
    model, x, y, classes = linear_case
    step = 0.25
    out = perturb_batch(model, x, y, classes, step)

    alternative = torch.tensor([1, 2, 3, 0, 0, 3, 2, 1])  # (y + 1) mod 4, written out
    assert torch.equal(out["alternative"], alternative)
    grad = closed_form_input_gradient(model, x, alternative)
    assert torch.allclose(out["grad"], grad, rtol=1e-5, atol=1e-6)
    # the case tells the labels apart: toward the true label the gradient is another one
    assert not torch.allclose(grad, closed_form_input_gradient(model, x, y), atol=1e-3)

    expected = (x - step * torch.sign(grad)).clamp(-1.0, 1.0)  # each pixel moved against the gradient's sign
    assert torch.allclose(out["perturbed"], expected, atol=1e-7)
    assert out["perturbed"].max() == 1.0 and out["perturbed"].min() == -1.0  # clamped, and reached
    assert torch.equal(grad[..., 1, 1], torch.zeros(8, 1)) and torch.equal(out["perturbed"][..., 1, 1], x[..., 1, 1])
    assert torch.equal(out["before"], model(x)[1].argmax(1))
    assert torch.equal(out["after"], model(expected)[1].argmax(1))
    assert not out["perturbed"].requires_grad and torch.equal(x, linear_case[1])  # the input is left alone


def test_perturbation_raises_the_alternative_logit_over_the_true_one_by_the_linear_amount(linear_case):
    """Unclamped, a linear model's logit gap moves by exactly -step * sum|d gap/dx| along -sign(grad CE)."""
    model, x, y, classes = linear_case
    x = x[2:] * 0.1  # far from the bounds: no pixel is clamped
    y = y[2:]
    step = 0.05
    out = perturb_batch(model, x, y, classes, step)
    alt = (y + 1) % classes
    with torch.no_grad():
        gap_before = model(x)[1].gather(1, alt[:, None]) - model(x)[1].gather(1, y[:, None])
        gap_after = model(out["perturbed"])[1].gather(1, alt[:, None]) - model(out["perturbed"])[1].gather(1, y[:, None])
    w_gap = (model.w[alt] - model.w[y])  # d gap / dx
    predicted = step * (w_gap * torch.sign(-out["grad"].flatten(1))).sum(1, keepdim=True)
    assert torch.allclose(gap_after - gap_before, predicted, atol=1e-5)


def course_perturbation(model: nn.Module, x_batch: torch.Tensor, y_batch: torch.Tensor, gain: float):
    """The course text's cells, transcribed (002, Part 2: "Perturb Real Images")."""
    x_batch = x_batch.clone().requires_grad_(True)
    y_batch_alternate = (y_batch + 1) % 10
    _, output = model(x_batch)
    criterion = nn.CrossEntropyLoss(reduction="none")
    loss = criterion(output, y_batch_alternate)
    gradients = torch.autograd.grad(outputs=loss, inputs=x_batch, grad_outputs=torch.ones(loss.size()),
                                    create_graph=True, retain_graph=False, only_inputs=True)[0]
    raw = gradients.detach().clone()
    gradients = gradients.detach().clone()
    gradients[gradients > 0.0] = 1.0
    gradients[gradients < 0.0] = -1.0
    x_batch_modified = x_batch.detach() - gain * 0.007843137 * gradients
    x_batch_modified[x_batch_modified > 1.0] = 1.0
    x_batch_modified[x_batch_modified < -1.0] = -1.0
    return raw, x_batch_modified


def tiny_discriminator(width: int = 8, seed: int = 0) -> ACGANDiscriminator:
    torch.manual_seed(seed)
    return ACGANDiscriminator(ACGANDConfig(width=width)).eval().requires_grad_(False)


def test_perturbation_matches_the_course_code_on_the_discriminator():
    D = tiny_discriminator()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 3, 32, 32, generator=g) * 2 - 1
    y = torch.arange(12) % 10
    raw, modified = course_perturbation(D, x, y, gain=8.0)
    out = perturb_batch(D, x, y, 10, 8.0 / 127.5)
    assert torch.allclose(out["grad"], raw, rtol=1e-4, atol=1e-7)
    assert torch.allclose(out["perturbed"], modified, atol=1e-6)


# ------------------------------------------------------------------------------------------ gradient ascent

def course_ascent_linear(w: torch.Tensor, start: torch.Tensor, lr: float, weight_decay: float, iterations: int):
    """The course's loop with loss = -(w . X) per image: its gradient is -w in closed form."""
    X = start.clone()
    for _ in range(iterations):
        gradients = -w.view_as(X)
        X = X - lr * gradients - weight_decay * X * torch.abs(X)
        X[X > 1.0] = 1.0
        X[X < -1.0] = -1.0
    return X


def test_ascent_update_is_the_course_step_with_its_quadratic_decay():
    g = torch.Generator().manual_seed(5)
    start = torch.rand(4, 1, 3, 3, generator=g) * 1.6 - 0.8
    w = torch.randn(4, 9, generator=g)
    lr, wd, iterations = 0.05, 0.3, 5
    calls: list[tuple[int, int]] = []

    def objective(x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) * w).sum(1)

    out = ascend(objective, start, lr, wd, iterations, on_step=lambda done, total: calls.append((done, total)))
    expected = course_ascent_linear(w, start, lr, wd, iterations)
    assert torch.allclose(out, expected, atol=1e-6)
    # the decay is weight_decay * X * |X|, not weight_decay * X: on this case the two differ
    linear_decay = start.clone()
    for _ in range(iterations):
        linear_decay = (linear_decay + lr * w.view_as(start) - wd * linear_decay).clamp(-1, 1)
    assert not torch.allclose(expected, linear_decay, atol=1e-3)
    assert calls == [(i, iterations) for i in range(iterations)]
    assert not out.requires_grad and out.shape == start.shape


def test_one_ascent_step_by_hand():
    """x = 0.5, gradient 1, lr 0.1, decay 0.2: 0.5 + 0.1 - 0.2 * 0.5 * 0.5 = 0.55; x = -0.5: -0.5 + 0.1 + 0.05."""
    start = torch.tensor([[0.5, -0.5, 0.98, -0.98]])
    out = ascend(lambda x: x.sum(1), start, 0.1, 0.2, 1)
    # 0.98 + 0.1 - 0.2 * 0.9604 = 0.88792; -0.98 + 0.1 + 0.19208 = -0.68792
    assert torch.allclose(out, torch.tensor([[0.55, -0.35, 0.88792, -0.68792]]), atol=1e-6)
    assert torch.equal(start, torch.tensor([[0.5, -0.5, 0.98, -0.98]]))  # the start image is left alone
    clamped = ascend(lambda x: x.sum(1), torch.tensor([[0.99, -0.99]]), 0.5, 0.0, 1)
    assert torch.equal(clamped, torch.tensor([[1.0, -0.49]]))
    floor = ascend(lambda x: -x.sum(1), torch.tensor([[-0.99, 0.2]]), 0.5, 0.0, 1)
    assert torch.allclose(floor, torch.tensor([[-1.0, -0.3]]))
    assert torch.equal(ascend(lambda x: x.sum(1), start, 0.1, 0.2, 0), start)


# ------------------------------------------------------------------------------------------ the jobs, in-process

def small_splits(n_test: int = 30, seed: int = 2) -> Splits:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n_test, 3, 32, 32), dtype=np.uint8)
    y = np.arange(n_test, dtype=np.int64) % 10
    return Splits(x, y, x, y, tuple(str(i) for i in range(10)), "test")


def job_on(tmp_path: Path, kind: str, params: dict, D: ACGANDiscriminator, splits: Splits | None = None) -> Job:
    """A job whose run and test data are already in its cache (the way a report shares them with its parts)."""
    run_dir, out = tmp_path / "run", tmp_path / "job"
    out.mkdir(exist_ok=True)
    cfg = {"recipe": "baseline", "dataset": "synthetic", "data_root": None, "width": 8}
    loaded = LoadedRun(run_dir, "checkpoints/final.pt", cfg, 7, [str(i) for i in range(10)], [3, 32, 32], D, None)
    job = Job(kind, {"device": "cpu", **params}, run_dir, "checkpoints/final.pt", None, None, out, out,
              MetricsWriter(out / "metrics.jsonl", who="viz"), log=lambda _line: None)
    job.cache.update({"device": torch.device("cpu"), f"run:{run_dir}:checkpoints/final.pt": loaded,
                      f"data:synthetic:None:{[3, 32, 32]}": DeviceData(splits or small_splits(), "cpu")})
    return job


def png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def course_max_output(D: ACGANDiscriminator, X: torch.Tensor, pick, lr: float, weight_decay: float,
                      iterations: int) -> torch.Tensor:
    """The course's "Synthetic Images Maximizing ..." loop: loss = -pick(X), X -= lr*grad + decay*X*|X|."""
    X = X.clone()
    for _ in range(iterations):
        X.requires_grad_(True)
        loss = -pick(X)
        gradients = torch.autograd.grad(outputs=loss, inputs=X, grad_outputs=torch.ones(loss.size()),
                                        create_graph=True, retain_graph=False, only_inputs=True)[0]
        X = X.data - lr * gradients.data - weight_decay * X.data * torch.abs(X.data)
        X[X > 1.0] = 1.0
        X[X < -1.0] = -1.0
    return X.detach()


def test_max_class_job_ascends_each_copy_on_its_own_class(tmp_path):
    D = tiny_discriminator(seed=4)
    params = {"lr": 2.0, "weight_decay": 0.2, "iterations": 3}
    job = job_on(tmp_path, "max_class", params, D)
    result = max_class.run(job)

    mean = to_unit_range(torch.from_numpy(small_splits().x_test)).mean(0)
    X = course_max_output(D, mean.repeat(10, 1, 1, 1), lambda X: D(X)[1][torch.arange(10), torch.arange(10)],
                          **params)
    with torch.no_grad():
        probs = torch.softmax(D(X)[1], 1)
    conf = probs[torch.arange(10), torch.arange(10)]
    assert result["per_class_confidence"] == {str(i): pytest.approx(conf[i].item(), abs=2e-6) for i in range(10)}
    assert result["predicted"] == [str(int(c)) for c in probs.argmax(1)]
    hits = int((probs.argmax(1) == torch.arange(10)).sum())
    assert result["classified_as_target"] == hits and result["accuracy"] == pytest.approx(10.0 * hits)
    assert (result["model"], result["recipe"], result["epoch"]) == ("run", "baseline", 7)
    assert (job.out_dir / "max_class.png").is_file()
    progress = [r for r in read_all(job.out_dir / "metrics.jsonl") if r["kind"] == "progress"]
    assert progress and progress[0]["done"] == 0 and progress[0]["total"] == 3 and progress[0]["what"]


@pytest.mark.parametrize("layer, width, features, grid", [(2, 8, 100, [1, 8]), (8, 16, 10, [1, 10]),
                                                          (4, 16, 11, [2, 10])])
def test_max_features_job_ascends_feature_i_of_image_i(tmp_path, layer, width, features, grid):
    D = tiny_discriminator(width=width, seed=6)
    params = {"lr": 1.0, "weight_decay": 0.2, "iterations": 3, "layer": layer, "features": features}
    job = job_on(tmp_path, "max_features", params, D)
    result = max_features.run(job)

    n = min(width, features)  # a model narrower than the features asked for: one image per channel
    idx = torch.arange(n)
    mean = to_unit_range(torch.from_numpy(small_splits().x_test)).mean(0)
    start = mean.repeat(n, 1, 1, 1)
    X = course_max_output(D, start, lambda X: D(X, extract_features=layer)[idx, idx], lr=1.0, weight_decay=0.2,
                          iterations=3)
    with torch.no_grad():
        before, after = D.features(start, layer)[idx, idx], D.features(X, layer)[idx, idx]
    assert result["features"] == n and result["layer"] == layer and result["grid"] == grid
    assert (result["model"], result["recipe"], result["epoch"]) == ("run", "baseline", 7)
    assert result["mean_activation_start"] == pytest.approx(before.mean().item(), rel=1e-5, abs=1e-7)
    assert result["mean_activation_end"] == pytest.approx(after.mean().item(), rel=1e-5, abs=1e-7)
    assert result["increased"] == int((after > before).sum())
    save_image_grid(X, tmp_path / "course.png", nrow=10)  # the course plots them 10 to a row
    assert np.array_equal(png(job.out_dir / f"max_features_layer{layer}.png"), png(tmp_path / "course.png"))
    progress = [r for r in read_all(job.out_dir / "metrics.jsonl") if r["kind"] == "progress"]
    assert progress and progress[0]["done"] == 0 and progress[0]["total"] == 3 and progress[0]["what"]


def test_perturb_job_reports_the_accuracies_of_the_course_computation(tmp_path):
    D = tiny_discriminator(seed=8)
    splits = small_splits()
    x = to_unit_range(torch.from_numpy(splits.x_test[:20]))
    with torch.no_grad():
        pred = D(x)[1].argmax(1)
    y = torch.cat([pred[:15], (pred[15:] + 3) % 10])  # the model is right on exactly 15 of the 20: 75 %
    splits.y_test[:20] = y.numpy()
    job = job_on(tmp_path, "perturb", {"gain": 8.0, "batch_size": 20}, D, splits)
    result = perturb.run(job)

    raw, modified = course_perturbation(D, x, y, gain=8.0)
    with torch.no_grad():
        after = D(modified)[1].argmax(1)
    assert result["accuracy_before"] == pytest.approx(75.0)
    assert result["accuracy_after"] == pytest.approx(5.0 * int((after == y).sum()))
    assert result["to_alternative"] == pytest.approx(5.0 * int((after == (y + 1) % 10).sum()))
    assert result["step"] == pytest.approx(8.0 / 127.5) and result["gain"] == 8.0 and result["batch_size"] == 20
    assert (result["model"], result["recipe"], result["epoch"]) == ("run", "baseline", 7)
    # the three grids show the batch, the course's min-max scaled gradient and the perturbed batch
    course_gradient_image = (raw - raw.min()) / (raw.max() - raw.min())  # the course's scaling to [0, 1]
    for name, images in (("real_images.png", x), ("gradient_image.png", course_gradient_image * 2 - 1),
                         ("jittered_images.png", modified)):
        save_image_grid(images, tmp_path / name)
        assert np.array_equal(png(job.out_dir / name), png(tmp_path / name)), name
    artifacts = [(r["path"], r["what"]) for r in read_all(job.out_dir / "metrics.jsonl") if r["kind"] == "artifact"]
    assert [p for p, _ in artifacts] == ["real_images.png", "gradient_image.png", "jittered_images.png"]
    assert all(what for _, what in artifacts)


def test_a_flat_gradient_is_drawn_grey(tmp_path):
    """A classifier blind to its input has a zero gradient everywhere: no min-max range, a mid-grey image."""
    blind = LinearClassifier(torch.zeros(10, 3 * 32 * 32), -(torch.arange(10.0) - 2) ** 2)  # always class 2
    job = job_on(tmp_path, "perturb", {"gain": 8.0, "batch_size": 4}, blind)  # type: ignore[arg-type]
    result = perturb.run(job)
    save_image_grid(torch.zeros(4, 3, 32, 32), tmp_path / "grey.png")
    assert np.array_equal(png(job.out_dir / "gradient_image.png"), png(tmp_path / "grey.png"))
    x = to_unit_range(torch.from_numpy(small_splits().x_test[:4]))
    save_image_grid(x, tmp_path / "same.png")  # a zero gradient's sign is 0: nothing moves
    assert np.array_equal(png(job.out_dir / "jittered_images.png"), png(tmp_path / "same.png"))
    assert result["accuracy_before"] == result["accuracy_after"] == pytest.approx(25.0)  # labels 0-3
