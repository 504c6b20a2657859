"""The export panel: a group of images (the map's selection or the filtered subset) as CSV, VOTable and a zip of
FITS cutouts, and sent over SAMP to TOPCAT (the table) and DS9 or Aladin (the chosen image) when a hub runs.

Files offered over SAMP are written to a temporary folder of this session (session key ``samp_dir``) and offered
as ``file://`` URLs: the tool that loads them must run on the machine that serves the app (localhost by default).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import streamlit as st

from astroae_core.analysis import reconstruct
from astroae_core.io import FitsReadError, read_fits, samp
from astroae_core.io import export as core_export

from . import state
from .formatting import short_name
from .paths import PathNotAllowed


def _hdu(row):
    h = row.get("hdu")
    if h is None or (isinstance(h, float) and h != h):
        return None
    return int(h) if str(h).isdigit() else h


def cutout(ctx: state.Context, row):
    """The chosen model's cutout of one row: original, reconstruction and residual (ValueError if unreadable)."""
    model = ctx.model if ctx.model is not None else ctx.cache_model
    try:
        image, header = read_fits(state.source_path(ctx, row), hdu=_hdu(row))
    except PathNotAllowed as exc:
        raise ValueError(f"not readable here: {exc}") from None
    except FitsReadError as exc:
        raise ValueError(exc.reason or str(exc)) from None
    except OSError as exc:
        raise ValueError(f"cannot read {row['path']}: {exc}") from None
    rec = reconstruct(model, image)
    return core_export.cutout_hdus(image, rec.flux_hat, header, source=str(row["path"]),
                                   model_sha=model.checkpoint_info.get("sha256", ""))


def cutouts_zip(ctx: state.Context, rows) -> bytes:
    """A zip of FITS cutouts of the first :data:`~astroae_core.io.export.FITS_ZIP_MAX` rows, read and reconstructed
    one at a time into a temporary file (only one image's arrays in memory while it is built)."""
    items = ((str(r["path"]), lambda r=r: cutout(ctx, r)) for _, r in rows.iterrows())
    with tempfile.SpooledTemporaryFile(max_size=16 << 20) as f:
        core_export.write_cutouts_zip(f, items)
        f.seek(0)
        return f.read()


def _name(what: str) -> str:
    return "astroae_" + re.sub(r"\W+", "_", what).strip("_")


def export_panel(ctx: state.Context, rows, *, what: str, key: str) -> None:
    """Download buttons for ``rows`` (every column; paths relative to the data folder, which is named) and the SAMP
    sends. ``what`` names the group in file names and messages ("selection", "subset")."""
    with st.container(key=f"{key}_panel"):
        _downloads(ctx, rows, what=what, key=key)
        samp_panel(ctx, rows, what=what, key=key)


def _downloads(ctx: state.Context, rows, *, what: str, key: str) -> None:
    folder = ctx.cache.data_dir
    n = len(rows)
    n_zip = min(n, core_export.FITS_ZIP_MAX)
    c1, c2, c3 = st.columns(3)
    c1.download_button(f"Download the {what} as CSV",
                       lambda: core_export.export_csv_bytes(rows, data_folder=folder),
                       file_name=f"{_name(what)}.csv", mime="text/csv", key=f"{key}_csv", on_click="ignore",
                       help=f"{n:,} rows, every column",
                       icon=":material/download:", width="stretch")
    c2.download_button(f"Download the {what} as VOTable",
                       lambda: core_export.export_votable_bytes(rows, data_folder=folder, name=f"astroae {what}"),
                       file_name=f"{_name(what)}.vot", mime="application/x-votable+xml", key=f"{key}_vot",
                       on_click="ignore", icon=":material/download:", width="stretch")
    c3.download_button(f"FITS cutouts as a zip ({n_zip:,} images)", lambda: cutouts_zip(ctx, rows.head(n_zip)),
                       file_name=f"{_name(what)}_cutouts.zip", mime="application/zip", key=f"{key}_zip",
                       on_click="ignore", icon=":material/folder_zip:", width="stretch")
    more = (f" The zip holds the first {n_zip:,} of the {n:,} images (at most {core_export.FITS_ZIP_MAX:,}: "
            "each is read and reconstructed when you click)." if n > n_zip else
            " The zip is made when you click (each image read and reconstructed).")
    st.caption(f"Every column (latents, map coordinates, scores, split, catalog, labels, RA/Dec in degrees). Paths "
               f"are relative to the data folder `{folder}`, named in the `{core_export.DATA_FOLDER}` column of the "
               f"CSV and a PARAM of the VOTable. Each cutout file: the original (header kept), the reconstruction "
               f"and the residual as three HDUs, in the file's units.{more}")


def _samp_dir() -> Path:
    d = st.session_state.get("samp_dir")
    if not d or not Path(d).is_dir():
        d = tempfile.mkdtemp(prefix="astroae-samp-")
        st.session_state["samp_dir"] = d
    return Path(d)


def _report(res, what: str) -> None:
    said = [f"Sent {what} to {', '.join(res.recipients)}."] if res.recipients else []
    said += [f"{name} did not load {what}: {why}." for name, why in res.problems.items()]
    if said:
        st.session_state["_samp_msg"] = ("warn" if res.problems else "ok", " ".join(said))
    else:
        st.session_state["_samp_msg"] = ("warn", f"The SAMP hub is running, but no tool connected to it loads "
                                                 f"{'tables' if res.mtype == samp.TABLE_MTYPE else 'FITS images'}.")


def _send_table(rows, folder, what: str) -> None:
    path = _samp_dir() / f"{_name(what)}.vot"
    path.write_bytes(core_export.export_votable_bytes(rows, data_folder=folder, name=f"astroae {what}"))
    try:
        _report(samp.send_table(path, name=f"astroae {what} ({len(rows):,} images)"), f"the {what} table")
    except Exception as exc:  # noqa: BLE001 - a hub gone since the page looked is a message
        st.session_state["_samp_msg"] = ("err", f"SAMP send failed: {exc}")


def _send_image(ctx, row) -> None:
    try:
        hdul = cutout(ctx, row)
    except ValueError as exc:
        st.session_state["_samp_msg"] = ("err", f"Cannot send {row['path']}: {exc}")
        return
    path = _samp_dir() / f"{short_name(row['path'])}_cutout.fits"
    hdul.writeto(path, overwrite=True, output_verify="silentfix")
    try:
        _report(samp.send_image(path, name=short_name(row["path"])), f"`{short_name(row['path'])}`")
    except Exception as exc:  # noqa: BLE001
        st.session_state["_samp_msg"] = ("err", f"SAMP send failed: {exc}")


@st.fragment
def samp_panel(ctx: state.Context, rows, *, what: str, key: str) -> None:
    """SAMP buttons when a hub runs; otherwise a sentence saying how to start one (and a button to look again)."""
    st.markdown("**Send to a desktop tool (SAMP)**")
    if not samp.hub_running():
        st.caption("No SAMP hub is running on this machine. Start TOPCAT, DS9 or Aladin (each starts a hub, or "
                   "joins one), then look again.")
        st.button("Look for a hub again", key=f"{key}_samp_look", icon=":material/refresh:")
        return
    row = state.selected_row(ctx) if st.session_state.get("selected_id") is not None else None
    b1, b2 = st.columns(2)
    b1.button(f"Send the {what} to TOPCAT ({len(rows):,} rows)", key=f"{key}_samp_table",
              on_click=_send_table, args=(rows, ctx.cache.data_dir, what), icon=":material/table:",
              width="stretch")
    b2.button("Send the chosen image to DS9 / Aladin" + (f" ({short_name(row['path'])})" if row is not None else ""),
              key=f"{key}_samp_image", on_click=_send_image, args=(ctx, row), disabled=row is None,
              help="Its original, reconstruction and residual as one FITS file of three HDUs" if row is not None
              else "Choose an image first: click a point on the map, or pick one on the Reconstructions page",
              icon=":material/image:", width="stretch")
    kind, msg = st.session_state.pop("_samp_msg", (None, None))
    if msg:
        {"ok": st.success, "warn": st.warning, "err": st.error}[kind](msg)
    st.caption("A hub is running: the table goes out as a VOTable (table.load.votable), the image as a FITS "
               "cutout (image.load.fits), both written to a temporary folder and offered as file:// URLs.")
