"""The user's labels beside a cache (astroae_core.cache.labels): round trip, surviving a rebuild and a move, never
touching the cache folder, concurrent sessions, strict JSON."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from astropy.io import fits

from astroae_core.cache import encode_folder, load_cache
from astroae_core.cache.labels import (LABEL_CHOICES, LABELS_FORMAT, LabelsError, labels_path, load_labels,
                                       set_label)

from .conftest import ROOT, write_blob_folder

CKPT = ROOT / "models" / "demo.pt"


def _tree(folder: Path) -> dict:
    """Every file under ``folder`` with its size, mtime and content hash."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns,
                                         hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def built(tmp_path):
    """6 blob images (fewer than UMAP needs: a PCA map, no compile) encoded with the shipped demo model."""
    data = write_blob_folder(tmp_path / "data" / "blobs", 6, seed=11)
    cache = encode_folder(CKPT, data, tmp_path / "caches" / "blobs", progress=None)
    return {"data": data, "cache": Path(cache)}


def test_labels_round_trip_and_clear(built):
    cache = load_cache(built["cache"])
    ids = cache.table["id"].tolist()
    assert load_labels(cache)["label"].eq("").all()
    set_label(cache, ids[1], label="interesting", tags="ring, blue ,ring")
    set_label(cache, ids[4], label="artefact")
    set_label(cache, ids[2], tags=["satellite trail", "check,later"])
    lab = load_labels(cache)
    assert list(lab.index) == list(cache.table.index)
    assert lab["label"].tolist() == ["", "interesting", "", "", "artefact", ""]
    assert lab.at[cache.table.index[1], "tags"] == "ring, blue"
    assert lab.at[cache.table.index[2], "tags"] == "satellite trail, check, later"
    set_label(cache, ids[1], label="")  # the label cleared, the tags kept
    set_label(cache, ids[4], label="normal")
    lab = load_labels(cache)
    assert lab["label"].tolist() == ["", "", "", "", "normal", ""]
    assert lab.at[cache.table.index[1], "tags"] == "ring, blue"
    set_label(cache, ids[1], tags="")  # nothing left: the entry goes
    doc = json.loads(labels_path(cache).read_text())
    assert doc["format"] == LABELS_FORMAT
    assert sorted(e["path"] for e in doc["labels"]) == sorted(cache.table["path"].iloc[[2, 4]])
    assert all(len(e["hash"]) == 20 for e in doc["labels"])


def test_labels_live_beside_the_cache_and_never_touch_it(built):
    before = _tree(built["cache"])
    cache = load_cache(built["cache"])
    for i, image_id in enumerate(cache.table["id"]):
        set_label(cache, image_id, label=LABEL_CHOICES[i % 3], tags=f"t{i}")
    assert labels_path(cache) == built["cache"].parent / "blobs.labels.json"
    assert labels_path(built["cache"]) == labels_path(cache)
    assert _tree(built["cache"]) == before
    assert not list(built["cache"].rglob("*label*"))


def test_labels_survive_a_rebuild_and_a_move_within_the_folder(built):
    cache = load_cache(built["cache"])
    rows = cache.table.set_index("path")
    moved = rows.index[0]
    set_label(cache, rows.at[moved, "id"], label="interesting", tags="merger")
    set_label(cache, rows.at[rows.index[3], "id"], label="artefact")
    # the file moves into a subfolder and a new image arrives: the next encode rebuilds the whole folder
    (built["data"] / "sub").mkdir()
    os.rename(built["data"] / moved, built["data"] / "sub" / moved)
    shutil.copy(built["data"] / rows.index[5], built["data"] / "zz_new.fits")
    fits.setval(built["data"] / "zz_new.fits", "OBJECT", value="same pixels, new header")
    rebuilt = load_cache(encode_folder(CKPT, built["data"], built["cache"], progress=None))
    assert len(rebuilt.table) == 7 and f"sub/{moved}" in set(rebuilt.table["path"])
    lab = load_labels(rebuilt).set_axis(rebuilt.table["path"].to_numpy())
    assert lab.at[f"sub/{moved}", "label"] == "interesting" and lab.at[f"sub/{moved}", "tags"] == "merger"
    assert lab.at[rows.index[3], "label"] == "artefact"
    assert (lab["label"] != "").sum() == 2  # the copy of an unlabelled image is unlabelled


def test_old_caches_without_hashes_match_by_path_and_changed_pixels_do_not(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    table = pd.DataFrame({"id": ["a", "b"], "path": ["a.fits", "b.fits"]})
    old = SimpleNamespace(path=folder, table=table)
    set_label(old, "b", label="normal")
    assert load_labels(old)["label"].tolist() == ["", "normal"]
    new = SimpleNamespace(path=folder, table=table.assign(hash=["h" * 20, "k" * 20]))
    assert load_labels(new)["label"].tolist() == ["", "normal"]  # an entry without a hash matches by path
    set_label(new, "b", label="interesting")  # now stored with its hash
    changed = SimpleNamespace(path=folder, table=table.assign(hash=["h" * 20, "x" * 20]))
    assert load_labels(changed)["label"].tolist() == ["", ""]  # b.fits holds other pixels now


def test_bad_labels_and_bad_files_are_named(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    cache = SimpleNamespace(path=folder, table=pd.DataFrame({"id": ["a"], "path": ["a.fits"]}))
    with pytest.raises(LabelsError, match="'weird' is not one of"):
        set_label(cache, "a", label="weird")
    with pytest.raises(LabelsError, match="image 'zz' is not in the cache"):
        set_label(cache, "zz", label="normal")
    path = labels_path(cache)
    path.write_text('{"format": "astroae-labels/1", "labels": [{"path": "a.fits", "hash": "", "label": NaN}]}')
    with pytest.raises(LabelsError, match="c.labels.json.*NaN is not strict JSON"):
        load_labels(cache)
    path.write_text('{"format": "astroae-labels/9", "labels": []}')
    with pytest.raises(LabelsError, match="format 'astroae-labels/9'"):
        load_labels(cache)
    with pytest.raises(LabelsError):  # a write never replaces a file it cannot read
        set_label(cache, "a", label="normal")
    assert "labels/9" in path.read_text()


def _label_many(cache_dir: str, ids: list, label: str) -> None:
    cache = load_cache(cache_dir)
    for k in range(8):  # each write reads, changes and replaces the whole file: lost updates would show
        for image_id in ids:
            set_label(cache, image_id, label=label, tags=f"by {label}" if k == 7 else f"round {k}")


def test_concurrent_sessions_keep_every_label(built):
    ids = load_cache(built["cache"]).table["id"].tolist()
    jobs = [(ids[0::3], "interesting"), (ids[1::3], "artefact"), (ids[2::3], "normal")]
    with ProcessPoolExecutor(3) as pool:
        for f in [pool.submit(_label_many, str(built["cache"]), i, lab) for i, lab in jobs]:
            f.result()
    lab = load_labels(load_cache(built["cache"]))
    want = ["interesting", "artefact", "normal"] * 2
    assert lab["label"].tolist() == want
    assert lab["tags"].tolist() == [f"by {w}" for w in want]
