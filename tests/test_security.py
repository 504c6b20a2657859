"""Untrusted inputs and the app's guards: checkpoints that would run code or lie about their model, uploads that are
not FITS, paths that try to leave the data root, the server's binding / XSRF / upload limit, and sessions that must
not see each other's state.
"""

from __future__ import annotations

import ast
import io
import json
import os
import pickle
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from astroae_core import load_model
from astroae_core.model import CheckpointError, read_checkpoint, save_checkpoint
from astroae_core.model import AutoEncoder, ModelConfig
from astroae_core.data import PreprocessConfig
from dashboard import paths

from .conftest import ROOT, blob_image

CONFIG = ROOT / ".streamlit" / "config.toml"
APP = ROOT / "dashboard" / "app.py"


def _model(latent_dim: int = 3) -> AutoEncoder:
    torch.manual_seed(0)
    return AutoEncoder(ModelConfig(in_size=32, channels=(4, 8), latent_dim=latent_dim, skip_mode="none"),
                       preprocess_config=PreprocessConfig(size=32, method="minmax"))


# ----------------------------------------------------------------------------------------------------------------
# untrusted checkpoints


class _RunsCode:
    """Unpickling this runs a shell command (what a hostile checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _evil_payload(marker: Path) -> dict:
    return {"format": "astroae-checkpoint/1", "model_config": _model().config.to_dict(),
            "preprocess_config": {"size": 32, "method": "minmax"}, "state_dict": {}, "extra": _RunsCode(marker)}


@pytest.mark.parametrize("kind", ["torch-zip", "torch-legacy", "plain-pickle"])
def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(tmp_path, kind):
    marker = tmp_path / "code_ran"
    path = tmp_path / f"evil-{kind}.pt"
    if kind == "plain-pickle":
        path.write_bytes(pickle.dumps(_evil_payload(marker)))
    else:
        torch.save(_evil_payload(marker), path, _use_new_zipfile_serialization=kind == "torch-zip")

    # the file really is hostile: an unguarded load runs the command
    if kind == "plain-pickle":
        pickle.loads(path.read_bytes())  # noqa: S301 - on purpose
    else:
        torch.load(path, weights_only=False)
    assert marker.exists(), "the crafted file does not run code: the test would prove nothing"
    marker.unlink()

    with pytest.raises(CheckpointError) as info:
        load_model(path)
    assert str(path) in str(info.value)
    if kind != "plain-pickle":  # torch's own format: refused for what it holds
        assert "could run code" in str(info.value)
    with pytest.raises(CheckpointError):
        read_checkpoint(path)
    assert not marker.exists()

    # the paths that load checkpoints for the user refuse it too
    from astroae_core.cache import encode_folder

    data = tmp_path / "data"
    data.mkdir()
    fits.PrimaryHDU(blob_image(np.random.default_rng(0), 32)).writeto(data / "a.fits")
    with pytest.raises(CheckpointError, match=path.name):
        encode_folder(path, data, tmp_path / "cache")
    assert not marker.exists() and not (tmp_path / "cache").exists()


def _good(tmp_path: Path) -> dict:
    return read_checkpoint(save_checkpoint(tmp_path / "good.pt", _model()))


def _first_weight(ck: dict) -> str:
    return next(iter(ck["state_dict"]))


BROKEN = {
    "config-not-a-dict": (lambda ck: {**ck, "model_config": "garbage"}, "model_config is a str, not a dict"),
    "config-unknown-key": (lambda ck: {**ck, "model_config": {**ck["model_config"], "bogus": 1}},
                           "unknown model config keys: ['bogus']"),
    "config-bad-value": (lambda ck: {**ck, "model_config": {**ck["model_config"], "skip_mode": "nope"}},
                         "skip_mode must be one of"),
    "config-missing": (lambda ck: {k: v for k, v in ck.items() if k != "model_config"}, "missing ['model_config']"),
    "preprocess-missing": (lambda ck: {k: v for k, v in ck.items() if k != "preprocess_config"},
                           "missing ['preprocess_config']"),
    "preprocess-bad": (lambda ck: {**ck, "preprocess_config": {**ck["preprocess_config"], "method": "zz"}},
                       "method must be one of"),
    "weights-not-a-dict": (lambda ck: {**ck, "state_dict": "x"}, "state_dict is not a dict"),
    "weights-not-tensors": (lambda ck: {**ck, "state_dict": {k: 1 for k in ck["state_dict"]}},
                            "state_dict is not a dict"),
    "weights-missing": (lambda ck: {**ck, "state_dict": dict(list(ck["state_dict"].items())[1:])},
                        "weights do not match its model config (missing: "),
    "weights-unexpected": (lambda ck: {**ck, "state_dict": {**ck["state_dict"], "evil": torch.zeros(1)}},
                           "unexpected: evil"),
    "weights-wrong-shape": (lambda ck: {**ck, "state_dict": {**ck["state_dict"], _first_weight(ck): torch.zeros(3)}},
                            "wrong shapes: "),
    "config-other-latent-size": (lambda ck: {**ck, "model_config": {**ck["model_config"], "latent_dim": 5}},
                                 "the config needs"),
    # a config describing a model of 10^13 parameters: refused by comparing shapes, never allocated
    "config-gigantic-model": (lambda ck: {**ck, "model_config": {**ck["model_config"], "in_size": 10**6}},
                              "the config needs (3, 2000000000000)"),
    "not-astroae": (lambda ck: {"weights": torch.zeros(2)}, "is not an astroae checkpoint"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_checkpoint_gives_a_clear_error_naming_the_file(tmp_path, case):
    change, expected = BROKEN[case]
    path = tmp_path / f"{case}.pt"
    torch.save(change(_good(tmp_path)), path)
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and expected in message, message


# ----------------------------------------------------------------------------------------------------------------
# the server's settings: localhost, XSRF, upload limit


def test_config_binds_to_localhost_keeps_xsrf_and_limits_uploads():
    cfg = tomllib.loads(CONFIG.read_text())
    server = cfg["server"]
    assert server["address"] in ("localhost", "127.0.0.1")
    assert server["enableXsrfProtection"] is True
    assert server.get("enableCORS", True) is True
    assert server["maxUploadSize"] == 200
    assert cfg["browser"]["gatherUsageStats"] is False
    assert cfg["client"]["showErrorDetails"] not in (True, "full", "stacktrace")  # no tracebacks to visitors


def test_streamlit_resolves_these_settings_from_the_repository():
    """What Streamlit itself reads from .streamlit/config.toml (a misspelt option would silently not apply)."""
    code = ("import json; from streamlit import config; config.get_config_options(force_reparse=True); "
            "print(json.dumps({k: config.get_option(k) for k in ('server.address', 'server.enableXsrfProtection', "
            "'server.enableCORS', 'server.maxUploadSize', 'browser.gatherUsageStats', 'client.showErrorDetails')}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"server.address": "localhost", "server.enableXsrfProtection": True, "server.enableCORS": True,
                   "server.maxUploadSize": 200, "browser.gatherUsageStats": False, "client.showErrorDetails": "type"}


def test_the_run_script_keeps_the_binding_and_xsrf():
    script = (ROOT / "scripts" / "app.sh").read_text()
    assert 'cd "$(dirname "$0")/.."' in script  # Streamlit reads .streamlit/config.toml from the repository root
    assert "streamlit run dashboard/app.py" in script
    for weakening in ("server.address", "0.0.0.0", "enableXsrfProtection", "enableCORS", "maxUploadSize"):
        assert weakening not in script, weakening


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of the sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in fh.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, p = local.split(":")
                if int(p, 16) == port and state == "0A":  # LISTEN
                    out.append(addr)
    return out


_LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


@pytest.mark.slow
def test_the_server_listens_on_loopback_only_and_refuses_uploads_without_the_xsrf_token(tmp_path):
    if not Path("/proc/net/tcp").is_file():
        pytest.skip("needs /proc/net/tcp (Linux) to see where the server listens")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env.update(ASTROAE_CACHE=str(tmp_path / "none"), ASTROAE_DATA_ROOT=str(tmp_path))
    # as scripts/app.sh runs it: from the repository root, no address given
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "dashboard/app.py", "--server.port", str(port),
                             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not _listening_addresses(port):
            assert proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start listening"
            time.sleep(0.25)
        time.sleep(1.0)  # both address families, if any
        addresses = _listening_addresses(port)
        assert addresses and set(addresses) <= _LOOPBACK, addresses
        url = f"http://127.0.0.1:{port}"
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "no health answer"
                time.sleep(0.25)
        req = urllib.request.Request(url + "/_stcore/upload_file/some-session/some-file", method="PUT",
                                     data=b"--x\r\n\r\n--x--\r\n",
                                     headers={"Content-Type": "multipart/form-data; boundary=x"})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=10)
        assert info.value.code == 403  # XSRF protection on: refused before anything else
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=20)


# ----------------------------------------------------------------------------------------------------------------
# the data root: no way out


@pytest.fixture
def tree(tmp_path):
    """data/ with sub/ and links: one pointing inside, two pointing out (a folder and a file); outside/ beside it."""
    root, outside = tmp_path / "data", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.fits").write_bytes(b"SIMPLE")
    (root / "sub" / "x.fits").write_bytes(b"SIMPLE")
    os.symlink(outside, root / "link_out")
    os.symlink(outside / "secret.fits", root / "sub" / "file_out.fits")
    os.symlink(root / "sub", root / "link_in")
    return root.resolve(), outside.resolve()


SEGMENTS = ["..", ".", "sub", "link_out", "link_in", "x.fits", "file_out.fits", "secret.fits", "outside", "data", "",
            "~", "nope"]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(parts=st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=6), absolute=st.booleans())
def test_resolve_within_never_returns_a_path_outside_the_root(tmp_path_factory, parts, absolute):
    root = Path(tmp_path_factory.getbasetemp()) / "guard"
    if not root.exists():
        (root / "data" / "sub").mkdir(parents=True)
        (root / "outside").mkdir()
        os.symlink(root / "outside", root / "data" / "link_out")
        os.symlink(root / "data" / "sub", root / "data" / "link_in")
        os.symlink(root / "outside", root / "data" / "sub" / "file_out.fits")
    data = (root / "data").resolve()
    raw = "/".join(parts)
    path = str(data / raw) if absolute else raw
    real = Path(os.path.realpath(data / Path(path).expanduser()))  # the guard expands a leading "~" too
    try:
        got = paths.resolve_within(path, [data])
    except paths.PathNotAllowed as exc:
        assert str(path) in str(exc)
        assert not (real == data or real.is_relative_to(data)), f"{raw!r} -> {real} is inside but was refused"
        return
    assert got == real
    assert got == data or got.is_relative_to(data), f"{raw!r} escaped to {got}"


def test_the_folder_finder_offers_no_folder_outside_the_root(tree):
    root, outside = tree
    (outside / "more.fits").write_bytes(b"SIMPLE")
    found = paths.find_data_folders(root)
    assert [f for f, _ in found] == ["sub"]  # link_out (outside) and link_in (an alias) are not followed
    for folder, _ in found:
        assert paths.resolve_within(folder, [root]).is_relative_to(root)
    assert paths.find_caches([root]) == []


def test_an_app_encode_reads_nothing_outside_the_folders_it_may_read(tmp_path):
    from astroae_core.cache import encode_folder, load_cache
    from astroae_core.analysis import evaluate

    root, outside = tmp_path / "root", tmp_path / "outside"
    data = root / "data"
    data.mkdir(parents=True)
    outside.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        fits.PrimaryHDU(blob_image(rng, 32)).writeto(data / f"in{i}.fits")
    for i in range(5):
        fits.PrimaryHDU(blob_image(rng, 32)).writeto(outside / f"secret{i}.fits")
    os.symlink(outside / "secret0.fits", data / "linked.fits")
    (outside / "catalog.csv").write_text("file,size\nin0.fits,1.0\n")
    os.symlink(outside / "catalog.csv", data / "catalog.csv")
    # a checkpoint trained on the folder outside (its baselines would read it)
    from astroae_core.io import read_fits
    from astroae_core.io.content_hash import pixel_hash

    secrets = [f"secret{i}.fits" for i in range(5)]
    ckpt = save_checkpoint(tmp_path / "tiny.pt", _model(latent_dim=3),
                           data={"train_hashes": [pixel_hash(read_fits(outside / f)[0]) for f in secrets],
                                 "val_hashes": [], "train_paths": secrets, "val_paths": []})

    plain = load_cache(encode_folder(ckpt, data, tmp_path / "cli", train_data=outside))
    assert "linked.fits" in set(plain.table["path"])  # the command line follows the user's own links
    assert plain.table.set_index("path").loc["linked.fits", "split"] == "train"  # recognised by its pixels
    assert "catalog.size" in plain.table.columns
    assert plain.meta.evaluation.get("n_train_images_for_baselines") == 5

    confined = load_cache(encode_folder(ckpt, data, tmp_path / "app", confine_to=[root]))
    assert "linked.fits" not in set(confined.table["path"]) and len(confined.table) == 6
    reasons = {s.path: s.reason for s in confined.meta.skipped}
    assert "outside the folders that may be read" in reasons["linked.fits"]
    assert "catalog.size" not in confined.table.columns and confined.catalog_columns == []  # not joined
    assert "none of the checkpoint's 5 training images" in confined.meta.evaluation["error"]
    with pytest.raises(ValueError, match="lies outside the folders that may be read"):
        encode_folder(ckpt, outside, tmp_path / "app2", confine_to=[root])
    with pytest.raises(ValueError, match="training folder .* lies outside"):
        encode_folder(ckpt, data, tmp_path / "app3", confine_to=[root], train_data=outside)
    with pytest.raises(ValueError, match="outside.* lies outside the folders that may be read"):
        evaluate(ckpt, data, train_data=outside, confine_to=[root])


# ----------------------------------------------------------------------------------------------------------------
# the app: uploads, the folder picker, sessions (AppTest on a tiny cache)


@pytest.fixture(scope="module")
def app_env(tmp_path_factory):
    """A data root with 4 small galaxies, an untrained tiny model (8 latents) and its cache (PCA map, no UMAP)."""
    from astroae_core.cache import encode_folder

    from .test_app_pages import write_galaxies

    root = tmp_path_factory.mktemp("security_app")
    data_root = root / "data"
    data = write_galaxies(data_root / "blobs", 4)
    ckpt = save_checkpoint(root / "model" / "tiny.pt", _model(latent_dim=8))
    cache = encode_folder(ckpt, data, root / "cache")
    (root / "outside").mkdir()
    for i in range(2):
        fits.PrimaryHDU(blob_image(np.random.default_rng(i), 32)).writeto(root / "outside" / f"o{i}.fits")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ASTROAE_DATA_ROOT", str(data_root))
        mp.setenv("ASTROAE_CACHE", str(cache))
        yield {"root": root, "data_root": data_root, "data": data, "cache": cache, "checkpoint": ckpt}


def _app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=120)


def _fits_bytes(data, header=None) -> bytes:
    buf = io.BytesIO()
    fits.PrimaryHDU(data, header=header).writeto(buf)
    return buf.getvalue()


def _lying_header() -> bytes:
    raw = bytearray(_fits_bytes(np.zeros((20, 20), np.float32)))
    for key in (b"NAXIS1", b"NAXIS2"):
        at = raw.index(key.ljust(8) + b"= ")
        raw[at : at + 80] = f"{key.decode():<8}= {10**5:>20}".encode().ljust(80)
    return bytes(raw)


@pytest.mark.slow
def test_uploads_that_are_not_usable_fits_give_a_message_not_a_crash(app_env):
    import gzip

    bad = {
        "notes.fits": b"just some text, not FITS\n" * 10,
        "empty.fits": b"",
        "huge_claim.fits": _lying_header(),  # says 10^5 x 10^5: refused without allocating it
        "cut.fits.gz": gzip.compress(_fits_bytes(np.ones((20, 20), np.float32)))[:60],
        "spectrum.fits": _fits_bytes(np.arange(30, dtype=np.float32)),
        "all_nan.fits": _fits_bytes(np.full((8, 8), np.nan, np.float32)),
    }
    at = _app().run()
    at.file_uploader(key="uploader").set_value([(name, data, "application/fits") for name, data in bad.items()])
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value.replace("\\", "") for e in at.error]  # markdown escapes are not displayed
    assert len(errors) == len(bad), errors
    for name in bad:
        shown = [e for e in errors if e.startswith(f"**{name}**: ")]
        assert len(shown) == 1 and len(shown[0]) > len(name) + 15, (name, errors)
    assert not any("Placed on the map" in m.value for m in at.markdown)


@pytest.mark.slow
def test_a_file_type_the_uploader_does_not_accept_never_reaches_the_app(app_env):
    """The browser's picker only offers FITS suffixes; a request that bypasses it is refused by Streamlit itself."""
    import astroae_core.analysis

    seen = []
    real = astroae_core.analysis.process_upload

    def spy(name, data, *args, **kwargs):
        seen.append(name)
        return real(name, data, *args, **kwargs)

    at = _app().run()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(astroae_core.analysis, "process_upload", spy)
        at.file_uploader(key="uploader").set_value([("script.py", b"import os\nos.system('id')\n", "text/x-python")])
        at.run()
    assert seen == []
    # Streamlit refuses the file before any page code runs. The browser sees only that an error happened: the
    # details are hidden from clients (client.showErrorDetails), so nothing of the file or the server leaks.
    shown = [str(e.value) for e in at.exception]
    assert shown, "the refused upload should show an error, not pass silently"
    assert all("invalid file extension" in m.lower() or "redacted" in m.lower() for m in shown), shown
    assert not any("os.system" in m for m in shown)


@pytest.mark.slow
def test_the_encode_button_refuses_folders_outside_the_data_root(app_env, monkeypatch):
    """Even if the picker offered a path out (a bug, a crafted state), the guard behind the button refuses it."""
    from dashboard import loaders

    outside = app_env["root"] / "outside"
    os.symlink(outside, app_env["data_root"] / "link_out")
    try:
        escapes = ["../outside", str(outside), "link_out", "blobs/../../outside"]
        monkeypatch.setattr(loaders, "find_data_folders", lambda root: [(e, 2) for e in escapes])
        for escape in escapes:
            at = _app().run()
            at.selectbox(key="enc_folder").set_value(escape)
            at.button(key="enc_go").click().run()
            assert not at.exception, [e.value for e in at.exception]
            assert any("outside the folders the app may read" in e.value for e in at.error), escape
        assert not (app_env["data_root"] / "caches").exists()  # nothing was encoded
        assert not list(outside.rglob("meta.json"))
    finally:
        (app_env["data_root"] / "link_out").unlink()


@pytest.mark.slow
def test_one_sessions_state_never_appears_in_another(app_env):
    from .test_app_pages import PAGES

    a = _app().run()
    a.file_uploader(key="uploader").set_value([("mine.fits", _fits_bytes(blob_image(np.random.default_rng(5), 32)),
                                                "application/fits")])
    a.run()
    assert not a.exception and any("Placed on the map" in m.value for m in a.markdown)
    table = pd.read_parquet(app_env["cache"] / "latents.parquet")
    chosen = table["id"].iloc[-1]
    a.session_state["selected_id"] = chosen
    a.switch_page(PAGES["sliders"]).run()
    a.slider(key="sl_z0").set_value(a.slider(key="sl_z0").max).run()
    a.sidebar.selectbox(key="cmap").set_value("viridis").run()
    assert not a.exception, [e.value for e in a.exception]
    moved = a.session_state["slider_z"][0]

    b = _app().run()  # a second visitor, same server process, same cached model and cache
    assert not b.exception
    assert not b.session_state["uploads"]
    assert not any("mine.fits" in m.value for m in b.markdown)
    assert b.sidebar.selectbox(key="cmap").value == "gray"
    assert "selected_id" not in b.session_state
    b.switch_page(PAGES["sliders"]).run()
    assert b.session_state["slider_z"][0] != moved
    b.switch_page(PAGES["map"]).run()
    names = [tr.get("name") for tr in json.loads(b.get("plotly_chart")[0].proto.spec)["data"]]
    assert "uploads" not in names  # a's upload is not on b's map
    assert not any(h.value.startswith("Chosen:") for h in b.subheader)


@pytest.mark.slow
def test_sessions_do_not_change_the_shared_model_or_cache(app_env):
    """What st.cache_resource shares between sessions is read, never modified, by what a session does."""
    from .test_app_pages import PAGES

    at = _app().run()
    at.file_uploader(key="uploader").set_value([("x.fits", _fits_bytes(blob_image(np.random.default_rng(9), 40)),
                                                 "application/fits")])
    at.run()
    at.switch_page(PAGES["reconstructions"]).run()
    at.switch_page(PAGES["sliders"]).run()
    at.slider(key="sl_z1").set_value(at.slider(key="sl_z1").min).run()
    at.switch_page(PAGES["map"]).run()
    assert not at.exception, [e.value for e in at.exception]

    ckpt, cache_dir = app_env["checkpoint"], app_env["cache"]
    ctx = at.session_state["ctx"]  # the objects this session got from st.cache_resource, shared with every session
    model, cache = ctx.cache_model, ctx.cache
    assert not model.training
    # the app serves the checkpoint with its BatchNorms folded in (fused_for_inference): compare with that
    from astroae_core.model import load_model
    from astroae_core.model import fused_for_inference

    expected = fused_for_inference(load_model(ckpt)).state_dict()
    assert set(model.state_dict()) == set(expected)
    for k, v in expected.items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=0, atol=0, msg=k)
    pd.testing.assert_frame_equal(cache.table, pd.read_parquet(cache_dir / "latents.parquet"))
    assert not cache.previews.flags.writeable


MUTATORS = {"append", "extend", "insert", "update", "setdefault", "pop", "popitem", "clear", "add", "remove",
            "discard", "__setitem__"}


def test_no_app_code_writes_state_shared_by_all_sessions():
    """The app's imported modules (dashboard/*.py) are shared by every session; its scripts (app.py, app_pages/)
    run per session. No function may write module-level state: no ``global``, no mutating a module-level name, no
    assigning into an imported module. Allowed, with the reason: app.py fills ``state.PAGES`` with the same pages on
    every run."""
    allowed = {("app.py", "state.PAGES.update"), ("app.py", "sys.path.insert")}
    found = set()
    files = [*(ROOT / "dashboard").glob("*.py"), *(ROOT / "dashboard" / "app_pages").glob("*.py")]
    for path in files:
        tree = ast.parse(path.read_text())
        shared = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                  for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
        modules = {a.asname or a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                   for a in n.names}
        is_script = path.name == "app.py" or path.parent.name == "app_pages"
        funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
        scopes = [tree] if is_script else funcs  # a script's own top level is per session; a module's is not
        for scope in scopes:
            for n in ast.walk(scope):
                if isinstance(n, ast.Global):
                    found.add((path.name, f"global {', '.join(n.names)}"))
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in MUTATORS:
                    base = n.func.value
                    if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id in modules \
                            and base.attr != "session_state":  # st.session_state is the session's own
                        found.add((path.name, f"{base.value.id}.{base.attr}.{n.func.attr}"))
                    elif isinstance(base, ast.Name) and base.id in shared and not is_script:
                        found.add((path.name, f"{base.id}.{n.func.attr}"))
                targets = n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, ast.AugAssign) else []
                for t in targets:
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id in modules:
                        found.add((path.name, f"{t.value.id}.{t.attr} ="))
                    if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id in shared \
                            and not is_script:
                        found.add((path.name, f"{t.value.id}[...] ="))
    assert found <= allowed, f"code that writes state shared by every session: {sorted(found - allowed)}"
    assert ("app.py", "state.PAGES.update") in found  # the scan sees what it is meant to see
