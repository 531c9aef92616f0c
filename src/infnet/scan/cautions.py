"""Notes a report carries about the model and the input: known weaknesses of a bundled model (from its registry
entry) and 8-bit slices windowed narrower than the model was trained for."""

from __future__ import annotations

from infnet.data.presentation import WINDOW_LEVEL, WINDOW_WIDTH
from infnet.models import weights
from infnet.scan.slices2d import SATURATED_SHARE, saturated_tissue_share

# The bundled models trained for any presentation, named by the narrow-window note.
ROBUST_BINARY = weights.DEFAULT_2D_MODEL
ROBUST_MULTICLASS = "fcn8s-effl2-robust-multiclass-semiseg"


def _names(predictor) -> list[str | None]:
    """The model names in use: a multi-class model's own and its infection prior model's, or the binary model's."""
    infection = getattr(predictor, "infection", None)
    if infection is None:
        return [getattr(predictor, "name", None)]
    return [getattr(predictor, "model_name", None), getattr(infection, "name", None)]


def model_cautions(predictor) -> list[str]:
    """The registry's caution for each bundled model in use (e.g. false positives on healthy lung)."""
    out = []
    for name in _names(predictor):
        known = isinstance(name, str) and name in weights.list_bundled()
        if known and (caution := weights.bundled_entry(name).get("caution")):
            out.append(f"{name}: {caution}")
    return out


def window_check(predictor, images, settings: dict) -> list[str]:
    """8-bit slices whose soft tissue is saturated were windowed narrower than the training window: models
    trained without --presentation lose up to 0.12 Dice@0.5 there (docs/robustness.md). Noted, not corrected."""
    flagged = sum(saturated_tissue_share(im) >= SATURATED_SHARE for im in images)
    settings["narrow_window_slices"] = flagged
    names = _names(predictor)
    if not flagged or all(weights.presentation_trained(n) for n in names):
        return []
    robust = ROBUST_BINARY if len(names) == 1 else ROBUST_MULTICLASS
    return [f"{flagged} of {len(images)} slice(s) have their soft tissue saturated: windowed narrower than the "
            f"training window (level {WINDOW_LEVEL:g}, width {WINDOW_WIDTH:g} HU), e.g. -700/1000; this model loses "
            f"Dice there, {robust} is trained for it"]  # fmt: skip
