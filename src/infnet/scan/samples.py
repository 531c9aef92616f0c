"""Where the real CT test samples and the bundled demo samples are."""

from __future__ import annotations

import os
from pathlib import Path

from infnet.errors import InfnetError

ENV_VAR = "INFNET_CT_SAMPLES"
MARKER = "totalsegmentator/pulmonary_report_ct_cropped.nii.gz"


def _repo_root() -> Path:
    # src/infnet/scan/samples.py -> repo root is four levels up (only meaningful in a source checkout).
    return Path(__file__).resolve().parents[3]


def candidate_roots() -> list[Path]:
    """Where ct-samples is looked for: $INFNET_CT_SAMPLES, then shared/data/ct-samples next to checkout/cwd."""
    roots = [Path(os.environ[ENV_VAR])] if os.environ.get(ENV_VAR) else []
    rel = Path("shared/data/ct-samples")
    return roots + [_repo_root().parent / rel, Path.cwd().parent / rel, Path.cwd() / rel]


def find_ct_samples(required: bool = True) -> Path | None:
    """The ct-samples folder (NIfTI, DICOM test files), or None / raise when absent."""
    for root in candidate_roots():
        if (root / MARKER).is_file():
            return root.resolve()
    if required:
        raise InfnetError(
            f"CT samples not found (looked in {', '.join(str(r) for r in candidate_roots())}); "
            f"set {ENV_VAR}=/path/to/ct-samples"
        )
    return None


def bundled_samples() -> Path:
    """The sample data shipped with the package (``infnet/samples``), used by ``infnet demo``."""
    root = Path(__file__).resolve().parents[1] / "samples"
    if not root.is_dir():
        raise InfnetError(f"{root}: bundled samples missing from this installation")
    return root


def synthetic_chest_ct(
    shape: tuple[int, int, int] = (32, 128, 128),
    spacing: tuple[float, float, float] = (2.5, 2.5, 5.0),
    seed: int = 0,
    touching: bool = False,
    lesions: bool = True,
):
    """A synthetic chest CT phantom in HU, (z, y, x) int16, for tests and benchmarks (no real anatomy).

    Identity direction (LPS): rows run anterior->posterior, columns patient right->left, z inferior->superior.
    Body (40 HU) with a fat rim, two elliptic lungs (-850 HU) with vessels, spine, a table under the body,
    a trachea above the lungs. With ``lesions``: a ground-glass blob (-500 HU) in the right lung and a
    consolidation-like blob (-50 HU) at the edge of the left lung. ``touching`` joins the lungs in front.
    ``spacing`` is (x, y, z) in mm. Returns (array, spacing).
    """
    import numpy as np

    nz, ny, nx = shape
    rng = np.random.default_rng(seed)
    y, x = np.ogrid[0:ny, 0:nx]
    yy, xx = y / ny, x / nx

    def ell(cy, cx, ry, rx):
        return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0

    body, inner = ell(0.5, 0.5, 0.36, 0.46), ell(0.5, 0.5, 0.33, 0.43)
    table = (yy > 0.9) & (yy < 0.93) & (xx > 0.08) & (xx < 0.92)
    spine = ell(0.76, 0.5, 0.06, 0.06)
    vessels = np.zeros((ny, nx), bool)
    for cy, cx in ((0.45, 0.25), (0.55, 0.33), (0.4, 0.7), (0.6, 0.75), (0.5, 0.68)):
        vessels |= ell(cy, cx, 0.012, 0.012)
    out = np.empty(shape, np.int16)
    for z in range(nz):
        t = z / max(nz - 1, 1)
        s = max(0.0, np.sin(np.pi * min(1.0, max(0.0, (t - 0.08) / 0.8)))) ** 0.5  # lungs taper at apex/base
        sl = np.full((ny, nx), -1000.0, np.float32)
        sl[body] = -100.0
        sl[inner] = 40.0
        sl[table] = 300.0
        sl[spine] = 500.0
        if s > 0.15:
            right, left = ell(0.47, 0.3, 0.27 * s, 0.14 * s), ell(0.47, 0.7, 0.27 * s, 0.14 * s)
            lungs = right | left
            if touching:
                lungs |= ell(0.3, 0.5, 0.05 * s, 0.12)
            sl[lungs] = -850.0
            sl[lungs & vessels] = 40.0
            if lesions and 0.35 < t < 0.65:
                sl[right & ell(0.5, 0.28, 0.08, 0.05)] = -500.0
                sl[left & ell(0.47, 0.7 + 0.13 * s, 0.06, 0.04)] = -50.0
        elif t > 0.85:
            sl[ell(0.35, 0.5, 0.035, 0.035)] = -1000.0  # trachea above the lungs
        sl += rng.normal(0.0, 8.0, sl.shape).astype(np.float32)
        out[z] = np.clip(sl, -1024, 3000).astype(np.int16)
    return out, spacing
