"""Hostile FITS files: property-based tests (hypothesis) that mutate valid files and feed them to `read_fits`.

Whatever the bytes, `read_fits` must either return a usable image (2-D float32 with at least one finite pixel, and
an astropy Header) or raise `FitsReadError` naming the file: never another exception, never a hang (each call runs
under a SIGALRM guard), never gigabytes of memory for a header that lies (measured in a child process). The same
through `encode_folder`: in a folder mixing good and bad files, every bad file is in the cache's
``meta["skipped"]`` with the reason `read_fits` gives, and every good one is encoded.

The number of examples is bounded (``max_examples`` below, ``derandomize=True`` so that CI runs the same examples
every time); set ``ASTROAE_FUZZ_EXAMPLES`` to run more locally.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from astroae_core.io import FitsReadError, read_fits

from .conftest import ROOT, blob_image

EXAMPLES = int(os.environ.get("ASTROAE_FUZZ_EXAMPLES", "150"))
CALL_SECONDS = 10  # one read of a file of a few kB: anything near this is a hang
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ----------------------------------------------------------------------------------------------------------------
# valid files to start from (small, so that every mutation lands somewhere that matters)


def _bytes_of(*hdus) -> bytes:
    buf = io.BytesIO()
    fits.HDUList(list(hdus)).writeto(buf)
    return buf.getvalue()


def _image(shape=(20, 24), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(100.0, 5.0, shape).astype(np.float32)


@lru_cache(maxsize=None)
def sources() -> dict[str, bytes]:
    """Valid FITS files of every kind `read_fits` handles, as bytes (all read back as images)."""
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRVAL1": 214.9, "CRVAL2": 52.9,
                          "CRPIX1": 10.0, "CRPIX2": 12.0, "CDELT1": -1e-5, "CDELT2": 1e-5})
    scaled = fits.PrimaryHDU(np.arange(-240, 240, dtype=np.int16).reshape(20, 24))
    scaled.header["BSCALE"], scaled.header["BZERO"], scaled.header["BLANK"] = 0.5, 10.0, -32768
    plain = _bytes_of(fits.PrimaryHDU(_image(), header=header))
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.arange(3.0))])
    out = {
        "primary-f32": plain,
        "primary-i16-scaled": _bytes_of(scaled),
        "extension-f64": _bytes_of(fits.PrimaryHDU(), table, fits.ImageHDU(_image().astype(">f8"), name="SCI")),
        "cube": _bytes_of(fits.PrimaryHDU(np.stack([_image(seed=k) for k in range(3)]))),
        "rice.fz": _bytes_of(fits.PrimaryHDU(), fits.CompImageHDU((_image() * 10).astype(np.int32),
                                                                   compression_type="RICE_1")),
        "gzip1.fz": _bytes_of(fits.PrimaryHDU(), fits.CompImageHDU(_image(), compression_type="GZIP_1",
                                                                   quantize_level=0.0)),
        "hcompress.fz": _bytes_of(fits.PrimaryHDU(), fits.CompImageHDU(_image((32, 32)),
                                                                       compression_type="HCOMPRESS_1",
                                                                       tile_shape=(16, 32))),
        "plain.gz": gzip.compress(plain, mtime=0),
        "plain.bz2": bz2.compress(plain),
    }
    return out


NAMES = sorted(sources())
UNCOMPRESSED = [n for n in NAMES if not n.endswith((".gz", ".bz2"))]


def _suffix(name: str) -> str:
    return ".fits.gz" if name.endswith(".gz") else ".fits.bz2" if name.endswith(".bz2") else \
        ".fz" if name.endswith(".fz") else ".fits"


def test_the_sources_are_valid(tmp_path):
    for name, raw in sources().items():
        path = tmp_path / f"{name}{_suffix(name)}"
        path.write_bytes(raw)
        image, header = read_fits(path)
        assert image.ndim == 2 and np.isfinite(image).all(), name
        assert isinstance(header, fits.Header)


# ----------------------------------------------------------------------------------------------------------------
# the property


class Hang(BaseException):
    """Raised by the alarm: a BaseException, so that no ``except Exception`` inside the reader can swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float):
    def ring(signum, frame):
        raise Hang(f"read_fits did not return within {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def image_or_fits_error(path: Path):
    """Read ``path``: a usable image, or FitsReadError naming the file. Returns the image or the error."""
    try:
        with time_limit(CALL_SECONDS):
            image, header = read_fits(path)
    except FitsReadError as exc:
        assert os.fspath(path) in str(exc), str(exc)
        assert exc.reason and exc.reason in str(exc)
        return exc
    assert isinstance(image, np.ndarray) and not isinstance(image, np.memmap)
    assert image.ndim == 2 and image.shape[0] >= 2 and image.shape[1] >= 2, image.shape
    assert image.dtype == np.float32 and image.flags.c_contiguous
    assert np.isfinite(image).any()
    assert isinstance(header, fits.Header)
    return image


def _write(tmp_path: Path, name: str, raw: bytes) -> Path:
    path = tmp_path / f"mutant{_suffix(name)}"
    path.write_bytes(raw)
    return path


# ----------------------------------------------------------------------------------------------------------------
# mutations


@FUZZ
@given(name=st.sampled_from(NAMES), data=st.data())
def test_truncated_anywhere(tmp_path, name, data):
    raw = sources()[name]
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    image_or_fits_error(_write(tmp_path, name, raw[:cut]))


@FUZZ
@given(name=st.sampled_from(NAMES), data=st.data())
def test_random_byte_flips(tmp_path, name, data):
    raw = bytearray(sources()[name])
    n = data.draw(st.integers(1, 24), label="flips")
    for _ in range(n):
        where = data.draw(st.integers(0, len(raw) - 1), label="offset")
        raw[where] = data.draw(st.integers(0, 255), label="byte")
    image_or_fits_error(_write(tmp_path, name, bytes(raw)))


def _header_card_offsets(raw: bytes) -> list[int]:
    """Offsets of every 80-byte card of every header of an (uncompressed) FITS file, END cards included."""
    out, pos = [], 0
    while pos + 2880 <= len(raw):
        block_start, ended = pos, False
        while pos + 2880 <= len(raw) and not ended:
            for i in range(pos, pos + 2880, 80):
                out.append(i)
                if raw[i : i + 8] == b"END     ":
                    ended = True
                    break
            pos += 2880
        if not ended:
            break
        with contextlib.suppress(Exception):  # skip this HDU's data using its own header
            hdr = fits.Header.fromstring(raw[block_start:pos].decode("ascii", "replace"))
            naxis = [int(hdr.get(f"NAXIS{i}", 0)) for i in range(1, int(hdr.get("NAXIS", 0)) + 1)]
            nbytes = abs(int(hdr["BITPIX"])) // 8 * int(hdr.get("GCOUNT", 1)) * (
                int(hdr.get("PCOUNT", 0)) + (int(np.prod(naxis)) if naxis else 0))
            pos += -(-nbytes // 2880) * 2880
    return out


CARD_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=0, max_size=80)


@FUZZ
@given(name=st.sampled_from(UNCOMPRESSED), data=st.data())
def test_corrupt_header_cards(tmp_path, name, data):
    raw = bytearray(sources()[name])
    cards = _header_card_offsets(bytes(raw))
    for _ in range(data.draw(st.integers(1, 4), label="cards")):
        at = data.draw(st.sampled_from(cards), label="card")
        how = data.draw(st.sampled_from(["text", "value", "delete", "duplicate", "no-equals"]), label="how")
        card = bytes(raw[at : at + 80])
        if how == "text":
            new = data.draw(CARD_TEXT, label="text").encode().ljust(80)
        elif how == "value":
            value = data.draw(st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                                        st.sampled_from(["'X'", "T", "F", "", "1e999", "-0", "'IMAGE   '"])),
                              label="value")
            new = (card[:10] + f"{value!s:>20}".encode()[:70]).ljust(80)
        elif how == "delete":
            new = b" " * 80
        elif how == "duplicate":
            new = bytes(raw[data.draw(st.sampled_from(cards), label="copy") :][:80])
        else:
            new = card[:8] + b"  " + card[10:]
        raw[at : at + 80] = new
    image_or_fits_error(_write(tmp_path, name, bytes(raw)))


STRUCTURAL = ["NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "BITPIX", "PCOUNT", "GCOUNT", "BSCALE", "BZERO", "BLANK",
              "ZNAXIS", "ZNAXIS1", "ZNAXIS2", "ZBITPIX", "ZTILE1", "ZTILE2", "TFIELDS", "THEAP", "ZVAL1", "ZVAL2",
              "EXTEND", "GROUPS", "XTENSION", "TFORM1", "TFORM2"]
# small, boundary and absurd values: the ones that break readers
NUMBERS = st.one_of(st.integers(-3, 70), st.sampled_from([2**31 - 1, 2**31, 2**32, 2**63 - 1, -(2**31), 10**5,
                                                         10**9, 10**12, 6479602929, 999, 1000, -32, -64, 7]),
                    st.integers(-(2**64), 2**64))


@FUZZ
@given(name=st.sampled_from(UNCOMPRESSED), data=st.data())
def test_wrong_structural_values(tmp_path, name, data):
    """Wrong NAXIS / NAXISn / BITPIX / PCOUNT / ZNAXISn / TFIELDS ...: set to small, boundary or absurd numbers."""
    raw = bytearray(sources()[name])
    cards = _header_card_offsets(bytes(raw))
    present = [(at, raw[at : at + 8].decode().strip()) for at in cards]
    keys = sorted({k for _, k in present if k in STRUCTURAL})
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        key = data.draw(st.sampled_from(keys), label="key")
        at = data.draw(st.sampled_from([a for a, k in present if k == key]), label="which")
        value = data.draw(NUMBERS, label="value")
        raw[at : at + 80] = f"{key:<8}= {value:>20}".encode()[:80].ljust(80)
    image_or_fits_error(_write(tmp_path, name, bytes(raw)))


@FUZZ
@given(data=st.data())
def test_random_bytes(tmp_path, data):
    """Arbitrary content, bare or behind a FITS-looking first card, plain or compressed as a whole."""
    body = data.draw(st.binary(min_size=0, max_size=6000), label="body")
    prefix = data.draw(st.sampled_from([b"", b"SIMPLE  =                    T".ljust(80),
                                        sources()["primary-f32"][:2880], sources()["primary-f32"][:800]]),
                       label="prefix")
    raw = prefix + body
    wrap = data.draw(st.sampled_from(["none", "gzip", "bz2"]), label="wrap")
    raw = gzip.compress(raw, mtime=0) if wrap == "gzip" else bz2.compress(raw) if wrap == "bz2" else raw
    path = tmp_path / {"none": "r.fits", "gzip": "r.fits.gz", "bz2": "r.fits.bz2"}[wrap]
    path.write_bytes(raw)
    result = image_or_fits_error(path)
    if not prefix.startswith(b"SIMPLE"):
        assert isinstance(result, FitsReadError)  # not FITS at all


@FUZZ
@given(name=st.sampled_from(["primary-f32", "extension-f64", "cube", "primary-i16-scaled"]),
       side=st.sampled_from([10**4, 10**5, 10**6, 10**9, 2**31, 2**40]), data=st.data())
def test_absurd_dimensions_are_refused_quickly(tmp_path, name, side, data):
    """A header claiming a huge image in a file of a few kB: refused (no such data), and at once."""
    raw = bytearray(sources()[name])
    keys = data.draw(st.sampled_from([("NAXIS1",), ("NAXIS2",), ("NAXIS1", "NAXIS2")]), label="keys")
    for key in keys:
        at = [a for a in _header_card_offsets(bytes(raw)) if raw[a : a + 8] == key.ljust(8).encode()][-1]
        raw[at : at + 80] = f"{key:<8}= {side:>20}".encode().ljust(80)
    result = image_or_fits_error(_write(tmp_path, name, bytes(raw)))
    assert isinstance(result, FitsReadError), "a file of a few kB cannot hold that image"


# ----------------------------------------------------------------------------------------------------------------
# a header that lies costs no memory (measured in a child, where the peak RSS is this read's alone)


LIES = {
    # (file, which HDU lies)
    "plain": "primary",
    "extension": "extension",
    "gzip": "primary",
    "bz2": "primary",
    "tile-compressed": "znaxis",
}

_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from astroae_core.io import FitsReadError, read_fits
    read_fits(sys.argv[1])  # a good file first: imports and first-call costs are not the lie's
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = {}
    for path in sys.argv[2:]:
        t0 = time.perf_counter()
        try:
            read_fits(path)
            out[path] = {"result": "image"}
        except FitsReadError as exc:
            out[path] = {"result": "FitsReadError", "reason": exc.reason}
        out[path]["seconds"] = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_kb": after - before, "reads": out}))
""")


def _set_card(raw: bytes, key: str, value: int, *, occurrence: int = -1) -> bytes:
    starts = [a for a in _header_card_offsets(raw) if raw[a : a + 8] == key.ljust(8).encode()]
    at = starts[occurrence]
    return raw[:at] + f"{key:<8}= {value:>20}".encode().ljust(80) + raw[at + 80 :]


def test_a_header_claiming_a_huge_image_allocates_nothing(tmp_path):
    side = 10**5  # 10^5 x 10^5 float64: 80 GB
    plain = _set_card(_set_card(sources()["primary-f32"], "NAXIS1", side), "NAXIS2", side)
    plain = _set_card(plain, "BITPIX", -64)
    ext = _set_card(_set_card(sources()["extension-f64"], "NAXIS1", side), "NAXIS2", side)
    fz = _set_card(_set_card(sources()["rice.fz"], "ZNAXIS1", side), "ZNAXIS2", side)
    files = {"plain.fits": plain, "extension.fits": ext, "lie.fits.gz": gzip.compress(plain, mtime=0),
             "lie.fits.bz2": bz2.compress(plain), "lie.fz": fz}
    for name, raw in files.items():
        (tmp_path / name).write_bytes(raw)
    good = tmp_path / "good.fits"
    good.write_bytes(sources()["primary-f32"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", _CHILD, str(good), *(str(tmp_path / n) for n in files)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for path, r in report["reads"].items():
        assert r["result"] == "FitsReadError", (path, r)
        assert r["seconds"] < 5, (path, r)
    assert report["growth_kb"] < 100 * 1024, f"peak RSS grew by {report['growth_kb'] / 1024:.0f} MB: {report}"


# ----------------------------------------------------------------------------------------------------------------
# through encode: a folder of good and bad files


def _tiny_checkpoint(path: Path) -> Path:
    import torch

    from astroae_core.model import save_checkpoint
    from astroae_core.model import AutoEncoder, ModelConfig
    from astroae_core.data import PreprocessConfig

    torch.manual_seed(0)
    model = AutoEncoder(ModelConfig(in_size=32, channels=(4, 8), latent_dim=3, skip_mode="none"),
                        preprocess_config=PreprocessConfig(size=32, method="minmax"))
    return save_checkpoint(path, model)


def _mixed_folder(folder: Path, *, seed: int, n_good: int = 1) -> None:
    """Good blob images, hand-made bad files of every kind, and seeded random mutants of valid files."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n_good):
        fits.PrimaryHDU(blob_image(rng, 32)).writeto(folder / f"good_{i}.fits")
    (folder / "sub").mkdir()
    (folder / "sub" / "good_gz.fits.gz").write_bytes(gzip.compress(sources()["primary-f32"], mtime=0))
    plain = sources()["primary-f32"]
    bad = {
        "empty.fits": b"",
        "text.fits": b"this is not a FITS file\n" * 40,
        "truncated.fits": plain[:3000],
        "header_only.fits": plain[:2880],
        "absurd.fits": _set_card(_set_card(plain, "NAXIS1", 10**5), "NAXIS2", 10**5),
        "naxis_huge.fits": _set_card(plain, "NAXIS", 6479602929),
        "bitpix.fits": _set_card(plain, "BITPIX", 12),
        "one_d.fits": _bytes_of(fits.PrimaryHDU(np.arange(50, dtype=np.float32))),
        "all_nan.fits": _bytes_of(fits.PrimaryHDU(np.full((8, 8), np.nan, np.float32))),
        "table_only.fits": _bytes_of(fits.PrimaryHDU(), fits.BinTableHDU.from_columns(
            [fits.Column(name="a", format="E", array=np.arange(3.0))])),
        "cut.fits.gz": gzip.compress(plain, mtime=0)[:200],
        "garbage.fits.bz2": b"BZh9" + bytes(rng.integers(0, 256, 300, dtype=np.uint8)),
        "sub/deep_bad.fz": sources()["rice.fz"][:4000],
    }
    for name, raw in bad.items():
        (folder / name).write_bytes(raw)
    for i in range(16):  # random mutants: some still readable, most not
        name = NAMES[i % len(NAMES)]
        raw = bytearray(sources()[name])
        if i % 2:
            raw = raw[: int(rng.integers(0, len(raw)))]
        else:
            for at in rng.integers(0, len(raw), int(rng.integers(1, 12))):
                raw[at] = int(rng.integers(0, 256))
        (folder / f"mutant_{i:02d}{_suffix(name)}").write_bytes(bytes(raw))


@pytest.mark.slow
def test_encode_lists_every_bad_file_with_its_reason_and_encodes_every_good_one(tmp_path):
    from astroae_core.cache import encode_folder, load_cache
    from astroae_core.io import find_fits_files

    data = tmp_path / "data"
    # seed 2 leaves 2 mutants readable: 4 good files in all, below UMAP's minimum (no numba compilation here)
    _mixed_folder(data, seed=2)
    expected_bad, expected_good = {}, []
    for f in find_fits_files(data):
        rel = f.relative_to(data).as_posix()
        result = image_or_fits_error(f)
        if isinstance(result, FitsReadError):
            expected_bad[rel] = result.reason
        else:
            expected_good.append(rel)
    assert len(expected_bad) >= 13 and len(expected_good) >= 2  # the hand-made ones at least

    ckpt = _tiny_checkpoint(tmp_path / "tiny.pt")
    cache = load_cache(encode_folder(ckpt, data, tmp_path / "cache"))
    assert sorted(cache.table["path"]) == sorted(expected_good)
    assert {s.path: s.reason for s in cache.meta.skipped} == expected_bad
    assert cache.meta.n_files == len(expected_bad) + len(expected_good)
    assert np.isfinite(cache.latents()).all() and np.isfinite(cache.table["mse"]).all()

    # the command line says so too, and exits 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "astroae_core", "encode", "--checkpoint", str(ckpt), "--data",
                           str(data), "--out", str(tmp_path / "cache2"), "--quiet"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(expected_good)} images, {len(expected_bad)} skipped" in done.stdout
