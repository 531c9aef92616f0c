"""Final evaluation of a checkpoint on a held-out folder: predictions + metrics under both protocols."""

from __future__ import annotations

import json
from pathlib import Path

from infnet.io.images import atomic_write_text


def evaluate_checkpoint(
    checkpoint: str | Path,
    image_dir: str | Path,
    mask_dir: str | Path,
    out_dir: str | Path,
    batch_size: int = 8,
    **predictor_options,
) -> dict:
    """Predict ``image_dir`` with ``checkpoint`` into ``out_dir/pred`` and score against ``mask_dir``.

    Writes ``out_dir/metrics.json`` (paper + standard protocol summaries) and ``out_dir/per_image.csv``.
    ``predictor_options`` go to :meth:`~infnet.inference.Segmenter.from_pretrained` (``tta``, ``tta_scales``,
    ``temperature``).
    """
    from infnet.evaluate import evaluate_folders, write_csv
    from infnet.inference import Segmenter, predict_folder

    out_dir = Path(out_dir)
    seg = Segmenter.from_pretrained(str(checkpoint), **predictor_options)
    predict_folder(seg, image_dir, out_dir / "pred", batch_size=batch_size, progress=False)
    result = evaluate_folders(out_dir / "pred", mask_dir, protocol="both")
    summary = result.summary()
    atomic_write_text(out_dir / "metrics.json", json.dumps(summary, indent=2))
    write_csv(result, out_dir / "per_image.csv")
    return summary
