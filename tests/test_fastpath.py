"""The fast path computes what the course's code computes: channels-last, one joint critic pass, the compiled step.

Each variant runs the engine's real G and D steps on the same weights, batch and random draws as an
independent transcription of the course's code (tests/test_acgan_step.py) or as the eager engine, and must
agree to 1e-5 (relative) in fp32 on the CPU. One exception, explained where it applies: the generator's conv
biases that feed a BatchNorm have a gradient that is exactly zero in exact arithmetic (BatchNorm subtracts
any per-channel constant), so what the backward pass leaves there is rounding noise, and Adam's first step
(lr * g / (|g| + eps)) turns any noise into a full +-lr step. Those biases are checked to have a gradient
of rounding size instead of an equal update; their value never reaches the output.

`torch.compile` is checked with the `aot_eager` backend here (the same graph capture, the torch.func
gradient penalty and AOTAutograd's backward, without code generation: seconds instead of minutes) and with
inductor, the real backend, in one slow test.
"""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from engine.compute.recipes.acgan import ACGANTrainer, gradient_penalty_func
from engine.compute.recipes.baseline import BaselineTrainer
from engine.control.config import resolve_config
from tests.helpers import close, course_gradient_penalty, draws, tiny_npz

BN_FED_BIASES = frozenset(f"convs.{i}.bias" for i in range(7))  # G's conv1..conv7 biases, each before a BN


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return tiny_npz(tmp_path_factory.mktemp("fast") / "d.npz", n_train=64, n_test=32)


def gan(npz: Path, tmp: Path, *assign: str, logs: list[str] | None = None, **attrs) -> ACGANTrainer:
    cfg = resolve_config("acgan-wgangp", assignments=[f"dataset=npz:{npz}", "width=16", "batch_size=16",
                                                      "device=cpu", "epochs=1", *assign])
    t = ACGANTrainer(cfg, tmp / "run", log=(logs.append if logs is not None else lambda m: None))
    for k, v in attrs.items():
        setattr(t, k, v)
    t.setup()
    return t


def contiguous_copy(module: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(module).to(memory_format=torch.contiguous_format)


def course_discriminator_step(t: ACGANTrainer, x, y):
    """Snapshot t's D, G, Adam state and noise stream; return a function that runs the course's D step."""
    D, G = contiguous_copy(t.D), contiguous_copy(t.G)
    opt = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.0, 0.9))
    opt.load_state_dict(t.opt_d.state_dict())
    state = t.noise_gen.get_state()

    def run():
        labels, noise, alpha = draws(state, x.shape[0], 100, 10)
        with torch.no_grad():
            fake = G(noise)
        fs, fc = D(fake)
        rs, rc = D(x)
        dfs, dfc = fs.mean(), F.cross_entropy(fc, labels)
        drs, drc = rs.mean(), F.cross_entropy(rc, y)
        gp = course_gradient_penalty(D, x, fake, alpha)
        cost = dfs - drs + drc + dfc + gp
        opt.zero_grad()
        cost.backward()
        opt.step()
        acc = float(rc.argmax(1).eq(y).sum()) / x.shape[0] * 100.0
        return [gp, dfs, drs, drc, dfc], acc, D

    return run


def course_generator_step(t: ACGANTrainer, b: int):
    D, G = contiguous_copy(t.D), contiguous_copy(t.G)
    opt = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.0, 0.9))
    opt.load_state_dict(t.opt_g.state_dict())
    state = t.noise_gen.get_state()

    def run():
        labels, noise, _ = draws(state, b, 100, 10)
        D.requires_grad_(False)
        src, cls = D(G(noise))
        gen_source, gen_class = src.mean(), F.cross_entropy(cls, labels)
        G.zero_grad()
        (-gen_source + gen_class).backward()
        opt.step()
        return [gen_source, gen_class], G

    return run


@pytest.fixture(autouse=True)
def _two_threads():
    """The parity checks at a fixed thread count (the 2 of the machines this suite runs on): an element
    next to a ReLU's kink can land on either side with another summation order, and an in-process run
    elsewhere in the session (setup_runtime with threads=1) would otherwise choose the order for us."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(False)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(det)


def assert_same_params(ours: torch.nn.Module, ref: torch.nn.Module, skip_noise_only: bool = False) -> None:
    grads = [p.grad.abs().max() for p in ref.parameters() if p.grad is not None]
    scale = float(torch.stack(grads).max())
    for (name, p_ours), (_, p_ref) in zip(ours.named_parameters(), ref.named_parameters()):
        if skip_noise_only and name in BN_FED_BIASES:
            # zero in exact arithmetic: both gradients are rounding noise, far below the real ones
            assert float(p_ours.grad.abs().max()) < 1e-4 * scale, name
            assert float(p_ref.grad.abs().max()) < 1e-4 * scale, name
            continue
        # an element whose gradient is rounding noise in both (zero in exact arithmetic) takes Adam's step
        # in the noise's sign, which a different summation order (thread count, memory format) can flip:
        # compare the elements with a real gradient, and require the noise to be noise on our side too
        noise = p_ref.grad.abs() < 1e-4 * scale
        assert bool(torch.all(p_ours.grad[noise].abs() < 1e-4 * scale)), name
        assert close(p_ours.detach()[~noise], p_ref.detach()[~noise]), name


def check_against_the_course(t: ACGANTrainer) -> None:
    """One D step and one G step of `t` against the course transcription on the same state and batch."""
    x, y = t.data.train_batch(torch.arange(16), None, False)
    course_d = course_discriminator_step(t, x, y)
    ours = t.train_discriminator(t.rt.prepare_input(x), y)
    terms, acc, D_ref = course_d()
    for name, a, b in zip(("gp", "d_fake_source", "d_real_source", "d_real_class", "d_fake_class"), ours, terms):
        assert close(a, b.detach()), (name, float(a), float(b))
    assert float(ours[5]) == pytest.approx(acc)
    assert float(ours[0]) > 0
    assert_same_params(t.D, D_ref)

    course_g = course_generator_step(t, 16)
    gen_source, gen_class = t.train_generator(16)
    (ref_source, ref_class), G_ref = course_g()
    assert close(gen_source, ref_source.detach()) and close(gen_class, ref_class.detach())
    assert_same_params(t.G, G_ref, skip_noise_only=True)


def test_channels_last_steps_match_the_course(tmp_path, npz):
    t = gan(npz, tmp_path, runtime_overrides={"channels_last": True})
    assert t.D.convs[1].weight.is_contiguous(memory_format=torch.channels_last)
    check_against_the_course(t)


def test_course_style_two_critic_passes_match_the_course(tmp_path, npz):
    check_against_the_course(gan(npz, tmp_path, joint_critic_pass=False))


def test_single_tensor_adam_matches_the_course(tmp_path, npz):
    t = gan(npz, tmp_path, runtime_overrides={"optimizer": "single"})
    assert t.opt_d.defaults["foreach"] is False
    check_against_the_course(t)


@pytest.mark.slow
def test_compiled_gan_steps_match_the_course(tmp_path, npz):
    """compile=true (aot_eager backend): the torch.func gradient penalty inside a captured graph."""
    logs: list[str] = []
    t = gan(npz, tmp_path, "compile=true", logs=logs, compile_backend="aot_eager")
    assert t.compiled and any("torch.func" in m for m in logs), logs
    check_against_the_course(t)
    assert {f.state for f in (t._critic_terms, t._generator_terms, t._fake_images)} == {"compiled"}


def test_compiled_baseline_step_matches_eager(tmp_path, npz):
    def make(*extra):
        cfg = resolve_config("baseline", assignments=[f"dataset=npz:{npz}", "width=8", "batch_size=16",
                                                       "device=cpu", *extra])
        t = BaselineTrainer(cfg, tmp_path / f"run{len(extra)}", log=lambda m: None)
        t.compile_backend = "aot_eager"
        t.setup()
        return t

    eager, compiled = make(), make("compile=true")
    assert compiled.compiled and not eager.compiled
    x, y = eager.data.train_batch(torch.arange(16), None, False)
    for i in range(2):
        a, b = eager.train_step(x, y, i), compiled.train_step(x, y, i)
        assert close(a, b)
    for (name, p), q in zip(eager.model.named_parameters(), compiled.model.parameters()):
        assert close(p, q), name


def test_a_compile_failure_falls_back_to_eager_with_one_log_line(tmp_path, npz):
    def broken_backend(gm, example_inputs):
        raise RuntimeError("no code generator today")

    def make(name, *extra, logs=None, **attrs):
        cfg = resolve_config("baseline", assignments=[f"dataset=npz:{npz}", "width=8", "batch_size=16",
                                                       "device=cpu", *extra])
        t = BaselineTrainer(cfg, tmp_path / name, log=(logs.append if logs is not None else lambda m: None))
        for k, v in attrs.items():
            setattr(t, k, v)
        t.setup()
        return t

    logs: list[str] = []
    t = make("c", "compile=true", logs=logs, compile_backend=broken_backend)
    ref = make("e")
    assert t.compiled  # set up to compile; the failure only shows on the first call
    x, y = ref.data.train_batch(torch.arange(16), None, False)
    assert close(t.train_step(x, y, 0), ref.train_step(x, y, 0))
    fallbacks = [m for m in logs if "could not be compiled" in m]
    assert len(fallbacks) == 1 and "running it eagerly" in fallbacks[0] and "\n" not in fallbacks[0], logs
    assert "no code generator today" in fallbacks[0]
    assert close(t.train_step(x, y, 1), ref.train_step(x, y, 1))  # later steps: eager, no new message
    assert len([m for m in logs if "could not be compiled" in m]) == 1 and t._loss_terms.state == "eager"


def test_compile_without_a_cxx_compiler_trains_eagerly_and_says_why(tmp_path, npz, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("CXX", raising=False)
    logs: list[str] = []
    t = gan(npz, tmp_path, "compile=true", logs=logs)
    assert t.compiled is False
    assert any(m.startswith("compile: not available here (no C++ compiler") for m in logs), logs
    assert t._critic_terms == t.critic_terms  # the eager functions, untouched


# --- bf16: the tolerance a GPU run is held to -----------------------------------------------------------
# Measured on the CPU's bf16 autocast (width 16, batch 16, this seed), which is harsher than CUDA's: on the
# CPU LayerNorm and BatchNorm also run in bf16, on CUDA autocast keeps LayerNorm in fp32. Measured: loss
# terms within 4.3% (gp) and 0.8% (the others); gradient cosine similarity to fp32 0.998 (D) and 0.92 (G).
BF16_TERM_RTOL = {"gp": 0.10}
BF16_TERM_RTOL_DEFAULT = 0.03
BF16_TERM_ATOL = 0.02
BF16_GRAD_COSINE = {"D": 0.99, "G": 0.85}


def _grads(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten().float() for p in module.parameters() if p.grad is not None])


def bf16_against_fp32(make, x, y) -> None:
    """One G and one D step in bf16 and in fp32 from the same state: terms and gradient directions."""
    from engine.compute.device import set_tf32

    fp32, bf16 = make("fp32"), make("bf16")
    assert bf16.rt.precision == "bf16"
    results = {}
    for name, t in (("fp32", fp32), ("bf16", bf16)):
        if t.rt.is_cuda:
            set_tf32(name == "bf16")  # fp32 is the true fp32 reference
        vals = t.train_step(t.rt.prepare_input(x), y, 0)
        results[name] = (vals.float().cpu(), _grads(t.D).cpu(), _grads(t.G).cpu())
    names = ("gp", "d_fake_source", "d_real_source", "d_real_class", "d_fake_class", "gen_source", "gen_class")
    for k, name in enumerate(names):
        a, b = float(results["bf16"][0][k]), float(results["fp32"][0][k])
        rtol = BF16_TERM_RTOL.get(name, BF16_TERM_RTOL_DEFAULT)
        assert abs(a - b) <= rtol * abs(b) + BF16_TERM_ATOL, (name, a, b)
    for idx, module in ((1, "D"), (2, "G")):
        cos = F.cosine_similarity(results["bf16"][idx], results["fp32"][idx], dim=0)
        assert float(cos) >= BF16_GRAD_COSINE[module], (module, float(cos))


def test_bf16_step_stays_within_the_documented_tolerance_on_the_cpu(tmp_path, npz):
    def make(precision):
        return gan(npz, tmp_path / precision, runtime_overrides={"precision": precision})

    t = make("fp32")
    x, y = t.data.train_batch(torch.arange(16), None, False)
    bf16_against_fp32(make, x, y)


@pytest.mark.gpu
def test_bf16_step_stays_within_the_documented_tolerance_on_cuda(tmp_path, npz):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")

    def make(precision):
        return gan(npz, tmp_path / precision, "device=cuda", f"precision={precision}")

    t = make("fp32")
    assert t.rt.channels_last
    x, y = t.data.train_batch(torch.arange(16, device="cuda"), None, False)
    bf16_against_fp32(make, x, y)


@pytest.mark.slow
def test_inductor_compiled_critic_step_matches_eager(tmp_path, npz):
    """The real backend (C++ code generation on the CPU: minutes) on the step's hardest graph, the critic
    loss with the torch.func gradient penalty: the loss terms to 1e-5 and the same gradients."""
    from engine.compute.device import compile_unavailable

    t = gan(npz, tmp_path, "width=8")
    reason = compile_unavailable(t.rt.device)
    if reason:
        pytest.skip(f"torch.compile unavailable here: {reason}")
    logs: list[str] = []
    compiled = t.rt.compile(partial(t.critic_terms, penalty=gradient_penalty_func), name="critic", log=logs.append)
    x, y = t.data.train_batch(torch.arange(16), None, False)
    z, fake_labels = t._draw(16)
    fake = t.fake_images(z)
    alpha = torch.rand(16, 1, 1, 1, generator=t.noise_gen)
    results = []
    for fn in (t.critic_terms, compiled):
        t.D.zero_grad(set_to_none=True)
        cost, *terms = fn(x, y, fake, fake_labels, alpha)
        cost.backward()
        results.append((torch.stack(terms).detach(), _grads(t.D)))
    assert compiled.state == "compiled", logs
    (terms_e, grads_e), (terms_c, grads_c) = results
    assert close(terms_c, terms_e), (terms_c, terms_e)
    assert float(F.cosine_similarity(grads_c, grads_e, dim=0)) > 0.99999
    assert float((grads_c - grads_e).abs().max()) <= 1e-4 * float(grads_e.abs().max())
