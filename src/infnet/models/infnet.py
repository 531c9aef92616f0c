"""Inf-Net (Fan et al., IEEE TMI 2020, section III-A) and the ablation variants of Table IV.

Feature maps from the encoder: f1..f5 at strides 2..32. The parallel partial decoder (PPD) aggregates
RFB-reduced f3, f4, f5 into the global map S_g (stride 8). Three cascaded reverse-attention (RA) modules refine
it at f5, f4, f3: A_i = 1 - sigmoid(resize(S_{i+1})), R_i = C(f_i, down(e_att)) * A_i, S_i = conv(R_i) +
resize(S_{i+1}). The edge-attention (EA) branch on f2 yields e_att and an edge map supervised with edges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from infnet.models.encoders import ENCODERS, Encoder


@dataclass
class InfNetConfig:
    """Architecture of one Inf-Net variant (what a checkpoint needs to be rebuilt)."""

    encoder: str = "efficientnet_lite2"
    use_ppd: bool = True  # parallel partial decoder -> S_g
    use_ra: bool = True  # reverse-attention cascade
    use_edge: bool = True  # edge-attention branch
    rfb_channels: int = 32
    edge_channels: int = 64
    ra_channels: tuple[int, int, int] = (256, 64, 64)  # RA at f5, f4, f3
    in_chans: int = 3
    num_classes: int = 1

    def __post_init__(self):
        self.ra_channels = tuple(self.ra_channels)  # JSON round trips give lists

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ra_channels"] = list(self.ra_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> InfNetConfig:
        d = dict(d)
        if "ra_channels" in d:
            d["ra_channels"] = tuple(d["ra_channels"])
        return cls(**d)


def conv_bn(cin: int, cout: int, k: int = 3, dilation: int = 1, relu: bool = True, padding=None) -> nn.Sequential:
    """Conv + BN (+ ReLU) with 'same' padding for odd or (h, w) kernels."""
    if padding is None:
        padding = tuple((kk - 1) // 2 * dilation for kk in k) if isinstance(k, tuple) else (k - 1) // 2 * dilation
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, padding=padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def resize(x: torch.Tensor, size) -> torch.Tensor:
    """Bilinear resize to ``size`` (no-op when already there)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class RFB(nn.Module):
    """Receptive field block: four branches of growing dilation, concatenated, plus a 1x1 shortcut."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.branch0 = conv_bn(cin, cout, 1, relu=False)
        self.branches = nn.ModuleList()
        for k in (3, 5, 7):
            self.branches.append(
                nn.Sequential(
                    conv_bn(cin, cout, 1, relu=False),
                    conv_bn(cout, cout, (1, k), relu=False),
                    conv_bn(cout, cout, (k, 1), relu=False),
                    conv_bn(cout, cout, 3, dilation=k, relu=False),
                )
            )
        self.fuse = conv_bn(4 * cout, cout, 3, relu=False)
        self.shortcut = conv_bn(cin, cout, 1, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([self.branch0(x)] + [b(x) for b in self.branches], dim=1)
        return F.relu(self.fuse(y) + self.shortcut(x))


class PartialDecoder(nn.Module):
    """Parallel partial decoder over (f3, f4, f5) after RFB: multiplicative cascade, then concatenation."""

    def __init__(self, c: int):
        super().__init__()
        self.up5_to4 = conv_bn(c, c, relu=False)
        self.up5_to3 = conv_bn(c, c, relu=False)
        self.up4_to3 = conv_bn(c, c, relu=False)
        self.up5_cat = conv_bn(c, c, relu=False)
        self.cat4 = conv_bn(2 * c, 2 * c, relu=False)
        self.up4_cat = conv_bn(2 * c, 2 * c, relu=False)
        self.cat3 = conv_bn(3 * c, 3 * c, relu=False)
        self.head = nn.Sequential(conv_bn(3 * c, 3 * c, relu=False), nn.Conv2d(3 * c, 1, 1))

    def forward(self, x3: torch.Tensor, x4: torch.Tensor, x5: torch.Tensor) -> torch.Tensor:
        s3, s4 = x3.shape[-2:], x4.shape[-2:]
        x5_4 = resize(x5, s4)
        x4_1 = self.up5_to4(x5_4) * x4
        x3_1 = self.up5_to3(resize(x5, s3)) * self.up4_to3(resize(x4, s3)) * x3
        x4_2 = self.cat4(torch.cat([x4_1, self.up5_cat(x5_4)], dim=1))
        x3_2 = self.cat3(torch.cat([x3_1, self.up4_cat(resize(x4_2, s3))], dim=1))
        return self.head(x3_2)


class ReverseAttention(nn.Module):
    """One RA module: erase what the coarser map already found, learn the residual on what is left."""

    def __init__(self, cin: int, mid: int, edge_channels: int = 0):
        super().__init__()
        self.reduce = conv_bn(cin, mid, 1)
        self.fuse = conv_bn(mid + edge_channels, mid, 3)
        self.refine = nn.Sequential(conv_bn(mid, mid, 3), conv_bn(mid, mid, 3), nn.Conv2d(mid, 1, 3, padding=1))

    def forward(self, feat: torch.Tensor, prior: torch.Tensor, edge: torch.Tensor | None) -> torch.Tensor:
        prior = resize(prior, feat.shape[-2:])
        attention = 1.0 - torch.sigmoid(prior)  # A_i
        x = self.reduce(feat)
        if edge is not None:
            x = torch.cat([x, resize(edge, feat.shape[-2:])], dim=1)
        x = self.fuse(x) * attention  # R_i = C(f_i, down(e_att)) * A_i
        return self.refine(x) + prior  # S_i


class InfNet(nn.Module):
    """Inf-Net and its ablations. ``forward`` returns a dict of logits, all at the input's size:

    - ``maps``: side outputs for deep supervision, coarse to fine (e.g. [S_g, S_5, S_4, S_3])
    - ``edge``: edge logits, or None without the EA branch
    - ``out``: the prediction logits (the last of ``maps``); probabilities = sigmoid(out)
    """

    def __init__(self, config: InfNetConfig | None = None, encoder_weights: str | None = "imagenet"):
        super().__init__()
        self.config = cfg = config or InfNetConfig()
        spec = ENCODERS[cfg.encoder]
        self.mean, self.std = spec.mean, spec.std
        self.encoder = Encoder(cfg.encoder, weights=encoder_weights)
        _, c2, c3, c4, c5 = self.encoder.channels
        r = cfg.rfb_channels
        if cfg.use_ppd:
            self.rfb = nn.ModuleList([RFB(c, r) for c in (c3, c4, c5)])
            self.ppd = PartialDecoder(r)
        else:
            # Without PPD (ablations No.1 and No.3) a plain 1x1 head on each level gives the coarse map.
            self.side = nn.ModuleList([nn.Conv2d(c, 1, 1) for c in (c3, c4, c5)])
        if cfg.use_edge:
            e = cfg.edge_channels
            self.edge_feat = nn.Sequential(conv_bn(c2, e, 1), conv_bn(e, e, 3), conv_bn(e, e, 3))
            self.edge_head = nn.Conv2d(e, 1, 3, padding=1)
        if cfg.use_ra:
            ec = cfg.edge_channels if cfg.use_edge else 0
            self.ra = nn.ModuleList(
                [ReverseAttention(c, m, ec) for c, m in zip((c5, c4, c3), cfg.ra_channels, strict=True)]
            )

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor] | None]:
        size = x.shape[-2:]
        f = self.encoder(x)
        f2, f3, f4, f5 = f[1], f[2], f[3], f[4]
        if self.config.use_ppd:
            coarse = self.ppd(*(rfb(t) for rfb, t in zip(self.rfb, (f3, f4, f5), strict=True)))  # S_g
        elif self.config.use_ra:
            coarse = self.side[2](f5)  # stride-32 start for the RA cascade
        else:
            s3 = f3.shape[-2:]
            coarse = sum(resize(h(t), s3) for h, t in zip(self.side, (f3, f4, f5), strict=True))
        maps = [coarse]
        edge_logits, e_att = None, None
        if self.config.use_edge:
            e_att = self.edge_feat(f2)
            edge_logits = resize(self.edge_head(e_att), size)
        if self.config.use_ra:
            prior = coarse
            for ra, feat in zip(self.ra, (f5, f4, f3), strict=True):
                prior = ra(feat, prior, e_att)
                maps.append(prior)
        maps = [resize(m, size) for m in maps]
        return {"maps": maps, "edge": edge_logits, "out": maps[-1]}
