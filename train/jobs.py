"""Training runs started from the app: each is its own process (:mod:`train.job_runner`) in its own session, so it
outlives the page, the browser and the server; one at a time per runs root; cancelled, resumed, and read back.

The runs root (``ASTROAE_RUNS_ROOT``, default ``runs/`` in the repository) holds:

``.training.lock``  locked (``flock``) by the running job's process for its whole life; the kernel drops the lock
                    when that process ends, however it ends, so a lock is never stale
``.training.json``  the pid and run folder of the process holding the lock (meaningful only while it is held)
``speed.json``      training speeds measured on this machine (:mod:`train.speed`)
``<run>/``          ``job.json`` (the folder, the cache to write, the preset), ``recipe.toml`` (the resolved recipe),
                    ``state.json`` (the stage reached, or why it failed), ``progress.json``, ``log.txt``,
                    ``cancelled`` once cancelled, and the loop's files (``history.json``, ``last.pt``, ...)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["FILES", "Job", "RunInProgress", "RunStatus", "active_run", "cancel_run", "hold_lock", "list_runs",
           "lock_owner", "new_run_name", "read_job", "resume_run", "run_status", "runs_root", "start_run",
           "write_json"]

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCK, OWNER = ".training.lock", ".training.json"
FILES = {"job": "job.json", "recipe": "recipe.toml", "state": "state.json", "progress": "progress.json",
         "log": "log.txt", "cancelled": "cancelled", "history": "history.json", "last": "last.pt"}
RUNNING = ("starting", "training", "encoding")
REFUSED = 3  # the runner's exit status when another run holds the lock
_CHILDREN: list[subprocess.Popen] = []  # runners this process started, reaped once they end


class RunInProgress(RuntimeError):
    """A run was asked to start while another holds the runs root's lock."""


def runs_root(env=None) -> Path:
    """Where training runs go: ``ASTROAE_RUNS_ROOT``, else ``runs/`` in the repository."""
    env = os.environ if env is None else env
    return Path(env.get("ASTROAE_RUNS_ROOT") or REPO_ROOT / "runs").expanduser().resolve()


def new_run_name(folder, *, now: float | None = None) -> str:
    """A run folder name: the data folder's path with anything unusual replaced by ``-``, and the time."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(Path(folder).parts)).strip("-.") or "data"
    return f"{slug}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"


@dataclass(frozen=True)
class Job:
    """What a run does (``job.json``): train on ``data_dir``, then encode it into ``cache_dir``, reading nothing
    outside ``confine_to``."""

    data_dir: str
    cache_dir: str
    epochs: int
    preset: str = ""
    confine_to: str | None = None
    created_utc: str = ""
    commands: dict = field(default_factory=dict)  # the same run by hand, for the record


def read_job(run_dir) -> Job:
    """The run's ``job.json`` (OSError / ValueError when missing or unreadable)."""
    return Job(**json.loads((Path(run_dir) / FILES["job"]).read_text()))


def write_json(path, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (readers never see half of it)."""
    from astroae_core.io import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1))


def _read_json(path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


# -- the lock ------------------------------------------------------------------------------------------------------


def _lock_held(root: Path) -> bool:
    import fcntl

    path = root / LOCK
    if not path.exists():
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return False


def lock_owner(root) -> dict | None:
    """``{"pid": ..., "run": ...}`` of the process running a job under ``root``, or None when none is."""
    root = Path(root)
    _reap()
    if not _lock_held(root):
        return None
    return _read_json(root / OWNER, {"pid": None, "run": None})


def active_run(root) -> Path | None:
    """The run folder of the job running under ``root`` (it may have been deleted meanwhile), or None."""
    owner = lock_owner(root)
    return Path(owner["run"]) if owner and owner.get("run") else None


@contextlib.contextmanager
def hold_lock(root, run_dir, *, wait: float = 10.0):
    """Hold ``root``'s lock for ``run_dir`` (the runner does, for its whole life).

    Retries for ``wait`` seconds, so that another process looking whether the lock is held does not turn this one
    away; then raises :class:`RunInProgress` naming the run that holds it.
    """
    import fcntl

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOCK, "a+") as fh:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    other = (_read_json(root / OWNER) or {}).get("run")
                    raise RunInProgress(f"another training run is going ({other}); one run at a time") from None
                time.sleep(0.05)
        try:
            write_json(root / OWNER, {"pid": os.getpid(), "run": str(Path(run_dir).resolve())})
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# -- starting, resuming, cancelling -------------------------------------------------------------------------------


def start_run(cfg, data_dir, *, root, name: str, cache_dir, preset: str = "", confine_to=None,
              wait: float = 60.0) -> Path:
    """Write a new run folder ``root/name`` (the resolved recipe, ``job.json``) and start its process.

    Parameters
    ----------
    cfg : TrainConfig
        The resolved recipe (:func:`train.presets.scaled_config`).
    data_dir : str or Path
        The folder to train on, then encode.
    root : Path
        The runs root.
    name : str
        The run folder's name (:func:`new_run_name`); taken names get a suffix.
    cache_dir : str or Path
        Where the cache of ``data_dir`` goes once trained.
    preset : str
        The preset's name, for the record.
    confine_to : str or Path, optional
        Read nothing outside it (the app's data root).
    wait : float
        Seconds to wait for the process to take the lock.

    Returns
    -------
    Path
        The run folder.

    Raises
    ------
    RunInProgress
        If a run is going (nothing is kept then).
    RuntimeError
        If the process ended before it took the lock (the reason is in the run's ``state.json``).
    """
    from .recipe_toml import dumps_recipe

    root = Path(root)
    _refuse_if_running(root)
    root.mkdir(parents=True, exist_ok=True)
    run = _new_folder(root, name)
    data_dir, cache_dir = Path(data_dir).resolve(), Path(cache_dir).resolve()
    recipe = run / FILES["recipe"]
    recipe.write_text(dumps_recipe(cfg, header=f"Resolved for {data_dir} (preset {preset or 'none'})."))
    final = run / f"epoch_{cfg.epochs:03d}.pt"
    job = Job(str(data_dir), str(cache_dir), cfg.epochs, preset, None if confine_to is None else
              str(Path(confine_to).resolve()), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              {"train": f"python -m train --config {recipe} --data {data_dir} --out {run}",
               "encode": f"python -m astroae_core encode --checkpoint {final} --data {data_dir} --out {cache_dir}"})
    write_json(run / FILES["job"], asdict(job))
    write_json(run / FILES["state"], {"state": "starting"})
    try:
        _spawn(root, run, wait)
    except RunInProgress:
        import shutil

        shutil.rmtree(run, ignore_errors=True)  # it never started: nothing to keep
        raise
    return run


def resume_run(run_dir, *, root, wait: float = 60.0) -> None:
    """Start the process of a run that is not going (interrupted, cancelled or failed) again: it continues from
    ``last.pt`` (or encodes, if training had finished).

    Raises
    ------
    RunInProgress
        If a run is going.
    ValueError
        If ``run_dir`` is not a run folder, or its data folder is gone.
    """
    root, run = Path(root), Path(run_dir).resolve()
    _refuse_if_running(root)
    try:
        job = read_job(run)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"{run} is not a run folder that can be resumed ({exc})") from None
    if not Path(job.data_dir).is_dir():
        raise ValueError(f"the data folder {job.data_dir} of {run.name} is gone; the run cannot continue")
    (run / FILES["cancelled"]).unlink(missing_ok=True)
    write_json(run / FILES["state"], {"state": "starting"})
    _spawn(root, run, wait)


def cancel_run(run_dir, *, root, timeout: float = 10.0) -> bool:
    """Stop the job running ``run_dir`` (its whole process group: SIGTERM, then SIGKILL after ``timeout`` s).
    The run folder keeps what was trained (``last.pt``). Returns False when that run was not going."""
    root, run = Path(root), Path(run_dir).resolve()
    owner = lock_owner(root)
    if not owner or owner.get("run") != str(run) or not owner.get("pid"):
        return False
    with contextlib.suppress(OSError):
        (run / FILES["cancelled"]).touch()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(owner["pid"]), sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if lock_owner(root) is None:
                return True
            time.sleep(0.1)
    return lock_owner(root) is None


def _refuse_if_running(root: Path) -> None:
    owner = lock_owner(root)
    if owner is not None:
        raise RunInProgress(f"a training run is already going ({Path(owner.get('run') or '?').name}): one run at a "
                            "time. Wait for it to end, or cancel it, then start again.")


def _new_folder(root: Path, name: str) -> Path:
    for i in range(1, 1000):
        run = root / (name if i == 1 else f"{name}-{i}")
        try:
            run.mkdir()
            return run
        except FileExistsError:
            continue
    raise ValueError(f"no free run folder name for {name!r} under {root}")


def _spawn(root: Path, run: Path, wait: float) -> None:
    """Start ``python -m train.job_runner RUN`` in a session of its own; return once it holds the lock."""
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    with open(run / FILES["log"], "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "train.job_runner", str(run)], cwd=REPO_ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    _CHILDREN.append(proc)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        owner = lock_owner(root)
        if owner and owner.get("run") == str(run.resolve()) and owner.get("pid") == proc.pid:
            return
        if proc.poll() is not None:
            why = _read_json(run / FILES["state"], {}).get("error") or f"see {run / FILES['log']}"
            if proc.returncode == REFUSED:
                raise RunInProgress(why)
            raise RuntimeError(f"the training process ended at once: {why}")
        time.sleep(0.1)


def _reap() -> None:
    """Collect the exit status of runners this process started that have ended (no zombies in a long server)."""
    _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]


# -- reading a run back ----------------------------------------------------------------------------------------


@dataclass
class RunStatus:
    """Where a run stands, read from its folder and the runs root's lock.

    ``state`` is ``starting``, ``training`` or ``encoding`` while its process runs; ``done``, ``failed``,
    ``cancelled`` or ``interrupted`` (its process ended without saying why: killed, or the machine stopped) once
    it has ended; ``missing`` when its folder is gone.
    """

    run_dir: Path
    state: str
    alive: bool
    job: Job | None = None
    history: list = field(default_factory=list)
    progress: dict = field(default_factory=dict)
    error: str | None = None
    has_last: bool = False

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def epochs(self) -> int:
        return self.job.epochs if self.job else 0

    @property
    def epochs_done(self) -> int:
        return int(self.history[-1].get("epoch", len(self.history))) if self.history else 0

    @property
    def cache_dir(self) -> Path | None:
        return Path(self.job.cache_dir) if self.job else None

    @property
    def resumable(self) -> bool:
        """Not going, not done, and its folder and data folder are there."""
        return (not self.alive and self.state in ("failed", "cancelled", "interrupted") and self.job is not None
                and Path(self.job.data_dir).is_dir())


def run_status(run_dir, *, root) -> RunStatus:
    """Read ``run_dir``'s state (it may be gone: state ``missing``)."""
    run = Path(run_dir).resolve()
    owner = lock_owner(root)
    alive = bool(owner) and owner.get("run") == str(run)
    if not (run / FILES["job"]).is_file():  # also a folder its job brought back writing into it once deleted
        return RunStatus(run, "missing", alive, error=f"the run folder {run} was deleted")
    try:
        job = read_job(run)
    except (OSError, ValueError, TypeError) as exc:
        return RunStatus(run, "failed", alive, error=f"{run / FILES['job']} cannot be read ({exc})")
    saved = _read_json(run / FILES["state"], {})
    state = saved.get("state", "starting")
    if not alive and state in RUNNING:
        state = "cancelled" if (run / FILES["cancelled"]).exists() else "interrupted"
    return RunStatus(run, state, alive, job, _read_json(run / FILES["history"], []) or [],
                     _read_json(run / FILES["progress"], {}) or {}, saved.get("error"),
                     (run / FILES["last"]).is_file())


def list_runs(root) -> list[Path]:
    """The run folders under ``root`` (those with a ``job.json``), newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if not p.name.startswith(".") and (p / FILES["job"]).is_file()]
    return sorted(runs, key=lambda p: (p / FILES["job"]).stat().st_mtime, reverse=True)
