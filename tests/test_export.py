"""Exports: CSV and VOTable with every column (units, UCDs, the data folder), the FITS cutout zip (three HDUs an
image, one image at a time), and SAMP sends reaching a hub started here (no internet)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.io.votable import parse_single_table

from astroae_core.io import export, samp

from .conftest import local_samp_hub, wcs_header


@pytest.fixture
def table():
    rng = np.random.default_rng(1)
    n = 7
    t = pd.DataFrame({"id": [f"gal_{i:03d}" for i in range(n)], "path": [f"sub/gal_{i:03d}.fits" for i in range(n)],
                      "hdu": 0, "split": ["train", "val"] * 3 + ["train"],
                      "ra": rng.uniform(149, 151, n), "dec": rng.uniform(1, 3, n)})
    for d in range(8):
        t[f"z{d}"] = rng.normal(size=n).astype(np.float32)
    t["mse"], t["pca_x"], t["umap_y"] = rng.uniform(0, 1e-3, n), rng.normal(size=n), rng.normal(size=n)
    t["anomaly_score"], t["anomaly_rank"] = rng.uniform(size=n), np.arange(1, n + 1)
    t["catalog.kind"] = ["galaxy", "ring", "galaxy", "star", "galaxy", "ring", None]
    t["catalog.snr"] = rng.uniform(5, 500, n)
    t["catalog.is_anomaly"] = [False, True, False, True, False, True, False]
    t["label"] = ["", "interesting", "", "artefact", "", "", ""]
    t["tags"] = ["", "ring, blue", "", "", "", "", ""]
    return t


def test_csv_has_every_column_and_the_data_folder(table):
    out = pd.read_csv(io.BytesIO(export.export_csv_bytes(table, data_folder="/data/demo")), keep_default_na=False)
    assert list(out.columns) == [*table.columns, export.DATA_FOLDER]
    assert set(out[export.DATA_FOLDER]) == {"/data/demo"}
    assert list(out["path"]) == list(table["path"])  # relative, as in the cache
    np.testing.assert_allclose(out[[f"z{d}" for d in range(8)]].to_numpy(), table[[f"z{d}" for d in range(8)]],
                               rtol=1e-6)
    assert list(out["label"]) == list(table["label"]) and out["tags"][1] == "ring, blue"


def test_votable_round_trips_every_column_with_units_and_ucds(table):
    vt = parse_single_table(io.BytesIO(export.export_votable_bytes(table, data_folder="/data/demo", name="subset")))
    t = vt.to_table()
    assert t.colnames == list(table.columns)
    assert str(t["ra"].unit) == "deg" and str(t["dec"].unit) == "deg"
    ucds = {f.name: f.ucd for f in vt.fields}
    assert ucds["ra"] == "pos.eq.ra;meta.main" and ucds["id"] == "meta.id;meta.main"
    assert ucds["catalog.snr"] == "stat.snr" and ucds["label"] == "meta.code.class"
    assert [p.value for p in vt.params if p.name == export.DATA_FOLDER] == ["/data/demo"]
    for c in ("ra", "dec", "mse", "catalog.snr", *[f"z{d}" for d in range(8)]):
        np.testing.assert_allclose(np.asarray(t[c], dtype=float), table[c].to_numpy(dtype=float), rtol=1e-6)
    assert list(t["id"]) == list(table["id"]) and list(t["anomaly_rank"]) == list(table["anomaly_rank"])
    assert list(t["catalog.is_anomaly"]) == list(table["catalog.is_anomaly"])
    assert [str(v) for v in t["catalog.kind"]][:6] == list(table["catalog.kind"][:6])
    assert str(t["catalog.kind"][6]) in ("", "--")  # a missing value stays missing, not "None"
    assert t["tags"][1] == "ring, blue"


def _cutout(i, shape=(16, 16)):
    rng = np.random.default_rng(i)
    a = rng.normal(size=shape).astype(np.float32)
    return lambda: export.cutout_hdus(a, a * 0.5, wcs_header(), source=f"gal_{i}.fits", model_sha="ab" * 32)


def test_fits_zip_holds_three_hdus_per_image_with_the_header(tmp_path):
    items = [(f"sub/gal_{i}.fits", _cutout(i)) for i in range(3)]

    def bad():
        raise ValueError("gal_bad.fits is not a FITS file")

    items.append(("gal_bad.fits", bad))
    buf = io.BytesIO()
    report = export.write_cutouts_zip(buf, items)
    assert report["written"] == 3 and [f for f, _ in report["failed"]] == ["gal_bad.fits"]
    with zipfile.ZipFile(buf) as zf:
        names = sorted(zf.namelist())
        assert names == ["manifest.csv", "sub/gal_0_cutout.fits", "sub/gal_1_cutout.fits", "sub/gal_2_cutout.fits"]
        assert "not a FITS file" in zf.read("manifest.csv").decode()
        with fits.open(io.BytesIO(zf.read("sub/gal_1_cutout.fits"))) as hdul:
            assert len(hdul) == 3
            assert [h.name for h in hdul] == ["ORIGINAL", "RECONSTRUCTION", "RESIDUAL"]
            np.testing.assert_allclose(hdul[2].data, hdul[0].data - hdul[1].data)
            for h in hdul:
                assert h.header["CTYPE1"] == "RA---TAN" and h.header["BUNIT"] == "e-/s"


def test_fits_zip_stops_at_its_limit_and_says_so():
    made = []

    def item(i):
        def make():
            made.append(i)
            return _cutout(i)()
        return f"g{i}.fits", make

    buf = io.BytesIO()
    report = export.write_cutouts_zip(buf, (item(i) for i in range(5)), limit=2)
    assert report == {"written": 2, "failed": [], "left_out": 3}
    assert made == [0, 1]  # the images past the limit are never read
    with zipfile.ZipFile(buf) as zf:
        assert zf.read("manifest.csv").decode().count("left out") == 3


def test_cutout_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="same 2-D shape"):
        export.cutout_hdus(np.zeros((4, 4)), np.zeros((4, 5)), source="x.fits")


# -- SAMP against a hub started here --------------------------------------------------------------------------


@pytest.fixture
def hub(tmp_path, monkeypatch):
    with local_samp_hub(tmp_path, monkeypatch):
        yield


@pytest.fixture
def receiver(tmp_path, monkeypatch):
    """A hub and a client that records the messages it gets (standing in for TOPCAT and DS9)."""
    with local_samp_hub(tmp_path, monkeypatch, client_name="recorder") as received:
        yield received


def test_no_hub_is_said(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMP_HUB", f"std-lockurl:{(tmp_path / 'none.lock').as_uri()}")
    assert samp.hub_running() is False


def test_send_table_and_image_reach_a_local_hub(tmp_path, table, receiver):
    got, event = receiver
    assert samp.hub_running() is True
    vot = tmp_path / "subset.xml"
    vot.write_bytes(export.export_votable_bytes(table, data_folder="/data/demo"))
    res = samp.send_table(vot, name="astroae subset")
    assert res.recipients == ["recorder"]
    assert event.wait(10)
    mtype, params = got[0]
    assert mtype == samp.TABLE_MTYPE and params["url"] == vot.resolve().as_uri() and params["name"] == "astroae subset"
    event.clear()
    img = tmp_path / "gal.fits"
    _cutout(0)().writeto(img)
    res = samp.send_image(img, name="gal_0")
    assert res.recipients == ["recorder"] and event.wait(10)
    assert got[1][0] == samp.IMAGE_MTYPE and got[1][1]["url"].startswith("file://")


def test_a_send_is_delivered_when_the_hub_forwards_late(tmp_path, monkeypatch):
    """The hub forwards each message on a thread of its own; on a busy machine that thread ran after the sender had
    disconnected, and the hub dropped a notification then. Every forwarding thread is held back here."""
    import time

    asamp = samp._astropy_samp()
    launch = asamp.SAMPHubServer._launch_thread

    def late(self, group=None, target=None, name=None, args=None):
        def run(*a):
            time.sleep(0.3)
            target(*a)
        return launch(self, group=group, target=run, name=name, args=args)

    monkeypatch.setattr(asamp.SAMPHubServer, "_launch_thread", late)
    with local_samp_hub(tmp_path, monkeypatch, client_name="recorder") as (got, event):
        vot = tmp_path / "t.xml"
        vot.write_text("<VOTABLE/>")
        assert samp.send_table(vot, name="t").recipients == ["recorder"]
        assert event.wait(10) and got[0][0] == samp.TABLE_MTYPE


def test_a_tool_that_cannot_load_the_file_is_reported_with_its_reason(tmp_path, monkeypatch):
    asamp = samp._astropy_samp()
    with local_samp_hub(tmp_path, monkeypatch, client_name="recorder"):
        picky = asamp.SAMPIntegratedClient(name="picky")
        picky.connect()
        try:
            def refuse(private_key, sender_id, msg_id, mtype, params, extra):
                picky.reply(msg_id, {"samp.status": "samp.error", "samp.error": {"samp.errortxt": "not a VOTable"}})

            picky.bind_receive_call(samp.TABLE_MTYPE, refuse)
            vot = tmp_path / "t.xml"
            vot.write_text("nonsense")
            res = samp.send_table(vot, name="t")
        finally:
            picky.disconnect()
    assert res.recipients == ["recorder"] and res.problems == {"picky": "not a VOTable"}


def test_tools_that_do_not_answer_are_waited_for_together_and_named(tmp_path, monkeypatch):
    import time

    asamp = samp._astropy_samp()
    with local_samp_hub(tmp_path, monkeypatch, client_name="recorder") as (got, event):
        silent = []
        for name in ("busy", "busy"):  # two tools of one name, both loading something else
            c = asamp.SAMPIntegratedClient(name=name)
            c.connect()
            c.bind_receive_call(samp.TABLE_MTYPE, lambda *args: None)
            silent.append(c)
        try:
            t0 = time.perf_counter()
            res = samp._send(samp.TABLE_MTYPE, {"url": "file:///x.vot"}, timeout=2)
            waited = time.perf_counter() - t0
        finally:
            for c in silent:
                c.disconnect()
    assert res.recipients == ["recorder"] and event.is_set()
    assert len(res.problems) == 2 and all(k.startswith("busy") for k in res.problems)
    assert set(res.problems.values()) == {"no answer within 2 s (it may still be loading)"}
    assert waited < 3.9  # not one timeout after the other


def test_send_of_a_missing_file_names_it(tmp_path, hub):
    with pytest.raises(FileNotFoundError, match="nope.xml"):
        samp.send_table(tmp_path / "nope.xml", name="x")
