"""Tests of the embedded demo dataset (astroae_core.demo): determinism, catalog, FITS, WCS, oddities, CLI."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astroae_core.demo import ANOMALY_KINDS, CATALOG_COLUMNS, KINDS, assign_kinds, generate_demo_data
from astroae_core.demo.fits_file import card, header_cards, pix2world
from astroae_core.cli import main as cli
from astroae_core.demo.instrument import FIELD_CENTER
from astroae_core.demo.plan import StampSpec

SIZE = 187
C = (SIZE - 1) / 2  # 0-based pixel index of the stamp centre
REQUIRED = [
    "file", "id", "kind", "is_anomaly", "flux", "hlr", "bulge_fraction", "e1", "e2", "q", "beta_deg",
    "sersic_n_bulge", "psf_fwhm", "sky_level", "noise_sigma", "snr", "ra", "dec", "x_offset", "y_offset",
]
# Two of every kind, so each oddity is tested on more than one random draw.
FORCED = [k for k in KINDS for _ in range(2)]


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    """A small random dataset (serial), with a high anomaly fraction so that some oddities appear."""
    out = tmp_path_factory.mktemp("demo_plain")
    cat = generate_demo_data(out, n=40, seed=3, anomaly_fraction=0.15, workers=1)
    return out, cat


@pytest.fixture(scope="module")
def forced(tmp_path_factory):
    """Every kind, twice, through the ``kinds`` parameter."""
    out = tmp_path_factory.mktemp("demo_forced")
    cat = generate_demo_data(out, n=len(FORCED), seed=11, kinds=FORCED, workers=1)
    return out, cat


def _read(out: Path, name: str):
    with fits.open(out / name) as hdul:
        return hdul[0].data, hdul[0].header.copy()


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


# ---------------------------------------------------------------------------------------------------------------
# determinism
# ---------------------------------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(tmp_path):
    kw = {"n": 6, "seed": 5, "anomaly_fraction": 0.5, "workers": 1}
    cat1 = generate_demo_data(tmp_path / "a", **kw)
    cat2 = generate_demo_data(tmp_path / "b", **kw)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 7 and a == b  # six FITS files and catalog.csv, byte for byte
    pd.testing.assert_frame_equal(cat1, cat2)


@pytest.mark.slow  # starts two worker interpreters: ~10 s of CPU
def test_same_seed_gives_byte_identical_files_whatever_the_worker_count(tmp_path):
    kw = {"n": 12, "seed": 3, "anomaly_fraction": 0.3}
    cat1 = generate_demo_data(tmp_path / "a", workers=1, **kw)
    # Two worker processes draw the stamps in another order: the per-stamp seeds make that irrelevant.
    cat2 = generate_demo_data(tmp_path / "b", workers=2, **kw)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 13 and a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []  # FITS files and catalog.csv
    pd.testing.assert_frame_equal(cat1, cat2)
    assert cat1["is_anomaly"].sum() == 4


def test_a_stamp_depends_only_on_seed_index_and_kind(plain, tmp_path):
    # Regenerating a prefix of a dataset with the same kinds reproduces its files exactly.
    out, cat = plain
    sub = generate_demo_data(tmp_path, n=8, seed=3, kinds=list(cat["kind"][:8]))
    for name in sub["file"]:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()


def test_progress_is_reported_per_stamp(tmp_path):
    calls = []
    generate_demo_data(tmp_path, n=3, seed=0, progress=lambda done, total, stage: calls.append((done, total, stage)))
    assert calls == [(0, 3, "demo-data"), (1, 3, "demo-data"), (2, 3, "demo-data"), (3, 3, "demo-data")]


def test_different_seed_gives_different_data(tmp_path):
    a = generate_demo_data(tmp_path / "a", n=4, seed=1)
    b = generate_demo_data(tmp_path / "b", n=4, seed=2)
    for name in a["file"]:
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()
    assert not np.allclose(a["flux"], b["flux"])


def test_no_timestamps_in_headers(plain):
    out, cat = plain
    _, h = _read(out, cat["file"][0])
    assert not [k for k in h if k.startswith("DATE") or k in ("CHECKSUM", "DATASUM")]
    assert h["SEED"] == 3 and h["IMSEED"] == cat["image_seed"][0]


def test_fits_bytes_match_what_astropy_writes(plain):
    # The hand-assembled FITS file must be exactly what astropy writes for the same header and data.
    out, cat = plain
    for name in cat["file"][:3]:
        data, header = _read(out, name)
        buf = io.BytesIO()
        fits.PrimaryHDU(data.astype(np.float32), header=header).writeto(buf, output_verify="exception")
        assert buf.getvalue() == (out / name).read_bytes()


def test_card_formatting_matches_astropy():
    for key, value, comment in [("A", 1e-30, "x"), ("B", -1.2345678901234567e-12, ""), ("C", "it's", "q"),
                                ("D", True, ""), ("E", 2**62, "big"), ("F", 0.1, "")]:
        assert card(key, value, comment) == str(fits.Card(key, value, comment))
    with pytest.raises(ValueError, match="TOOLONG"):
        card("TOOLONG", "x" * 60, "and a comment")


# ---------------------------------------------------------------------------------------------------------------
# catalog
# ---------------------------------------------------------------------------------------------------------------


def test_catalog_has_one_row_per_file_and_all_columns(plain):
    out, cat = plain
    on_disk = pd.read_csv(out / "catalog.csv")
    assert list(on_disk.columns) == list(CATALOG_COLUMNS)
    assert set(REQUIRED) <= set(on_disk.columns)
    fits_files = sorted(p.name for p in out.glob("*.fits"))
    assert sorted(on_disk["file"]) == fits_files
    assert len(fits_files) == 40 and fits_files[0] == "galaxy_00000.fits"
    assert on_disk["id"].tolist() == list(range(40))
    assert len(cat) == 40 and list(cat.columns) == list(CATALOG_COLUMNS)
    assert on_disk["file"].is_unique
    # Physical sanity of the true parameters.
    gal = on_disk[on_disk["kind"] == "galaxy"]
    assert gal["hlr"].between(0.3, 2.0).all()  # arcsec, 3-20 pixels
    assert gal["psf_fwhm"].between(0.2, 0.3).all()
    assert gal["bulge_fraction"].between(0, 1).all() and gal["q"].between(0.1, 1).all()
    assert (gal["snr"] >= 12).all() and gal["snr"].median() > 40
    assert on_disk["x_offset"].abs().max() <= 0.5 and on_disk["y_offset"].abs().max() <= 0.5


def test_anomalies_are_marked(plain, forced):
    for _, cat in (plain, forced):
        assert set(cat["kind"]) <= set(KINDS)
        assert (cat["is_anomaly"] == (cat["kind"] != "galaxy")).all()
        assert cat["is_anomaly"].dtype == bool
        # Every oddity says what was injected; normal galaxies say nothing.
        assert (cat.loc[cat["is_anomaly"], "detail"] != "").all()
        assert (cat.loc[~cat["is_anomaly"], "detail"] == "").all()
    _, cat = plain
    assert cat["is_anomaly"].sum() == round(40 * 0.15)


def test_assign_kinds_covers_every_kind():
    kinds = assign_kinds(200, seed=0, anomaly_fraction=0.04)
    assert len(kinds) == 200 and sum(k != "galaxy" for k in kinds) == 8
    assert set(kinds) - {"galaxy"} == set(ANOMALY_KINDS)  # all six kinds at n=200
    assert assign_kinds(200, seed=0) == kinds  # deterministic
    assert assign_kinds(200, seed=1) != kinds
    assert assign_kinds(50, anomaly_fraction=0.0) == ["galaxy"] * 50


@pytest.mark.slow
def test_two_hundred_stamps_contain_every_kind(tmp_path):
    cat = generate_demo_data(tmp_path, n=200, seed=0, anomaly_fraction=0.05)
    kinds = set(cat.loc[cat["is_anomaly"], "kind"])
    assert len(kinds) >= 5 and kinds == set(ANOMALY_KINDS)
    assert len(list(tmp_path.glob("*.fits"))) == 200


# ---------------------------------------------------------------------------------------------------------------
# images and WCS
# ---------------------------------------------------------------------------------------------------------------


def test_images_are_finite_float32_stamps_with_a_sensible_header(plain):
    out, cat = plain
    for row in cat.itertuples():
        with fits.open(out / row.file) as hdul:
            assert len(hdul) == 1
            raw = hdul[0]
            assert raw.header["BITPIX"] == -32
            data, h = raw.data, raw.header
            assert data.shape == (SIZE, SIZE) and data.dtype.kind == "f" and data.dtype.itemsize == 4
            assert np.isfinite(data).all()
            assert h["BUNIT"] == "electron" and h["KIND"] == row.kind and h["ID"] == row.id
            assert h["ANOMALY"] == row.is_anomaly and h["OBJECT"] == f"demo-{row.id:05d}"
            assert h["SKYLEVEL"] == pytest.approx(row.sky_level, rel=1e-5)
            # Sky-subtracted: the background is near zero with the catalogued noise.
            border = np.concatenate([data[:15].ravel(), data[-15:].ravel()])
            if row.kind == "galaxy" and row.snr < 300:  # the wings of the brightest reach the border
                assert abs(np.median(border)) < 0.3 * row.noise_sigma
                assert np.std(border) == pytest.approx(row.noise_sigma, rel=0.15)


def test_wcs_gives_the_catalog_position(plain):
    out, cat = plain
    for row in cat.itertuples():
        _, h = _read(out, row.file)
        w = WCS(h)
        assert w.wcs.ctype[0] == "RA---TAN" and w.wcs.ctype[1] == "DEC--TAN"
        assert abs(w.proj_plane_pixel_scales()[0].to_value("arcsec") - 0.1) < 1e-9
        ra, dec = w.wcs_pix2world([[C + row.x_offset, C + row.y_offset]], 0)[0]
        assert ra == pytest.approx(row.ra, abs=2e-8) and dec == pytest.approx(row.dec, abs=2e-8)
        # All stamps lie in the one demo field.
        assert abs(row.dec - FIELD_CENTER[1]) < 0.51
        assert abs((row.ra - FIELD_CENTER[0]) * np.cos(np.radians(row.dec))) < 0.51


def test_inverse_tan_projection_matches_astropy():
    spec = StampSpec(0, "x.fits", "x.fits", "galaxy", 0, SIZE)
    for ra0, dec0 in [(150.1, 2.2), (359.9999, -89.5), (0.0001, 60.0)]:
        cards = header_cards(spec, ra0, dec0, "kolmogorov", 0.25, 100.0, 1)
        w = WCS(fits.Header(cards))
        for x, y in [(C, C), (0, 0), (186, 3), (C + 0.3, C - 0.4)]:
            ra, dec = pix2world(cards, x, y)
            ra_a, dec_a = w.wcs_pix2world([[x, y]], 0)[0]
            assert dec == pytest.approx(dec_a, abs=1e-10)
            assert (ra - ra_a + 180) % 360 - 180 == pytest.approx(0, abs=1e-9)


def test_galaxy_centroid_is_at_the_centre(plain):
    out, cat = plain
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    checked = 0
    for row in cat[(cat["kind"] == "galaxy") & (cat["snr"] > 40)].itertuples():
        data, _ = _read(out, row.file)
        # Flux-weighted centroid inside ~1.5 half-light radii; its noise is sigma * sqrt(sum dx^2) / flux.
        m = np.hypot(xx - C, yy - C) < 1.5 * row.hlr / 0.1 + 6
        w = np.where(m, data, 0.0)
        cx, cy = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        err = row.noise_sigma * np.sqrt((m * (xx - C) ** 2).sum()) / w.sum()
        tol = 4 * err + 0.3  # 4 sigma of noise, plus the aperture's pixelization
        assert abs(cx - (C + row.x_offset)) < tol and abs(cy - (C + row.y_offset)) < tol, (row.file, err)
        checked += err < 0.25
    assert checked >= 5  # the test means something: several centroids are pinned to a fraction of a pixel


def test_galaxies_fill_a_sensible_part_of_the_stamp(plain):
    # The light of a normal galaxy is inside the stamp, and not a point: half of it within 3-25 pixels.
    out, cat = plain
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for row in cat[(cat["kind"] == "galaxy") & (cat["snr"] > 60)].itertuples():
        data, _ = _read(out, row.file)
        r = np.hypot(xx - C, yy - C).ravel()
        order = np.argsort(r)
        cum = np.cumsum(data.ravel()[order])
        inside = cum[np.searchsorted(r[order], 60)]
        r_half = r[order][np.searchsorted(cum, 0.5 * inside)]
        assert 1.5 < r_half < 30, (row.file, r_half, row.hlr)


# ---------------------------------------------------------------------------------------------------------------
# the oddities
# ---------------------------------------------------------------------------------------------------------------


def _rows(forced, kind):
    out, cat = forced
    return [(row, *_read(out, row.file)) for row in cat[cat["kind"] == kind].itertuples()]


def test_forced_kinds_are_written_as_asked(forced):
    out, cat = forced
    assert cat["kind"].tolist() == FORCED
    for row in cat.itertuples():
        assert _read(out, row.file)[1]["KIND"] == row.kind


def test_detector_edge_has_a_strip_of_exact_zeros(forced):
    for row, data, _ in _rows(forced, "detector_edge"):
        zero = data == 0.0
        assert 0.05 < zero.mean() < 0.75
        # The zeros reach the border (it is the mosaic's edge) and leave the galaxy in the centre alone.
        border = np.concatenate([zero[0], zero[-1], zero[:, 0], zero[:, -1]])
        assert border.any()
        assert not zero[int(C) - 5:int(C) + 6, int(C) - 5:int(C) + 6].any()
    for row, data, _ in _rows(forced, "galaxy"):
        assert (data == 0.0).sum() == 0


def test_star_is_saturated_with_spikes(forced):
    for row, data, h in _rows(forced, "star"):
        sat = np.isclose(data, h["SATURATE"], rtol=0, atol=0.02)
        assert sat.sum() >= 5  # a saturated core (and its bleed trail)
        assert data.max() <= h["SATURATE"] + 0.02
        m = re.search(r"dx=(-?[\d.e+]+)px dy=(-?[\d.e+]+)px spike_angle=([\d.e+-]+)deg", row.detail)
        sx, sy, ang = (float(v) for v in m.groups())
        # Along a spike, 15 pixels out, the light is well above the noise and the star's halo seen at 45 degrees
        # to the spikes.
        ang = np.radians(ang)
        x0, y0 = C + sx, C + sy  # the star's offset is from the stamp centre
        bleed = sat.any(axis=0)  # columns of the saturated core and its bleed trail
        on, off = [], []
        for k in range(4):
            for rr in (14, 15, 16):
                for a, acc in ((ang + k * np.pi / 2, on), (ang + k * np.pi / 2 + np.pi / 4, off)):
                    x, y = int(round(x0 + rr * np.cos(a))), int(round(y0 + rr * np.sin(a)))
                    if 0 <= x < SIZE and 0 <= y < SIZE and not bleed[x]:
                        acc.append(data[y, x])
        assert np.median(on) - np.median(off) > 3 * row.noise_sigma
        assert np.median(on) > 1.5 * np.median(off)
    for row, data, h in _rows(forced, "galaxy"):
        assert data.max() < h["SATURATE"]


def test_satellite_trail_crosses_the_stamp(forced):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for row, data, _ in _rows(forced, "satellite_trail"):
        m = re.search(r"angle=([\d.e+-]+)deg distance=(-?[\d.e+-]+)px", row.detail)
        ang, d = np.radians(float(m.group(1))), float(m.group(2))
        v = -(xx - C) * np.sin(ang) + (yy - C) * np.cos(ang) - d
        line = np.abs(v) < 0.5
        assert line.sum() > SIZE * 0.6  # it crosses the whole stamp
        assert np.median(data[line]) > 3 * row.noise_sigma
        assert np.median(data[np.abs(v) > 20]) < 0.5 * row.noise_sigma


def test_cosmic_rays_are_sharp(forced):
    for row, data, _ in _rows(forced, "cosmic_rays"):
        core = data[1:-1, 1:-1]
        neigh = np.maximum.reduce([data[:-2, 1:-1], data[2:, 1:-1], data[1:-1, :-2], data[1:-1, 2:]])
        # Hits far above the noise whose neighbours hold much less: no PSF blurred them.
        sharp = (core > 25 * row.noise_sigma) & (core > 2 * np.maximum(neigh, 0))
        assert sharp.sum() >= 2
        n_hits = int(re.search(r"hits=(\d+)", row.detail).group(1))
        assert 5 <= n_hits <= 15
    for row, data, _ in _rows(forced, "galaxy"):
        core = data[1:-1, 1:-1]
        neigh = np.maximum.reduce([data[:-2, 1:-1], data[2:, 1:-1], data[1:-1, :-2], data[1:-1, 2:]])
        assert not ((core > 25 * row.noise_sigma) & (core > 2 * np.maximum(neigh, 0))).any()


def test_merger_adds_a_companion(forced):
    for row, data, _ in _rows(forced, "merger"):
        ratio = float(re.search(r"flux_ratio=([\d.e+-]+)", row.detail).group(1))
        assert 0.3 <= ratio <= 1.0
        # The stamp holds the catalogued galaxy's light and then some (noise on the sum: ~ sigma * SIZE).
        assert data.sum() > row.flux * (1 + 0.5 * ratio) - 5 * row.noise_sigma * SIZE
        assert row.snr >= 60


def test_ring_is_a_ring(forced):
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for row, data, _ in _rows(forced, "ring"):
        radius = float(re.search(r"ring_radius=([\d.e+-]+)arcsec", row.detail).group(1)) / 0.1  # pixels
        assert 0.4 * radius < row.hlr / 0.1 < 1.6 * radius
        # Face-on radial profile (undo the inclination): brighter on the ring than halfway in towards the centre.
        beta, q = np.radians(row.beta_deg), row.q
        dx, dy = xx - C - row.x_offset, yy - C - row.y_offset
        u = dx * np.cos(beta) + dy * np.sin(beta)
        w = (-dx * np.sin(beta) + dy * np.cos(beta)) / q
        r = np.hypot(u, w)
        # Medians, so that the nucleus and the knots do not decide.
        on_ring = np.median(data[np.abs(r - radius) < 1.5])
        inner = np.abs(r - 0.5 * radius) < 1.0
        inside = np.median(data[inner])
        outside = np.median(data[np.abs(r - 1.8 * radius) < 1.5])
        noise = 1.25 * row.noise_sigma / np.sqrt(inner.sum())  # standard error of a median
        assert on_ring > 1.1 * inside and on_ring > inside + 2 * noise, (row.file, on_ring, inside)
        assert on_ring > 1.5 * outside and on_ring > outside + 2 * noise, (row.file, on_ring, outside)


# ---------------------------------------------------------------------------------------------------------------
# validation, folder handling, CLI
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 0}, "n must be an integer >= 1, got 0"),
        ({"n": -3}, "got -3"),
        ({"n": "5"}, "got '5'"),
        ({"anomaly_fraction": 1.0}, r"anomaly_fraction must be in \[0, 1\), got 1.0"),
        ({"anomaly_fraction": -0.1}, "got -0.1"),
        ({"anomaly_fraction": "lots"}, "got 'lots'"),
        ({"size": 10}, "size must be an integer >= 32 pixels, got 10"),
        ({"kinds": ["galaxy"]}, "one entry per stamp"),
        ({"kinds": ["galaxy", "comet"]}, "unknown kind.*comet"),
        ({"workers": 0}, "workers must be an integer >= 1, got 0"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, match):
    args = {"n": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        generate_demo_data(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_regenerating_smaller_removes_only_our_stale_files(tmp_path):
    generate_demo_data(tmp_path, n=3, seed=0)
    (tmp_path / "notes.txt").write_text("mine")
    generate_demo_data(tmp_path, n=2, seed=0)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["catalog.csv", "galaxy_00000.fits", "galaxy_00001.fits", "notes.txt"]
    assert (tmp_path / "galaxy_00000.fits").stat().st_mode & 0o044 == 0o044  # readable like a normal file
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_cli_writes_files_and_catalog(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli(["demo-data", "--out", str(out), "--n", "5", "--seed", "1"]) == 0
    assert sorted(p.name for p in out.glob("*.fits")) == [f"galaxy_{i:05d}.fits" for i in range(5)]
    cat = pd.read_csv(out / "catalog.csv")
    assert len(cat) == 5
    assert "wrote 5 stamps" in capsys.readouterr().out
    # Same seed through the API: the same bytes.
    generate_demo_data(tmp_path / "api", n=5, seed=1)
    assert _files(out) == _files(tmp_path / "api")


def test_cli_dry_run_writes_nothing(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli(["demo-data", "--out", str(out), "--n", "300", "--seed", "1", "--dry-run"]) == 0
    assert not out.exists()
    msg = capsys.readouterr().out
    assert "would write 300" in msg and "galaxy_00000.fits .. galaxy_00299.fits" in msg and "merger" in msg


def test_cli_rejects_bad_values(tmp_path, capsys):
    assert cli(["demo-data", "--out", str(tmp_path / "x"), "--n", "0"]) == 2
    assert "n must be an integer >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["demo-data", "--n", "3"])  # --out is required


def test_module_entry_point_dry_run(tmp_path):
    root = Path(__file__).resolve().parents[1]
    res = subprocess.run(
        [sys.executable, "-m", "astroae_core", "demo-data", "--out", str(tmp_path / "d"), "--n", "7", "--dry-run"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "would write 7 FITS stamps" in res.stdout
    assert not (tmp_path / "d").exists()


def test_demo_data_runs_without_torch(tmp_path):
    """scripts/app.sh draws the stamps while the set-up is still installing torch."""
    code = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
            "from astroae_core.cli import main\n"
            f"sys.exit(main(['demo-data', '--out', {str(tmp_path / 'demo')!r}, '--n', '3', '--seed', '1']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(list((tmp_path / "demo").glob("galaxy_*.fits"))) == 3 and (tmp_path / "demo" / "catalog.csv").is_file()
