"""Slice predictors: the protocol, the binary slice model, test-time augmentation and the one model loader.

What the scan pipeline, the evaluators and the CLI need from a model is :class:`SlicePredictor`: uint8 slices in,
per-class probabilities out. :class:`SliceSegmenter` (binary; :class:`infnet.inference.Segmenter` adds whole
scans) and :class:`infnet.multiclass.predict.MultiClassSegmenter` provide it, and so can any object with these
two members (tests use small fakes). Both load their weights through :func:`load_weights` and share
:func:`tta_logits` and the temperature and scale checks. Nothing here imports the scan pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from infnet.backends import Net, logits_of, make_net, resolve_backend
from infnet.data.dataset import scaled_size, to_tensor_image
from infnet.errors import InfnetError


@runtime_checkable
class SlicePredictor(Protocol):
    """8-bit slices in the training appearance in, per-class probabilities out."""

    name: str
    classes: tuple[str, ...]

    def predict_proba(self, slices: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W) slices -> float32 (N, C, H, W) probabilities in [0, 1], C = len(classes)."""
        ...


class NetPredictor:
    """What both slice predictors share: the model on its device, the backend net built once, the output
    temperature and TTA settings, and batching of ``predict_proba`` over ``_forward`` (one batch of slices)."""

    classes: tuple[str, ...] = ()

    def _setup(
        self, model: nn.Module, *, name: str, input_size: int, device, batch_size: int, temperature: float | None,
        tta: bool, tta_scales: Iterable[float] | None, backend: str | None, channels_last: bool = False,
    ) -> None:  # fmt: skip
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # input_size 0 (each slice at its own size) always runs in torch: a traced graph would freeze its sizes
        self.backend = resolve_backend(backend, self.device) if input_size else "torch"
        model = model.to(self.device).eval()
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.name = name
        self.input_size = int(input_size)
        self.batch_size = batch_size
        self.mean, self.std = tuple(model.mean), tuple(model.std)
        self.temperature = checked_temperature(temperature, model)
        self.tta = tta_mode(tta)
        self.tta_scales = checked_scales(tta_scales)
        self._net: Net | None = None

    @property
    def net(self) -> Net:
        """The network's logits function for the chosen backend (built once, on first use)."""
        if self._net is None:
            self._net = make_net(self.model, self.backend, self.input_size)
        return self._net

    def prepare(self):
        """Build the backend now (the ONNX export or cache read happens here instead of at the first slice)."""
        _ = self.net
        return self

    def _forward(self, slices: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        raise NotImplementedError

    @torch.inference_mode()
    def predict_proba(self, slices: np.ndarray | Iterable[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """Probabilities for uint8 slices: (N,H,W) -> float32 (N,C,H,W); a list of (H,W) -> list of (C,H,W)."""
        if isinstance(slices, np.ndarray):
            if slices.ndim != 3:
                raise ValueError(f"expected (N,H,W) slices, got shape {slices.shape}")
            out = np.empty((len(slices), len(self.classes), *slices.shape[1:]), dtype=np.float32)
            for i in range(0, len(slices), self.batch_size):
                chunk = list(slices[i : i + self.batch_size])
                probs = self._forward(chunk)
                out[i : i + len(chunk)] = probs if isinstance(probs, np.ndarray) else np.stack(probs)
            return out
        items = list(slices)
        return [p for i in range(0, len(items), self.batch_size) for p in self._forward(items[i : i + self.batch_size])]


class SliceSegmenter(NetPredictor):
    """A trained binary infection model on 8-bit CT slices (training appearance); whole scans: ``Segmenter``.

    ``predict_proba`` takes uint8 slices (N,H,W) of any size and returns float32 (N,C,H,W) probabilities at
    the same size; ``predict`` returns a uint8 {0,1} mask of the input's shape. ``temperature`` (default: the
    checkpoint's, else 1) sharpens the maps as ``sigmoid(T * logit)``; masks at 0.5 do not change
    (:mod:`infnet.calibration`). ``tta`` averages the logits of the slice and its left-right mirror image
    (True or 'mirror', twice the compute) or of all 8 flips/rotations ('dihedral', 8x: the answer no longer
    depends on the slice's orientation); ``tta_scales`` (e.g. ``(0.75, 1, 1.25)``, the training scales) also
    averages over input sizes (``len(scales)`` times the compute, times the views of ``tta``). ``backend``:
    'auto' (ONNX Runtime on the CPU when installed, else torch), 'torch', 'onnx' or 'onnx-int8'
    (:mod:`infnet.backends`); the ONNX net is exported or read from the cache on first use (or :meth:`prepare`),
    TTA and temperature are applied around it in torch.
    """

    def __init__(
        self,
        model: nn.Module,
        name: str = "model",
        input_size: int = 352,
        device=None,
        batch_size: int = 8,
        temperature: float | None = None,
        tta: bool = False,
        tta_scales: Iterable[float] | None = None,
        backend: str | None = "auto",
    ):
        # channels_last: measured 1.9x faster for the EfficientNet-Lite2 Inf-Net on a 2-core AVX2 CPU
        # (benchmarks/bench_inference.py); outputs equal eager NCHW within 1e-5.
        settings = dict(temperature=temperature, tta=tta, tta_scales=tta_scales, backend=backend)
        self._setup(model, name=name, input_size=input_size, device=device, batch_size=batch_size,
                    channels_last=True, **settings)  # fmt: skip
        self.classes = ("infection",)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | None = None, device=None, **kw):
        """A bundled model by name (default: the bundled default) or an infnet safetensors checkpoint path."""
        model, name, size = load_weights(name_or_path, task="binary")
        return cls(model, name=name, input_size=size, device=device, **kw)

    def _forward(self, slices: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """(C,H,W) probabilities per slice: one array (N,C,H,W) when the slices share a size, else a list."""
        for s in slices:
            if s.dtype != np.uint8:
                raise ValueError(f"expected uint8 slices (8-bit CT in training appearance), got {s.dtype}")
        batch = self._inputs(slices).to(self.device)
        if self.backend == "torch":
            batch = batch.contiguous(memory_format=torch.channels_last)
        logits = tta_logits(self.net, batch, self.tta_scales, flip=self.tta)
        sizes = {tuple(s.shape) for s in slices}
        if len(sizes) == 1:
            return self._probs(logits, sizes.pop())
        return [self._probs(lg[None], s.shape)[0] for lg, s in zip(logits, slices, strict=True)]

    def _inputs(self, slices: list[np.ndarray]) -> torch.Tensor:
        """Normalised (N,3,S,S) network input, as :func:`to_tensor_image` per slice but vectorised over the batch."""
        if len({s.shape for s in slices}) > 1:
            return torch.stack([to_tensor_image(s, self.input_size, self.mean, self.std) for s in slices])
        t = torch.from_numpy(np.stack(slices)).float().div_(255.0)[:, None]
        if t.shape[-2:] != (self.input_size, self.input_size):  # bilinear at scale 1 is the identity: skipped
            t = F.interpolate(t, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        m = torch.tensor(self.mean, dtype=t.dtype).view(1, 3, 1, 1)
        s = torch.tensor(self.std, dtype=t.dtype).view(1, 3, 1, 1)
        return (t - m) / s

    def _probs(self, logits: torch.Tensor, size: tuple[int, ...]) -> np.ndarray:
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)
        return torch.sigmoid(logits * self.temperature).cpu().numpy()

    def predict(self, image: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """uint8 {0,1} infection mask of the same shape as a uint8 slice (H,W) or stack (N,H,W)."""
        arr = np.asarray(image)
        if arr.ndim == 2:
            return (self.predict_proba(arr[None])[0, 0] >= threshold).astype(np.uint8)
        if arr.ndim == 3 and arr.dtype == np.uint8:
            return (self.predict_proba(arr)[:, 0] >= threshold).astype(np.uint8)
        raise ValueError(f"expected a uint8 2D slice or 3D stack, got {arr.dtype} {arr.shape}")


TTA_MODES = ("auto", "none", "mirror", "dihedral")


def tta_mode(tta: bool | str | None) -> str:
    """'none', 'mirror' or 'dihedral' for a TTA setting (False/None: none, True: mirror, or the name itself);
    'auto' is kept as is: the scan pipeline makes it 'dihedral' for 2D slices and 'none' for volumes."""
    if tta is None or tta is False:
        return "none"
    if tta is True:
        return "mirror"
    if tta not in TTA_MODES:
        raise InfnetError(f"unknown TTA {tta!r} (use {', '.join(TTA_MODES)})")
    return str(tta)


def _dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """As :func:`infnet.data.presentation.dihedral` on the last two axes of a tensor."""
    return torch.rot90(x.transpose(-1, -2) if k >= 4 else x, k % 4, dims=(-2, -1))


def _undo_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    return x.transpose(-1, -2) if k >= 4 else x


def dihedral_tta(model: nn.Module | Net, batch: torch.Tensor) -> torch.Tensor:
    """Mean logits over the 8 flips/rotations of the plane, each turned back: the same answer for every
    orientation of the input (8x compute)."""
    total = None
    for k in range(8):
        out = _undo_dihedral(logits_of(model, _dihedral(batch, k).contiguous()), k)
        total = out if total is None else total + out
    return total / 8


def flip_tta(model: nn.Module | Net, batch: torch.Tensor) -> torch.Tensor:
    """Mean logits ``out`` of ``batch`` (N,C,H,W) and of its left-right mirror image, mirrored back."""
    logits = logits_of(model, batch)
    mirrored = logits_of(model, torch.flip(batch, dims=[3]))
    return (logits + torch.flip(mirrored, dims=[3])) / 2


def tta_logits(
    model: nn.Module | Net, batch: torch.Tensor, scales: tuple[float, ...] = (1.0,), flip: bool | str = False
):
    """Mean logits ``out`` of ``batch`` (N,C,H,W) over input ``scales`` and the views of ``flip`` (a
    :func:`tta_mode`: True or 'mirror' adds the mirror image, 'dihedral' all 8 flips/rotations).

    ``model``: a registered model (its ``out`` entry is used) or a backend net returning the logits.
    A scale resizes the batch to the multi-scale training size (``scaled_size``: a multiple of 32 near s*H);
    its logits are resized to (H, W). ``scales=(1,)``: no resizing at all (logits at the model's output size).
    """
    views = {"auto": logits_of, "none": logits_of, "mirror": flip_tta, "dihedral": dihedral_tta}[tta_mode(flip)]
    if tuple(scales) == (1.0,):
        return views(model, batch)
    h, w = batch.shape[-2:]
    total = None
    for s in scales:
        x = batch
        if s != 1.0:
            x = F.interpolate(batch, size=(scaled_size(h, s), scaled_size(w, s)), mode="bilinear", align_corners=False)
        out = views(model, x)
        if out.shape[-2:] != (h, w):
            out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
        total = out if total is None else total + out
    return total / len(scales)


def checked_scales(scales: Iterable[float] | None) -> tuple[float, ...]:
    """TTA input scales as a tuple (default ``(1.0,)``); each must be in (0, 4]."""
    out = (1.0,) if scales is None else tuple(float(s) for s in scales)
    if not out or not all(0 < s <= 4 for s in out):
        raise InfnetError(f"TTA scales must be numbers in (0, 4], got {list(out)}")
    return out


def checked_temperature(temperature: float | None, model: nn.Module) -> float:
    """``temperature`` if given, else the one stored in the model's checkpoint metadata, else 1; must be > 0."""
    if temperature is None:
        temperature = getattr(model, "checkpoint_meta", {}).get("temperature", 1.0)
    temperature = float(temperature)
    if not temperature > 0:
        raise InfnetError(f"temperature must be > 0, got {temperature}")
    return temperature


def is_multiclass(name_or_path: str | Path | None) -> bool:
    """Whether a bundled model name or checkpoint path is a multi-class (GGO / consolidation) model."""
    from infnet.models import weights
    from infnet.models.registry import read_checkpoint_meta

    if name_or_path is None:
        return False
    name = str(name_or_path)
    if name in weights.list_bundled():
        return weights.bundled_entry(name).get("task") == "multiclass"
    path = Path(name)
    return path.is_file() and read_checkpoint_meta(path).get("task") == "multiclass"


def load_weights(name_or_path: str | Path | None, task: str = "binary") -> tuple[nn.Module, str, int]:
    """The one model loader of both predictors: ``(model, name, input size)`` for a bundled name or a checkpoint.

    ``None``: the bundled default of ``task``. ``task='binary'`` refuses multi-class models (they need an
    infection model for their prior: :func:`infnet.inference.load_predictor`); the multi-class predictor checks
    its model's channels itself. A checkpoint's sha256 becomes the model's ONNX cache key.
    """
    from infnet.models import weights
    from infnet.models.registry import list_models, load_bundled, load_checkpoint, read_checkpoint_meta

    bundled = weights.list_bundled()
    if name_or_path is None:
        default = weights.DEFAULT_MODEL if task == "binary" else weights.DEFAULT_MULTICLASS_MODEL
        if default not in bundled:
            raise InfnetError(f"bundled default model '{default}' is not installed")
        name_or_path = default
    name = str(name_or_path)
    if name in bundled:
        if task == "binary" and weights.bundled_entry(name).get("task") == "multiclass":
            raise InfnetError(f"'{name}' is a multi-class model; load it with infnet.inference.load_predictor")
        model = load_bundled(name)
        return model, name, model.bundled_entry.get("input_size", 352)
    path = Path(name)
    if path.suffix == ".safetensors" or path.exists():
        if not path.is_file():
            raise InfnetError(f"{path}: model file not found")
        if task == "binary" and read_checkpoint_meta(path).get("task") == "multiclass":
            raise InfnetError(f"{path}: a multi-class model; load it with infnet.inference.load_predictor")
        model = load_checkpoint(path)
        model.weights_sha256 = weights.sha256_file(path)  # the ONNX cache key
        return model, path.stem, model.checkpoint_meta.get("input_size", 352)
    if name in list_models():
        raise InfnetError(
            f"'{name}' is an architecture without trained weights; give a checkpoint path "
            f"or a bundled model ({', '.join(bundled) or 'none installed'})"
        )
    raise InfnetError(f"unknown model '{name}': not a bundled model ({', '.join(bundled)}) nor an existing file")
