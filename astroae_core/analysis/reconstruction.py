"""One image through a model: its reconstruction in flux units and the numbers describing the match; latents decoded
from the latent alone."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from astroae_core.analysis.photometry import Photometry, compare_photometry

__all__ = ["Reconstruction", "decode_latents", "reconstruct"]


@dataclass
class Reconstruction:
    """An image, the model's reconstruction of it and the numbers describing the match.

    Attributes
    ----------
    x, x_hat : ndarray, shape (S, S)
        The preprocessed image and its full reconstruction, in the model's [0, 1] units.
    z : ndarray, shape (D,)
        The image's latent.
    norm : Norm
        The preprocessing's normalization (maps model units back to flux).
    flux, flux_hat : ndarray
        The image (non-finite pixels replaced) and its reconstruction, in the file's flux units and shape.
    metrics : dict
        ``{"mse", "psnr", "ssim", "ms_ssim"}`` of the full reconstruction, measured in [0, 1] units.
    x_latent, flux_latent, metrics_latent : optional
        The same for the reconstruction from the latent alone; None for a model without skips (where it is the
        full reconstruction).
    skip_mode : str
        The model's skip mode.
    photometry, photometry_latent : Photometry or None
        The reconstruction's total-flux ratio and sky offset against the original
        (:func:`~astroae_core.analysis.photometry.compare_photometry`), and the latent-only one's.
    """

    x: np.ndarray
    x_hat: np.ndarray
    z: np.ndarray
    norm: object
    flux: np.ndarray
    flux_hat: np.ndarray
    metrics: dict
    x_latent: np.ndarray | None = None
    flux_latent: np.ndarray | None = None
    metrics_latent: dict | None = None
    skip_mode: str = "none"
    photometry: Photometry | None = None
    photometry_latent: Photometry | None = None


def _metrics_one(x, x_hat) -> dict:
    from astroae_core.analysis.metrics import image_metrics

    m = image_metrics(x[None, None], x_hat[None, None])
    return {k: float(v[0]) for k, v in m.items()}


def reconstruct(model, image) -> Reconstruction:
    """Reconstruct one image: preprocess it as the model was trained, run it through the model once, map the
    reconstructions back to flux units and measure them.

    Parameters
    ----------
    model : AutoEncoder
        In evaluation mode; ``model(x)`` returns ``"x_hat"``, ``"x_hat_latent"`` and ``"z"``.
    image : array_like, shape (H, W)
        Flux values; non-finite pixels are replaced as in training.

    Returns
    -------
    Reconstruction
        With the latent-only reconstruction filled in for a model with skips, and the photometry of each.

    Raises
    ------
    ValueError
        If the model is in training mode (a model with skips then computes no latent-only reconstruction), or the
        image cannot be preprocessed.
    """
    import torch

    from astroae_core.data import replace_nonfinite

    if model.training:
        raise ValueError("reconstruct needs the model in evaluation mode (call model.eval() first)")
    flux, _ = replace_nonfinite(image)
    x, norm = model.preprocess(flux)
    with torch.inference_mode():
        out = model(torch.from_numpy(x[None]))
    x_hat = out["x_hat"][0, 0].float().numpy()
    rec = Reconstruction(x=x[0], x_hat=x_hat, z=out["z"][0].float().numpy(), norm=norm, flux=flux,
                         flux_hat=norm.invert(x_hat, to_original_shape=True), metrics=_metrics_one(x[0], x_hat),
                         skip_mode=model.config.skip_mode)
    rec.photometry = compare_photometry(flux, rec.flux_hat)
    if model.config.has_skips:
        rec.x_latent = out["x_hat_latent"][0, 0].float().numpy()
        rec.flux_latent = norm.invert(rec.x_latent, to_original_shape=True)
        rec.metrics_latent = _metrics_one(x[0], rec.x_latent)
        rec.photometry_latent = compare_photometry(flux, rec.flux_latent)
    return rec


def decode_latents(model, z) -> np.ndarray:
    """Decode latents from the latent alone (skips zeroed).

    Parameters
    ----------
    model : AutoEncoder
    z : array_like, shape (N, D) or (D,)

    Returns
    -------
    ndarray, shape (N, S, S)
        float32 images in the model's [0, 1] units.
    """
    import torch

    z = np.atleast_2d(np.asarray(z, dtype=np.float32))
    with torch.inference_mode():
        return model.decode(torch.from_numpy(z))[:, 0].float().numpy()
