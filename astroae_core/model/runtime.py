"""Inference runtimes for a trained model, chosen by measuring them on the machine at hand.

The same network runs at very different speeds on PyTorch (float32), ONNX Runtime (float32) and PyTorch with
bfloat16 autocast, and which is fastest depends on the CPU: bf16 is several times faster where the CPU has bf16
matrix units (AMX, AVX512-BF16) and several times slower where it has not (benchmarks/RESULTS.md, section 6). So
nothing here assumes: :func:`choose_runtime` times every runtime that is available and correct on a batch of the
size the caller uses, and :class:`InferenceModel` runs each task (the round trip of :func:`run_model`, the decode
of the sliders) on the fastest one, recording what it measured (:attr:`InferenceModel.runtime_record`).

Correctness: ONNX Runtime computes the same float32 network (agreement with PyTorch is checked at the choice, to
:data:`FP32_TOLERANCE`); bf16 is offered only where the CPU runs it natively and its latents and images agree with
float32 within :data:`BF16_TOLERANCE` on the batch measured.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import platform
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

__all__ = ["BF16_TOLERANCE", "FP32_TOLERANCE", "RUNTIMES", "InferenceModel", "RuntimeChoice", "choose_runtime",
           "cpu_description", "native_bf16"]

log = logging.getLogger(__name__)

RUNTIMES = ("torch-fp32", "onnxruntime-fp32", "torch-bf16")
#: Largest difference from PyTorch float32 allowed of ONNX Runtime: (latents, relative to their largest magnitude
#: or 1; images in [0, 1], absolute).
FP32_TOLERANCE = (1e-4, 1e-4)
#: The same for bf16 autocast (bf16 keeps 8 bits of mantissa: about 0.4% per rounding).
BF16_TOLERANCE = (0.02, 0.02)
TASKS = ("round_trip", "decode")


@lru_cache(maxsize=1)
def _cpu_flags() -> frozenset:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16() -> bool:
    """Whether this CPU has bfloat16 matrix or vector units (AMX-BF16 or AVX512-BF16)."""
    return bool({"amx_bf16", "avx512_bf16"} & _cpu_flags())


@lru_cache(maxsize=1)
def cpu_description() -> str:
    """The CPU's model name and the instruction sets that decide the runtime (recorded beside each choice)."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in _cpu_flags()]
    return f"{name} ({', '.join(isa) or 'no AVX2'})"


@dataclass(frozen=True)
class RuntimeChoice:
    """Which runtime a task runs on, and why: the images per second each candidate ran at, in one measurement,
    and why the others were not measured."""

    task: str
    runtime: str
    batch_size: int
    threads: int
    images_per_s: dict = field(default_factory=dict)
    not_used: dict = field(default_factory=dict)
    cpu: str = ""
    measured_utc: str = ""
    reused: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


# -- the candidates -------------------------------------------------------------------------------------------
class _TorchTask(torch.nn.Module):
    """One task of the model as a module with tensor outputs (what ONNX export and timing need)."""

    def __init__(self, model, task: str):
        super().__init__()
        self.model, self.task = model, task

    def forward(self, t):
        if self.task == "decode":
            return (self.model.decode(t),)
        out = self.model(t)
        return out["z"], out["x_hat"], out["x_hat_latent"]


def _torch_runner(model, task: str, *, bf16: bool, threads: int | None = None):
    """A PyTorch runner of the task; with ``threads``, its calls run on that many intra-op threads (PyTorch's
    setting is the process's: it is set for each call and put back after, so such calls take turns)."""
    module = _TorchTask(model, task).eval()
    turns = threading.Lock() if threads else contextlib.nullcontext()

    @torch.inference_mode()
    def run(a: np.ndarray) -> tuple:
        t = torch.from_numpy(a)
        if task == "round_trip":
            t = t.contiguous(memory_format=torch.channels_last)
        with turns, _torch_threads(threads), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            outs = module(t)
        return tuple(o.float().contiguous().numpy() for o in outs)

    return run


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    before = torch.get_num_threads()
    if not threads or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _onnx_runner(model, task: str, *, threads: int):
    """An ONNX Runtime session of the task (exported from the float32 model), or the reason there is none.

    The exported graph is kept beside the runtime records (:func:`_onnx_path`), so a later process skips the export
    (about 0.45 s a task).
    """
    try:
        import onnxruntime as ort
    except ImportError:
        return None, "onnxruntime is not installed"
    kept = _onnx_path(model, task)
    graph = None
    if kept is not None and kept.is_file():
        try:
            graph = kept.read_bytes()
        except OSError:
            graph = None
    from_disk = graph is not None
    if graph is None:
        graph, why = _export_onnx(model, task)
        if graph is None:
            return None, why
        if kept is not None:
            _keep(kept, graph)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # An encode's workers call one session at once: with a memory pattern, a call that finds the pattern's block in
    # use gets a fresh one (the loop's round trip took 8.7 ms an image instead of 6.0, in page faults); a single
    # call runs as fast without (benchmarks/RESULTS.md, 6.1d).
    so.enable_mem_pattern = False
    # No busy-waiting between calls: an encode's workers read and measure on the same cores between them.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(graph, so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        if from_disk:  # a damaged kept graph: export afresh, once
            kept.unlink(missing_ok=True)
            return _onnx_runner(model, task, threads=threads)
        return None, f"ONNX Runtime cannot load the model: {type(exc).__name__}: {exc}"
    name = session.get_inputs()[0].name

    def run(a: np.ndarray) -> tuple:  # safe to call from several threads at once
        return tuple(session.run(None, {name: a}))

    return run, None


def _export_onnx(model, task: str) -> tuple[bytes | None, str | None]:
    """The task's ONNX graph (opset 17, any batch size), or None and why it cannot be exported."""
    d, s = model.config.latent_dim, model.config.in_size
    example = torch.zeros(2, d) if task == "decode" else torch.zeros(2, 1, s, s)
    names_in = ["z"] if task == "decode" else ["x"]
    names_out = ["x_hat"] if task == "decode" else ["z", "x_hat", "x_hat_latent"]
    buf = io.BytesIO()
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_TorchTask(model, task).eval(), (example,), buf, dynamo=False, opset_version=17,
                              input_names=names_in, output_names=names_out,
                              dynamic_axes={n: {0: "n"} for n in names_in + names_out})
    except Exception as exc:  # noqa: BLE001 - a model ONNX cannot express runs on PyTorch
        return None, f"ONNX export failed: {type(exc).__name__}: {exc}"
    return buf.getvalue(), None


def _example(model, task: str, batch_size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if task == "decode":
        return rng.standard_normal((batch_size, model.config.latent_dim)).astype(np.float32)
    s = model.config.in_size
    # A smooth blob on a noisy background: realistic activations for the bf16 agreement check.
    yy, xx = np.mgrid[:s, :s] - (s - 1) / 2
    blob = np.exp(-(xx**2 + yy**2) / (2 * (0.08 * s) ** 2))
    x = 0.1 + 0.8 * blob[None, None] * rng.uniform(0.3, 1.0, (batch_size, 1, 1, 1))
    return np.clip(x + rng.normal(0, 0.01, (batch_size, 1, s, s)), 0, 1).astype(np.float32)


def _disagreement(ref: tuple, got: tuple, task: str) -> tuple[float, float]:
    """(largest latent difference relative to the largest latent magnitude (or 1), largest image difference)
    between two runs of a task."""
    if task == "decode":
        return 0.0, float(np.abs(ref[0] - got[0]).max())
    scale = max(1.0, float(np.abs(ref[0]).max()))
    return float(np.abs(ref[0] - got[0]).max()) / scale, max(float(np.abs(r - g).max()) for r, g in zip(ref[1:], got[1:]))


def _candidates(model, task: str, a: np.ndarray, ort: tuple, *, threads: int) -> tuple[dict, dict]:
    """The runners that are available and agree with float32 PyTorch on ``a``, and why the others are not
    (``ort``: :func:`_onnx_runner`'s answer); each runs on ``threads`` threads."""
    ref_run = _torch_runner(model, task, bf16=False, threads=threads)
    ref = ref_run(a)
    runners, not_used = {"torch-fp32": ref_run}, {}
    ort_run, why = ort
    if ort_run is not None:
        diff = _disagreement(ref, ort_run(a), task)
        if diff[0] <= FP32_TOLERANCE[0] and diff[1] <= FP32_TOLERANCE[1]:
            runners["onnxruntime-fp32"] = ort_run
        else:
            why = f"differs from PyTorch float32 by {diff} (latent, image) > {FP32_TOLERANCE}"
    if why:
        not_used["onnxruntime-fp32"] = why
    if not native_bf16():
        not_used["torch-bf16"] = "this CPU has no native bf16 (no amx_bf16 or avx512_bf16 flag)"
    else:
        bf = _torch_runner(model, task, bf16=True, threads=threads)
        diff = _disagreement(ref, bf(a), task)
        if diff[0] <= BF16_TOLERANCE[0] and diff[1] <= BF16_TOLERANCE[1]:
            runners["torch-bf16"] = bf
        else:
            not_used["torch-bf16"] = f"differs from float32 by {diff} (latent, image) > {BF16_TOLERANCE}"
    return runners, not_used


def _time(runners: dict, a: np.ndarray, *, budget_s: float) -> dict:
    """Images per second of each runner: rounds of one call each (interleaved, so that a load that comes and goes
    touches every runner alike), the median call of each, within about ``budget_s``."""
    times = {k: [] for k in runners}
    for run in runners.values():
        run(a)  # warm-up: first-call allocations, lazy initialisation
    start = time.perf_counter()
    while True:
        for k, run in runners.items():
            t = time.perf_counter()
            run(a)
            times[k].append(time.perf_counter() - t)
        rounds = min(len(v) for v in times.values())
        if rounds >= 2 and (time.perf_counter() - start > budget_s or rounds >= 25):
            break
    return {k: len(a) / statistics.median(v) for k, v in times.items()}


def choose_runtime(model, task: str, *, batch_sizes=(64,), threads: int | None = None, runtime: str = "auto",
                   budget_s: float = 0.5, seed: int = 0):
    """Measure the runtimes of one task of ``model`` and return the fastest correct one.

    Parameters
    ----------
    model : AutoEncoder
        In eval mode (BatchNorm folded: :func:`~astroae_core.model.fused_for_inference`), on the CPU.
    task : {"round_trip", "decode"}
        Images to latents and both reconstructions (as ``model(x)``), or latents to images.
    batch_sizes : sequence of int
        The batch sizes the caller may use; the fastest (runtime, batch size) pair in images per second wins.
    threads : int, optional
        Intra-op threads of every runtime timed and of the one chosen (default: ``torch.get_num_threads()``).
    runtime : str
        ``"auto"`` to measure, or one of :data:`RUNTIMES` to force it (only it is timed, for its batch size and the
        record).
    budget_s : float
        About how long to time each batch size for.
    seed : int
        Seed of the example batch.

    Returns
    -------
    (RuntimeChoice, callable)
        The record, and the chosen runner: ``run(array) -> tuple of arrays`` (``(x_hat,)`` for decode, else
        ``(z, x_hat, x_hat_latent)``).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if runtime != "auto" and runtime not in RUNTIMES:
        raise ValueError(f"runtime must be 'auto' or one of {RUNTIMES}, got {runtime!r}")
    threads = int(threads or torch.get_num_threads())
    path = _record_path(model, task, batch_sizes, threads) if runtime == "auto" else None
    reused = _reuse(path, model, task, threads)
    if reused is not None:
        return reused
    choice, run = _measure_choice(model, task, batch_sizes=batch_sizes, threads=threads, runtime=runtime,
                                  budget_s=budget_s, seed=seed)
    if path is not None:
        _keep(path, json.dumps(choice.to_dict(), indent=1).encode())
    return choice, run


def _measure_choice(model, task: str, *, batch_sizes, threads: int, runtime: str, budget_s: float, seed: int):
    best, record = None, {}
    # One session serves every batch size; a forced runtime builds and times only itself.
    ort = (_onnx_runner(model, task, threads=threads) if runtime in ("auto", "onnxruntime-fp32")
           else (None, f"runtime {runtime!r} was asked for"))
    for b in batch_sizes:
        a = _example(model, task, int(b), seed)
        runners, not_used = _candidates(model, task, a, ort, threads=threads)
        if runtime != "auto":
            if runtime not in runners:
                raise ValueError(f"runtime {runtime!r} is not available here: {not_used.get(runtime)}")
            runners = {runtime: runners[runtime]}
        speeds = _time(runners, a, budget_s=budget_s)
        record.update({f"{k}@{b}": round(v, 1) for k, v in speeds.items()})
        pick = runtime if runtime != "auto" else max(speeds, key=speeds.get)
        if best is None or speeds[pick] > best[0]:
            best = (speeds[pick], pick, int(b), runners[pick], not_used)
    _, name, batch, run, not_used = best
    choice = RuntimeChoice(task=task, runtime=name, batch_size=batch, threads=threads, images_per_s=record,
                           not_used=not_used, cpu=cpu_description(),
                           measured_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    log.info("%s runs on %s (batch %d): %s", task, name, batch, record)
    return choice, run


# -- what was measured on this machine, kept for the next process ------------------------------------------------
def _kept_folder(model) -> tuple[Path, str] | None:
    """The project's ``cache/runtime`` folder and the model's checkpoint hash, or None for a model without a
    checkpoint or where nothing can be kept."""
    from astroae_core.io.paths import project_cache_dir

    sha = getattr(model, "checkpoint_info", {}).get("sha256")
    folder = project_cache_dir("runtime", env="ASTROAE_RUNTIME_CACHE") if sha else None
    return (folder, sha) if folder is not None else None


# Bumped when the timing itself changes, so that no choice measured the old way is reused (2: PyTorch is timed on
# the same threads as ONNX Runtime, not on all of the process's).
_HOW_MEASURED = 2


def _record_path(model, task: str, batch_sizes, threads: int) -> Path | None:
    """Where the choice for this model, task, batch sizes and threads on this machine and these library versions
    is kept; None where nothing can be kept (:func:`_kept_folder`)."""
    kept = _kept_folder(model)
    if kept is None:
        return None
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    key = json.dumps([cpu_description(), platform.node(), torch.__version__, ort_version, kept[1], task,
                      sorted(int(b) for b in batch_sizes), threads, _HOW_MEASURED])
    return kept[0] / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def _onnx_path(model, task: str) -> Path | None:
    """Where the task's exported ONNX graph of this checkpoint is kept (by checkpoint hash and exporter version);
    None where nothing can be kept (:func:`_kept_folder`)."""
    kept = _kept_folder(model)
    if kept is None:
        return None
    return kept[0] / f"{kept[1][:24]}-{task}-torch{torch.__version__.replace('+', '_')}.onnx"


def _keep(path: Path, data: bytes) -> None:
    """Write ``data`` at ``path`` atomically; a read-only checkout measures or exports again next time, nothing
    else changes."""
    from astroae_core.io.atomic import atomic_write_bytes

    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        log.info("not kept at %s: %s", path, exc)


def _reuse(path: Path | None, model, task: str, threads: int):
    """The choice kept at ``path`` and its runner, or None (nothing kept, unreadable, or no longer available)."""
    if path is None or not path.is_file():
        return None
    try:
        choice = RuntimeChoice(**{**json.loads(path.read_text()), "reused": True})
    except (OSError, ValueError, TypeError):
        return None
    run = _runner_for(model, task, choice, threads=threads)
    return (choice, run) if run is not None else None


def _runner_for(model, task: str, choice: RuntimeChoice, *, threads: int):
    """The runner of an already chosen runtime, built without timing anything (None if ONNX Runtime is gone)."""
    if choice.runtime == "onnxruntime-fp32":
        return _onnx_runner(model, task, threads=threads)[0]
    return _torch_runner(model, task, bf16=choice.runtime == "torch-bf16", threads=threads)


class InferenceModel:
    """A trained model for inference only, each task on the fastest correct runtime of this machine.

    Calling it (``model(x)``) returns the dict of :meth:`AutoEncoder.forward` (``z``, ``x_hat``, ``x_hat_latent``)
    as float32 CPU tensors; :meth:`encode` and :meth:`decode` as the network's. Everything else (``config``,
    ``preprocess_config``, ``checkpoint_info``, ``skip_features``, ``parameters``) is the float32 PyTorch module's,
    :attr:`module`. Built by :func:`~astroae_core.model.load_model` with ``runtime=``.
    """

    def __init__(self, module, *, runtime: str = "auto", batch_sizes=(64,), threads: int | None = None):
        # Both tasks are timed at the caller's batch sizes: the app decodes one latent at a time, an encode's
        # report decodes batches (each dimension's influence).
        self.module = module
        self.choices, self._runs = {}, {}
        self._choosing = threading.Lock()
        if isinstance(threads, dict) and set(threads) - set(TASKS):
            raise ValueError(f"threads may be set for the tasks {TASKS}, got {sorted(threads)}")
        self._settings = {"runtime": runtime,
                          "threads": dict(threads) if isinstance(threads, dict) else {t: threads for t in TASKS},
                          "batch_sizes": {"round_trip": tuple(batch_sizes), "decode": tuple(batch_sizes)}}

    def _run(self, task: str):
        """The task's runner, measured and chosen on first use (an app that only decodes never times the
        round trip); threads calling at once wait for the one that measures."""
        if task in self._runs:
            return self._runs[task]
        with self._choosing:
            return self._choose(task)

    def _choose(self, task: str):
        if task in self._runs:  # chosen while this thread waited
            return self._runs[task]
        s = self._settings
        if task in self.choices:  # released: the runtime chosen before, built again, not measured again
            self._runs[task] = _runner_for(self.module, task, self.choices[task], threads=self.choices[task].threads)
        if self._runs.get(task) is None:
            self.choices[task], self._runs[task] = choose_runtime(
                self.module, task, batch_sizes=s["batch_sizes"][task], threads=s["threads"].get(task),
                runtime=s["runtime"])
        return self._runs[task]

    def release(self, task: str) -> None:
        """Free the task's runner and what it holds (an ONNX Runtime session keeps a memory arena as large as its
        largest batch needed); used again, it is built again for the runtime already chosen."""
        self._runs.pop(task, None)

    def __getattr__(self, name):
        # not yet set: no recursion through __getattr__
        if name in ("module", "choices", "_runs", "_settings", "_choosing"):
            raise AttributeError(name)
        return getattr(self.module, name)

    @property
    def batch_size(self) -> int:
        """The round trip's fastest batch size (measured now if it was not yet)."""
        self._run("round_trip")
        return self.choices["round_trip"].batch_size

    @property
    def runtime_record(self) -> dict:
        """What was chosen and measured, per task used so far (stored in a cache's ``meta.json``)."""
        return {task: c.to_dict() for task, c in self.choices.items()}

    def eval(self) -> InferenceModel:
        return self

    def __call__(self, x) -> dict:
        a = np.ascontiguousarray(torch.as_tensor(x).float().cpu().numpy())
        z, x_hat, x_hat_latent = self._run("round_trip")(a)
        out = {"z": torch.from_numpy(z), "x_hat": torch.from_numpy(x_hat)}
        same = not self.module.config.has_skips
        out["x_hat_latent"] = out["x_hat"] if same else torch.from_numpy(x_hat_latent)
        return out

    def encode(self, x) -> torch.Tensor:
        return self(x)["z"]

    def decode(self, z, skips=None) -> torch.Tensor:
        if skips is not None:  # a reference image's encoder features: only the PyTorch module takes them
            with torch.inference_mode():
                return self.module.decode(z, skips)
        zt = torch.as_tensor(z).float().cpu()
        if zt.ndim != 2 or zt.shape[1] != self.module.config.latent_dim:
            raise ValueError(f"z must have shape (N, {self.module.config.latent_dim}), got {tuple(zt.shape)}")
        return torch.from_numpy(self._run("decode")(np.ascontiguousarray(zt.numpy()))[0])
