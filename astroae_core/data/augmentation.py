"""Augmentation: the 8 symmetries of the square, drawn per image of a batch."""

from __future__ import annotations

import torch

__all__ = ["augment"]


def augment(batch: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Apply one of the 8 dihedral transforms (flips, 90-degree rotations), chosen per sample.

    Sky images have no preferred orientation, so all 8 symmetries of the square are equally valid views.

    Parameters
    ----------
    batch : torch.Tensor
        Shape ``(N, C, S, S)`` (any leading axes; the last two must be equal).
    generator : torch.Generator
        Source of randomness; the same generator state gives the same transforms.

    Returns
    -------
    torch.Tensor
        A new tensor of the same shape, dtype and device.

    Raises
    ------
    ValueError
        If the images are not square or the batch has fewer than 3 dimensions.
    """
    if batch.dim() < 3 or batch.shape[-1] != batch.shape[-2]:
        raise ValueError(f"augment needs a batch of square images (N, ..., S, S), got shape {tuple(batch.shape)}")
    n = batch.shape[0]
    # Draw on the generator's device (a CPU generator cannot fill a CUDA tensor), then move.
    codes = torch.randint(0, 8, (n,), generator=generator, device=generator.device).to(batch.device)
    out = torch.empty_like(batch)
    for code in range(8):
        idx = (codes == code).nonzero(as_tuple=True)[0]
        if idx.numel() == 0:
            continue
        sub = batch[idx]
        if code >= 4:
            sub = sub.flip(-1)
        out[idx] = torch.rot90(sub, k=code % 4, dims=(-2, -1))
    return out
