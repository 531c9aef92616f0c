"""Output temperature: how sharp a model's probability maps are, chosen on validation slices.

A temperature T scales the logits before the sigmoid / softmax (``sigmoid(T * z)``). It never changes which
class is largest, so masks at p >= 0.5 (binary) and argmax labels (multi-class) stay the same; it changes the
probability maps. The paper protocol averages Dice over 256 thresholds of each min-max normalised map, so a
sharper map scores higher there (for a hard 0/1 map meanDic equals Dice@0.5). Bundled models carry the T that
maximised meanDic on the validation slices; reports give the scores at T = 1 next to it. Multi-class models
ship with T = 1: their infected-pixel rule (GGO + consolidation >= 0.5) is not invariant under T.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

TEMPERATURE_GRID = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


def sharpen(probs: np.ndarray, temperature: float, axis: int | None = None) -> np.ndarray:
    """Probabilities at temperature ``T`` from probabilities at T = 1.

    ``axis=None``: ``probs`` are sigmoid outputs (any shape); returns ``p^T / (p^T + (1-p)^T)`` =
    ``sigmoid(T * logit(p))``. ``axis=k``: ``probs`` are the foreground classes of a softmax along ``k`` (the
    background is ``1 - sum``); returns the foreground classes of ``softmax(T * z)``. T = 1 returns the input.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    p = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0:
        return p.astype(np.float32)
    eps = 1e-12
    # log-space keeps p^T from underflowing for large T
    if axis is None:
        a, b = temperature * np.log(np.clip(p, eps, 1)), temperature * np.log(np.clip(1 - p, eps, 1))
        return (1.0 / (1.0 + np.exp(np.clip(b - a, -700, 700)))).astype(np.float32)
    bg = np.clip(1.0 - p.sum(axis=axis, keepdims=True), eps, 1)
    logs = np.concatenate([np.log(bg), np.log(np.clip(p, eps, 1))], axis=axis) * temperature
    logs -= logs.max(axis=axis, keepdims=True)
    e = np.exp(logs)
    out = e / e.sum(axis=axis, keepdims=True)
    return np.delete(out, 0, axis=axis).astype(np.float32)


def choose_temperature(
    probs: Sequence[np.ndarray],
    gts: Sequence[np.ndarray],
    grid: Sequence[float] = TEMPERATURE_GRID,
    multiclass: bool = False,
) -> tuple[float, dict[float, float]]:
    """The T in ``grid`` with the highest paper-protocol meanDic of the sharpened maps against ``gts``.

    Binary: ``probs`` are sigmoid maps (H,W) at T = 1 and ``gts`` masks (H,W) (bool, or >128 = on).
    ``multiclass``: ``probs`` are softmax foreground maps (C,H,W) and ``gts`` boolean (C,H,W); the score is the
    mean over classes. Ties go to the smaller T. Returns ``(T, {T: meanDic})``.
    """
    from infnet.evaluate import evaluate_arrays

    if len(probs) != len(gts) or not probs:
        raise ValueError("choose_temperature needs as many ground truths as probability maps (at least one)")
    scores = {}
    for t in grid:
        if not multiclass:
            maps = [(sharpen(p, t)[None], np.asarray(g)[None]) for p, g in zip(probs, gts, strict=True)]
        else:
            maps = [(sharpen(p, t, axis=0), np.asarray(g)) for p, g in zip(probs, gts, strict=True)]
        per_class = []
        for c in range(maps[0][0].shape[0]):
            items = [(str(i), m[c], g[c]) for i, (m, g) in enumerate(maps)]
            per_class.append(evaluate_arrays(items, protocol="paper").paper["meanDic"])
        scores[float(t)] = float(np.mean(per_class))
    best = max(scores, key=lambda t: (round(scores[t], 6), -t))
    return best, scores


def validation_temperature(
    predictor, data: str | Path | None = None, grid: Sequence[float] = TEMPERATURE_GRID
) -> tuple[float, dict[float, float]]:
    """Choose a predictor's temperature on the COVID-SemiSeg val split (5 slices), never the test slices.

    Binary predictors (:class:`~infnet.inference.Segmenter`) are scored on Doctor-label val against its masks;
    multi-class ones (``MultiClassSegmenter``) on MultiClassInfection-Train val against GGO (label 1) and
    consolidation (label 2), with their infection model's prior as at inference.
    """
    from infnet.data import semiseg
    from infnet.io.images import list_images, read_gray
    from infnet.multiclass.data import read_class_label

    root = Path(data) if data else semiseg.find_dataset()
    multiclass = len(predictor.classes) > 1
    split = semiseg.SPLITS["multiclass-train" if multiclass else "doctor-label"]
    stems = set(semiseg.read_split_list(root, "val"))
    images = [p for p in list_images(root / split.image_dir) if p.stem in stems]
    masks = {p.stem: p for p in list_images(root / split.mask_dir)}
    saved, predictor.temperature = predictor.temperature, 1.0
    try:
        probs = predictor.predict_proba([read_gray(p) for p in images])
    finally:
        predictor.temperature = saved
    if multiclass:
        labels = [read_class_label(masks[p.stem]) for p in images]
        gts = [np.stack([lab == 1, lab == 2]) for lab in labels]
        return choose_temperature(probs, gts, grid, multiclass=True)
    gts = [read_gray(masks[p.stem]) > 128 for p in images]
    return choose_temperature([p[0] for p in probs], gts, grid)
