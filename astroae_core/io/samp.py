"""Sending tables and images to the tools astronomers run beside the app (TOPCAT, DS9, Aladin, glue) over SAMP
(:mod:`astropy.samp`): a VOTable with ``table.load.votable``, a FITS image with ``image.load.fits``.

The hub is found the standard way (the ``SAMP_HUB`` environment variable, else ``~/.samp``). Files are offered as
``file://`` URLs, so the receiving tool must run on the machine that wrote them: the app serves localhost by
default, where that is the user's own machine.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SampResult", "hub_running", "send_image", "send_table"]

TABLE_MTYPE = "table.load.votable"
IMAGE_MTYPE = "image.load.fits"


@dataclass
class SampResult:
    """What a send did: the names of the clients that loaded the file (empty with no ``problems``: nobody listens
    to ``mtype``), and for each client that did not, why (its own error text, or no answer in time)."""

    mtype: str
    recipients: list = field(default_factory=list)
    problems: dict = field(default_factory=dict)


def _astropy_samp():
    with warnings.catch_warnings():
        # astropy 8 marks astropy.samp deprecated in favour of pyvo.samp, which this project does not install
        warnings.simplefilter("ignore")
        import astropy.samp
        import astropy.samp.lockfile_helpers
    return astropy.samp


def hub_running() -> bool:
    """Whether a SAMP hub is running and answering (a ping through its lock file)."""
    asamp = _astropy_samp()
    SAMPHubError, get_main_running_hub = asamp.SAMPHubError, asamp.lockfile_helpers.get_main_running_hub

    try:
        get_main_running_hub()
    except (SAMPHubError, KeyError, OSError):
        return False
    return True


def _answer(client, cid: str, message: dict, timeout: int) -> str | None:
    """None when the tool loaded the file, else why not."""
    try:
        answer = client.call_and_wait(cid, message, str(timeout))
    except Exception as exc:  # noqa: BLE001 - every fault reaches the client as one class; its text says which
        why = str(getattr(exc, "faultString", exc))
        return f"no answer within {timeout} s (it may still be loading)" if "timeout" in why.lower() else why
    status = answer.get("samp.status")
    if status in ("samp.ok", "samp.warning"):
        return None
    if status == "samp.error":
        error = answer.get("samp.error")
        return str(error.get("samp.errortxt", "it answered with an error") if isinstance(error, dict) else error)
    return "no answer (the hub stopped?)"


def _send(mtype: str, params: dict, *, timeout: int = 10) -> SampResult:
    # A call waited on, not a notification: the hub forwards a notification on a thread of its own and drops it if
    # the sender has disconnected by then, which a busy machine made happen. A call also brings back the tool's
    # answer, so a file it could not load is said. The tools are called at once, so a slow one costs one timeout.
    from concurrent.futures import ThreadPoolExecutor

    client = _astropy_samp().SAMPIntegratedClient(name="astroae",
                                                  description="astroae: an autoencoder's view of FITS images")
    client.connect()  # raises SAMPHubError when no hub runs
    try:
        ids = list(client.get_subscribed_clients(mtype))
        names = {}
        for cid in ids:
            try:
                name = client.get_metadata(cid).get("samp.name", cid)
            except Exception:  # noqa: BLE001 - a client without metadata is still a recipient
                name = cid
            names[cid] = name if name not in names.values() else f"{name} ({cid})"
        message = {"samp.mtype": mtype, "samp.params": params}
        with ThreadPoolExecutor(max_workers=max(1, len(ids))) as pool:
            why = dict(zip(ids, pool.map(lambda cid: _answer(client, cid, message, timeout), ids)))
        return SampResult(mtype=mtype, recipients=[names[c] for c in ids if why[c] is None],
                          problems={names[c]: why[c] for c in ids if why[c] is not None})
    finally:
        client.disconnect()


def _check_file(path) -> Path:
    p = Path(path).resolve()
    if not p.is_file():
        raise FileNotFoundError(f"cannot send {p}: no such file")
    return p


def send_table(path, *, name: str, table_id: str | None = None) -> SampResult:
    """Offer the VOTable at ``path`` to every client that loads tables (TOPCAT, Aladin, glue).

    Raises
    ------
    astropy.samp.SAMPHubError
        If no hub is running.
    FileNotFoundError
        If ``path`` is not a file.
    """
    p = _check_file(path)
    return _send(TABLE_MTYPE, {"url": p.as_uri(), "table-id": table_id or p.stem, "name": name})


def send_image(path, *, name: str, image_id: str | None = None) -> SampResult:
    """Offer the FITS image at ``path`` to every client that loads images (DS9, Aladin).

    Raises
    ------
    astropy.samp.SAMPHubError
        If no hub is running.
    FileNotFoundError
        If ``path`` is not a file.
    """
    p = _check_file(path)
    return _send(IMAGE_MTYPE, {"url": p.as_uri(), "image-id": image_id or p.stem, "name": name})
