"""AppTest tests of the Streamlit app: every page opened on a small real cache, widgets exercised, drawings checked.

The module fixture writes ~48 tiny synthetic galaxies (32x32, with a WCS and a catalog.csv), trains a tiny model
with skips dropped at random (so both the full and the latent-only paths are drawn) and encodes the cache.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from astroae_core.analysis import beats_pca
from astroae_core.cache import load_cache

from .conftest import ROOT, TINY_RECIPE, blob_image

pytestmark = pytest.mark.slow

APP = ROOT / "dashboard" / "app.py"
PAGES = {
    "datasets": "app_pages/datasets.py",
    "reconstructions": "app_pages/reconstructions.py",
    "metrics": "app_pages/metrics.py",
    "sliders": "app_pages/sliders.py",
    "map": "app_pages/latent_map.py",
}


def _wcs(i: int, size: int) -> fits.Header:
    h = fits.Header()
    h.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=150.0 + 0.01 * i, CRVAL2=2.2, CRPIX1=(size + 1) / 2,
             CRPIX2=(size + 1) / 2, CDELT1=-3e-5, CDELT2=3e-5, OBJECT=f"blob {i}", BUNIT="e-/s")
    return h


def write_galaxies(folder: Path, n: int, *, size: int = 32, seed: int = 0) -> Path:
    """``n`` blob galaxies with WCS headers, a few with a bright trail (anomalies), and their ``catalog.csv``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        img = blob_image(rng, size)
        odd = i % 16 == 5
        if odd:
            img[size // 2, :] += 400.0  # a satellite trail
        name = f"obj_{i // 2:03d}_{i:03d}.fits"
        fits.PrimaryHDU(img, header=_wcs(i, size)).writeto(folder / name)
        rows.append({"file": name, "kind": "trail" if odd else "galaxy", "is_anomaly": odd,
                     "flux": float(img.sum()), "peak": float(img.max())})
    pd.DataFrame(rows).to_csv(folder / "catalog.csv", index=False)
    return folder


def build_env(root: Path, *, skip_mode: str = "dropout", n: int = 48, epochs: int = 3) -> dict:
    """Data root ``root/data`` (galaxies in ``blobs``), a tiny run in ``root/run``, the cache in ``root/cache``."""
    from astroae_core.cache import encode_folder
    from train.config import load_recipe
    from train.loop import train

    data_root = root / "data"
    data = write_galaxies(data_root / "blobs", n)
    recipe = root / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(skip_mode=skip_mode, epochs=epochs).replace("latent_dim = 4",
                                                                                     "latent_dim = 8"))
    train(load_recipe(recipe), data, root / "run", device="cpu")
    cache = encode_folder(root / "run" / "best.pt", data, root / "cache", progress=None)
    return {"data_root": data_root, "data": data, "cache": cache, "checkpoint": root / "run" / "best.pt"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    info = build_env(tmp_path_factory.mktemp("app"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASTROAE_DATA_ROOT", str(info["data_root"]))
        mp.setenv("ASTROAE_CACHE", str(info["cache"]))
        yield info


def new_app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=300)  # a loaded 2-core machine is slow


def open_page(name: str):
    at = new_app().run()
    if name != "datasets":
        at.switch_page(PAGES[name]).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at) -> dict:
    """Plotly charts drawn, by key: the figure as a dict."""
    return {el.key or el.proto.id: json.loads(el.proto.spec) for el in at.get("plotly_chart")}


def texts(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader]
    parts += [x.value for x in at.info] + [x.value for x in at.warning] + [x.value for x in at.success]
    return "\n".join(str(p) for p in parts)


def no_errors(at):
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


# ----------------------------------------------------------------------------------------------------------------


def test_every_page_opens_with_the_shared_sidebar(env):
    for name in PAGES:
        at = open_page(name)
        no_errors(at)
        assert at.title[0].value in {"Datasets & upload", "Reconstructions", "Metrics", "Latent sliders", "Latent map"}
        assert at.sidebar.selectbox(key="cache_path").value == str(env["cache"].resolve())
        assert at.sidebar.selectbox(key="stretch").value == "asinh"
        assert at.sidebar.selectbox(key="cmap").value == "gray"


def test_datasets_page_shows_the_cache_and_lists_folders(env):
    at = open_page("datasets")
    no_errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["images"] == "48" and metrics["latent size"] == "8"
    assert at.selectbox(key="enc_folder").options == ["blobs  (48 FITS files)"]
    assert "caches/blobs-run-best" in texts(at)


def test_encode_a_folder_from_the_page_and_switch_to_it(env):
    at = open_page("datasets")
    at.button(key="enc_go").click().run(timeout=300)
    no_errors(at)
    built = (env["data_root"] / "caches" / "blobs-run-best").resolve()
    assert (built / "meta.json").is_file()
    assert at.sidebar.selectbox(key="cache_path").value == str(built)  # the sidebar moved to the new cache
    assert any("Built the latent cache" in s.value for s in at.success)
    assert not at.sidebar.error  # its checkpoint (the configured cache's) is readable
    at.switch_page(PAGES["reconstructions"]).run()
    no_errors(at)
    assert "rec_fig" in charts(at)


def test_uploads_are_reconstructed_placed_and_bad_files_explained(env):
    at = open_page("datasets")
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    fits.PrimaryHDU(blob_image(rng, 40), header=_wcs(99, 40)).writeto(buf)  # another size than the model's
    at.file_uploader(key="uploader").set_value([("new_galaxy.fits", buf.getvalue(), "application/fits"),
                                                ("broken.fits", b"SIMPLE  = T / but nothing else", "application/fits")])
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1
    shown = errors[0].replace("\\", "")  # the markdown escapes are not displayed
    assert shown.startswith("**broken.fits**: ") and "truncated" in shown
    figs = charts(at)
    up = [k for k in figs if k.startswith("up_fig_")]
    assert len(up) == 1 and len(figs[up[0]]["data"]) == 3
    assert any(m.label == "MSE percentile" for m in at.metric)
    assert "Placed on the map" in texts(at)
    # the upload appears on the map as a star
    at.switch_page(PAGES["map"]).run()
    no_errors(at)
    names = [tr.get("name") for tr in charts(at)["map_chart"]["data"]]
    assert "uploads" in names


def test_reconstructions_pick_an_image_and_change_the_stretch(env):
    at = open_page("reconstructions")
    no_errors(at)
    figs = charts(at)
    assert set(figs) == {"rec_fig", "rec_fig_latent"}  # a model with skips: full and latent-only, labelled
    assert [tr["type"] for tr in figs["rec_fig"]["data"]] == ["heatmap"] * 3
    assert "Latent-only reconstruction" in texts(at)
    assert len(at.metric) == 4 and at.metric[0].label == "MSE"
    assert "RA 150." in texts(at)  # sky position from the WCS
    assert len(at.get("download_button")) == 2
    first = at.selectbox(key="rec_pick").value
    first_fig = charts(at)["rec_fig"]["data"][0]["z"]
    t = at.session_state["ctx"].table
    other = t["id"].iloc[5] if t["id"].iloc[5] != first else t["id"].iloc[6]
    at.selectbox(key="rec_pick").set_value(other).run()
    no_errors(at)
    assert at.selectbox(key="rec_pick").value == other and at.session_state["selected_id"] == other
    assert f"`{other}.fits`" in texts(at)  # the file line follows the choice
    before = charts(at)["rec_fig"]["data"][0]["z"]
    assert before != first_fig  # another image is drawn
    at.sidebar.selectbox(key="stretch").set_value("zscale").run()
    no_errors(at)
    after = charts(at)["rec_fig"]["data"][0]["z"]
    assert after != before
    # search narrows the choice
    at.text_input(key="rec_query").input("obj_003").run()
    no_errors(at)
    assert all("obj_003" in o for o in at.selectbox(key="rec_pick").options[1:])


def test_start_the_sliders_from_the_image_on_screen(env):
    at = open_page("reconstructions")
    image_id = at.session_state["ctx"].table["id"].iloc[3]
    at.selectbox(key="rec_pick").set_value(image_id).run()
    [b for b in at.button if b.label == "Start the sliders here"][0].click().run()
    no_errors(at)
    assert at.title[0].value == "Latent sliders"
    assert at.radio(key="slider_start").value == "chosen image"
    assert at.selectbox(key="sl_pick").value == image_id


def test_reconstruction_download_is_fits_in_flux_units_with_the_header(env):
    from astroae_core import load_model, read_fits
    from astroae_core.analysis import reconstruct
    from astroae_core.io import reconstruction_fits_bytes

    model = load_model(env["checkpoint"])
    path = sorted(env["data"].glob("*.fits"))[0]
    image, header = read_fits(path)
    rec = reconstruct(model, image)
    raw = reconstruction_fits_bytes(rec.flux_hat, header, model_sha="x" * 64, source=path.name)
    with fits.open(io.BytesIO(raw)) as hdul:
        assert hdul[0].data.shape == image.shape and hdul[0].header["OBJECT"] == header["OBJECT"]
        # flux units: the inverse of the model's normalization, inside the original's range, not [0, 1]
        np.testing.assert_allclose(hdul[0].data, rec.norm.invert(rec.x_hat, to_original_shape=True), rtol=1e-6)
        assert image.min() - 1e-3 <= hdul[0].data.min() and hdul[0].data.max() <= image.max() + 1e-3
        assert hdul[0].data.max() > 5


def test_metrics_page_states_what_the_latent_carries(env):
    at = open_page("metrics")  # the cache measured it at encode time: shown at once, no button
    no_errors(at)
    figs = charts(at)
    assert {"hist_fig", "train_fig", "baseline_fig"} <= set(figs)
    assert len(figs["train_fig"]["data"]) == 4  # train/val loss, val MSE full/latent-only
    assert len(at.image) >= 1  # worst reconstructions gallery
    said = texts(at)
    assert "How much of the image the 8 numbers carry: decoded from them alone" in said
    assert "PCA with 8 components" in said and "from the latent alone" in said
    assert "the full model, whose skip connections pass the image around the numbers" in said  # a dropout model
    assert "latent sliders decode from the numbers alone" in said
    assert not [b for b in at.button if b.key == "eval_btn"]
    ev = at.session_state["ctx"].cache.meta.evaluation
    labels = {m.label: m.value for m in at.metric}
    assert labels["effective dimensionality"] == f"{ev['effective_dim']:.2f} / 8"
    assert labels["latent-only MSE ÷ PCA MSE"] == f"{ev['latent_vs_pca_mse']:.2f}"
    assert "validation split" in texts(at)
    # the catalog has a kind column: the error is split by kind, rows adding up to the images evaluated
    assert "Where the error lies, by the catalog's kind" in texts(at)
    by_kind = next(df.value for df in at.dataframe if "kind" in df.value.columns)
    assert set(by_kind["kind"]) == set(ev["by_kind"]) and by_kind["images"].sum() == ev["n_images"]


def _copy_cache(env, dest: Path) -> dict:
    """Copy the cache to ``dest``, its meta still naming the original's checkpoint and data folder (paths in
    meta.json are relative to the cache folder). Returns the copy's meta, for changes."""
    import os
    import shutil

    shutil.copytree(env["cache"], dest)
    meta = json.loads((dest / "meta.json").read_text())
    meta["checkpoint"]["path"] = Path(os.path.relpath(env["checkpoint"].resolve(), dest.resolve())).as_posix()
    meta["data_dir"] = Path(os.path.relpath(env["data"].resolve(), dest.resolve())).as_posix()
    (dest / "meta.json").write_text(json.dumps(meta))
    return meta


def _old_cache(env, tmp_path):
    """A copy of the cache as the encoder wrote it before caches stored the influence and the evaluation."""
    old = tmp_path / "old_cache"
    meta = _copy_cache(env, old)
    meta.pop("influence"), meta.pop("evaluation")
    (old / "meta.json").write_text(json.dumps(meta))
    return old


def test_an_older_cache_computes_the_evaluation_and_the_influence_on_demand(env, tmp_path, monkeypatch):
    monkeypatch.setenv("ASTROAE_CACHE", str(_old_cache(env, tmp_path)))
    at = open_page("metrics")
    no_errors(at)
    assert "built before caches stored one" in texts(at) and "baseline_fig" not in charts(at)
    at.button(key="eval_btn").click().run()
    no_errors(at)
    assert "How much of the image the 8 numbers carry" in texts(at) and "baseline_fig" in charts(at)
    # sliders: influence measured now (on the previews), close to what the cache stores
    at.switch_page(PAGES["sliders"]).run()
    no_errors(at)
    stored = json.loads((env["cache"] / "meta.json").read_text())["influence"]
    bars = charts(at)["inf_fig"]["data"][0]["y"]
    bars = np.asarray(bars if isinstance(bars, list) else _plotly_array(bars))
    assert bars.shape == (8,) and np.isfinite(bars).all() and (bars >= 0).all()
    # another sample and thumbnails for the data's spread, but the same measure: the same order of magnitude
    assert 0.5 < bars.mean() / np.mean(stored["vs_data"]) < 2


def test_the_baselines_can_be_fitted_on_training_images_in_another_folder(env, tmp_path, monkeypatch):
    import shutil

    from astroae_core.cache import encode_folder

    root = tmp_path / "root"  # new images, and a copy of the training images (known by their pixels) beside them
    shutil.copytree(env["data"], root / "blobs")
    fresh = write_galaxies(root / "fresh", 6, seed=11)
    cache = encode_folder(env["checkpoint"], fresh, root / "caches" / "fresh")
    monkeypatch.setenv("ASTROAE_DATA_ROOT", str(root))
    monkeypatch.setenv("ASTROAE_CACHE", str(cache))
    at = open_page("metrics")
    assert "The cache could not measure it when it was built" in texts(at)
    choice = at.selectbox(key="eval_train")
    assert choice.value == "" and "blobs" in choice.options  # the cache's own images first, then the data root's
    at.button(key="eval_btn").click().run()  # no training image among the cache's own: said, not raised
    assert not at.exception and [e.value for e in at.error if e.value.startswith("Cannot evaluate")]
    at.selectbox(key="eval_train").set_value("blobs").run()
    at.button(key="eval_btn").click().run()
    no_errors(at)
    assert "How much of the image the 8 numbers carry" in texts(at) and "baseline_fig" in charts(at)


def _plotly_array(spec):
    """A plotly.py typed array (``{"dtype": "f8", "bdata": base64}``) as numpy."""
    import base64

    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=np.dtype(spec["dtype"]))


def slider_image(at) -> str:
    """The URL (content-addressed by Streamlit's media store) of the live decoded image."""
    urls = [im.value[0] for im in at.image if im.captions and im.captions[0].startswith("Decoded from the")]
    assert len(urls) == 1, [im.captions for im in at.image]
    return urls[0]


def test_sliders_decode_live_reset_and_explain_skips(env):
    at = open_page("sliders")
    no_errors(at)
    assert len(at.slider) == 8
    assert "skip connections" in texts(at) and "as much as the real ones" in texts(at)
    figs = charts(at)
    assert {"trav_fig", "interp_fig", "inf_fig"} <= set(figs)
    before = slider_image(at)
    s = at.slider(key="sl_z0")
    start = s.value
    s.set_value(s.max if s.value < s.max else s.min).run()
    no_errors(at)
    assert slider_image(at) != before  # another decoded image (its bytes differ)
    at.button(key="sl_reset").click().run()
    assert at.slider(key="sl_z0").value == pytest.approx(start)
    assert slider_image(at) == before
    # the slider labels show the influence the cache stored
    stored = at.session_state["ctx"].cache.meta.influence["vs_data"]
    assert at.slider(key="sl_z1").label.startswith(f"z1 · influence {stored[1]:.2f}")
    # leaving the page and coming back keeps the sliders where they were
    s = at.slider(key="sl_z2")
    s.set_value(s.min).run()
    moved = at.slider(key="sl_z2").value
    at.switch_page(PAGES["map"]).run()
    at.switch_page(PAGES["sliders"]).run()
    no_errors(at)
    assert at.slider(key="sl_z2").value == pytest.approx(moved)
    # start from a chosen image: the sliders move to its latent
    at.radio(key="slider_start").set_value("chosen image").run()
    no_errors(at)
    assert at.selectbox(key="sl_pick").value is not None
    assert [round(at.slider(key=f"sl_z{d}").value, 3) for d in range(8)] != [0.0] * 8
    assert len(charts(at)["trav_fig"]["layout"]["yaxis"]["ticktext"]) == 8


def test_map_click_and_selection(env):
    from astroae_core.cache import load_cache

    t = load_cache(env["cache"]).table
    at = open_page("map")
    no_errors(at)
    fig = charts(at)["map_chart"]
    assert {tr["type"] for tr in fig["data"]} == {"scattergl"}
    assert "outliers" in [tr.get("name") for tr in fig["data"]]
    assert "Click a point" in texts(at)
    # colour by a catalog label: one trace per value
    at.selectbox(key="map_color").set_value("catalog.kind").run()
    no_errors(at)
    assert {"galaxy", "trail"} <= {tr.get("name") for tr in charts(at)["map_chart"]["data"]}
    # a click (what the chart's callback stores): the image and its neighbours appear
    at.session_state["selected_id"] = t["id"][3]
    at.run()
    no_errors(at)
    assert f"Chosen: {Path(t['path'][3]).name}" in texts(at)
    assert "chosen image" in [tr.get("name") for tr in charts(at)["map_chart"]["data"]]
    assert len(at.image) >= 1 + 8  # the chosen image and its 8 neighbours
    # a box / lasso selection: gallery and CSV
    ids = list(t["id"][:5])
    at.session_state["map_selection_ids"] = ids
    at.run()
    no_errors(at)
    assert "Selection (5 images)" in texts(at)
    assert "Download the selection as CSV" in [d.proto.label for d in at.get("download_button")]
    assert len(at.image) >= 1 + 8 + 5  # chosen image, its neighbours, the selection's gallery
    # the same rows go to the CSV
    from astroae_core.io.export import export_csv_bytes

    out = pd.read_csv(io.BytesIO(export_csv_bytes(t[t["id"].isin(ids)], data_folder=env["data"])))
    assert list(out["id"].astype(str)) == ids and {"ra", "dec", "anomaly_score"} <= set(out.columns)


def test_open_from_the_map_jumps_to_reconstructions(env):
    at = open_page("map")
    image_id = at.session_state["ctx"].table["id"].iloc[7]
    at.session_state["selected_id"] = image_id
    at.run()
    [b for b in at.button if b.label == "Open in Reconstructions"][0].click().run()
    no_errors(at)
    assert at.title[0].value == "Reconstructions"
    assert at.selectbox(key="rec_pick").value == image_id


def test_without_a_cache_every_page_says_what_to_do(env, tmp_path, monkeypatch):
    monkeypatch.setenv("ASTROAE_CACHE", str(tmp_path / "nothing_here"))
    for name in PAGES:
        at = open_page(name)
        no_errors(at)
        said = texts(at)
        assert "No latent cache" in said, name


def test_a_cache_whose_files_lie_outside_the_data_root_is_refused(env, tmp_path, monkeypatch):
    other_root = tmp_path / "other"
    _copy_cache(env, other_root / "caches" / "copy")
    monkeypatch.setenv("ASTROAE_DATA_ROOT", str(other_root))
    monkeypatch.setenv("ASTROAE_CACHE", str(tmp_path / "none"))  # nothing configured, so nothing else trusted
    at = open_page("datasets")
    choice = str((other_root / "caches" / "copy").resolve())
    assert "caches/copy" in at.sidebar.selectbox(key="cache_path").options  # found under the data root
    at.sidebar.selectbox(key="cache_path").set_value(choice).run()
    assert not at.exception
    assert any("outside the folders the app may read" in e.value for e in at.sidebar.error)


def test_metrics_page_gives_the_verdict_on_the_validation_images(env):
    at = open_page("metrics")
    no_errors(at)
    ev = load_cache(env["cache"]).meta.evaluation
    assert ev["images"] == "validation"
    boxes = [x.value for x in at.success] + [x.value for x in at.warning]
    want = "beat PCA-8" if beats_pca(ev) else "no better than PCA-8"
    assert any("On the checkpoint's validation images" in b and want in b for b in boxes), boxes


def test_a_cache_far_from_the_models_training_warns_on_every_page(ceers_dir, tmp_path, monkeypatch):
    import shutil

    from astroae_core.cache import encode_folder

    data = tmp_path / "data" / "real"
    data.mkdir(parents=True)
    for f in sorted(ceers_dir.glob("*/*.fits"))[:4]:  # real JWST galaxies, the GalSim demo's model
        shutil.copy(f, data / f.name)
    cache = encode_folder(ROOT / "models" / "demo.pt", data, tmp_path / "cache")
    monkeypatch.setenv("ASTROAE_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("ASTROAE_CACHE", str(cache))
    for name in ("datasets", "metrics"):
        at = open_page(name)
        warnings = [w.value for w in at.sidebar.warning]
        assert any("far from what the model was trained on" in w for w in warnings), warnings
    # an upload of such an image says so too
    from astroae_core.analysis import process_upload
    from astroae_core.model import load_model

    f = sorted(data.glob("*.fits"))[0]
    up = process_upload(f.name, f.read_bytes(), load_model(ROOT / "models" / "demo.pt"), load_cache(cache))
    assert up.ok and up.training_distance["far"]


def test_a_model_trained_on_every_image_quotes_its_crossvalidation(env, tmp_path, monkeypatch):
    """A recipe chosen by cross-validation and trained on every image has no held-out images of its own: the
    Metrics page quotes the folds' figures stored in its checkpoint, and its training curve has no validation."""
    from astroae_core.cache import encode_folder
    from train.config import load_recipe
    from train.loop import train

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE.format(skip_mode="none", epochs=2).replace("latent_dim = 4", "latent_dim = 8"))
    spread = lambda *v: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)), "min": min(v), "max": max(v),
                         "values": list(v)}
    cv = {"folds": 3, "group_regex": "auto", "n_images": 16, "latent_vs_pca_mse": spread(0.61, 0.72, 0.83),
          "latent_mse": spread(1e-3, 2e-3, 3e-3),
          "latent_ssim": spread(0.9, 0.91, 0.92), "pca_ssim": spread(0.88, 0.89, 0.9),
          "effective_dim": spread(4.5, 5.0, 5.5), "robustness": {"fainter": spread(0.7, 0.8, 0.9)}}
    train(load_recipe(recipe).replace(val_fraction=0, synthetic=16, synthetic_epochs=1), env["data"],
          tmp_path / "run", device="cpu", crossval=cv)
    cache = encode_folder(tmp_path / "run" / "last.pt", env["data"], tmp_path / "cache")
    monkeypatch.setenv("ASTROAE_CACHE", str(cache))
    at = open_page("metrics")
    no_errors(at)
    said = texts(at)
    assert "cross-validated over 3 folds grouped by object" in said
    assert "**0.72 ± 0.11 × PCA-8's MSE** (below 1 beats PCA; folds 0.61–0.83)" in said
    assert "10× fainter, 0.80" in said
    # every image of the cache trained it: no comparison with PCA is offered on them, the folds stand for it
    assert "Every image in this cache is one" in said and "the cross-validation above does" in said
    assert not [b for b in at.button if b.key == "eval_btn"]
    fig = charts(at)["train_fig"]
    assert [trace["name"] for trace in fig["data"]] == ["train loss"]
    assert "validation MSE: none (trained on every image)" in [a["text"] for a in fig["layout"]["annotations"]]
    assert "no validation split, the last epoch is the model" in said
    assert "after 1 epoch on 16 synthetic GalSim galaxies (not shown)" in said
