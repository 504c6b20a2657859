"""The Train page's words and numbers: a run's progress as a fraction and a line, durations, a run in one line,
and the shared folder reads (the folder check and the training speed, remembered between reruns)."""

from __future__ import annotations

import json
import re

import streamlit as st

from train.jobs import RunStatus

_EPOCH = re.compile(r"epoch (\d+)/(\d+)")
_PRETRAIN = re.compile(r"pretrain (\d+)/(\d+)")


def duration(seconds: float) -> str:
    """``"about 40 s"``, ``"about 7 min"``, ``"about 1 h 10 min"``."""
    s = max(0.0, float(seconds))
    if s < 90:
        return f"about {max(5, round(s / 5) * 5):.0f} s"
    m = round(s / 60)
    return f"about {m} min" if m < 60 else f"about {m // 60} h {m % 60:02d} min"


def progress_line(s: RunStatus) -> tuple[float, str]:
    """Where a running job is: a fraction of the whole stage (training, or encoding) and a line saying it."""
    p = s.progress or {}
    stage, done, total = str(p.get("stage", "")), int(p.get("done") or 0), int(p.get("total") or 0)
    part = done / total if total else 0.0
    if s.state == "encoding":
        if stage == "encode":
            return part, f"Encoding the folder with the new model: {done:,} / {total:,} images"
        what = {"maps": "Fitting the maps (PCA, UMAP)…", "report": "Measuring what the latent carries…"}
        return 1.0, what.get(stage, "Writing the latent cache…")
    m = _EPOCH.fullmatch(stage)
    if m:
        epoch, n = int(m.group(1)), int(m.group(2))
        doing = f"{part:.0%} of its steps" if part < 1 else "checking it on the validation images"
        return min(1.0, (epoch - 1 + part) / n), f"Epoch {epoch:,} of {n:,}: {doing}"
    m = _PRETRAIN.fullmatch(stage)
    if m:  # before epoch 1: the training bar waits at 0
        return 0.0, f"Pretraining on synthetic galaxies, epoch {int(m.group(1)):,} of {int(m.group(2)):,}: {part:.0%}"
    if stage == "synthetic galaxies" and total:
        return 0.0, f"Drawing synthetic galaxies to pretrain on: {done:,} / {total:,}"
    if stage in ("check", "read") and total:
        what = "Checking the images" if stage == "check" else "Reading the images"
        return 0.0, f"{what}: {done:,} / {total:,}"
    return 0.0, "Starting…"


def run_line(s: RunStatus) -> dict:
    """A run as a table row."""
    folder = s.job.data_dir.rsplit("/", 1)[-1] if s.job else ""
    return {"run": s.name, "state": s.state, "epochs": f"{s.epochs_done:,} / {s.epochs:,}", "folder": folder,
            "preset": s.job.preset if s.job else ""}


@st.cache_data(ttl=600, max_entries=16, show_spinner="Reading every image of the folder, as training would…")
def folder_contents(folder: str, stamp: float, preprocess: str, confine_to: str):
    """:func:`train.folder_check.check_folder` of ``folder`` (read again when its listing changes: ``stamp``)."""
    from astroae_core.data import PreprocessConfig
    from train.folder_check import check_folder

    return check_folder(folder, config=PreprocessConfig.from_dict(json.loads(preprocess)), confine_to=confine_to)


@st.cache_data(ttl=600, max_entries=8, show_spinner="Measuring this machine's training speed (a few steps)…")
def training_speed(recipe: str, cache_file: str):
    """The :class:`train.speed.Speed` of a recipe (JSON) on this machine and None, or None and why it could not be
    measured."""
    from train.config import TrainConfig
    from train.speed import training_speed as measured

    try:
        return measured(TrainConfig.from_dict(json.loads(recipe)), cache_file=cache_file), None
    except (RuntimeError, ValueError, OSError) as exc:
        return None, str(exc)
