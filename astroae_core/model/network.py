"""The autoencoder: the seed's U-Net recipe, kept as an option, and bottlenecked variants whose 8 numbers carry the image.

Skip modes
----------
``"unet"``
    The seed: encoder features concatenated into the decoder at every scale, the 23x23 bottom level included.
    Reconstructions look perfect because the image bypasses the latent; ``decode(z)`` alone (skips zeroed) shows
    how little the 8 numbers carry.
``"none"``
    A pure bottleneck: the decoder sees only the latent.
``"dropout"``
    U-Net skips, but during training each sample loses all of its skips with probability ``skip_dropout`` (the
    decoder then sees zeros, exactly what ``decode(z)`` feeds it). The decoder must learn to draw the image from
    the latent alone, while the skips can still add detail when present.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ModelConfig", "AutoEncoder", "SKIP_MODES", "CONV_NORMS", "UPSAMPLES", "fused_for_inference",
           "batchnorm_layers"]

SKIP_MODES = ("unet", "none", "dropout")
CONV_NORMS = ("batch", "group", "none")
UPSAMPLES = ("transposed", "bilinear")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an :class:`AutoEncoder`; stored in every checkpoint so a model rebuilds without guessing.

    Parameters
    ----------
    in_size : int
        Side of the square input image (the seed: 187).
    latent_dim : int
        Number of latent numbers (the seed: 8).
    channels : tuple of int
        Filters of the encoder blocks, one per scale (the seed: 16, 32, 64, 128); max-pool between blocks.
    skip_mode : {"unet", "none", "dropout"}
        How encoder features reach the decoder (see the module docstring).
    skip_dropout : float
        With ``skip_mode="dropout"``: probability that a training sample loses all its skips.
    standardize_latent : bool
        Batch-normalize the latent (no learned scale or shift): over the training data every latent number has
        mean 0 and variance 1, so no dimension can shrink to nothing, the sliders share one scale, and the
        participation ratio measures how independent the numbers are rather than how they happen to be scaled.
    bottleneck_hidden : int
        Width of a hidden layer between the deepest feature map and the latent, on both sides (0: one linear map,
        the seed's). With one linear map the decoder's global layout is linear in the latent (a PCA-like basis
        refined by local convolutions); a hidden layer lets the 8 numbers bend it (size, orientation).
    latent_broadcast : bool
        Also hand the decoder's deepest block the latent copied to every pixel plus two coordinate channels (a
        spatial-broadcast decoder, Watters et al. 2019), so where a source lies can be a smooth function of a few
        latent numbers instead of a sum of fixed basis maps.
    conv_norm : {"batch", "group", "none"}
        Normalization after each convolution: ``"batch"`` (the seed's BatchNorm), ``"group"`` (GroupNorm, per
        image) or ``"none"`` (a biased convolution, He-initialized). With BatchNorm what the network computes for
        an image depends on the other images of its batch, noise a small batch makes large
        (``benchmarks/RESULTS.md``); the other two compute each image on its own.
    upsample : {"transposed", "bilinear"}
        How the decoder doubles its resolution: the seed's 2x2 transposed convolution with stride 2 (each input
        pixel paints its own 2x2 block, a pattern the next convolutions must smooth away), or bilinear
        interpolation followed by a 1x1 convolution to the next scale's channels (smooth by construction).
    """

    in_size: int = 187
    latent_dim: int = 8
    channels: tuple[int, ...] = (16, 32, 64, 128)
    skip_mode: str = "none"
    skip_dropout: float = 0.5
    standardize_latent: bool = False
    bottleneck_hidden: int = 0
    latent_broadcast: bool = False
    conv_norm: str = "batch"
    upsample: str = "transposed"

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if self.skip_mode not in SKIP_MODES:
            raise ValueError(f"skip_mode must be one of {SKIP_MODES}, got {self.skip_mode!r}")
        if self.conv_norm not in CONV_NORMS:
            raise ValueError(f"conv_norm must be one of {CONV_NORMS}, got {self.conv_norm!r}")
        if self.upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {self.upsample!r}")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if len(self.channels) < 1 or min(self.channels) < 1:
            raise ValueError(f"channels must be positive integers, got {self.channels}")
        if self.in_size >> (len(self.channels) - 1) < 2:
            raise ValueError(f"in_size={self.in_size} is too small for {len(self.channels)} scales")
        if self.bottleneck_hidden < 0:
            raise ValueError(f"bottleneck_hidden must be >= 0, got {self.bottleneck_hidden}")
        if not 0.0 <= self.skip_dropout <= 1.0:
            raise ValueError(f"skip_dropout must be in [0, 1], got {self.skip_dropout}")

    @property
    def has_skips(self) -> bool:
        return self.skip_mode != "none"

    @property
    def sizes(self) -> tuple[int, ...]:
        """Feature-map side at each scale (floor division by the 2x2 max-pools)."""
        return tuple(self.in_size >> i for i in range(len(self.channels)))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {unknown}")
        return cls(**d)


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by a normalization (the seed's: BatchNorm) and ReLU."""

    def __init__(self, c_in: int, c_out: int, norm: str = "batch"):
        layers = []
        for c in (c_in, c_out):
            conv = nn.Conv2d(c, c_out, 3, padding=1, bias=norm == "none")
            if norm == "none":
                # Without a normalization to restore the scale, He initialization keeps it through the depth.
                nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
                nn.init.zeros_(conv.bias)
                layers += [conv, nn.ReLU(inplace=True)]
            else:
                gn = nn.GroupNorm(min(8, c_out), c_out) if norm == "group" else nn.BatchNorm2d(c_out)
                layers += [conv, gn, nn.ReLU(inplace=True)]
        super().__init__(*layers)


class TransposedUp(nn.ConvTranspose2d):
    """The seed's upsampling: a 2x2 transposed convolution with stride 2."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, 2, stride=2)


class BilinearUp(nn.Module):
    """Bilinear interpolation to the next scale's size, then a 1x1 convolution to its channels."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.proj = nn.Conv2d(c_in, c_out, 1)

    def forward(self, h: torch.Tensor, output_size) -> torch.Tensor:
        # Project first: the same result (both are linear and act on different axes) on 4x fewer pixels.
        return F.interpolate(self.proj(h), size=tuple(output_size), mode="bilinear", align_corners=False)


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
        from astroae_core.data.preprocessing import PreprocessConfig

        self.config = config or ModelConfig()
        self.preprocess_config = preprocess_config or PreprocessConfig(size=self.config.in_size)
        ch, sizes = self.config.channels, self.config.sizes
        n = len(ch)
        norm = self.config.conv_norm
        self.enc = nn.ModuleList(ConvBlock(1 if i == 0 else ch[i - 1], ch[i], norm) for i in range(n))
        flat = ch[-1] * sizes[-1] ** 2
        hidden, d = self.config.bottleneck_hidden, self.config.latent_dim
        self.to_latent = (nn.Sequential(nn.Linear(flat, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d))
                          if hidden else nn.Linear(flat, d))
        self.latent_norm = (nn.BatchNorm1d(self.config.latent_dim, affine=False) if self.config.standardize_latent
                            else nn.Identity())
        self.from_latent = (nn.Sequential(nn.Linear(d, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, flat))
                            if hidden else nn.Linear(d, flat))
        skip = self.config.has_skips
        # Bottom level: the U-Net also concatenates the encoder's deepest features with the decoded latent.
        extra = self.config.latent_dim + 2 if self.config.latent_broadcast else 0
        self.bottom = ConvBlock(ch[-1] * (2 if skip else 1) + extra, ch[-1], norm)
        up = BilinearUp if self.config.upsample == "bilinear" else TransposedUp
        self.up = nn.ModuleList(up(ch[i], ch[i - 1]) for i in range(n - 1, 0, -1))
        self.dec = nn.ModuleList(ConvBlock(ch[i - 1] * (2 if skip else 1), ch[i - 1], norm)
                                 for i in range(n - 1, 0, -1))
        self.head = nn.Conv2d(ch[0], 1, 1)

    @torch.no_grad()
    def init_output_bias(self, mean_pixel: float) -> None:
        """Start the decoder at the data's mean brightness (logit of ``mean_pixel``).

        Sky images are mostly dark: from the default 0.5 the sigmoid must first be driven into saturation,
        where its gradient vanishes, and a short run spends its first epochs only on that.
        """
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
        return self._latent(self._encode_features(x)[-1])

    def _latent(self, deepest: torch.Tensor) -> torch.Tensor:
        return self.latent_norm(self.to_latent(deepest.flatten(1)))

    # -- decoder ------------------------------------------------------------------------------------------------
    def _decode_logits(self, z: torch.Tensor, skips: list[torch.Tensor] | None) -> torch.Tensor:
        ch, sizes = self.config.channels, self.config.sizes
        h = F.relu(self.from_latent(z)).view(z.shape[0], ch[-1], sizes[-1], sizes[-1])
        h = h.contiguous(memory_format=torch.channels_last) if _is_channels_last(self) else h
        level = len(ch) - 1
        if self.config.latent_broadcast:
            s = sizes[-1]
            grid = torch.linspace(-1, 1, s, device=z.device, dtype=h.dtype)
            coords = torch.stack(torch.meshgrid(grid, grid, indexing="ij")).expand(z.shape[0], 2, s, s)
            h = torch.cat([h, z[:, :, None, None].expand(-1, -1, s, s).to(h.dtype), coords], dim=1)
        h = self.bottom(self._join(h, skips, level))
        for up, dec in zip(self.up, self.dec):
            level -= 1
            h = up(h, output_size=(sizes[level], sizes[level]))
            h = dec(self._join(h, skips, level))
        return self.head(h)

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
        return torch.sigmoid(self._decode_logits(z, skips))

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
            sigmoid, for a numerically stable binary cross-entropy. Without skips the latent-only entries are the
            same tensors as the full ones (not recomputed). In training mode a model with skips does not compute
            the latent-only pair (a second decoder pass would also update its BatchNorm statistics a second
            time): the keys are absent.
        """
        self._check_input(x)
        feats = self._encode_features(x)
        z = self._latent(feats[-1])
        if not self.config.has_skips:
            logits = self._decode_logits(z, None)
            x_hat = torch.sigmoid(logits)
            return {"x_hat": x_hat, "x_hat_latent": x_hat, "z": z, "logits": logits, "logits_latent": logits}
        skips = feats
        if self.training and self.config.skip_mode == "dropout":
            keep = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.config.skip_dropout).to(x.dtype)
            skips = [f * keep for f in feats]
        logits = self._decode_logits(z, skips)
        out = {"x_hat": torch.sigmoid(logits), "z": z, "logits": logits}
        if not self.training:
            out["logits_latent"] = self._decode_logits(z, None)
            out["x_hat_latent"] = torch.sigmoid(out["logits_latent"])
        return out

    def preprocess(self, image):
        """Preprocess a 2-D image with the settings this model was trained with; see ``astroae_core.data.preprocessing``."""
        from astroae_core.data.preprocessing import preprocess

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

    Same outputs to float rounding; each block then makes two passes over its feature map instead of four, which
    is most of the difference between 0.3 and 0.5 of this machine's matrix-multiply rate when encoding
    (``benchmarks/inference.py``). For inference only: the copy cannot train. ``model`` is left untouched and
    ``checkpoint_info`` is carried over.
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
