"""Healthy-lung negatives: slices of real CT volumes without infection, trained with an empty mask.

The 50 doctor-labelled slices all show infection, and none shows an apex, a base or a diaphragm dome; a model
trained on them alone finds "infection" in healthy lung. Each lung slice of a negative volume (found by the scan
pipeline's own lung mask) is kept in HU with its lung box, and presented either as the pipeline presents volume
slices to the model (the lung-box crop) or whole (a full-field-of-view 2D slice), in a random presentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from infnet.data.dataset import to_training_triplet
from infnet.data.presentation import PresentationAugment
from infnet.errors import InfnetError
from infnet.scan.lungmask import classical_lung_mask
from infnet.scan.preprocess import axial_view, lung_box, resolve_intensity, superior_step, view_spacing
from infnet.scan.volume_io import Volume, read_scan

MIN_LUNG_MM2 = 100.0  # the pipeline's threshold for sending a slice to the model
P_WHOLE = 0.4  # share of negatives shown as the whole slice instead of the lung-box crop


@dataclass
class NegativeSlice:
    hu: np.ndarray  # (rows, cols) int16, training orientation, whole field of view
    box: tuple[slice, slice]  # the lung box the volume pipeline would crop
    source: str


def load_negative_slices(paths: Sequence[str | Path]) -> list[NegativeSlice]:
    """Every slice with at least 1 cm^2 of lung from each HU volume in ``paths``."""
    out: list[NegativeSlice] = []
    for path in paths:
        scan = read_scan(path)
        if not isinstance(scan, Volume):
            raise InfnetError(f"{path}: negatives must be CT volumes in HU (NIfTI, NRRD, MHA or a DICOM series)")
        resolve_intensity(scan.array, scan.modality, "auto", str(path))
        direction = scan.geometry.direction3()
        view = axial_view(scan.array, direction)
        spacing = view_spacing(scan.geometry.spacing3(), direction)
        lungs = np.zeros(view.shape, np.uint8)
        classical_lung_mask(view, spacing, lungs, superior_step=superior_step(direction))
        px_mm2 = spacing[1] * spacing[2]
        before = len(out)
        for s in range(view.shape[0]):
            region = lungs[s] > 0
            if np.count_nonzero(region) * px_mm2 < MIN_LUNG_MM2:
                continue
            box = lung_box(region, (spacing[1], spacing[2]))
            hu = np.clip(np.asarray(view[s], dtype=np.float32), -2048, 3071).astype(np.int16)
            out.append(NegativeSlice(hu, box, f"{Path(path).name}:{s}"))
        if len(out) == before:
            raise InfnetError(f"{path}: no lung found in this volume, so it gives no negatives")
    return out


class NegativeDataset(Dataset):
    """``length`` draws (with replacement) from negative slices, each in a random presentation, empty mask."""

    def __init__(
        self, slices: list[NegativeSlice], length: int, size: int, mean: Sequence[float], std: Sequence[float],
        presentation: PresentationAugment | None, augment: bool,
    ):  # fmt: skip
        if not slices:
            raise InfnetError("no negative slices to train with")
        self.slices, self.length, self.size = slices, length, size
        # Without the robust recipe a negative is shown as the pipeline shows it: training window, as oriented.
        plain = PresentationAugment(p_window=0, p_gamma=0, p_crop=0, dihedral=False)
        self.mean, self.std, self.presentation, self.augment = tuple(mean), tuple(std), presentation or plain, augment

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(int(torch.randint(2**31 - 1, ())))
        item = self.slices[int(rng.integers(len(self.slices)))]
        whole = rng.random() < P_WHOLE
        hu = item.hu if whole else item.hu[item.box]
        empty = np.zeros(hu.shape, np.uint8)
        grey, (mask, edge) = self.presentation(hu.astype(np.float32), [empty, empty], rng, allow_fov=not whole)
        return to_training_triplet(grey, mask, edge, self.size, self.mean, self.std, self.augment)
