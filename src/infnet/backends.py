"""Inference backends: run a model's ``out`` logits with torch or with ONNX Runtime.

A *net* is a callable ``net(x) -> logits``: float32 (N,C,H,W) in, float32 (N,K,H,W) out, both torch tensors, so
test-time augmentation, temperature and resizing stay in torch around it (``infnet.inference.tta_logits``).

The ONNX Runtime net exports the model once (opset 17, dynamic batch and spatial axes) into a cache folder,
``$INFNET_CACHE/onnx`` or ``~/.cache/infnet/onnx``, as ``<sha256 of the weights>.onnx`` written atomically; a
missing, unreadable or stale (other export version or weights) file is rebuilt. On this 2-core AVX-512 CPU, quiet,
ORT ran the bundled Inf-Net 3.8x faster than torch channels_last (46.0 vs 12.2 slices/s, bench_inference.py) with
masks unchanged (benchmarks/bench_fast.py, tests/test_backends.py).

``onnx-int8`` quantises the decoder of that graph to int8 (static, per-channel QDQ, MinMax ranges from eight
bundled *training* slices) and keeps the encoder in fp32: the whole graph in int8 ran 2x faster but lost 0.03
Dice@0.5 on the test slices, the decoder alone loses nothing measurable (benchmarks/bench_fast.py prints both).
Weights in 7 bits (``reduce_range``): with 8, CPUs without VNNI (AVX2 only) saturate. A new int8 graph is checked
against the fp32 one on those slices before use (:func:`check_int8`). Cached beside the fp32 file as
``<sha256>.int8.onnx``.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from infnet.errors import InfnetError

BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
ONNX_BACKENDS = ("onnx", "onnx-int8")
EXPORT_VERSION = "1"  # bump when the exported graph changes: cached files of another version are rebuilt
OPSET = 17
# The encoders downsample by 32 and the decoders skip a resize when shapes already match; the traced graph is
# exact for spatial sizes that are multiples of this (all the Segmenter and scale-TTA sizes); others run in torch.
SIZE_MULTIPLE = 32

Net = Callable[[torch.Tensor], torch.Tensor]


def onnx_available() -> bool:
    """Whether onnxruntime can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """'torch' or 'onnx' for a requested backend: 'auto' (default) is onnx on CPU when onnxruntime is installed."""
    backend = backend or "auto"
    if backend not in BACKENDS:
        raise InfnetError(f"unknown backend {backend!r} (use {', '.join(BACKENDS)})")
    if backend == "auto":
        return "onnx" if device.type == "cpu" and onnx_available() else "torch"
    if backend in ONNX_BACKENDS:
        if device.type != "cpu":
            raise InfnetError(f"--backend {backend} runs on the CPU; device {device} needs --backend torch")
        if not onnx_available():
            raise InfnetError(f"--backend {backend} needs onnxruntime (pip install onnxruntime)")
    return backend


def cache_dir() -> Path:
    """Folder of the exported models: ``$INFNET_CACHE/onnx``, else ``~/.cache/infnet/onnx``."""
    root = os.environ.get("INFNET_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "infnet") / "onnx"


def weights_sha256(model: nn.Module) -> str:
    """The sha256 of the model's weights file (bundled registry or checkpoint), else of its state dict's bytes."""
    known = getattr(model, "weights_sha256", None) or getattr(model, "bundled_entry", {}).get("sha256")
    if known:
        return str(known)
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def logits_of(model: nn.Module | Net, x: torch.Tensor) -> torch.Tensor:
    """float32 logits of ``x``: a registered model's ``out`` entry, or a net's tensor."""
    out = model(x)
    return (out["out"] if isinstance(out, dict) else out).float()


class _Logits(nn.Module):
    """The ``out`` logits as one tensor: what is exported."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"].float()


def _in_chans(model: nn.Module) -> int:
    return int(getattr(getattr(model, "config", None), "in_chans", 3) or 3)


def export_onnx(model: nn.Module, size: int = 352, meta: dict[str, str] | None = None) -> bytes:
    """The model's ``out`` logits as an ONNX graph (bytes; batch, height and width dynamic), metadata added."""
    import onnx

    in_chans = _in_chans(model)
    size = max(SIZE_MULTIPLE, int(size) // SIZE_MULTIPLE * SIZE_MULTIPLE)
    x = torch.zeros(1, in_chans, size, size)
    buf = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    was_training = model.training
    model.eval()
    try:  # inference_mode off: tracing needs ordinary tensors (the first call may come from inside predict_proba)
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about shape-dependent Python branches
            torch.onnx.export(_Logits(model), (x,), buf, input_names=["x"], output_names=["logits"],
                              dynamic_axes={"x": axes, "logits": axes}, opset_version=OPSET, dynamo=False)  # fmt: skip
    finally:
        model.train(was_training)
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in (meta or {}).items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def session_options(threads: int | None = None, level: str = "all", spin: bool = False):
    """ORT session options: ``threads`` intra-op threads (default: torch's count, so one setting rules both).

    ``spin`` off by default: ORT's idle threads otherwise busy-wait after each run, taking the cores from the
    pre/post-processing between runs and from other processes; on this shared 2-core machine turning it off
    measured 1.8x faster under load (benchmarks/bench_fast.py).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
              "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}  # fmt: skip
    opts.graph_optimization_level = levels[level]
    opts.intra_op_num_threads = int(threads or torch.get_num_threads())
    opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only: ORT warns about unused initialisers of the traced graph
    return opts


class OrtNet:
    """ONNX Runtime session over an exported model, called like a torch net (tensors in and out).

    Inputs whose height or width is not a multiple of :data:`SIZE_MULTIPLE` go to the torch ``model``.
    """

    def __init__(self, session, model: nn.Module, path: Path | None = None):
        self.session = session
        self.model = model
        self.path = path

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % SIZE_MULTIPLE or x.shape[-2] % SIZE_MULTIPLE:
            with torch.inference_mode():
                return logits_of(self.model, x.contiguous())
        arr = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"x": arr})[0])


def _open_session(source: bytes | str, threads: int | None):
    import onnxruntime as ort

    return ort.InferenceSession(source, session_options(threads), providers=["CPUExecutionProvider"])


def _is_current(session, key: str, int8: bool = False) -> bool:
    meta = session.get_modelmeta().custom_metadata_map
    current = meta.get("infnet_sha256") == key and meta.get("infnet_export") == EXPORT_VERSION
    return current and (meta.get("infnet_int8") == INT8_SCHEME) == int8


INT8_SCHEME = "decoder-qdq-minmax-rr-2"  # recorded in the int8 file: another scheme's cached file is rebuilt


def calibration_slices() -> list[np.ndarray]:
    """The eight bundled COVID-SemiSeg training slices (uint8) that calibrate the int8 ranges."""
    from infnet.io.images import list_images, read_gray

    return [read_gray(p) for p in list_images(Path(__file__).parent / "samples" / "calibration")]


def _calibration_inputs(model: nn.Module, size: int) -> list[np.ndarray]:
    """:func:`calibration_slices` as the network's (1, 3, size, size) float inputs."""
    from infnet.data.dataset import to_tensor_image

    return [to_tensor_image(s, size, tuple(model.mean), tuple(model.std))[None].numpy() for s in calibration_slices()]


def quantize_decoder(fp32: bytes, model: nn.Module, size: int, meta: dict[str, str]) -> bytes:
    """int8 copy of an exported graph: every node outside the encoder quantised (static QDQ, per-channel weights,
    MinMax activation ranges over :func:`calibration_slices`), the encoder left in fp32."""
    import tempfile

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    inputs = _calibration_inputs(model, size)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter({"x": x} for x in inputs)

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory(prefix="infnet-int8-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src, pre, dst = (Path(tmp) / f"{n}.onnx" for n in ("fp32", "pre", "int8"))
        src.write_bytes(fp32)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        names = [n.name for n in onnx.load(str(pre)).graph.node]
        encoder = [n for n in names if "/encoder/" in n]
        if not encoder:
            raise InfnetError(f"--backend onnx-int8: no encoder found in the graph of {meta.get('infnet_arch')}")
        quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=encoder,
                        extra_options={"CalibMovingAverage": False})  # fmt: skip
        proto = onnx.load(str(dst))
    del proto.metadata_props[:]
    for k, v in {**meta, "infnet_int8": INT8_SCHEME}.items():
        proto.metadata_props.add(key=k, value=v)
    return proto.SerializeToString()


INT8_MIN_AGREEMENT = 0.98  # Dice of the int8 masks against the fp32 ones on the calibration slices


def check_int8(fp32: Callable, int8: Callable, model: nn.Module, size: int) -> float:
    """Refuse an int8 graph whose masks differ from the fp32 graph's on :func:`calibration_slices`: the int8
    kernels of CPUs without VNNI saturate with 8-bit weights (mask Dice 0.58 on an AVX2-only CPU before the weights
    were cut to 7 bits), and a wrong mask must not pass silently. Returns the agreement."""
    x = torch.from_numpy(np.concatenate(_calibration_inputs(model, size)))
    a, b = fp32(x) >= 0, int8(x) >= 0  # logit 0 = probability 0.5, at any temperature
    dice = 2 * float((a & b).sum()) / max(float(a.sum() + b.sum()), 1.0)
    if dice < INT8_MIN_AGREEMENT:
        raise InfnetError(f"--backend onnx-int8: on this CPU the int8 graph's masks differ from fp32's (Dice "
                          f"{dice:.3f} on the calibration slices); use --backend onnx")  # fmt: skip
    return dice


def onnx_net(
    model: nn.Module, size: int = 352, threads: int | None = None, cache: Path | None = None, int8: bool = False
) -> OrtNet:
    """An :class:`OrtNet` for ``model``, from the cache or exported now (and cached, atomically); ``int8``: the
    decoder-int8 graph (:func:`quantize_decoder`), built from the fp32 one.

    A cached file that ORT cannot read, or that records other weights or another export version, is rebuilt.
    An unwritable cache folder is not an error: the export is then used from memory.
    """
    from infnet.io.images import atomic_write_bytes

    # Multi-class models also read the infection prior, which the calibration slices lack: they stay fp32.
    int8 = int8 and _in_chans(model) == 3
    key = weights_sha256(model)
    path = (cache or cache_dir()) / f"{key}{'.int8' if int8 else ''}.onnx"
    if path.is_file():
        try:
            session = _open_session(str(path), threads)
            if _is_current(session, key, int8):
                return OrtNet(session, model, path)
        except Exception:  # noqa: BLE001 - any unreadable file (truncated, not ONNX) is rebuilt
            pass
    meta = {"infnet_sha256": key, "infnet_export": EXPORT_VERSION, "infnet_arch": str(getattr(model, "arch_name", "?"))}
    if int8:
        fp32 = onnx_net(model, size, threads, cache)
        data = quantize_decoder(fp32.path.read_bytes() if fp32.path else export_onnx(model, size, meta), model, size,
                                meta)  # fmt: skip
        check_int8(fp32, OrtNet(_open_session(data, threads), model, None), model, size)
    else:
        data = export_onnx(model, size, meta)
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:
        warnings.warn(f"{path.parent}: cannot cache the ONNX export ({exc.strerror}); using it from memory",
                      stacklevel=2)  # fmt: skip
        return OrtNet(_open_session(data, threads), model, None)
    return OrtNet(_open_session(str(path), threads), model, path)


def make_net(model: nn.Module, backend: str, size: int = 352, threads: int | None = None) -> Net:
    """The net for a resolved backend ('torch': the module itself, 'onnx' / 'onnx-int8': :func:`onnx_net`)."""
    if backend in ONNX_BACKENDS:
        return onnx_net(model, size, threads, int8=backend == "onnx-int8")
    return model
