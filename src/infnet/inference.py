"""Prediction API: NumPy in, NumPy out. :class:`Segmenter` wraps a trained model for slices, volumes and files.

The slice-level machinery (:class:`~infnet.predictor.SliceSegmenter`, test-time augmentation, the model loader)
is :mod:`infnet.predictor`, below the scan pipeline; this module adds whole scans on top of both, picks the
predictor for a model (:func:`load_predictor`) and writes probability maps of slice folders
(:func:`predict_folder`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from infnet.errors import InfnetError
from infnet.io.images import is_image_file, list_images, read_gray, write_png
from infnet.multiclass.predict import MultiClassSegmenter
from infnet.predictor import (  # noqa: F401  (re-exported: the public names of this module)
    SlicePredictor,
    SliceSegmenter,
    checked_scales,
    checked_temperature,
    flip_tta,
    is_multiclass,
    load_weights,
    tta_logits,
)


class Segmenter(SliceSegmenter):
    """A trained infection model ready for inference on 8-bit CT slices (training appearance) and whole scans.

    Everything of :class:`~infnet.predictor.SliceSegmenter` (``predict_proba``, ``predict``, ``temperature``,
    ``tta``, ``tta_scales``, ``backend``), plus :meth:`segment_file` and :meth:`predict` on a HU volume.
    """

    def predict(self, image: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """uint8 {0,1} infection mask of a uint8 slice (H,W) or stack (N,H,W), or of a (z,y,x) HU volume."""
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.dtype != np.uint8:
            from infnet.scan.pipeline import segment_array

            return segment_array(self, arr).infection_mask
        if arr.ndim not in (2, 3):
            raise ValueError(f"expected a 2D slice or a 3D stack, got shape {arr.shape}")
        return super().predict(arr, threshold)

    def segment_file(self, path: str | Path, **options):
        """Segment a scan or slice file (PNG/JPG, NIfTI, MHA/NRRD, DICOM folder); see :mod:`infnet.scan`."""
        from infnet.scan.pipeline import segment_file

        return segment_file(self, path, **options)


def load_predictor(
    name_or_path: str | Path | None = None, infection_model: str | Path | None = None, device=None, **kw
):
    """A :class:`Segmenter` for binary models, a ``MultiClassSegmenter`` for multi-class ones.

    ``infection_model`` (bundled name or checkpoint) gives a multi-class model its infection prior; by default
    the one recorded in the bundled model's registry entry, else the bundled default binary model.
    """
    if is_multiclass(name_or_path):
        return MultiClassSegmenter.from_pretrained(name_or_path, infection_model=infection_model, device=device, **kw)
    if infection_model is not None:
        model = Segmenter.from_pretrained(name_or_path, device=device, **kw)  # an unknown name or file says so
        raise InfnetError(f"--infection-model applies to multi-class models only; '{model.name}' is binary")
    return Segmenter.from_pretrained(name_or_path, device=device, **kw)


def predict_folder(
    segmenter: Segmenter,
    input_path: str | Path,
    output_dir: str | Path,
    batch_size: int = 8,
    progress: bool = True,
) -> list[Path]:
    """Write one probability PNG (0-255, input size, named by input stem) per input slice; returns the paths."""
    input_path, output_dir = Path(input_path), Path(output_dir)
    if input_path.is_file():
        if not is_image_file(input_path):
            raise InfnetError(f"{input_path}: not a PNG/JPG slice")
        files = [input_path]
        src_dir = input_path.parent
    else:
        files = list_images(input_path)
        src_dir = input_path
        if not files:
            raise InfnetError(f"{input_path}: no PNG/JPG slices found")
    if output_dir.resolve() == src_dir.resolve():
        raise InfnetError(f"{output_dir}: output folder is the input folder; choose another")
    written = []
    it = files
    if progress:
        from tqdm import tqdm

        it = tqdm(files, desc="predict", leave=False)
    images = {}
    for f in it:
        images[f] = read_gray(f)
        if len(images) == batch_size or f == files[-1]:
            probs = segmenter.predict_proba(list(images.values()))
            for (path, _), prob in zip(images.items(), probs, strict=True):
                written += _write_probs(segmenter, prob, output_dir, path.stem)
            images = {}
    return written


def _write_probs(segmenter: Segmenter, prob: np.ndarray, output_dir: Path, stem: str) -> list[Path]:
    paths = []
    for c, cls in enumerate(segmenter.classes):
        folder = output_dir if len(segmenter.classes) == 1 else output_dir / cls
        path = folder / f"{stem}.png"
        write_png(path, np.clip(prob[c] * 255.0 + 0.5, 0, 255).astype(np.uint8))
        paths.append(path)
    return paths
