"""benchmarks/roofline.py: the per-layer cost model against hand formulas and torch's own FLOP counter, and its
quick run's JSON."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.roofline import layer_cost, trace_layers

from .test_benchmarks import _run_quick


def _torch_flops(module, x) -> int:
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        module(x)
    return int(fc.get_total_flops())


@pytest.mark.parametrize("module, x_shape", [
    (nn.Conv2d(8, 16, 3, padding=1, bias=False), (2, 8, 23, 17)),
    (nn.Conv2d(6, 12, 3, padding=0, groups=3), (1, 6, 20, 20)),
    (nn.ConvTranspose2d(16, 8, 2, stride=2), (3, 16, 11, 13)),
    (nn.Linear(40, 8), (5, 40)),
])
def test_layer_flops_are_the_formula_and_what_torch_counts(module, x_shape):
    x = torch.rand(x_shape)
    y_shape = tuple(module(x).shape)
    cost = layer_cost(module, x_shape, y_shape)
    assert cost["flops"] == _torch_flops(module, x)
    n_params = sum(p.numel() for p in module.parameters())
    assert cost["bytes"] == 4 * (x.numel() + n_params + torch.Size(y_shape).numel())
    assert cost["intensity"] == pytest.approx(cost["flops"] / cost["bytes"])


def test_a_known_conv_by_hand():
    conv = nn.Conv2d(1, 8, 3, padding=1, bias=False)
    cost = layer_cost(conv, (4, 1, 187, 187), (4, 8, 187, 187))
    assert cost["flops"] == 2 * 4 * 8 * 187 * 187 * 1 * 9
    assert cost["bytes"] == 4 * (4 * 187 * 187 + 8 * 9 + 4 * 8 * 187 * 187)
    with pytest.raises(TypeError, match="no cost model for ReLU"):
        layer_cost(nn.ReLU(), (1, 2), (1, 2))


def test_trace_finds_every_weighted_layer_in_call_order():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 9 * 9, 3))
    rows = trace_layers(net, net, torch.rand(2, 1, 9, 9))
    assert [r["layer"] for r in rows] == ["0", "3"] and [r["type"] for r in rows] == ["Conv2d", "Linear"]
    assert rows[0]["out_shape"] == [2, 4, 9, 9] and rows[1]["flops"] == 2 * 2 * 324 * 3
    assert sum(r["flops"] for r in rows) == _torch_flops(net, torch.rand(2, 1, 9, 9))


@pytest.mark.slow
def test_roofline_quick_reports_layers_the_machine_and_the_bound(tmp_path):
    r = _run_quick("roofline", tmp_path)
    peak, bw = r["matmul_float32_gflops"], r["bandwidth_gb_s"]["triad"]
    assert peak > 0 and bw > 0 and r["bandwidth_gb_s"]["copy"] > 0
    assert r["ridge_flops_per_byte"] == pytest.approx(peak / bw, rel=0.01)
    demo = r["models"]["demo"]
    for part in ("encode", "decode"):
        assert set(demo[part]) == {"1", "2"}
        one, two = demo[part]["1"], demo[part]["2"]
        assert two["flops"] == 2 * one["flops"]  # FLOPs scale with the batch
        for row in (one, two):
            assert row["layers_counted"] == len(row["layers"]) > 0
            assert row["flops"] == sum(layer["flops"] for layer in row["layers"])
            assert row["measured_images_per_s"] > 0 and row["bound_images_per_s"] > 0
            assert row["fraction_of_bound"] == pytest.approx(row["measured_images_per_s"] / row["bound_images_per_s"],
                                                             rel=0.01)
            for layer in row["layers"]:
                assert layer["bound_gflops"] == pytest.approx(min(peak, layer["intensity"] * bw), rel=1e-3)
    first = demo["encode"]["1"]["layers"][0]  # the shipped model's first conv: 1 -> 8 channels, 3x3, 187x187
    assert first["type"] == "Conv2d" and first["in_shape"] == [1, 1, 187, 187]
    assert first["flops"] == 2 * 8 * 187 * 187 * 9
