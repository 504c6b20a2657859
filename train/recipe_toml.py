"""A resolved :class:`~train.config.TrainConfig` written back as a TOML recipe, so that a run started from the app
can be repeated by hand: ``python -m train --config RUN/recipe.toml --data DIR --out RUN2``."""

from __future__ import annotations

import json
import math
import tomllib

from .config import TrainConfig

__all__ = ["dumps_recipe"]

_TABLES = ("model", "preprocess")  # top-level tables of a recipe; the loop's own settings go under [train]


def dumps_recipe(cfg: TrainConfig, *, header: str = "") -> str:
    """``cfg`` as a TOML recipe that :func:`~train.config.load_recipe` reads back to an equal config.

    Parameters
    ----------
    cfg : TrainConfig
    header : str, optional
        Comment lines put first (each prefixed with ``#``).

    Raises
    ------
    ValueError
        If a value has no TOML form that reads back the same (never for a config built from a recipe).
    """
    d = cfg.to_dict()
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for table in _TABLES:
        lines += ["", f"[{table}]", *_items(d.pop(table))]
    frozen = d.pop("frozen_norm")
    lines += ["", "[train]", *_items(d), "", "[train.frozen_norm]", *_items(frozen)]
    text = "\n".join(lines).lstrip("\n") + "\n"
    if TrainConfig.from_dict(tomllib.loads(text)) != cfg:
        raise ValueError(f"the recipe does not read back as written: {cfg!r}")
    return text


def _items(d: dict) -> list[str]:
    # None is a setting's "not set" (preprocess.asinh_max_sigma); TOML has no null, and a missing key means the
    # same default, which the read-back check above confirms.
    return [f"{k} = {_value(v)}" for k, v in d.items() if v is not None]


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else {math.inf: "inf", -math.inf: "-inf"}.get(v, "nan")
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise ValueError(f"no TOML form for {v!r} ({type(v).__name__})")
