"""Multi-class infection segmentation (paper section III-E): background / ground-glass opacity / consolidation.

- :mod:`infnet.multiclass.data`: labels, priors, the 4-channel input and the dataset
- :mod:`infnet.multiclass.config` / :mod:`infnet.multiclass.trainer`: :class:`MultiClassConfig`,
  :func:`train_multiclass` (resumable)
- :mod:`infnet.multiclass.predict`: :class:`MultiClassSegmenter` (prior from a binary infection model)
- :mod:`infnet.multiclass.density`: :func:`fit_density_split` (GGO vs consolidation by local density, fitted)

Names are imported lazily so that ``infnet.multiclass.config`` stays cheap for the CLI.
"""

from __future__ import annotations

_EXPORTS = {
    "CLASSES": "infnet.multiclass.data",
    "MultiClassDataset": "infnet.multiclass.data",
    "read_class_label": "infnet.multiclass.data",
    "read_prior": "infnet.multiclass.data",
    "MultiClassConfig": "infnet.multiclass.config",
    "train_multiclass": "infnet.multiclass.trainer",
    "MultiClassSegmenter": "infnet.multiclass.predict",
    "DensityFitConfig": "infnet.multiclass.density",
    "fit_density_split": "infnet.multiclass.density",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
