"""Whole-scan segmentation: CT volumes, DICOM series and 2D slices in, masks and a report out.

Main entry points (imported lazily so ``import infnet.scan`` stays cheap):

- :func:`segment_file` (``infnet.scan.pipeline``): read and segment one input with a slice predictor;
- :func:`write_outputs` (``infnet.scan.outputs``): masks in the input's geometry, report.json/html, overlays;
- :func:`segment_cohort` (``infnet.scan.cohort``): many scans with a resumable manifest, split over ranks;
- :func:`find_ct_samples` (``infnet.scan.samples``): the small real CT test files.
"""

from __future__ import annotations

__all__ = ["SegmentationResult", "SlicePredictor", "find_ct_samples", "read_scan", "segment_cohort",
           "segment_file", "write_outputs"]  # fmt: skip

_WHERE = {
    "SegmentationResult": "infnet.scan.result",
    "SlicePredictor": "infnet.predictor",
    "segment_file": "infnet.scan.pipeline",
    "write_outputs": "infnet.scan.outputs",
    "segment_cohort": "infnet.scan.cohort",
    "read_scan": "infnet.scan.volume_io",
    "find_ct_samples": "infnet.scan.samples",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(name)
