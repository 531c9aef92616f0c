"""Tiny synthetic CT DICOM series (pydicom) for the slice-geometry checks: positions, orientations, missing tags."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def write_series(
    folder: Path,
    z_positions: Sequence[float],
    size: int = 48,
    orientations: Sequence[Sequence[float]] | None = None,
    drop_position: Sequence[int] = (),
    drop_pixels: Sequence[int] = (),
) -> Path:
    """One CT series in ``folder`` (files s000.dcm ...): slice i at z_positions[i] mm, HU value 10 * i everywhere.

    ``orientations``: ImageOrientationPatient per slice (default axial); ``drop_position`` / ``drop_pixels``: slice
    indices written without ImagePositionPatient / without pixel data.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    for i, z in enumerate(z_positions):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.PatientName, ds.PatientID = "CT", "synthetic", "synthetic"
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID = series, study, frame
        ds.InstanceNumber = i + 1
        if i not in drop_position:
            ds.ImagePositionPatient = [0.0, 0.0, float(z)]
        ds.ImageOrientationPatient = [float(v) for v in (orientations[i] if orientations else (1, 0, 0, 0, 1, 0))]
        ds.PixelSpacing, ds.SliceThickness = [0.7, 0.7], 2.0
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        if i not in drop_pixels:
            ds.PixelData = np.full((size, size), 1024 + 10 * i, np.int16).tobytes()
        ds.save_as(folder / f"s{i:03d}.dcm", enforce_file_format=True)
    return folder
