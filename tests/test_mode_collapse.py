"""The mode-collapse signals (engine.compute.mode_collapse): class spread and diversity, BatchNorm statistics
kept while measuring, how the run charts draw them, and the ACGAN run logging its class spread."""

from __future__ import annotations

import math

import pytest
import torch

from engine.compute.mode_collapse import batchnorm_stats_kept, class_spread, diversity, mean_pairwise_distance
from engine.control.config import RECIPES
from tests.helpers import CPU_RUN, make_run_dir, records, run_worker, tiny_npz
from tui.charts.series import RunCharts


def test_class_spread_is_normalised_entropy():
    uniform = torch.eye(10).repeat(5, 1)  # every class five times
    assert class_spread(uniform, 10) == pytest.approx(1.0)
    one = torch.zeros(50, 10)
    one[:, 3] = 1
    assert class_spread(one, 10) == pytest.approx(0.0)
    half = torch.cat([torch.eye(10)[:2]] * 10)  # two classes equally often: log 2 / log 10
    assert class_spread(half, 10) == pytest.approx(math.log(2) / math.log(10))


def test_diversity_is_relative_pairwise_distance():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(64, 1, 28, 28, generator=g) * 2 - 1
    ref = mean_pairwise_distance(real)
    assert diversity(real, ref) == pytest.approx(1.0)
    collapsed = real[:1].repeat(64, 1, 1, 1)
    assert diversity(collapsed, ref) == pytest.approx(0.0, abs=1e-6)
    assert diversity(real * 0.5, ref) == pytest.approx(0.5, rel=1e-5)  # half the spread, half the score
    with pytest.raises(ValueError):
        mean_pairwise_distance(real[:1])


def test_batchnorm_stats_kept_restores_running_statistics():
    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad(), batchnorm_stats_kept(net):
        net(torch.randn(32, 4) * 5 + 3)
        assert not torch.equal(net[1].running_mean, before["1.running_mean"])  # it did move inside
    after = net.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)


def test_run_charts_draw_probes_and_signals_where_the_accuracies_would_be():
    """A GAN without a classifier: losses on the first chart; D(x), D(G(z)) and its signal on the second."""
    spec = RECIPES["mlp-gan"]
    assert spec.probe_metrics() == ("d_real", "d_fake", "diversity") and not spec.has_classifier
    charts = RunCharts(losses=spec.loss_metrics, probes=spec.probe_metrics())
    charts.ingest([
        {"kind": "train", "epoch": 1, "step": 10, "d_loss": 1.0, "g_loss": 2.0, "d_real": 0.6, "d_fake": 0.3},
        {"kind": "epoch", "epoch": 1, "step": 10, "mean_d_loss": 1.0, "mean_d_real": 0.6, "diversity": 0.4},
        {"kind": "epoch", "epoch": 2, "step": 20, "mean_d_loss": 0.9, "mean_d_real": 0.7, "diversity": 0.7},
    ])
    assert charts.loss_names() == ["d_loss", "g_loss"]
    assert charts.second_names() == ["d_real", "d_fake", "diversity"]
    assert charts.acc_series["step"]["diversity"].xs == [10.0, 20.0]
    assert charts.acc_series["epoch"]["diversity"].ys == [0.4, 0.7]
    assert charts.acc_series["step"]["d_real"].ys == [0.6] and charts.acc_series["epoch"]["d_real"].ys == [0.6, 0.7]
    assert "diversity" not in charts.loss_series["step"]
    acgan = RunCharts(losses=RECIPES["acgan-wgangp"].loss_metrics, probes=RECIPES["acgan-wgangp"].probe_metrics())
    acgan.ingest([{"kind": "epoch", "epoch": 1, "step": 5, "test_acc": 10.0, "class_spread": 0.9}])
    assert acgan.loss_names()[-1] == "class_spread" and acgan.second_names() == ["train acc", "test acc"]
    quiet = RunCharts(losses=RECIPES["acgan-wgangp"].loss_metrics)
    quiet.ingest([{"kind": "epoch", "epoch": 1, "step": 5, "mean_gp": 1.0}])
    assert quiet.loss_names() == list(RECIPES["acgan-wgangp"].loss_metrics)  # a signal shows only with data


def test_acgan_logs_the_class_spread_every_epoch(tmp_path):
    npz = tiny_npz(tmp_path / "tiny.npz", n_train=128, n_test=64)
    run_dir = make_run_dir(tmp_path, "acgan-wgangp", f"dataset=npz:{npz}", "width=8", "batch_size=32", "epochs=2",
                           "log_every=2", *CPU_RUN)
    out = run_worker(run_dir)
    assert out.returncode == 0, out.stderr
    eps = records(run_dir, "epoch")
    assert len(eps) == 2
    for e in eps:
        assert 0 <= e["class_spread"] <= 1 and 0 <= e["test_acc"] <= 100  # the accuracy is still there
