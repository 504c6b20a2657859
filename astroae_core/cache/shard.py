"""The first stages of an encode, on one process's shard of the files: read and preprocess each file, run the
model, measure each reconstruction, a batch at a time on each of a few threads, so that one thread's model runs
while another reads. The result is one :class:`EncodedShard`; under torchrun the ranks' shards are concatenated in
rank order on rank 0."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astroae_core.cache.meta import Skipped
from astroae_core.cache.previews import PreviewSpool, make_previews
from astroae_core.io.content_hash import pixel_hash
from astroae_core.io import LINKED_FROM_OUTSIDE, FitsReadError, is_within, read_fits_with_index, sky_centre
from astroae_core.progress import Progress, report

__all__ = ["METRIC_COLUMNS", "EncodedShard", "ReadImage", "default_workers", "encode_shard", "flat_fraction", "read_image"]

log = logging.getLogger(__name__)

#: Per-image metrics of the full reconstruction, then of the latent-only one.
METRIC_COLUMNS = ("mse", "ssim", "ms_ssim", "latent_mse", "latent_ssim")


@dataclass
class ReadImage:
    """One file read and preprocessed: the model's input ``x`` (1, S, S), its identity by content
    (:func:`~astroae_core.io.content_hash.pixel_hash`), its sky position (NaN without a WCS), the index of the HDU
    read, and its :func:`flat_fraction`."""

    x: np.ndarray
    hash: str
    ra: float
    dec: float
    hdu: int
    flat: float


@dataclass
class EncodedShard:
    """Everything encoded from a run of files, row for row.

    Attributes
    ----------
    paths : list of str
        The images encoded (relative to the data folder), in file order.
    hashes : list of str
        Each image's identity by content (which of them the checkpoint trained on).
    hdu, ra, dec, flat, peak : numpy.ndarray
        Per image: index of the HDU read, sky position, flat fraction, largest absolute residual.
    z : numpy.ndarray
        float32 latents ``(n, latent_dim)``.
    metrics : dict of str to numpy.ndarray
        :data:`METRIC_COLUMNS`, float64.
    skipped : list of Skipped
        The files of the run that could not be used.
    previews : numpy.ndarray or None
        uint8 thumbnails, or None where they went to a :class:`~astroae_core.cache.previews.PreviewSpool`.
    """

    paths: list[str]
    hashes: list[str]
    hdu: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    flat: np.ndarray
    peak: np.ndarray
    z: np.ndarray
    metrics: dict[str, np.ndarray]
    skipped: list[Skipped]
    previews: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of images."""
        return len(self.paths)

    @classmethod
    def empty(cls, model, *, preview_size: int, with_previews: bool, skipped=()) -> EncodedShard:
        """No image (only ``skipped`` files), with arrays shaped for ``model``'s images and latents."""
        return cls(paths=[], hashes=[], hdu=np.zeros(0, np.int64), ra=np.zeros(0), dec=np.zeros(0), flat=np.zeros(0),
                   peak=np.zeros(0), z=np.zeros((0, model.config.latent_dim), np.float32),
                   metrics={k: np.zeros(0) for k in METRIC_COLUMNS}, skipped=list(skipped),
                   previews=np.zeros((0, preview_size, preview_size), np.uint8) if with_previews else None)

    @classmethod
    def concat(cls, parts: Sequence[EncodedShard]) -> EncodedShard:
        """The shards one after the other."""
        arrays = {k: np.concatenate([getattr(p, k) for p in parts]) for k in ("hdu", "ra", "dec", "flat", "peak", "z")}
        previews = None if any(p.previews is None for p in parts) else np.concatenate([p.previews for p in parts])
        return cls(paths=[r for p in parts for r in p.paths], hashes=[h for p in parts for h in p.hashes], **arrays,
                   metrics={k: np.concatenate([p.metrics[k] for p in parts]) for k in METRIC_COLUMNS},
                   skipped=[s for p in parts for s in p.skipped], previews=previews)


def flat_fraction(x: np.ndarray) -> float:
    """Fraction of pixels in the largest group sharing one value (to ~1e-6 of the [0, 1] range), counted only
    when the group is a region rather than a coincidence (at least 0.5 % of the pixels, and 16): zero-filled
    detector edges, saturated plateaus, masked areas filled with one value. 0 for an ordinary image."""
    q = np.sort(np.round(x.reshape(-1).astype(np.float64) * 1048576.0))
    ends = np.flatnonzero(q[1:] != q[:-1])  # the last index of each run of one value but the last run
    biggest = int(np.diff(ends, prepend=-1, append=q.size - 1).max())  # np.unique's counts, at half its time
    return biggest / q.size if biggest >= max(16, 0.005 * q.size) else 0.0


def read_image(path: Path, config, *, hdu=None, plane=None, confine_to=None) -> ReadImage | str:
    """Read and preprocess one file; the reason it cannot be used (a str) instead of raising: one bad file must
    never stop an encode."""
    from astroae_core.data import preprocess

    try:
        if confine_to is not None and not is_within(path, confine_to):
            return LINKED_FROM_OUTSIDE
        image, header, hdu_index = read_fits_with_index(path, hdu=hdu, plane=plane)
        x, _norm = preprocess(image, config=config)
    except Exception as exc:  # noqa: BLE001 - any failure is this file's reason, never the encode's
        if isinstance(exc, FitsReadError) and exc.reason:
            return str(exc.reason)
        return f"{type(exc).__name__}: {exc}"
    ra, dec = sky_centre(header, image.shape) or (np.nan, np.nan)
    return ReadImage(x=x, hash=pixel_hash(image), ra=float(ra), dec=float(dec), hdu=int(hdu_index), flat=flat_fraction(x))


def _measure(x: np.ndarray, out: dict, *, has_skips: bool) -> dict:
    """The metrics of each reconstruction of one batch and its largest residual."""
    from astroae_core.analysis import image_metrics

    full = image_metrics(x, out["x_hat"])  # its own chunks (16: the fastest, benchmarks/metrics_speed.py)
    latent = image_metrics(x, out["x_hat_latent"]) if has_skips else full
    metrics = {"mse": full["mse"], "ssim": full["ssim"], "ms_ssim": full["ms_ssim"],
               "latent_mse": latent["mse"], "latent_ssim": latent["ssim"]}
    peak = np.abs(x - out["x_hat"]).reshape(len(x), -1).max(axis=1).astype(np.float64)
    return {"metrics": metrics, "peak": peak}


def _encode_batch(model, files: list[Path], rels: list[str], *, config, read_args: dict,
                  preview_size: int) -> tuple[EncodedShard, np.ndarray | None, dict | None]:
    """Read, preprocess, infer and measure one batch, all on the calling thread: its rows (thumbnails included),
    and the images and the model's outputs for the report's sample (None when no file of the batch was usable)."""
    from astroae_core.analysis import run_model

    results = [read_image(f, config, **read_args) for f in files]
    skipped = [Skipped(path=r, reason=res) for r, res in zip(rels, results) if isinstance(res, str)]
    for s in skipped:
        log.warning("skipping %s: %s", s.path, s.reason)
    ok = [j for j, res in enumerate(results) if not isinstance(res, str)]
    if not ok:
        return EncodedShard.empty(model, preview_size=preview_size, with_previews=True, skipped=skipped), None, None
    images = [results[j] for j in ok]
    x = np.stack([im.x for im in images])
    out = run_model(model, x, batch_size=len(x))
    measured = _measure(x, out, has_skips=model.config.has_skips)
    part = EncodedShard(
        paths=[rels[j] for j in ok], hashes=[im.hash for im in images], hdu=np.array([im.hdu for im in images], np.int64),
        ra=np.array([im.ra for im in images], np.float64), dec=np.array([im.dec for im in images], np.float64),
        flat=np.array([im.flat for im in images], np.float64), peak=measured["peak"], z=out["z"],
        metrics=measured["metrics"], skipped=skipped, previews=make_previews(x, preview_size))
    return part, x, out


def _cores() -> int:
    """The threads this process may use: PyTorch's setting, which follows ``OMP_NUM_THREADS`` (torchrun sets 1 per
    rank) and ``torch.set_num_threads``."""
    import torch

    return max(1, torch.get_num_threads())


def default_workers() -> int:
    """Threads that each read, infer and measure a batch at a time in an encode: two, so that while one reads (on
    one core, holding Python's lock) the other's model runs; one on a single core. On two cores this ran the loop
    at about 1.2x the speed of one model thread beside one reader (benchmarks/RESULTS.md, 6.1d); on more cores
    each worker's model takes its share of them (:func:`model_threads`), unmeasured."""
    return min(2, _cores())


def model_threads(workers: int) -> int:
    """Each worker's model threads in an encode's loop: its share of the cores. More threads than cores make each
    wait for the others (on two cores, a two-thread model beside one reader ran the loop 20% slower than a
    one-thread model: benchmarks/RESULTS.md, 6.1c)."""
    return max(1, _cores() // _checked(workers))


def _checked(workers) -> int:
    if int(workers) != workers or workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers!r}")
    return int(workers)


def encode_shard(model, files: Sequence[Path], rels: Sequence[str], indices: Sequence[int], *, batch_size: int,
                 preview_size: int, spool: PreviewSpool | None = None, read_args: dict | None = None,
                 progress: Progress | None = None, workers: int | None = None, sample=None) -> EncodedShard:
    """Read, encode and measure the files ``indices`` (positions in ``files``) in batches, as a pipeline: each
    worker thread reads, infers and measures a whole batch, so that one worker's model runs while another reads;
    the batches are taken back in file order. The result is the same whatever the number of workers.

    Parameters
    ----------
    model : AutoEncoder or InferenceModel
        In eval mode, on its device. Called from the workers at once: its calls must be safe to run concurrently
        (PyTorch modules in eval mode and :class:`~astroae_core.model.InferenceModel` are, first use included).
    files, rels : sequence
        Every file of the data folder, and its path relative to it.
    indices : sequence of int
        The files of this shard.
    batch_size, preview_size : int
        Images per model call; side of the thumbnails.
    spool : PreviewSpool, optional
        Where the thumbnails go; without one they stay in the result (to travel to rank 0).
    read_args : dict, optional
        ``hdu``, ``plane``, ``confine_to`` for :func:`read_image`.
    progress : Progress, optional
        Told ``(files done, files in the shard, "encode")`` after each batch.
    workers : int, optional
        Threads that each read, infer and measure a batch (default :func:`default_workers`).
    sample : ReportSample, optional
        Offered every usable image and the model's outputs for it, in order
        (:class:`~astroae_core.cache.report_sample.ReportSample`).
    """
    indices = list(indices)
    workers = default_workers() if workers is None else _checked(workers)
    batches = [indices[i : i + batch_size] for i in range(0, len(indices), batch_size)]
    parts, done = [], 0
    report(progress, 0, len(indices), "encode")

    def submit(b):
        return pool.submit(_encode_batch, model, [files[i] for i in b], [rels[i] for i in b],
                           config=model.preprocess_config, read_args=read_args or {}, preview_size=preview_size)

    # At most workers + 1 batches submitted and one being taken back: memory holds a few batches, whatever the
    # number of files; they are taken back in order, so the spool, the sample and the result never depend on
    # which finished first.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="astroae-encode") as pool:
        pending = [submit(b) for b in batches[: workers + 1]]
        try:
            for bi, b in enumerate(batches):
                part, x, out = pending.pop(0).result()
                if bi + workers + 1 < len(batches):
                    pending.append(submit(batches[bi + workers + 1]))
                if sample is not None and x is not None:
                    sample.offer(part.hashes, x, out)
                if spool is not None:
                    spool.append(part.previews)
                    part.previews = None
                parts.append(part)
                done += len(b)
                report(progress, done, len(indices), "encode")
        except BaseException:
            for f in pending:  # a failed batch or an interrupt: the batches not yet started never run
                f.cancel()
            raise
    if not parts:
        parts.append(EncodedShard.empty(model, preview_size=preview_size, with_previews=spool is None))
    return EncodedShard.concat(parts)
