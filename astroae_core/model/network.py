"""The autoencoder network: a convolutional encoder, a bottleneck of ``latent_dim`` numbers, a decoder that mirrors it
(optionally with the seed's U-Net skips; see :mod:`astroae_core.model.config`), and its inference-only fused copy."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from astroae_core.model.config import ModelConfig

__all__ = ["AutoEncoder", "fused_for_inference", "batchnorm_layers", "count_parameters"]


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU (the seed's block)."""

    def __init__(self, c_in: int, c_out: int):
        layers = []
        for c in (c_in, c_out):
            layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class AutoEncoder(nn.Module):
    """Convolutional autoencoder with an ``latent_dim``-number bottleneck.

    Parameters
    ----------
    config : ModelConfig
        Architecture.
    preprocess_config : PreprocessConfig, optional
        The preprocessing the model was trained with; :meth:`preprocess` applies it.
    """

    def __init__(self, config: ModelConfig | None = None, *, preprocess_config=None):
        super().__init__()
        from astroae_core.data import PreprocessConfig

        self.config = config or ModelConfig()
        self.preprocess_config = preprocess_config or PreprocessConfig(size=self.config.in_size)
        # Where the weights came from: the checkpoint's history, data, train_config, version, sha256 and path
        # (filled by ``load_model``; empty for a model built in memory).
        self.checkpoint_info: dict = {}
        ch, sizes = self.config.channels, self.config.sizes
        n, d = len(ch), self.config.latent_dim
        self.enc = nn.ModuleList(ConvBlock(1 if i == 0 else ch[i - 1], ch[i]) for i in range(n))
        flat = ch[-1] * sizes[-1] ** 2
        self.to_latent = nn.Linear(flat, d)
        self.latent_norm = nn.BatchNorm1d(d, affine=False) if self.config.standardize_latent else nn.Identity()
        self.from_latent = nn.Linear(d, flat)
        skip = 2 if self.config.has_skips else 1
        # Bottom level: the U-Net also concatenates the encoder's deepest features with the decoded latent.
        self.bottom = ConvBlock(ch[-1] * skip, ch[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(ch[i], ch[i - 1], 2, stride=2) for i in range(n - 1, 0, -1))
        self.dec = nn.ModuleList(ConvBlock(ch[i - 1] * skip, ch[i - 1]) for i in range(n - 1, 0, -1))
        self.head = nn.Conv2d(ch[0], 1, 1)
        if self.config.pca_anchor:
            self.latent_norm = nn.Identity()  # the PCA scales standardize the latent
            npix = self.config.in_size ** 2
            # Fitted on the training images (set_pca_basis) and stored with the weights.
            self.register_buffer("pca_mean", torch.zeros(npix))
            self.register_buffer("pca_components", torch.zeros(d, npix))
            self.register_buffer("pca_scale", torch.ones(d))
            # ReZero-style gates: at 0 the model is exactly PCA, and the corrections' weights start moving only as
            # the gates open (Adam's first steps on 30,000 inputs to the latent would otherwise throw it far off).
            self.encoder_gate = nn.Parameter(torch.zeros(1))
            self.decoder_gate = nn.Parameter(torch.zeros(1))

    @torch.no_grad()
    def set_pca_basis(self, mean, components, scale) -> None:
        """Store the PCA basis a ``pca_anchor`` model is anchored on: the mean image (S*S,), the components
        (latent_dim, S*S) and the standard deviation of each coefficient over the training images (latent_dim,)."""
        if not self.config.pca_anchor:
            raise ValueError("set_pca_basis needs a model built with pca_anchor=True")
        for name, value in (("pca_mean", mean), ("pca_components", components), ("pca_scale", scale)):
            buf = getattr(self, name)
            t = torch.as_tensor(value, dtype=buf.dtype)
            if tuple(t.shape) != tuple(buf.shape):
                raise ValueError(f"{name} must have shape {tuple(buf.shape)}, got {tuple(t.shape)}")
            buf.copy_(t)
        self.pca_scale.clamp_(min=1e-8)

    @torch.no_grad()
    def init_output_bias(self, mean_pixel: float) -> None:
        """Start the decoder at the data's mean brightness (logit of ``mean_pixel``).

        Sky images are mostly dark: from the default 0.5 the sigmoid must first be driven into saturation,
        where its gradient vanishes, and a short run spends its first epochs only on that.
        """
        if self.config.pca_anchor:
            return  # the PCA mean image is the start; the residual's bias stays where it is
        p = min(max(float(mean_pixel), 1e-4), 1 - 1e-4)
        self.head.bias.fill_(float(torch.logit(torch.tensor(p))))

    # -- encoder ------------------------------------------------------------------------------------------------
    def _encode_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, block in enumerate(self.enc):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            feats.append(x)
        return feats

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (N, 1, S, S) in [0, 1] to latents (N, latent_dim)."""
        self._check_input(x)
        return self._latent(self._encode_features(x)[-1], x)

    def _latent(self, deepest: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        z = self.latent_norm(self.to_latent(deepest.flatten(1)))
        if self.config.pca_anchor:
            coef = (x.reshape(x.shape[0], -1) - self.pca_mean) @ self.pca_components.T
            z = coef / self.pca_scale + self.encoder_gate * z
        return z

    # -- decoder ------------------------------------------------------------------------------------------------
    def _decode_logits(self, z: torch.Tensor, skips: list[torch.Tensor] | None) -> torch.Tensor:
        ch, sizes = self.config.channels, self.config.sizes
        h = F.relu(self.from_latent(z)).view(z.shape[0], ch[-1], sizes[-1], sizes[-1])
        h = h.contiguous(memory_format=torch.channels_last) if _is_channels_last(self) else h
        level = len(ch) - 1
        h = self.bottom(self._join(h, skips, level))
        for up, dec in zip(self.up, self.dec):
            level -= 1
            h = up(h, output_size=(sizes[level], sizes[level]))
            h = dec(self._join(h, skips, level))
        if not self.config.pca_anchor:
            return self.head(h)
        s = self.config.in_size
        linear = (self.pca_mean + (z * self.pca_scale) @ self.pca_components).view(z.shape[0], 1, s, s)
        return linear + self.decoder_gate * self.head(h)

    def _squash(self, logits: torch.Tensor) -> torch.Tensor:
        # A PCA-anchored output is already in image units: clipped to [0, 1] as the PCA baseline clips.
        return logits.clamp(0.0, 1.0) if self.config.pca_anchor else torch.sigmoid(logits)

    def _join(self, h: torch.Tensor, skips, level: int) -> torch.Tensor:
        if not self.config.has_skips:
            return h
        # No skips given means "decode from the latent alone": the skip channels carry zeros.
        ch, size = self.config.channels[level], self.config.sizes[level]
        if skips is None:
            fmt = torch.channels_last if _is_channels_last(self) else torch.contiguous_format
            s = h.new_zeros(h.shape[0], ch, size, size).contiguous(memory_format=fmt)
        else:
            s = skips[level]
        return torch.cat([h, s], dim=1)

    def decode(self, z: torch.Tensor, skips: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Decode latents (N, latent_dim) to images (N, 1, S, S) in [0, 1].

        Parameters
        ----------
        z : Tensor
            Latents.
        skips : list of Tensor, optional
            Encoder features of a reference image (from :meth:`skip_features`) for a model with skips.
            Without them the image is drawn from the latent alone.
        """
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"z must have shape (N, {self.config.latent_dim}), got {tuple(z.shape)}")
        return self._squash(self._decode_logits(z, skips))

    def skip_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features of ``x`` at every scale, to pass to :meth:`decode` as ``skips``."""
        self._check_input(x)
        return self._encode_features(x)

    # -- both ---------------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encode and decode, with and without the skips (CompressAI style: one dict of everything computed).

        Returns
        -------
        dict of Tensor
            ``"x_hat"`` (N, 1, S, S) in [0, 1]: the full reconstruction (skips included, for a model with skips);
            ``"x_hat_latent"``: the reconstruction from the latent alone (skips zeroed, as ``decode(z)``);
            ``"z"`` (N, latent_dim); ``"logits"`` and ``"logits_latent"``: the two reconstructions before the
            sigmoid (for a ``pca_anchor`` model: before the clip to [0, 1]), for a numerically stable binary
            cross-entropy. Without skips the latent-only entries are the
            same tensors as the full ones (not recomputed). In training mode a model with skips does not compute
            the latent-only pair (a second decoder pass would also update its BatchNorm statistics a second
            time): the keys are absent.
        """
        self._check_input(x)
        feats = self._encode_features(x)
        z = self._latent(feats[-1], x)
        if not self.config.has_skips:
            logits = self._decode_logits(z, None)
            x_hat = self._squash(logits)
            return {"x_hat": x_hat, "x_hat_latent": x_hat, "z": z, "logits": logits, "logits_latent": logits}
        skips = feats
        if self.training and self.config.skip_mode == "dropout":
            keep = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.config.skip_dropout).to(x.dtype)
            skips = [f * keep for f in feats]
        logits = self._decode_logits(z, skips)
        out = {"x_hat": self._squash(logits), "z": z, "logits": logits}
        if not self.training:
            out["logits_latent"] = self._decode_logits(z, None)
            out["x_hat_latent"] = self._squash(out["logits_latent"])
        return out

    def preprocess(self, image):
        """Preprocess a 2-D image with the settings this model was trained with; see ``astroae_core.data.preprocessing``."""
        from astroae_core.data import preprocess

        return preprocess(image, config=self.preprocess_config)

    def _check_input(self, x: torch.Tensor) -> None:
        s = self.config.in_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, s, s):
            raise ValueError(f"expected images of shape (N, 1, {s}, {s}), got {tuple(x.shape)}")


def _is_channels_last(module: nn.Module) -> bool:
    # A wide 3x3 weight: its two memory formats are distinguishable (a 1-channel one's are not).
    w = module.bottom[0].weight
    return w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()


def fused_for_inference(model: AutoEncoder) -> AutoEncoder:
    """An eval-mode, channels_last copy of ``model`` with every BatchNorm folded into the convolution before it.

    Same outputs to float rounding; each block then makes two passes over its feature map instead of four (the
    speed-up: ``benchmarks/inference.py``, ``benchmarks/RESULTS.md``). For inference only: the copy cannot train.
    ``model`` is left untouched and ``checkpoint_info`` is carried over.
    """
    import copy

    from torch.nn.utils.fusion import fuse_conv_bn_eval

    m = copy.deepcopy(model).eval()
    for block in m.modules():
        if isinstance(block, ConvBlock):
            for i in range(len(block) - 1):
                if isinstance(block[i], nn.Conv2d) and isinstance(block[i + 1], nn.BatchNorm2d):
                    block[i] = fuse_conv_bn_eval(block[i], block[i + 1])
                    block[i + 1] = nn.Identity()
    return m.to(memory_format=torch.channels_last)


def batchnorm_layers(module: nn.Module) -> list[nn.Module]:
    """Every BatchNorm layer (1-D or 2-D) in ``module``, in ``modules()`` order."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
