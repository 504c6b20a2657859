"""Re-ranking from the user's labels, as Astronomaly does: a small model learns from the images the user marked
what *this user* finds interesting, and scores the images nobody has looked at yet.

The unsupervised ranking (:mod:`astroae_core.analysis.outliers`) puts every kind of strangeness on top, detector
edges and cosmic rays as much as a rare merger. Once the user has marked enough images (``interesting`` is a
positive; ``normal`` and ``artefact`` are negatives), a random forest on the latents and the separate anomaly
scores (as robust z-scores, so that their units do not matter) learns the difference, and its probability of
"interesting" ranks the unlabelled images: the user's ranking, shown beside the anomaly ranking.

A random forest rather than a linear model: what a user finds interesting is often one region of latent space
(rings, not everything far from the centre), and a forest with balanced class weights copes with a handful of
positives among many negatives. Its seed fixes the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from astroae_core.analysis.reasons import score_zscores

__all__ = ["MIN_PER_CLASS", "Rerank", "rerank", "rerank_features"]

#: Labels of each kind (interesting; normal or artefact) needed before the user's ranking is made.
MIN_PER_CLASS = 5

POSITIVE = "interesting"
NEGATIVE = ("normal", "artefact")


@dataclass
class Rerank:
    """The user's ranking, or why there is none yet.

    Attributes
    ----------
    n_positive, n_negative : int
        Images labelled interesting; labelled normal or artefact.
    needed : int
        Labels of each kind needed (:data:`MIN_PER_CLASS`).
    scores : pandas.DataFrame or None
        Index of the table; ``user_score`` (probability that the user finds the image interesting, float64) and
        ``user_rank`` (1 = most interesting among the *unlabelled* images, float64 NaN for labelled ones).
        ``None`` until there are enough labels of both kinds.
    """

    n_positive: int
    n_negative: int
    needed: int
    scores: pd.DataFrame | None = None

    @property
    def ready(self) -> bool:
        return self.scores is not None

    def missing(self) -> str:
        """What is still to label, in words ("" once ready)."""
        if self.ready:
            return ""
        want = []
        if self.n_positive < self.needed:
            want.append(f"{self.needed - self.n_positive} more interesting")
        if self.n_negative < self.needed:
            want.append(f"{self.needed - self.n_negative} more normal or artefact")
        return " and ".join(want)


def rerank_features(table: pd.DataFrame) -> np.ndarray:
    """The model's inputs: the latents ``z0``.. and the separate scores as robust z-scores, float64 ``(N, F)``."""
    zcols = [c for c in table.columns if str(c)[:1] == "z" and str(c)[1:].isdigit()]
    z = table[zcols].to_numpy(dtype=np.float64)
    s = score_zscores(table).to_numpy()
    x = np.column_stack([z, s]) if s.size else z
    return np.where(np.isfinite(x), x, 0.0)


def rerank(table: pd.DataFrame, labels, *, seed: int = 0, min_per_class: int = MIN_PER_CLASS,
           n_trees: int = 200) -> Rerank:
    """Learn from the user's labels and score every image.

    Parameters
    ----------
    table : pandas.DataFrame
        A cache table (latents ``z0``.., ``score_*``).
    labels : array_like of str
        One label per row (``"interesting"``, ``"normal"``, ``"artefact"`` or ``""``), e.g.
        ``load_labels(cache)["label"]``.
    seed : int
        Seed of the forest.
    min_per_class : int
        Labels of each kind needed before a model is fitted.
    n_trees : int
        Trees in the forest.

    Returns
    -------
    Rerank
        The scores, or the counts that say what is missing.
    """
    from sklearn.ensemble import RandomForestClassifier

    lab = np.asarray(labels, dtype=object).astype(str)
    if lab.shape != (len(table),):
        raise ValueError(f"labels has shape {lab.shape}, expected ({len(table)},): one per row of the table")
    pos, neg = lab == POSITIVE, np.isin(lab, NEGATIVE)
    out = Rerank(int(pos.sum()), int(neg.sum()), int(min_per_class))
    if out.n_positive < min_per_class or out.n_negative < min_per_class:
        return out
    x = rerank_features(table)
    train = pos | neg
    forest = RandomForestClassifier(n_estimators=n_trees, class_weight="balanced", min_samples_leaf=1,
                                    random_state=seed, n_jobs=1)
    forest.fit(x[train], pos[train].astype(int))
    p = forest.predict_proba(x)[:, list(forest.classes_).index(1)]
    rank = np.full(len(table), np.nan)
    free = np.flatnonzero(~train)
    order = free[np.argsort(-p[free], kind="stable")]
    rank[order] = np.arange(1, len(order) + 1)
    out.scores = pd.DataFrame({"user_score": p, "user_rank": rank}, index=table.index)
    return out
