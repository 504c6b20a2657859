"""A fresh clone at another path: the shipped checkpoint recognises its training and validation images by their
pixels, so the cache's split labels are right and the PCA / mean-image comparison is there on the first encode."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from astroae_core.demo.plan import plan_stamps
from astroae_core.demo.stamp import make_stamp
from astroae_core.model import read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _clone(dest: Path) -> Path:
    """The tracked files of this checkout, copied (not linked) to ``dest``."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def test_a_clone_elsewhere_labels_the_demo_split_and_shows_the_comparison(tmp_path):
    clone = _clone(tmp_path / "somewhere" / "else" / "astroae")
    # The first 30 of the 2,000 demo stamps `scripts/app.sh` generates, drawn exactly as it draws them.
    data = clone / "data" / "demo-part"
    for spec in plan_stamps(data, n=2000, seed=0, anomaly_fraction=0.04, size=187, kinds=None)[:30]:
        make_stamp(spec)
    env = {**os.environ, "PYTHONPATH": str(clone)}
    res = subprocess.run([sys.executable, "-m", "astroae_core", "encode", "--checkpoint", "models/demo.pt",
                          "--data", "data/demo-part", "--out", "cache/demo-part", "--quiet"],
                         cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    meta = json.loads((clone / "cache" / "demo-part" / "meta.json").read_text())
    recorded = read_checkpoint(clone / "models" / "demo.pt")["data"]
    want = {"train": sum(f"galaxy_{i:05d}.fits" in recorded["train_paths"] for i in range(30)),
            "val": sum(f"galaxy_{i:05d}.fits" in recorded["val_paths"] for i in range(30))}
    assert want["train"] and want["val"] and want["train"] + want["val"] == 30
    assert meta["split"]["counts"] == want  # nothing "unseen": every stamp was in the checkpoint's folder
    ev = meta["evaluation"]
    assert "error" not in ev, ev.get("error")
    assert ev["images"] == "validation" and ev["n_images"] == want["val"]
    assert ev["n_train_images_for_baselines"] == want["train"]
    assert {"latent_only", "pca", "mean_image"} <= set(ev["rows"])
    text = (clone / "cache" / "demo-part" / "meta.json").read_text()
    assert str(tmp_path) not in text and str(ROOT) not in text  # nothing of either machine path is stored
