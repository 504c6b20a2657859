"""The process of one training run started from the app: ``python -m train.job_runner RUN`` (:mod:`train.jobs`
starts it in a session of its own).

It holds the runs root's lock for its whole life, checks the folder ``RUN/job.json`` names as the page did, trains
on it with ``RUN/recipe.toml`` (as ``python -m train --config RUN/recipe.toml --data DIR --out RUN`` would,
continuing from ``last.pt`` when there is one), then encodes the folder with the last epoch's model into the cache
``job.json`` names. It writes the stage it reached (``state.json``, with the reason when it fails) and its progress
(``progress.json``, a few times a second at most) into the run folder, where the app reads them.
"""

from __future__ import annotations

import logging
import shutil
import statistics
import sys
import time
from pathlib import Path

from . import jobs

__all__ = ["main"]

log = logging.getLogger("astroae.train.job")


class RunFolderGone(RuntimeError):
    """The run folder was deleted (or replaced) while the job was running."""


class _Folder:
    """The run folder as the job found it: writing into a folder of the same name that is not this one (deleted,
    then recreated by a checkpoint write) would bring back a run the user deleted."""

    def __init__(self, run: Path):
        self.path = run
        self._id = self._identity()

    def _identity(self):
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def gone(self) -> bool:
        """Whether the folder is no longer the one the job started in."""
        return self._id is None or self._identity() != self._id

    def check(self) -> None:
        """Raise :class:`RunFolderGone` when the folder is :meth:`gone`."""
        if self.gone():
            raise RunFolderGone(f"the run folder {self.path} was deleted while the job was running")

    def tidy(self) -> None:
        """Remove what the loop wrote into a folder of the same name after the deletion (it holds no job.json)."""
        if self._identity() not in (None, self._id) and not (self.path / jobs.FILES["job"]).exists():
            shutil.rmtree(self.path, ignore_errors=True)


class _ProgressFile:
    """A :data:`~astroae_core.progress.Progress` that writes ``progress.json``: on every new stage, at the end of
    one, and otherwise at most every ``every`` seconds. Every call first checks that the run folder is still there
    (the loop reports every step), so a deleted run stops within a step."""

    def __init__(self, folder: _Folder, *, every: float = 0.5):
        self.folder, self.every = folder, every
        self._last, self._stage = 0.0, None

    def __call__(self, done: int, total: int, stage: str) -> None:
        self.folder.check()
        now = time.monotonic()
        if stage == self._stage and now - self._last < self.every and done != total:
            return
        self._last, self._stage = now, stage
        jobs.write_json(self.folder.path / jobs.FILES["progress"], {"stage": stage, "done": done, "total": total})


def _state(folder: _Folder, state: str, **extra) -> None:
    try:
        folder.check()
        jobs.write_json(folder.path / jobs.FILES["state"], {
            "state": state, **extra, "updated_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    except (OSError, RunFolderGone) as exc:
        log.error("cannot record state %r: %s", state, exc)


def _check(job: jobs.Job, cfg, progress) -> None:
    """Refuse, in words, a folder training cannot use (:func:`train.folder_check.problem`), as the page did: the
    folder may have changed since, and a link out of the data root must never be read (the loop does not check)."""
    from .folder_check import check_folder, plan_split, problem

    contents = check_folder(job.data_dir, config=cfg.preprocess, confine_to=job.confine_to,
                            progress=lambda done, total, _: progress(done, total, "check"))
    why = problem(contents, plan_split(contents.paths, group_regex=cfg.group_regex, val_fraction=cfg.val_fraction,
                                       seed=cfg.seed))
    if why:
        raise ValueError(why)


def _train_and_encode(folder: _Folder) -> None:
    import torch

    from astroae_core.cache import encode_folder

    from .config import load_recipe
    from .loop import train
    from .speed import record_speed

    run = folder.path
    job = jobs.read_job(run)
    cfg = load_recipe(run / jobs.FILES["recipe"])
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    progress = _ProgressFile(folder)
    final = run / f"epoch_{cfg.epochs:03d}.pt"
    if not final.is_file():  # written at the last epoch only: training ended already when it is there
        _state(folder, "training")
        _check(job, cfg, progress)
        res = train(cfg, job.data_dir, run, resume=(run / jobs.FILES["last"]).is_file(), progress=progress)
        speeds = [h["train_images_per_s"] for h in res.history if h.get("train_images_per_s")]
        if speeds and res.n_train >= cfg.batch_size:  # a smaller folder's steps are smaller batches
            record_speed(cfg, statistics.median(speeds), cache_file=run.parent / "speed.json")
    _state(folder, "encoding")
    encode_folder(final, job.data_dir, job.cache_dir, progress=progress, confine_to=job.confine_to)
    _state(folder, "done", cache=job.cache_dir)


def main(argv: list[str] | None = None) -> int:
    """Run the job in ``argv[0]``; exit status 0 when done, 1 when it failed, :data:`train.jobs.REFUSED` when
    another run holds the lock."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    folder = _Folder(Path(argv[0]).resolve())
    try:
        with jobs.hold_lock(folder.path.parent, folder.path):
            try:
                _train_and_encode(folder)
            except Exception as exc:  # noqa: BLE001 - whatever it is, the app shows it
                if folder.gone():  # a write into the deleted folder may fail before the next check
                    log.error("the run folder %s was deleted while the job was running (%s); stopping",
                              folder.path, exc)
                    folder.tidy()
                    return 1
                log.exception("the run failed")
                _state(folder, "failed", error=str(exc) or type(exc).__name__)
                return 1
    except jobs.RunInProgress as exc:
        _state(folder, "failed", error=str(exc))
        return jobs.REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
