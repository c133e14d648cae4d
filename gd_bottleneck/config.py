"""The model's hyper-parameters: one frozen dataclass with the paper's preset and a small one for CPUs.

Everything that shapes the networks lives here (the bottleneck choice lives on ``HybridVAE`` because a sweep
varies it across otherwise identical models). Invalid values raise ``ValueError`` naming the field.
"""

import dataclasses
import math

from gd_bottleneck.precision import PRECISIONS, check_precision
from gd_bottleneck.validation import check_int, check_rate


def setting(default, help, choices=None):
    """A dataclass field with its flag's help text (and choices, for enum flags) as metadata: the trainer's flags
    are generated from them (trainers/run_flags.py). Used by ModelConfig and RunConfig."""
    metadata = {"help": help, **({"choices": tuple(choices)} if choices is not None else {})}
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of the hybrid VAE + PixelCNN++ model (paper appendix B).

    Shapes: images ``[B, image_size, image_size, 3]``; latents ``[B, latent_size, latent_size, latent_channels]``;
    the VAE decoder's output ``u`` is ``[B, image_size, image_size, decoder_output_channels]``; the PixelCNN++
    output ``v`` is ``[B, image_size, image_size, pixelcnn_output_dim]``.
    """

    image_size: int = setting(32, "Image side in pixels.")
    # VAE: ResNets of bottleneck residual blocks (1x1 -> 3x3 -> 1x1), ELU.
    resnet_blocks: int = setting(7, "Bottleneck residual blocks in each of the VAE encoder and decoder.")
    resnet_channels: int = setting(512, "Channels of the VAE ResNets.")
    resnet_bottleneck_channels: int = setting(128, "Channels inside a VAE residual block (its 3x3 convolution).")
    decoder_output_channels: int = setting(256, "Channels of u, the VAE decoder's output.")
    latent_size: int = setting(4, "Latent side: z is [latent_size, latent_size, latent_channels].")
    latent_channels: int = setting(16, "Latent channels.")
    # PixelCNN++ (Salimans et al. 2017).
    pixelcnn_filters: int = setting(160, "Filters of both PixelCNN++ streams.")
    pixelcnn_resnets_per_stage: int = setting(5, "PixelCNN++ gated resnets per stream and stage.")
    pixelcnn_stages: int = setting(3, "PixelCNN++ resolutions (each halves the previous one).")
    pixelcnn_dropout: float = setting(0.5, "Binary dropout rate inside every PixelCNN++ gated resnet, in [0, 1).")
    pixelcnn_output_dim: int = setting(10, "Size of v per pixel (the bottleneck's input).")
    weight_norm: bool = setting(False, "Weight-normalised PixelCNN++ layers with data-dependent initialisation "
                               "(Salimans & Kingma 2016), as in PixelCNN++.")
    # Mixer MLP and likelihood.
    mixer_units: int = setting(266, "Hidden units of the per-pixel mixer MLP on [v~, u].")
    mixture_components: int = setting(10, "Logistic mixture components of the likelihood.")
    # Compute dtype policy of the three networks (gd_bottleneck/precision.py); the likelihood stays float32.
    precision: str = setting("float32", "Compute dtype of the networks (the likelihood stays float32): "
                            "mixed_bfloat16 for AMX CPUs, TPUs and recent GPUs, mixed_float16 for GPUs.", PRECISIONS)

    def __post_init__(self):
        for name, minimum in [("image_size", 2), ("resnet_blocks", 0), ("resnet_channels", 1),
                              ("resnet_bottleneck_channels", 1), ("decoder_output_channels", 1), ("latent_size", 1),
                              ("latent_channels", 1), ("pixelcnn_filters", 1), ("pixelcnn_resnets_per_stage", 1),
                              ("pixelcnn_stages", 1), ("pixelcnn_output_dim", 1), ("mixer_units", 1),
                              ("mixture_components", 1)]:
            check_int(getattr(self, name), name, minimum)
        check_rate(self.pixelcnn_dropout, "pixelcnn_dropout")
        if not isinstance(self.weight_norm, bool):
            raise ValueError(f"Field `weight_norm` must be True or False. Received: weight_norm={self.weight_norm!r}")
        check_precision(self.precision)
        ratio = self.image_size / self.latent_size
        if ratio < 1 or ratio != 2 ** round(math.log2(ratio)):
            raise ValueError(f"Fields `image_size` / `latent_size` must be a power of two >= 1 (the VAE halves the "
                             f"resolution step by step). Received: image_size={self.image_size}, "
                             f"latent_size={self.latent_size}.")
        smallest = self.image_size // 2 ** (self.pixelcnn_stages - 1)
        if self.image_size % 2 ** (self.pixelcnn_stages - 1) or smallest < 1:
            raise ValueError(f"Field `image_size`={self.image_size} must be divisible by 2**(pixelcnn_stages - 1) = "
                             f"{2 ** (self.pixelcnn_stages - 1)}: each PixelCNN++ stage halves the resolution.")

    @property
    def vae_downsamplings(self):
        """How many times the encoder halves (and the decoder doubles) the resolution."""
        return round(math.log2(self.image_size // self.latent_size))

    @property
    def dims_per_image(self):
        """Number of sub-pixels, the denominator of bits/dim."""
        return self.image_size * self.image_size * 3

    def replace(self, **changes):
        """A copy with some fields changed (validated)."""
        self._check_known(changes)
        return dataclasses.replace(self, **changes)

    @classmethod
    def _check_known(cls, values):
        unknown = set(values) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown ModelConfig fields: {sorted(unknown)}; the fields are "
                             f"{[field.name for field in dataclasses.fields(cls)]}.")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        cls._check_known(values)
        return cls(**values)


def paper(image_size=32):
    """Appendix B: 7-block ResNets of 512 channels (128 in the bottleneck), PixelCNN++ with 160 filters, 5 gated
    resnets per stage over 3 stages, dropout 0.5, v of 10 dims, a 266-unit mixer, 10 logistic components."""
    return ModelConfig(image_size=image_size)


def small(image_size=32):
    """A model of the same shape that trains in minutes on 2 CPU cores: narrow ResNets, a 1-resnet-per-stage
    PixelCNN++ of 32 filters, the paper's latents (4x4x16), v of 10 dims and 10 mixture components."""
    return ModelConfig(image_size=image_size, resnet_blocks=2, resnet_channels=64, resnet_bottleneck_channels=32,
                       decoder_output_channels=32, pixelcnn_filters=32, pixelcnn_resnets_per_stage=1,
                       mixer_units=64)


PRESETS = {"paper": paper, "small": small}
