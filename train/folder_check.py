"""Before a run: which images of a folder training can use, how the split will group them, and whether that is
enough to train on (with the reason, in words, when it is not).

Reading uses :func:`~astroae_core.data.load_folder`, as training does, at a tiny image size: the same files are
skipped for the same reasons, without holding the folder in memory. The split is
:func:`~astroae_core.data.split_by_group` of :func:`~astroae_core.data.group_keys`, as in :mod:`train.loop`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from astroae_core.data import PreprocessConfig, group_keys, load_folder, split_by_group
from astroae_core.io import find_fits_files
from astroae_core.progress import Progress

__all__ = ["FolderContents", "SplitPlan", "check_folder", "plan_split", "problem", "rule_label"]

_CHECK_SIZE = 8  # pixels a side: preprocessing fails for the same files at any size


@dataclass(frozen=True)
class FolderContents:
    """The FITS files of a folder: ``paths`` (relative, the usable ones), ``skipped`` ((path, reason) of those
    that cannot be read), ``outside`` (links to files outside the folders that may be read: never read)."""

    folder: Path
    paths: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    @property
    def n_found(self) -> int:
        return len(self.paths) + len(self.skipped) + len(self.outside)


@dataclass(frozen=True)
class SplitPlan:
    """How the usable images split: ``n_groups`` groups under ``rule``, ``n_train`` / ``n_val`` images in
    ``train_groups`` / ``val_groups`` groups, a few ``examples`` (file, group), the ``largest`` group's size, and
    ``error`` (the rule cannot be applied, e.g. a file name it does not match)."""

    rule: str
    n_groups: int = 0
    n_train: int = 0
    n_val: int = 0
    train_groups: int = 0
    val_groups: int = 0
    largest: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None


def check_folder(folder, *, config: PreprocessConfig, confine_to=None,
                 progress: Progress | None = None) -> FolderContents:
    """Read every FITS file under ``folder`` as training would (``config``'s normalization) and sort them into
    usable, skipped (with the reason) and links out of ``confine_to``."""
    folder = Path(folder)
    small = replace(config, size=_CHECK_SIZE)
    loaded = load_folder(folder, config=small, confine_to=confine_to, progress=progress)
    outside = []
    if confine_to is not None:
        inside = set(find_fits_files(folder, confine_to=confine_to))
        outside = [f.relative_to(folder).as_posix() for f in find_fits_files(folder) if f not in inside]
    return FolderContents(folder, list(loaded.paths), [tuple(s) for s in loaded.skipped], outside)


def rule_label(group_regex: str) -> str:
    """``group_regex`` (a recipe's ``group_regex``) in words."""
    if group_regex == "auto":
        return "the number that ends each file name (an object id shared by its bands)"
    if not group_regex:
        return "each file on its own"
    return f"the first group of the regular expression {group_regex}"


def plan_split(paths, *, group_regex: str, val_fraction: float, seed: int, n_examples: int = 4) -> SplitPlan:
    """The split :mod:`train.loop` will make of ``paths`` (relative, as in :class:`FolderContents`)."""
    paths = list(paths)
    if not paths:
        return SplitPlan(group_regex)
    try:
        keys = group_keys(paths, group_regex=group_regex or None)
        train_idx, val_idx = split_by_group(keys, val_fraction=val_fraction, seed=seed)
    except ValueError as exc:
        return SplitPlan(group_regex, error=str(exc))
    sizes = Counter(keys)
    step = max(1, len(paths) // n_examples)
    examples = [(paths[i], _shown_key(keys[i])) for i in range(0, len(paths), step)][:n_examples]
    return SplitPlan(group_regex, len(sizes), len(train_idx), len(val_idx), len({keys[i] for i in train_idx}),
                     len({keys[i] for i in val_idx}), max(sizes.values()), examples)


def _shown_key(key: str) -> str:
    return key.removeprefix("id:").removeprefix("file:")


def problem(contents: FolderContents, plan: SplitPlan) -> str | None:
    """Why training cannot start on this folder with this split, in words; None when it can."""
    where = f"`{contents.folder.name}`"
    if contents.outside:
        return (f"{len(contents.outside)} files in {where} are links to files outside the data root, which the app "
                f"does not read (e.g. {contents.outside[0]}): copy the files in, or remove the links.")
    n = len(contents.paths)
    if n == 0:
        if contents.skipped:
            return f"None of the {len(contents.skipped)} FITS files in {where} can be read (see the list below)."
        return f"{where} holds no FITS files."
    if n < 3:
        return (f"{where} holds only {n} usable image{'s' if n > 1 else ''}: training needs at least 3, two to "
                "train on and one to check the model on.")
    if plan.error:
        return f"The group rule cannot be applied: {plan.error}."
    if plan.n_groups < 2:
        return (f"All {n} images fall into one group under this rule, and a split needs at least two, so that the "
                "validation images are ones the model never saw. Choose another group rule (e.g. each file on "
                "its own).")
    if plan.n_train < 2:
        return (f"The split leaves {plan.n_train} training image: training needs at least 2. Choose a group rule "
                "with smaller groups, or add images.")
    return None
