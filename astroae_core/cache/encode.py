"""Encoding a data folder into a latent cache: read -> infer -> score -> assemble -> write.

The stages: :func:`~astroae_core.cache.shard.encode_shard` reads, preprocesses and encodes the files in batches
(memory holds a few batches of images plus the per-image results, never the whole dataset); under torchrun each rank
encodes its block of the sorted file list and rank 0 gathers them. Then, on every image at once,
:mod:`~astroae_core.cache.assemble` fits the maps, scores the images and joins the catalog;
:func:`~astroae_core.cache.report.latent_report` measures the latent on a sample the encode kept (read again
under torchrun); and
:func:`~astroae_core.cache.store.write_cache` writes the files, ``meta.json`` last.

Safety and atomicity
--------------------
The cache is built in a hidden temporary sibling folder ``.<name>.tmp-XXXX``, then swapped in with one atomic
rename (:func:`~astroae_core.io.replace_folder`): a reader sees the old complete cache or the new complete one. A
crash leaves the previous cache intact; what a killed process left is tidied by the next encode into the same
place. Concurrent encodes into the same folder are serialized by :func:`~astroae_core.io.folder_lock`.

The model runs on the GPU when torch sees one, else on the CPU; the metrics are computed on the CPU. Nothing here
changes torch's settings for the process (threads are the application's to set, once).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from astroae_core import __version__
from astroae_core.analysis import umap_warmup
from astroae_core.cache.assemble import assemble_table, catalog_part, correlate, fit_maps, score_images
from astroae_core.cache.fingerprint import freshness, manifest_fingerprint
from astroae_core.cache.layout import CACHE_FORMAT, CATALOG_PREFIX, FILES
from astroae_core.cache.meta import CacheMeta, CheckpointRef, EncodeOptions, SplitInfo, Timing, relative_to
from astroae_core.cache.previews import PreviewSpool
from astroae_core.analysis.summary import distance_from_training
from astroae_core.analysis.training_set import TrainingSet
from astroae_core.cache.report import EVAL_MAX_IMAGES, EVAL_MAX_TRAIN_IMAGES, latent_report
from astroae_core.cache.report_sample import ReportSample
from astroae_core.cache.shard import EncodedShard, default_workers, encode_shard, model_threads
from astroae_core.cache.store import write_cache
from astroae_core.hugepages import numpy_hugepages
from astroae_core.io import (check_read_args, folder_lock, is_within, new_folder_beside, replace_folder,
                             tidy_beside)
from astroae_core.progress import Progress, report

__all__ = ["check_out", "encode_folder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    """One encode, as every rank sees it once rank 0 has decided that it must run."""

    checkpoint: Path
    data_dir: Path
    out: Path
    options: EncodeOptions
    batch_size: int
    confine_to: object
    train_data: Path | None
    runtime: str
    workers: int | None
    ckpt_sha: str
    manifest: dict
    t_start: float

    @property
    def rels(self) -> list[str]:
        return [rel for rel, _, _ in self.manifest["files"]]


def encode_folder(checkpoint, data_dir, out, *, batch_size: int | None = None, preview_size: int = 64,
                  progress: Progress | None = None, force: bool = False, umap_max_fit: int = 50_000, seed: int = 0,
                  hdu=None, plane=None, confine_to=None, train_data=None, runtime: str = "auto",
                  workers: int | None = None) -> Path:
    """Encode every FITS image under ``data_dir`` with ``checkpoint`` and write the latent cache ``out``.

    Unreadable files are logged once each and listed in ``meta.skipped``; they never stop the encode.

    Parameters
    ----------
    checkpoint : str or Path
        Checkpoint file (``python -m train`` output).
    data_dir : str or Path
        Folder of FITS files (recursive); a ``catalog.csv`` in it is joined onto the table.
    out : str or Path
        Cache folder to write (atomically replaced; see the module docstring).
    batch_size : int, optional
        Images per inference batch (default: the fastest of 16 and 64, measured with the runtime).
    preview_size : int
        Side of the uint8 thumbnails in ``previews.npy``.
    progress : Progress, optional
        Called ``progress(done, total, stage)``: files encoded (stage ``"encode"``), then ``"maps"`` and
        ``"report"`` (totals 0); see :mod:`astroae_core.progress`.
    force : bool
        Rebuild even if the cache is fresh.
    umap_max_fit : int
        Most latents the UMAP is fitted on (a seeded sample); the rest are placed with its ``transform``.
    seed : int
        Seed of the UMAP, its sample and the report's sample.
    hdu, plane : optional
        Passed to :func:`~astroae_core.io.read_fits` for every file.
    confine_to : path or sequence of paths, optional
        Read nothing whose real path lies outside these folders: a file linked from outside is listed in
        ``meta.skipped``, a catalog linked from outside is ignored, and the baselines are not fitted when the
        training folder named lies outside. The app passes the folders it may read.
    train_data : str or Path, optional
        A folder holding the checkpoint's training images (recognised by their pixels), for the PCA and
        mean-image baselines when ``data_dir`` does not hold them. Not part of what makes a cache fresh: with an
        up-to-date cache, pass ``force`` too.
    runtime : str
        ``"auto"`` (the fastest correct runtime of this machine, measured: see
        :mod:`astroae_core.model.runtime`) or one of :data:`~astroae_core.model.RUNTIMES`. On the CPU; the choice
        and what was measured are recorded in ``meta.runtime``, with numpy's huge-page advice during the encode
        (``memory``: off, see :mod:`astroae_core.hugepages`).
    workers : int, optional
        Threads that each read, infer and measure a batch at a time (default 2, 1 on a single core; each model
        call runs on its share of the cores). The cache does not depend on it.

    Returns
    -------
    pathlib.Path
        ``out``. Returned at once, without recomputing, when the cache there is fresh (same checkpoint
        SHA-256, data folder, dataset fingerprint, cache format and settings) and ``force`` is false.

    Raises
    ------
    ValueError
        For a missing or bad checkpoint (:class:`~astroae_core.model.CheckpointError`), a missing data folder, a
        folder without a single readable image, an ``out`` that exists and is not a cache, or bad options.

    Notes
    -----
    In a process group (``torchrun --nproc_per_node=N -m astroae_core encode ...``, see
    :mod:`astroae_core.distributed`) every rank reads and encodes its contiguous block of the sorted file list;
    rank 0 gathers the blocks in order and does everything else as a single process would, so the cache is the
    same. Ranks other than 0 return ``out`` as soon as their block is sent: the cache is in place when rank 0
    returns. The data folder and the checkpoint must be readable by every rank; only rank 0 writes.
    """
    from astroae_core import distributed

    t_start = time.perf_counter()
    checkpoint, data_dir, out = Path(checkpoint), Path(data_dir), Path(out)
    options = _checked_options(checkpoint, data_dir, batch_size=batch_size, preview_size=preview_size,
                               umap_max_fit=umap_max_fit, seed=seed, hdu=hdu, plane=plane, confine_to=confine_to,
                               train_data=train_data, progress=progress)
    with contextlib.ExitStack() as held:
        # Rank 0 alone looks at the output, holds the lock and lists the files; every rank then encodes its block
        # of that list, and rank 0 gathers the blocks and writes the one cache.
        plan = distributed.agree(_plan, held, checkpoint, data_dir, out, options=options, force=force)
        if plan is None:
            return out
        job = _Job(checkpoint, data_dir, out, options, None if batch_size is None else int(batch_size), confine_to,
                   None if train_data is None else Path(train_data), runtime, workers, *plan, t_start=t_start)
        if not distributed.is_main_process():
            with numpy_hugepages(False):
                _encode_everything(job, _inference_model(job), spool=None, progress=None)
            return out
        tmp = new_folder_beside(out)
        try:
            with numpy_hugepages(False) as hugepages:  # why: astroae_core/hugepages.py
                _build(job, tmp, progress, hugepages=hugepages)
            replace_folder(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return out


def _checked_options(checkpoint: Path, data_dir: Path, *, batch_size, preview_size, umap_max_fit, seed, hdu, plane,
                     confine_to, train_data, progress) -> EncodeOptions:
    """The encode's settings, every argument checked (ValueError naming the bad one)."""
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(preview_size, bool) or int(preview_size) != preview_size or not 4 <= preview_size <= 1024:
        raise ValueError(f"preview_size must be an integer in [4, 1024], got {preview_size!r}")
    if int(umap_max_fit) < 5:
        raise ValueError(f"umap_max_fit must be at least 5, got {umap_max_fit!r}")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be a callable progress(done, total, stage) or None, got {progress!r}")
    try:
        check_read_args(hdu, plane)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    if not checkpoint.is_file():
        raise ValueError(f"checkpoint {str(checkpoint)!r} does not exist")
    if not data_dir.is_dir():
        raise ValueError(f"data folder {str(data_dir)!r} does not exist or is not a folder")
    if confine_to is not None and not is_within(data_dir, confine_to):
        raise ValueError(f"data folder {str(data_dir)!r} lies outside the folders that may be read")
    if train_data is not None and confine_to is not None and not is_within(train_data, confine_to):
        raise ValueError(f"training folder {str(train_data)!r} lies outside the folders that may be read")
    return EncodeOptions(preview_size=int(preview_size), hdu=hdu, plane=None if plane is None else int(plane),
                         umap_max_fit=int(umap_max_fit), seed=int(seed))


def check_out(out: Path, data_dir: Path) -> None:
    """Refuse an ``out`` that is (or holds) the data folder, or an existing folder that is not a cache."""
    o, d = out.resolve(), data_dir.resolve()
    if o == d or o in d.parents:
        raise ValueError(f"--out {str(out)!r} must not be the data folder or contain it")
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"--out {str(out)!r} exists and is not a folder")
        if not (out / FILES["meta"]).is_file() and any(out.iterdir()):
            raise ValueError(f"--out {str(out)!r} exists, is not empty and is not a latent cache; "
                             "refusing to replace it")


def _plan(held: contextlib.ExitStack, checkpoint: Path, data_dir: Path, out: Path, *, options: EncodeOptions,
          force: bool) -> tuple[str, dict] | None:
    """On rank 0: lock ``out``, tidy what a killed encode left, and decide. None when the cache is fresh, else the
    checkpoint's SHA-256 and the dataset manifest to encode."""
    from astroae_core.cache.fingerprint import dataset_manifest
    from astroae_core.model import file_sha256

    check_out(out, data_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    locked = held.enter_context(folder_lock(out))
    tidy_beside(out, locked=locked, is_complete=lambda p: (p / FILES["meta"]).is_file())
    ckpt_sha = file_sha256(checkpoint)
    manifest = dataset_manifest(data_dir)
    if not force:
        fresh, reason = freshness(out, ckpt_sha=ckpt_sha, data_dir=data_dir, manifest=manifest, options=options)
        if fresh:
            log.info("cache %s is %s", out, reason)
            return None
        # an older cache is worth a word: the user did nothing, yet it is rebuilt
        (log.warning if reason.startswith("cache format changed") else log.info)(
            "building cache %s: %s", out, reason)
    return ckpt_sha, manifest


def _inference_model(job: _Job):
    """The checkpoint's model for inference: on the GPU where there is one, else on this CPU's fastest runtime."""
    import torch

    from astroae_core import distributed
    from astroae_core.model import load_model

    device = distributed.local_device("cuda" if torch.cuda.is_available() else "cpu")
    sizes = (16, 64) if job.batch_size is None else (job.batch_size,)
    # Each worker's round trip takes its share of the cores; the report's decodes run after the loop, on all of them.
    threads = {"round_trip": model_threads(default_workers() if job.workers is None else job.workers)}
    return load_model(job.checkpoint, device=device, runtime=job.runtime, batch_sizes=sizes, threads=threads)


def _batch_size(job: _Job, model) -> int:
    # An InferenceModel measures its runtimes here, before the workers call it; a GPU module takes 64.
    measured = getattr(model, "batch_size", 64)
    return measured if job.batch_size is None else job.batch_size


def _encode_everything(job: _Job, model, *, spool: PreviewSpool | None, progress: Progress | None, sample=None):
    """Every rank encodes its block; rank 0 gets every image in file order (its previews spooled; ``sample``, given
    in a single process only, offered every image), the others None."""
    from astroae_core import distributed

    rank, world = distributed.rank_world()
    rels = job.rels
    files = [job.data_dir / r for r in rels]
    read_args = {"hdu": job.options.hdu, "plane": job.options.plane, "confine_to": job.confine_to}
    mine = encode_shard(model, files, rels, distributed.shard(range(len(files)), rank=rank, world=world),
                        batch_size=_batch_size(job, model), preview_size=job.options.preview_size,
                        spool=spool, read_args=read_args, progress=progress, workers=job.workers,
                        sample=sample)
    if world == 1:
        return mine
    parts = distributed.gather_to_root(mine)
    if parts is None:
        return None
    for part in parts[1:]:  # rank 0's block comes first: the others' previews follow its own in the spool
        spool.append(part.previews)
        part.previews = None
    return EncodedShard.concat(parts)


def _build(job: _Job, tmp: Path, progress: Progress | None, *, hugepages: bool) -> CacheMeta:
    """On rank 0: every stage, writing the cache into ``tmp`` (``hugepages``: numpy's advice, for the record)."""
    from astroae_core import distributed

    model = _inference_model(job)
    spool = PreviewSpool(tmp, job.options.preview_size)
    # Under torchrun the other ranks' images never reach rank 0: the report reads its sample again instead.
    sample = None
    if distributed.rank_world()[1] == 1:
        sample = ReportSample(model, seed=job.options.seed, max_report=EVAL_MAX_IMAGES,
                              max_train=0 if job.train_data is not None else EVAL_MAX_TRAIN_IMAGES)
    compiling = umap_warmup.start(len(job.rels), model.config.latent_dim, max_fit=job.options.umap_max_fit)
    t_encode = time.perf_counter()
    try:
        shard = _encode_everything(job, model, spool=spool, progress=progress, sample=sample)
    except BaseException:
        umap_warmup.finish(compiling, timeout=0)
        raise
    umap_warmup.finish(compiling)  # UMAP's code is in numba's disk cache now, for fit_maps below
    encode_seconds = time.perf_counter() - t_encode
    if sample is not None and hasattr(model, "release"):
        # The sample holds the reconstructions the report scores: the maps and the report need no round trip, and
        # its session's arena (hundreds of MB) would be the largest thing held through them (RESULTS.md, 6.1b).
        model.release("round_trip")
    if shard.n == 0:
        detail = "; ".join(f"{s.path}: {s.reason}" for s in shard.skipped[:3])
        raise ValueError(f"no usable FITS images under {str(job.data_dir)!r} ({len(job.rels)} found"
                         + (f"; e.g. {detail}" if detail else "") + ")")
    report(progress, 0, 0, "maps")
    t_maps = time.perf_counter()
    maps = fit_maps(shard.z, seed=job.options.seed, max_fit=job.options.umap_max_fit)
    scores = score_images(shard, seed=job.options.seed)
    catalog = catalog_part(shard.paths, job.data_dir, confine_to=job.confine_to)
    labels = TrainingSet.of(model).labels(shard.hashes)
    table, columns = assemble_table(shard, split=labels, maps=maps, scores=scores, catalog=catalog)
    corr, corr_info = correlate(table, columns) if catalog is not None and catalog.info.error is None else (None, None)
    maps_seconds = time.perf_counter() - t_maps
    report(progress, 0, 0, "report")
    t_report = time.perf_counter()
    kind = f"{CATALOG_PREFIX}kind"
    kinds = table[kind].tolist() if kind in table.columns else None
    read_args = {"hdu": job.options.hdu, "plane": job.options.plane, "confine_to": job.confine_to}
    influence, evaluation = latent_report(model, job.data_dir, shard.paths, labels, shard.z, seed=job.options.seed,
                                          read_args=read_args, train_data=job.train_data, kinds=kinds,
                                          sample=sample)
    timing = Timing(encode_seconds=encode_seconds, maps_seconds=maps_seconds,
                    report_seconds=time.perf_counter() - t_report, total_seconds=time.perf_counter() - job.t_start)
    spool.save(tmp / FILES["previews"])
    meta = CacheMeta(
        format=CACHE_FORMAT, package_version=__version__,
        created_utc=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        checkpoint=_checkpoint_ref(model, job), data_dir=relative_to(job.data_dir, job.out),
        dataset_fingerprint=manifest_fingerprint(job.manifest), n_files=len(job.rels), n_images=shard.n,
        columns=columns, options=job.options, pca=maps.pca_params, umap=maps.info,
        split=SplitInfo(counts={k: int(v) for k, v in table["split"].value_counts().items()}),
        timing=timing, model_config=model.config.to_dict(), preprocess_config=model.preprocess_config.to_dict(),
        skipped=tuple(shard.skipped), catalog=None if catalog is None else catalog.info, correlations=corr_info,
        influence=influence, evaluation=evaluation,
        training_distance=distance_from_training(table.loc[table["split"] != "train", "latent_mse"], model),
        runtime={**(getattr(model, "runtime_record", None) or {}), "memory": {"numpy_hugepages": hugepages}})
    write_cache(tmp, meta, table=table, manifest=job.manifest, correlations=corr)
    return meta


def _checkpoint_ref(model, job: _Job) -> CheckpointRef:
    info = model.checkpoint_info
    return CheckpointRef(path=relative_to(job.checkpoint, job.out), sha256=job.ckpt_sha, epoch=info.get("epoch"),
                         version=info.get("version"))
