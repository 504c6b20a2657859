"""The inference runtimes: every one computes the same network (to a stated tolerance), the choice is measured and
recorded, and a forced runtime that is not available is refused by name."""

from pathlib import Path

import numpy as np
import pytest
import torch

from astroae_core.analysis import run_model
from astroae_core.model import AutoEncoder, InferenceModel, choose_runtime, fused_for_inference, load_model
from astroae_core.model.runtime import (BF16_TOLERANCE, FP32_TOLERANCE, _disagreement, _example, _onnx_runner,
                                       _torch_runner)

MODELS = Path(__file__).resolve().parents[1] / "models"
SHIPPED = ["demo.pt", "demo-unet.pt", "ceers.pt"]


@pytest.fixture(autouse=True)
def own_records(tmp_path, monkeypatch):
    """Each test measures afresh: the choices kept on this machine go to a folder of its own."""
    monkeypatch.setenv("ASTROAE_RUNTIME_CACHE", str(tmp_path / "runtime"))
    return tmp_path / "runtime"


@pytest.fixture(scope="module", params=SHIPPED)
def fused(request):
    return fused_for_inference(load_model(MODELS / request.param))


@pytest.mark.parametrize("task", ["round_trip", "decode"])
def test_onnxruntime_and_bf16_agree_with_float32_on_the_shipped_models(fused, task):
    a = _example(fused, task, 4, seed=1)
    ref = _torch_runner(fused, task, bf16=False)(a)
    run, why = _onnx_runner(fused, task, threads=1)
    assert why is None, why
    onnx = run(a)
    bf16 = _torch_runner(fused, task, bf16=True)(a)
    for got, (tol_z, tol_x) in ((onnx, FP32_TOLERANCE), (bf16, BF16_TOLERANCE)):
        assert len(got) == len(ref)
        dz, dx = _disagreement(ref, got, task)
        assert dz <= tol_z and dx <= tol_x
        if task == "round_trip":
            assert np.abs(got[0] - ref[0]).max() <= tol_z * max(1.0, np.abs(ref[0]).max())
        assert max(np.abs(g - r).max() for g, r in zip(got[-2:], ref[-2:])) <= tol_x


def test_the_choice_is_measured_and_recorded():
    m = fused_for_inference(load_model(MODELS / "demo.pt"))
    choice, run = choose_runtime(m, "decode", batch_sizes=(1, 4), threads=1, budget_s=0.05)
    assert choice.runtime in {k.split("@")[0] for k in choice.images_per_s}
    assert {"torch-fp32@1", "torch-fp32@4"} <= set(choice.images_per_s)
    assert choice.images_per_s[f"{choice.runtime}@{choice.batch_size}"] == max(choice.images_per_s.values())
    assert run(np.zeros((2, 8), np.float32))[0].shape == (2, 1, 187, 187)
    assert choice.cpu and choice.to_dict()["task"] == "decode"


def test_the_choice_is_kept_for_the_next_process_on_this_machine(own_records):
    m = fused_for_inference(load_model(MODELS / "demo.pt"))
    first, _ = choose_runtime(m, "decode", batch_sizes=(2,), threads=1, budget_s=0.05)
    assert not first.reused and len(list(own_records.glob("*.json"))) == 1
    again, run = choose_runtime(m, "decode", batch_sizes=(2,), threads=1)
    assert again.reused and again.runtime == first.runtime and again.images_per_s == first.images_per_s
    assert again.measured_utc == first.measured_utc
    assert run(np.zeros((3, 8), np.float32))[0].shape == (3, 1, 187, 187)
    other, _ = choose_runtime(m, "decode", batch_sizes=(2,), threads=2, budget_s=0.05)  # other threads: measured
    assert not other.reused and len(list(own_records.glob("*.json"))) == 2
    forced, _ = choose_runtime(m, "decode", batch_sizes=(2,), threads=1, runtime="torch-fp32", budget_s=0.05)
    assert not forced.reused and forced.runtime == "torch-fp32"


def test_a_forced_runtime_runs_and_an_unknown_one_is_refused():
    m = fused_for_inference(load_model(MODELS / "demo.pt"))
    choice, _ = choose_runtime(m, "decode", runtime="torch-fp32", budget_s=0.01)
    assert choice.runtime == "torch-fp32"
    assert choice.images_per_s and all(k.startswith("torch-fp32@") for k in choice.images_per_s)  # only it timed
    with pytest.raises(ValueError, match="'tensorrt'"):
        choose_runtime(m, "decode", runtime="tensorrt")
    with pytest.raises(ValueError, match="'encode_only'"):
        choose_runtime(m, "encode_only")


def test_an_inference_model_is_the_same_network_on_any_runtime():
    trainable = load_model(MODELS / "demo-unet.pt")
    assert isinstance(trainable, AutoEncoder)
    fast = load_model(MODELS / "demo-unet.pt", runtime="onnxruntime-fp32", batch_sizes=(4,))
    assert isinstance(fast, InferenceModel) and fast.config == trainable.config
    assert fast.checkpoint_info["sha256"] == trainable.checkpoint_info["sha256"]
    x = _example(trainable, "round_trip", 5, seed=2)
    with torch.inference_mode():
        ref = trainable(torch.from_numpy(x))
    got = run_model(fast, x, batch_size=4)
    assert np.abs(got["z"] - ref["z"].numpy()).max() <= FP32_TOLERANCE[0] * np.abs(ref["z"].numpy()).max()
    assert np.abs(got["x_hat_latent"] - ref["x_hat_latent"].numpy()).max() <= FP32_TOLERANCE[1]
    assert not np.array_equal(got["x_hat"], got["x_hat_latent"])  # the U-Net's skips are used
    z = torch.from_numpy(got["z"][:2])
    with torch.inference_mode():
        assert (fast.decode(z) - trainable.decode(z)).abs().max() <= FP32_TOLERANCE[1]
    record = fast.runtime_record
    assert record["round_trip"]["runtime"] == record["decode"]["runtime"] == "onnxruntime-fp32"
    assert record["round_trip"]["batch_size"] == record["decode"]["batch_size"] == 4


def test_a_released_task_is_built_again_for_the_runtime_chosen_before(monkeypatch):
    import astroae_core.model.runtime as runtime

    fast = load_model(MODELS / "demo.pt", runtime="onnxruntime-fp32", batch_sizes=(4,))
    x = torch.from_numpy(_example(fast.module, "round_trip", 3, seed=1))
    before, record = fast(x), fast.runtime_record
    fast.release("round_trip")
    assert "round_trip" not in fast._runs  # the session and its arena are gone

    def refuse(*a, **k):
        raise AssertionError("a released task was measured again")

    monkeypatch.setattr(runtime, "choose_runtime", refuse)
    after = fast(x)
    assert torch.equal(before["z"], after["z"]) and torch.equal(before["x_hat"], after["x_hat"])
    assert fast.runtime_record == record  # the record says what was measured, not that it was rebuilt


def test_the_exported_onnx_graph_is_kept_reused_and_replaced_when_damaged(own_records, monkeypatch):
    import astroae_core.model.runtime as rt

    m = fused_for_inference(load_model(MODELS / "demo.pt"))
    a = _example(m, "decode", 3, seed=4)
    run, why = _onnx_runner(m, "decode", threads=1)
    assert why is None
    kept = list(own_records.glob("*-decode-*.onnx"))
    assert len(kept) == 1 and kept[0].name.startswith(m.checkpoint_info["sha256"][:24])
    exports, export = [], rt._export_onnx
    monkeypatch.setattr(rt, "_export_onnx", lambda *args: exports.append(args) or export(*args))
    again, _ = _onnx_runner(m, "decode", threads=1)
    assert exports == [] and np.array_equal(again(a)[0], run(a)[0])  # read back, not exported again
    kept[0].write_bytes(b"not an onnx graph")
    mended, why = _onnx_runner(m, "decode", threads=1)
    assert why is None and len(exports) == 1 and np.array_equal(mended(a)[0], run(a)[0])
    assert kept[0].read_bytes() != b"not an onnx graph"


def test_threads_are_set_for_both_tasks_or_for_each_and_pytorch_keeps_to_them(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # not the 1 asked for below, whatever this machine has
    try:
        x = torch.from_numpy(_example(load_model(MODELS / "demo.pt"), "round_trip", 2, seed=0))
        for threads, expect in ((1, (1, 1)), ({"round_trip": 1}, (1, 3)), (None, (3, 3))):
            fast = load_model(MODELS / "demo.pt", runtime="onnxruntime-fp32", batch_sizes=(2,), threads=threads)
            fast.decode(fast(x)["z"])
            assert (fast.runtime_record["round_trip"]["threads"], fast.runtime_record["decode"]["threads"]) == expect
        seen = []
        slow = load_model(MODELS / "demo.pt", runtime="torch-fp32", batch_sizes=(2,), threads={"round_trip": 1})
        slow.module.register_forward_hook(lambda *a: seen.append(torch.get_num_threads()))
        slow(x)
        assert seen and set(seen) == {1} and torch.get_num_threads() == 3  # 1 while it ran, then put back
        with pytest.raises(ValueError, match="threads may be set for the tasks"):
            load_model(MODELS / "demo.pt", runtime="auto", threads={"roundtrip": 1})
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("runtime", ["onnxruntime-fp32", "torch-fp32"])
def test_an_inference_model_called_from_several_threads_at_once_gives_what_it_gives_alone(runtime):
    # an encode's workers call one model at once; PyTorch's calls, which set its thread count, take turns
    from concurrent.futures import ThreadPoolExecutor

    before = torch.get_num_threads()
    fast = load_model(MODELS / "demo-unet.pt", runtime=runtime, batch_sizes=(3,), threads={"round_trip": 1})
    batches = [_example(fast, "round_trip", 3, seed=s) for s in range(8)]
    alone = [run_model(fast, b, batch_size=3) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda b: run_model(fast, b, batch_size=3), batches * 2))
    for got, ref in zip(together, alone * 2):
        for key in ("z", "x_hat", "x_hat_latent"):
            assert np.array_equal(got[key], ref[key]), key
    assert torch.get_num_threads() == before


def test_threads_that_first_use_a_model_at_once_share_one_measured_choice(monkeypatch):
    # an encode with its batch size given calls a fresh model from its workers: the runtime is chosen once
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from astroae_core.model import runtime

    calls = []
    measure = runtime.choose_runtime

    def counted(*args, **kwargs):
        calls.append(args[1])
        return measure(*args, **kwargs)

    monkeypatch.setattr(runtime, "choose_runtime", counted)
    fresh = load_model(MODELS / "demo.pt", runtime="torch-fp32", batch_sizes=(2,), threads={"round_trip": 1})
    x = _example(fresh, "round_trip", 2, seed=0)
    start = threading.Barrier(4)

    def first_use(_):
        start.wait()
        return run_model(fresh, x, batch_size=2)["z"]

    with ThreadPoolExecutor(4) as pool:
        zs = list(pool.map(first_use, range(4)))
    assert calls == ["round_trip"]  # measured once, so never by two threads at once
    assert all(np.array_equal(z, zs[0]) for z in zs)
