"""The astronomer's viewer (issue 19): clip limits, WCS axes, colour bars, photometry, the blink panel, the slider
start at the chosen image's exact latent and a slider step one can see; the core on synthetic images, the pages with
AppTest on a small embedded-demo cache encoded with the shipped models/demo.pt."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from astroae_core.analysis.clip_limits import CLIP_CHOICES, clip_limits
from astroae_core.analysis.object_extent import object_box
from astroae_core.analysis.photometry import compare_photometry
from astroae_core.io import reconstruction_fits_bytes
from astroae_core.io.sky_axes import sky_axes
from dashboard import display, plots, slider_ranges

from .conftest import ROOT, wcs_header

# ----------------------------------------------------------------------------------------------------------------
# core: clip limits, sky axes, photometry, the object's box


def test_clip_limits_follow_ds9s_choices():
    a = np.arange(1001, dtype=np.float64).reshape(7, 143)
    a[0, 0] = np.nan
    assert clip_limits(a, "min/max") == (1.0, 1000.0)
    lo, hi = clip_limits(a, "99%")
    assert lo == pytest.approx(np.percentile(a[np.isfinite(a)], 0.5)) and hi == pytest.approx(
        np.percentile(a[np.isfinite(a)], 99.5))
    widths = [np.subtract(*clip_limits(a, c)[::-1]) for c in ("min/max", "99.5%", "99%", "95%")]
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == 4
    from astropy.visualization import ZScaleInterval

    noisy = np.random.default_rng(0).normal(10, 2, (50, 50))
    assert clip_limits(noisy, "zscale") == pytest.approx(ZScaleInterval().get_limits(noisy))
    assert clip_limits(a, "manual", manual=(9.0, -3.0)) == (-3.0, 9.0)
    assert clip_limits(np.full((4, 4), 5.0), "min/max")[1] > 5.0  # a constant image still has vmin < vmax
    with pytest.raises(ValueError, match="manual"):
        clip_limits(a, "manual")
    with pytest.raises(ValueError, match="one of"):
        clip_limits(a, "98%")
    assert set(CLIP_CHOICES) >= {"min/max", "99.5%", "99%", "95%", "zscale", "manual"}


def _rotated_header():
    h = wcs_header()
    for k in ("CDELT1", "CDELT2"):
        del h[k]
    h.update(CD1_1=0.0, CD1_2=-1e-4, CD2_1=1e-4, CD2_2=0.0)  # north along x: Dec changes along the x axis
    return h


@pytest.mark.parametrize("sexagesimal", [True, False])
def test_sky_axes_ticks_sit_where_their_values_cross_the_edges(sexagesimal):
    from astropy.coordinates import Angle

    h = wcs_header()
    ax = sky_axes(h, (16, 16), sexagesimal=sexagesimal, n_ticks=4)
    w = WCS(h)
    assert (ax.x_name, ax.y_name) == ("RA", "Dec") and ax.x_ticks and ax.y_ticks
    ra, dec = w.pixel_to_world_values(*np.meshgrid(np.arange(16.0), np.arange(16.0)))
    np.testing.assert_allclose(ax.ra, ra, rtol=0, atol=1e-10)
    np.testing.assert_allclose(ax.dec, dec, rtol=0, atol=1e-10)

    def values(labels, name):
        if not sexagesimal:
            return [float(t.rstrip("°")) for t in labels]
        field = re.compile(r"[+-]?\d+(?:\.\d+)?[hdms]")
        full, out = [], []
        for t in labels:  # after the first, a label shows only its last fields: the rest are the previous one's
            parts = field.findall(t)
            full = full[: len(full) - len(parts)] + parts
            out.append(Angle("".join(full), unit="hourangle" if name == "RA" else "deg").deg)
        return out

    for (p, _), v in zip(ax.x_ticks, values([t for _, t in ax.x_ticks], "RA")):
        assert v == pytest.approx(w.pixel_to_world_values(p, -0.5)[0], abs=2e-7)
    for (p, _), v in zip(ax.y_ticks, values([t for _, t in ax.y_ticks], "Dec")):
        assert v == pytest.approx(w.pixel_to_world_values(-0.5, p)[1], abs=2e-7)
    labels = [t for _, t in ax.x_ticks]
    assert ("h" in labels[0] and "m" in labels[0]) if sexagesimal else all(t.endswith("°") for t in labels)
    if sexagesimal:  # abbreviated as sky charts write them: here RA crosses 10h00m00s, so the hour is said again
        assert [t for _, t in sky_axes(h, (16, 16), n_ticks=6).x_ticks] == [
            "09h59m59.85s", "59.90s", "59.95s", "10h00m00.00s", "00.05s", "00.10s", "00.15s"]
    # a coarser display grid: RA/Dec at its cell centres
    coarse = sky_axes(h, (16, 16), grid_shape=(4, 4))
    assert coarse.ra.shape == (4, 4) and coarse.ra[0, 0] == pytest.approx(w.pixel_to_world_values(1.5, 1.5)[0])


def test_sky_axes_follow_a_rotated_image_and_are_absent_without_wcs():
    ax = sky_axes(_rotated_header(), (16, 16))
    assert (ax.x_name, ax.y_name) == ("Dec", "RA")
    assert sky_axes(fits.Header(), (16, 16)) is None and sky_axes(None, (16, 16)) is None


def _source(shape=(64, 64), flux=5000.0, width=3.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]] - (np.array(shape)[:, None, None] - 1) / 2
    g = np.exp(-0.5 * (xx**2 + yy**2) / width**2)
    return flux * g / g.sum()


def test_photometry_measures_the_flux_ratio_and_the_sky_offset():
    rng = np.random.default_rng(1)
    sky, sigma = 100.0, 2.0
    src = _source()
    original = sky + src + rng.normal(0, sigma, src.shape)
    same = compare_photometry(original, original)
    assert same.flux_ratio == 1.0 and same.sky_offset == 0.0 and same.sky_sigma == pytest.approx(sigma, rel=0.15)
    recon = sky + 3.0 + 0.5 * src  # noise-free, half the flux, its sky 3 units (1.5 sigma) up
    p = compare_photometry(original, recon)
    assert p.flux_ratio == pytest.approx(0.5, abs=0.05)
    assert p.sky_offset == pytest.approx(3.0, abs=0.3) and p.sky_offset_sigma == pytest.approx(1.5, abs=0.25)
    assert 0 < p.aperture_pixels < src.size / 2
    # nothing above the noise: no ratio is given
    assert np.isnan(compare_photometry(sky + np.zeros((64, 64)), sky + 0.5 * src).flux_ratio)
    with pytest.raises(ValueError, match="one shape"):
        compare_photometry(original, recon[:10])


def test_the_reconstruction_fits_states_its_photometry():
    rng = np.random.default_rng(2)
    original = 100 + _source() + rng.normal(0, 2, (64, 64))
    p = compare_photometry(original, 100 + 0.8 * _source())
    h = wcs_header()
    raw = reconstruction_fits_bytes(original, h, photometry=p.as_dict())
    with fits.open(io.BytesIO(raw)) as hdul:
        hdr = hdul[0].header
        assert hdr["FLUXRAT"] == pytest.approx(p.flux_ratio) and hdr["SKYOFF"] == pytest.approx(p.sky_offset)
        assert hdr["SKYOFFSG"] == pytest.approx(p.sky_offset_sigma) and "e-/s" in hdr.comments["SKYOFF"]
    with fits.open(io.BytesIO(reconstruction_fits_bytes(original, h))) as hdul:
        assert "FLUXRAT" not in hdul[0].header


def test_object_box_frames_where_the_objects_are():
    stamps = np.zeros((10, 100, 100))
    stamps[:, 60:70, 20:34] = 1.0
    y0, y1, x0, x1 = object_box(stamps)
    assert y0 <= 60 and y1 >= 70 and x0 <= 20 and x1 >= 34
    assert y1 - y0 == x1 - x0 < 40  # square, far smaller than the stamp
    assert object_box(np.zeros((3, 20, 20))) == (0, 20, 0, 20)


# ----------------------------------------------------------------------------------------------------------------
# drawing: colour bars in the file's units, WCS axes on the figure, blink, log ticks


def test_colorbar_ticks_are_the_files_values_where_the_stretch_puts_them():
    for stretch in display.STRETCHES:
        limits = (-12.3, 4567.0)
        pos, text = display.colorbar_ticks(limits, stretch)
        values = [float(t) for t in text]
        assert values == sorted(values) and all(limits[0] <= v <= limits[1] for v in values) and len(values) >= 4
        np.testing.assert_allclose(pos, display.apply_stretch(np.array(values), stretch, limits), atol=1e-6)
    _, small = display.colorbar_ticks((0.001, 0.0013), "linear")
    assert len(set(small)) == len(small)  # distinct labels on a narrow range


class _Rec:
    def __init__(self, flux, flux_hat):
        self.flux, self.flux_hat, self.flux_latent, self.skip_mode = flux, flux_hat, None, "none"


def test_image_panels_have_wcs_axes_colour_bars_and_sky_on_hover():
    rng = np.random.default_rng(3)
    flux = (100 + _source((16, 16), 900, 2) + rng.normal(0, 1, (16, 16))).astype(np.float32)
    rec = _Rec(flux, (100 + 0.9 * _source((16, 16), 900, 2)).astype(np.float32))
    panels = plots.reconstruction_panels(rec, "asinh", "gray", clip="99%", unit="e-/s")
    sky = sky_axes(wcs_header(), (16, 16))
    fig = plots.image_panels(panels, shape=(16, 16), sky=sky).to_plotly_json()
    assert [d["showscale"] for d in fig["data"]] == [True, True, True]
    bars = [d["colorbar"] for d in fig["data"]]
    assert bars[0]["ticktext"] == bars[1]["ticktext"] and bars[0]["title"]["text"] == "e-/s"  # one stretch, units
    lo, hi = clip_limits(flux, "99%")
    assert float(bars[0]["ticktext"][0]) >= lo and float(bars[0]["ticktext"][-1]) <= hi
    assert "tickvals" not in bars[2] and fig["data"][2]["zmid"] == 0  # the residual: diverging, its own values
    assert fig["layout"]["xaxis"]["ticktext"] == [t for _, t in sky.x_ticks] and "RA" in fig["layout"]["xaxis"][
        "title"]["text"]
    assert "RA %{customdata[1]" in fig["data"][0]["hovertemplate"]
    assert fig["layout"]["xaxis2"]["matches"] == "x" and fig["layout"]["yaxis2"]["matches"] == "y"  # linked zoom
    blink = plots.blink_figure(panels[0], panels[1], shape=(16, 16), sky=sky).to_plotly_json()
    assert [f["name"] for f in blink["frames"]] == [panels[0].title, panels[1].title]
    z0, z1 = (np.asarray(f["data"][0]["z"]) for f in blink["frames"])
    assert not np.array_equal(z0, z1) and blink["frames"][0]["data"][0]["zmax"] == blink["frames"][1]["data"][0]["zmax"]
    steps = blink["layout"]["updatemenus"][0]["buttons"][0]["args"][0]
    assert steps[:4] == [panels[0].title, panels[1].title] * 2


def test_training_curves_titles_ticks_and_legends():
    hist = [{"epoch": i + 1, "train_loss": 2e-3 / (i + 1), "val_loss": 3e-3 / (i + 1), "val_mse": 1e-3 / (i + 1),
             "val_latent_mse": 2e-3 / (i + 1)} for i in range(20)]
    fig = plots.training_curves(hist).to_plotly_json()
    lay = fig["layout"]
    assert lay["yaxis"]["title"]["text"] and "MSE" in lay["yaxis2"]["title"]["text"]
    for ax in ("yaxis", "yaxis2"):
        assert lay[ax]["ticktext"] and all(re.fullmatch(r"[125]e-?\d+", t) for t in lay[ax]["ticktext"])
    assert {d["legend"] for d in fig["data"] if "MSE" in d["name"]} == {"legend2"}
    assert {d["legend"] for d in fig["data"] if "loss" in d["name"]} == {"legend"}
    assert lay["legend2"]["x"] == pytest.approx(lay["xaxis2"]["domain"][0])


# ----------------------------------------------------------------------------------------------------------------
# sliders: ranges that hold the chosen latent, exactly; a step one can see


def test_slider_ranges_hold_an_outlier_exactly():
    stats = {"mean": np.zeros(3), "std": np.ones(3), "q01": np.full(3, -2.3), "q99": np.full(3, 2.3)}
    z = np.array([-6.204718, 0.3393425, 9.123457], dtype=np.float32)
    ranges = slider_ranges.slider_ranges(stats, ["z0", "z1", "z2"], include=z)
    values = slider_ranges.as_slider_values(z)
    assert all(r.lo <= v <= r.hi for r, v in zip(ranges, values))
    assert np.array_equal(np.asarray(values, dtype=np.float32), z) and all(type(v) is float for v in values)
    plain = slider_ranges.slider_ranges(stats, ["z0", "z1", "z2"])
    assert plain[0].lo > z[0] and plain[2].hi < z[2]  # without include these two would be clamped
    assert ranges[1] == plain[1]
    assert ranges[0].step == 0.2  # a fifth of the std, rounded to 1-2-5


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    from dashboard import testing

    info = testing.build_demo_cache(tmp_path_factory.mktemp("viewer"), n=40, seed=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASTROAE_DATA_ROOT", str(info["data_root"]))
        mp.setenv("ASTROAE_CACHE", str(info["cache"]))
        yield info


def test_one_slider_step_visibly_changes_the_decoded_demo_image(demo_env):
    from astroae_core import load_model
    from astroae_core.analysis import decode_latents
    from astroae_core.cache import load_cache

    cache = load_cache(demo_env["cache"])
    model = load_model(demo_env["checkpoint"])
    z = cache.latents()
    ranges = slider_ranges.slider_ranges(cache.latent_stats(), cache.latent_columns)
    box = object_box(decode_latents(model, z))
    start = z.mean(0)

    def shown(v):
        img = decode_latents(model, v)[0][box[0]:box[1], box[2]:box[3]]
        return display.decoded_rgb(img[None], "asinh", "gray")[0, ..., 0].astype(int)

    base = shown(start)
    changed = []
    for d, r in enumerate(ranges):
        moved = start.copy()
        moved[d] += r.step
        changed.append(int((np.abs(shown(moved) - base) >= 2).sum()))
    # every slider: one step changes at least 20 displayed pixels by 2 grey levels or more
    assert min(changed) >= 20, changed


# ----------------------------------------------------------------------------------------------------------------
# the pages (AppTest)


def _app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=300)
    at.run()
    return at


def _charts(at) -> dict:
    return {el.key: json.loads(el.proto.spec) for el in at.get("plotly_chart")}


def _ok(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_reconstructions_page_wcs_colour_bars_clip_blink_and_photometry(demo_env):
    at = _app()
    at.switch_page("app_pages/reconstructions.py").run()
    _ok(at)
    fig = _charts(at)["rec_fig"]
    assert [d["type"] for d in fig["data"]] == ["heatmap"] * 3 and all(d["showscale"] for d in fig["data"])
    assert fig["data"][0]["colorbar"]["title"]["text"] == "electron"  # the demo files' BUNIT
    assert any("h" in t for t in fig["layout"]["xaxis"]["ticktext"])
    assert "Dec" in fig["layout"]["yaxis"]["title"]["text"]
    photometry = [m.value for m in at.markdown if m.value.startswith("**Photometry**")]
    assert len(photometry) == 1 and "σ" in photometry[0]
    z_minmax = fig["data"][0]["z"]
    at.selectbox(key="rec_clip").set_value("95%").run()
    _ok(at)
    assert _charts(at)["rec_fig"]["data"][0]["z"] != z_minmax
    at.selectbox(key="rec_clip").set_value("manual").run()
    at.number_input(key="rec_min").set_value(0.0).run()
    at.number_input(key="rec_max").set_value(50.0).run()
    _ok(at)
    bar = _charts(at)["rec_fig"]["data"][0]["colorbar"]
    assert float(bar["ticktext"][0]) == 0.0 and float(bar["ticktext"][-1]) == 50.0
    at.radio(key="rec_sky").set_value("degrees").run()
    assert all(t.endswith("°") for t in _charts(at)["rec_fig"]["layout"]["xaxis"]["ticktext"])
    at.toggle(key="rec_blink").set_value(True).run()
    _ok(at)
    blink = _charts(at)["rec_fig"]
    assert len(blink["data"]) == 1 and len(blink["frames"]) == 2 and blink["layout"]["updatemenus"]
    # the FITS download carries the photometry the page states
    raw = [b for b in at.get("download_button") if "reconstruction" in b.proto.label][0]
    assert raw is not None


def test_sliders_start_exactly_at_an_extreme_outliers_latent(demo_env):
    from astroae_core.cache import load_cache

    cache = load_cache(demo_env["cache"])
    t, z = cache.table, cache.latents()
    stats = cache.latent_stats()
    outside = np.maximum(stats["q01"] - z, z - stats["q99"]).max(axis=1)  # how far beyond the 1..99% band
    i = int(np.argmax(outside))
    assert outside[i] > 0  # the old clamp would have moved this image's start
    at = _app()
    at.session_state["selected_id"] = t["id"].iloc[i]
    at.session_state["slider_start"] = "chosen image"
    at.switch_page("app_pages/sliders.py").run()
    _ok(at)
    got = np.array([at.slider(key=f"sl_{c}").value for c in cache.latent_columns])
    assert np.array_equal(got.astype(np.float32), z[i]) and np.array_equal(got, z[i].astype(np.float64))
    assert all(s.min <= s.value <= s.max for s in at.slider)
    assert any("At the chosen image's own latent" in c.value for c in at.caption)
    # one step of a slider changes the image
    before = [im.value[0] for im in at.image if im.captions and im.captions[0].startswith("Decoded from")]
    s = at.slider(key="sl_z0")
    s.set_value(s.value + (s.step or 0.2) if s.value + 0.5 < s.max else s.value - 0.2).run()
    _ok(at)
    after = [im.value[0] for im in at.image if im.captions and im.captions[0].startswith("Decoded from")]
    assert before and after and before != after
    # zoom and pan: the same image as a plotly heatmap, cropped to the objects' box (the whole stamp on request)
    at.toggle(key="sl_zoom").set_value(True).run()
    _ok(at)
    fig = _charts(at)["slider_fig"]
    assert fig["data"][0]["type"] == "heatmap"
    cropped = np.asarray(_decode_z(fig["data"][0]["z"])).shape
    at.toggle(key="sl_whole").set_value(True).run()
    whole = np.asarray(_decode_z(_charts(at)["slider_fig"]["data"][0]["z"])).shape
    assert whole == (187, 187) and cropped[0] < 150 and cropped[0] == cropped[1]


def _decode_z(spec):
    """A plotly typed array (``{"dtype", "bdata", "shape"}``) or nested list as numpy."""
    import base64

    if isinstance(spec, dict):
        a = np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"]))
        return a.reshape([int(n) for n in str(spec["shape"]).split(",")]) if "shape" in spec else a
    return np.asarray(spec)
