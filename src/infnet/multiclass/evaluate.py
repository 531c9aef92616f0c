"""Test-set evaluation of a multi-class model: GGO and consolidation maps scored against GT-1 / GT-2.

The infection prior comes from a binary model (paper: Semi-Inf-Net), as at inference; the ground-truth infection
mask is only used as the prior in training.
"""

from __future__ import annotations

import json
from pathlib import Path

from infnet.data import semiseg
from infnet.errors import InfnetError
from infnet.io.images import atomic_write_text

# Per-class binary ground truth of MultiClassInfection-Test, as the paper's evaluation uses it.
CLASS_SPLITS = {"ggo": "multiclass-test-ggo", "consolidation": "multiclass-test-consolidation"}


def evaluate_multiclass(
    model: str | Path,
    out_dir: str | Path,
    infection_model: str | Path | None = None,
    data: str | Path | None = None,
    images: str | Path | None = None,
    gt: dict[str, str | Path] | None = None,
    batch_size: int = 8,
    progress: bool = False,
    tta: bool = False,
    tta_scales: list[float] | None = None,
) -> dict:
    """Predict ``images`` (default: the 48 MultiClassInfection-Test slices) and score each class.

    ``gt`` maps ``ggo`` / ``consolidation`` to folders of per-class binary masks (default GT-1 / GT-2).
    ``tta`` / ``tta_scales``: test-time augmentation of both models, as in ``infnet predict``.
    Writes ``out_dir/pred/{ggo,consolidation}/*.png``, ``out_dir/metrics.json`` (per class: paper and standard
    protocol summaries, plus the model names) and ``out_dir/per_image-<class>.csv``; returns the metrics dict.
    """
    from infnet.evaluate import evaluate_folders, write_csv
    from infnet.inference import predict_folder
    from infnet.multiclass.predict import MultiClassSegmenter

    if (images is None) != (gt is None):
        raise InfnetError("give both the test images and the per-class ground truth folders, or neither")
    if images is None:
        root = Path(data) if data else semiseg.find_dataset()
        images = root / semiseg.SPLITS["multiclass-test"].image_dir
        gt = {c: root / semiseg.SPLITS[s].mask_dir for c, s in CLASS_SPLITS.items()}
    missing = sorted(set(CLASS_SPLITS) - set(gt))
    if missing:
        raise InfnetError(f"missing ground truth folder for: {', '.join(missing)}")
    out_dir = Path(out_dir)
    seg = MultiClassSegmenter.from_pretrained(
        model, infection_model=infection_model, batch_size=batch_size, tta=tta, tta_scales=tta_scales
    )
    predict_folder(seg, images, out_dir / "pred", batch_size=batch_size, progress=progress)
    metrics: dict = {"model": str(model), "predictor": seg.name, "images": str(images)}
    metrics["tta"] = {"views": seg.tta, "scales": list(seg.tta_scales)}
    for cls in CLASS_SPLITS:
        result = evaluate_folders(out_dir / "pred" / cls, gt[cls], protocol="both")
        metrics[cls] = result.summary()
        write_csv(result, out_dir / f"per_image-{cls}.csv")
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
