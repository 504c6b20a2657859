"""Plain-words readings of the core's summaries: how much the latent carries and on which images it was measured
(Metrics page), how much the sliders move the image (Latent sliders page), why the map is PCA (Latent map page)."""

from __future__ import annotations

from astroae_core.analysis import MIN_UMAP_POINTS, WEAK_INFLUENCE, carry_summary, influence_summary
from astroae_core.analysis.summary import HELD_OUT_WORDS


def _headline(k: int, carried: dict, skips: bool) -> str:
    explained = carried.get("latent_only")
    if explained is None or "pca" not in carried:
        return ""
    text = (f"How much of the image the {k} numbers carry: decoded from them alone, the model removes "
            f"{max(explained, 0):.0%} of the error of the mean image; PCA with {k} components removes "
            f"{carried['pca']:.0%}")
    return text + (f"; the full model, whose skip connections pass the image around the numbers, "
                   f"{carried['full']:.0%}." if skips and "full" in carried else ".")


def _skip_sentences(evaluation: dict, k: int, fmse: float, ratio_full: float) -> list[str]:
    dvd = evaluation.get("decoded_vs_data")
    return [f"The full reconstruction (with skip connections) has MSE {fmse:.3g}; from the latent alone it is "
            f"{ratio_full:.3g}× that: the difference is what the skips carry around the bottleneck, not through the "
            f"{k} numbers.",
            "The latent sliders decode from the numbers alone, so they show only what the latent carries"
            + (f": decoded that way, images vary {dvd:.0%} as much as the real ones"
               + (", so the sliders barely change the image." if dvd < 0.2 else ".") if dvd is not None else ".")]


def carry_text(evaluation: dict) -> dict:
    """An evaluation's :func:`~astroae_core.analysis.carry_summary` in plain words.

    Returns
    -------
    dict
        The summary's numbers, plus ``headline`` (how much of the image the numbers carry, one sentence; empty
        without a PCA or mean-image row) and ``sentence`` (the headline and the details).
    """
    summary = carry_summary(evaluation)
    rows = evaluation.get("rows", {})
    k = evaluation.get("latent_dim", 8)
    skips = evaluation.get("skip_mode", "none") != "none"
    lmse, fmse, pmse = (rows.get(r, {}).get("mse") for r in ("latent_only", "full", "pca"))
    explained = summary["explained_vs_mean"]
    headline = _headline(k, summary["carried"], skips)
    s = [headline] if headline else []
    if summary["latent_vs_pca"] is not None:
        s.append(f"From its {k} numbers alone the model reconstructs with MSE {lmse:.3g}, "
                 f"{summary['latent_vs_pca']:.3g}× the MSE of PCA with {k} components ({pmse:.3g})"
                 + (f" — the latent beats PCA-{k}." if summary["beats_pca"] else f" — it does NOT beat PCA-{k}."))
    if explained is not None and explained < 0:
        s.append(f"It is worse than simply predicting the mean image (MSE {rows['mean_image']['mse']:.3g}).")
    elif explained is not None and not headline:  # the headline already says it
        s.append(f"It removes {explained:.0%} of the error of the mean image.")
    if skips and summary["latent_vs_full"] is not None:
        s += _skip_sentences(evaluation, k, fmse, summary["latent_vs_full"])
    if "effective_dim" in evaluation:
        s.append(f"Effective dimensionality of the latent: {evaluation['effective_dim']:.2f} of {k}.")
    return {**summary, "headline": headline, "sentence": " ".join(s)}


def crossval_text(cv: dict, k: int) -> str:
    """A checkpoint's stored cross-validation (:func:`train.crossval.stored_summary`) in one paragraph: what to
    expect of the model on objects it never saw."""
    r, ssim, pssim, dim = (cv[m] for m in ("latent_vs_pca_mse", "latent_ssim", "pca_ssim", "effective_dim"))
    fainter = (cv.get("robustness") or {}).get("fainter")
    return (f"**What to expect on objects it never saw.** Its recipe was cross-validated over {cv['folds']} folds "
            f"grouped by object: each fold's model was trained on the other folds' objects and scored on about "
            f"{cv['n_images']} images of objects it never saw. Decoded from their {k} numbers alone, those images "
            f"gave **{r['mean']:.2f} ± {r['std']:.2f} × PCA-{k}'s MSE** (below 1 beats PCA; folds "
            f"{r['min']:.2f}–{r['max']:.2f}), SSIM {ssim['mean']:.3f} against PCA-{k}'s {pssim['mean']:.3f}, and "
            f"{dim['mean']:.1f} ± {dim['std']:.1f} effective dimensions of {k}"
            + (f"; on the same objects made 10× fainter, {fainter['mean']:.2f} × PCA-{k}'s MSE." if fainter else "."))


# what an evaluation's "images" codes mean (astroae_core.analysis.evaluate, the cache's report)
_EVALUATION_IMAGES = {"validation": "the checkpoint's validation split",
                      "unseen": "images the model did not train on",
                      "training": "images the model trained on",
                      "all": "every image, training images included",
                      "sample": "a seeded random sample of the cache's images"}


def evaluation_caption(evaluation: dict) -> str:
    """Which images an evaluation was measured on, and how many training images its baselines were fitted on.

    ``evaluation["images"]`` is a code (``validation``, ``unseen``, ``training``, ``all``, ``sample``); anything
    else (an older evaluation's phrase) is shown as it is.
    """
    images = evaluation.get("images")
    which = _EVALUATION_IMAGES.get(images, images) or "images not recorded"
    return (f"Measured on {evaluation.get('n_images', '?')} images ({which}); baselines fitted on "
            f"{evaluation.get('n_train_images_for_baselines', '?')} training images.")


def influence_verdict(influence, has_skips: bool, decoded_vs_data: float | None = None) -> str:
    """A few sentences on how much the sliders move the image (``influence`` relative to the dataset's spread)."""
    summary = influence_summary(influence)
    if summary is None:
        return "Influence could not be measured."
    n = summary["n"]
    parts = [f"The strongest slider moves the decoded image by {summary['strongest']:.0%} of the dataset's own "
             "variation"]
    if summary["weak"]:
        parts.append(f"{summary['weak']} of {n} move it by less than {WEAK_INFLUENCE:.0%} of that")
    text = "; ".join(parts) + "."
    if decoded_vs_data is not None:
        text += (f" Images decoded from the latent vary {decoded_vs_data:.0%} as much as the real images do"
                 + (" — the latent alone draws nearly the same image every time." if decoded_vs_data < 0.2 else "."))
    if has_skips:
        text += (" This model has skip connections: its full reconstructions copy detail from the input around "
                 "the bottleneck, so the sliders (which decode from the latent alone) show only what the "
                 f"{n} numbers carry.")
    return text


def map_fallback(umap) -> str:
    """Why a cache's map is the PCA one (``umap``: its ``meta.umap``, whose ``method`` is not ``"umap"``)."""
    if umap.fallback == "too_few_images":
        return f"Too few images for a UMAP (it needs at least {MIN_UMAP_POINTS}): showing PCA."
    if umap.fallback == "umap_failed":
        return f"UMAP failed on these latents ({umap.error or 'no reason recorded'}): showing PCA."
    return "This cache has no UMAP: showing PCA."


def far_from_training(distance: dict | None, *, k: int, subject: str = "These images are") -> str | None:
    """A warning in words when images are far from what the model was trained on
    (:func:`~astroae_core.analysis.distance_from_training`); None when they are not."""
    if not distance or not distance.get("far"):
        return None
    held_out = HELD_OUT_WORDS[distance.get("held_out", "validation")]
    return (f"{subject} far from what the model was trained on: the latent-only error is {distance['ratio']:.1f}× "
            f"the model's error on {held_out}, so the {k} numbers say little here. Train a model on this folder for "
            "a latent that describes it.")
