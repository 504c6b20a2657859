"""``meta.json``: what a cache is, as a typed, frozen :class:`CacheMeta` that round-trips through strict JSON.

Every field is stored once, as data: codes and numbers, never sentences (a message is built where it is shown);
no absolute machine path (the checkpoint and the data folder are stored relative to the cache folder, so a
folder holding a cache and its data can move as a whole); missing numbers are ``null``, never ``NaN``.
``influence``, ``evaluation``, ``model_config`` and ``preprocess_config`` are the plain dicts of the functions
that make them (:func:`~astroae_core.analysis.measure_influence`,
:func:`~astroae_core.analysis.compare_with_baselines`, the model's configs), made JSON-safe.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astroae_core.cache.layout import CACHE_FORMAT, FILES

__all__ = ["CacheMeta", "CatalogInfo", "CheckpointRef", "Columns", "CorrelationInfo", "EncodeOptions", "MapInfo",
           "MetaFormatError", "PcaParams", "Skipped", "SplitInfo", "Timing", "json_value", "read_meta",
           "relative_to", "write_meta"]


class MetaFormatError(ValueError):
    """A ``meta.json`` of another cache format (``found``: the format it names, or None)."""

    def __init__(self, message: str, found):
        super().__init__(message)
        self.found = found


@dataclass(frozen=True)
class CheckpointRef:
    """The checkpoint a cache was encoded with: ``path`` relative to the cache folder (POSIX), its SHA-256, and
    the epoch and package version it records."""

    path: str
    sha256: str
    epoch: int | None = None
    version: str | None = None


@dataclass(frozen=True)
class Skipped:
    """A file of the data folder that was not encoded: ``path`` relative to it, and the reader's reason."""

    path: str
    reason: str


@dataclass(frozen=True)
class EncodeOptions:
    """The settings of :func:`~astroae_core.cache.encode_folder` that shape the cache (a change rebuilds it)."""

    preview_size: int
    hdu: int | str | None
    plane: int | None
    umap_max_fit: int
    seed: int


@dataclass(frozen=True)
class Columns:
    """The table's columns by role, in table order: ``image`` (id, path, hash, hdu, split, ra, dec), ``latent``
    (z0, z1, ...), ``metrics``, ``maps``, ``scores`` (the separate scores, then the combined one and its rank),
    ``catalog`` (``catalog.<name>``)."""

    image: tuple[str, ...]
    latent: tuple[str, ...]
    metrics: tuple[str, ...]
    maps: tuple[str, ...]
    scores: tuple[str, ...]
    catalog: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        """Every column, in table order."""
        return self.image + self.latent + self.metrics + self.maps + self.scores + self.catalog


@dataclass(frozen=True)
class SplitInfo:
    """The rows of each ``split`` value (``train``, ``val``, ``unseen``: which images the checkpoint trained and
    validated on, recognised by their pixels)."""

    counts: dict[str, int]


@dataclass(frozen=True)
class PcaParams:
    """The exact PCA of the latents (:func:`~astroae_core.analysis.fit_pca`) behind ``pca_x`` / ``pca_y``."""

    mean: tuple[float, ...]
    components: tuple[tuple[float, ...], ...]
    explained_variance: tuple[float, ...]
    explained_variance_ratio: tuple[float, ...]
    n_samples: int

    def as_arrays(self) -> dict:
        """The parameters as :func:`~astroae_core.analysis.pca_transform` takes them."""
        return {"mean": np.asarray(self.mean), "components": np.asarray(self.components)}


@dataclass(frozen=True)
class MapInfo:
    """How ``umap_x`` / ``umap_y`` were made.

    ``method`` is ``"umap"``, or ``"pca"`` when the PCA map stands in, with ``fallback`` saying why:
    ``"too_few_images"`` or ``"umap_failed"`` (then ``error`` holds UMAP's exception). ``n_fit``: the latents
    the UMAP was fitted on (the rest were placed with its ``transform``).
    """

    method: str
    n_neighbors: int | None = None
    min_dist: float | None = None
    n_fit: int | None = None
    fallback: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class CatalogInfo:
    """The data folder's ``catalog.csv``: the column matched on (``key``) and the rows matched, or ``error``
    when it could not be used (its columns are :attr:`Columns.catalog`)."""

    file: str
    key: str | None = None
    n_matched: int = 0
    n_unmatched: int = 0
    error: str | None = None


@dataclass(frozen=True)
class CorrelationInfo:
    """``correlations.parquet``: ``method`` and the catalog columns correlated with the latents."""

    method: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Timing:
    """Seconds spent encoding, making the maps and scores, measuring the latent report, and in all."""

    encode_seconds: float
    maps_seconds: float
    report_seconds: float
    total_seconds: float


@dataclass(frozen=True)
class CacheMeta:
    """The contents of ``meta.json`` (see the module docstring).

    ``data_dir`` is relative to the cache folder (:meth:`data_path` resolves it), as is ``checkpoint.path``
    (:meth:`checkpoint_path`). ``n_files`` counts every FITS file found, ``n_images`` the rows of the table.
    """

    format: str
    package_version: str
    created_utc: str
    checkpoint: CheckpointRef
    data_dir: str
    dataset_fingerprint: str
    n_files: int
    n_images: int
    columns: Columns
    options: EncodeOptions
    pca: PcaParams
    umap: MapInfo
    split: SplitInfo
    timing: Timing
    model_config: dict
    preprocess_config: dict
    skipped: tuple[Skipped, ...] = ()
    catalog: CatalogInfo | None = None
    correlations: CorrelationInfo | None = None
    influence: dict | None = None
    evaluation: dict | None = None
    training_distance: dict | None = None
    runtime: dict | None = None

    def __post_init__(self):
        # Plain dicts as JSON gives them back, so that a meta built in memory equals the one read from disk.
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, dict):
                object.__setattr__(self, f.name, json_value(v))

    @property
    def latent_dim(self) -> int:
        """Number of latent columns."""
        return len(self.columns.latent)

    def checkpoint_path(self, folder) -> Path:
        """The checkpoint's path, resolved against the cache ``folder``."""
        return (Path(folder).resolve() / self.checkpoint.path).resolve()

    def data_path(self, folder) -> Path:
        """The data folder's path, resolved against the cache ``folder``."""
        return (Path(folder).resolve() / self.data_dir).resolve()

    def to_dict(self) -> dict:
        """Plain JSON data (dicts, lists, str, numbers, bool, None)."""
        return json_value(self)

    @classmethod
    def from_dict(cls, data: dict) -> CacheMeta:
        """The meta of a dict from :meth:`to_dict` (or ``json.load``).

        Raises
        ------
        MetaFormatError
            If ``data["format"]`` is not :data:`~astroae_core.cache.layout.CACHE_FORMAT`.
        ValueError
            Naming the field, for a missing, unknown or mistyped one.
        """
        found = data.get("format") if isinstance(data, dict) else None
        if found != CACHE_FORMAT:
            raise MetaFormatError(f"format {found!r}, expected {CACHE_FORMAT!r}", found)
        return _decode(cls, data, "meta")


def json_value(v):
    """``v`` as plain JSON data: dataclasses become dicts, tuples and arrays lists, NumPy scalars Python numbers,
    non-finite floats ``None``, keys strings.

    Raises
    ------
    TypeError
        For anything else (a Path, an object): only data is stored.
    """
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: json_value(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, dict):
        return {str(k): json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [json_value(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise TypeError(f"{type(v).__name__} is not JSON data: {v!r}")


def _decode(tp, value, where: str):
    """``value`` (JSON data) as type ``tp``; ValueError naming ``where`` when it does not fit."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _decode(option, value, where)
            except ValueError:
                continue
        raise ValueError(f"{where}: {value!r} is not a {tp}")
    if dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return tuple(_decode(args[0], x, f"{where}[{i}]") for i, x in enumerate(value))
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {value!r}")
        return {k: _decode(args[1], x, f"{where}.{k}") for k, x in value.items()} if args else value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise ValueError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _decode_dataclass(cls, value, where: str):
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected an object, got {value!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _decode(hints[name], value[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING:
            raise ValueError(f"{where}: missing field {name!r}")
    return cls(**kwargs)


def relative_to(path, folder) -> str:
    """``path`` relative to ``folder`` (both resolved), POSIX, ``..`` where needed: how a cache stores a path."""
    target, base = Path(path).resolve(), Path(folder).resolve()
    try:
        return Path(os.path.relpath(target, base)).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists, the absolute one is all there is
        return target.as_posix()


def read_meta(folder) -> CacheMeta:
    """Read ``folder/meta.json``.

    Raises
    ------
    MetaFormatError
        If it names another cache format (an older cache: re-encode it).
    ValueError
        If it is unreadable, not JSON, or malformed; the message names the folder.
    """
    path = Path(folder) / FILES["meta"]
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{str(folder)!r}: unreadable {FILES['meta']} ({exc})") from None
    try:
        return CacheMeta.from_dict(data)
    except MetaFormatError as exc:
        raise MetaFormatError(f"{str(folder)!r} is not a latent cache of format {CACHE_FORMAT!r} "
                              f"(found {exc.found!r}); re-encode it", exc.found) from None
    except ValueError as exc:
        raise ValueError(f"{str(folder)!r}: unreadable {FILES['meta']} ({exc})") from None


def write_meta(meta: CacheMeta, folder) -> None:
    """Write ``folder/meta.json`` as strict JSON (no ``NaN`` tokens), flushed to disk."""
    with open(Path(folder) / FILES["meta"], "w", encoding="utf-8") as fh:
        json.dump(meta.to_dict(), fh, indent=1, allow_nan=False)
        fh.flush()
        os.fsync(fh.fileno())
