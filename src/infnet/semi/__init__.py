"""Semi-Inf-Net (paper Algorithm 1 and section III-D): progressive pseudo-labelling of unlabeled slices.

- :class:`SemiConfig` (:mod:`infnet.semi.config`): settings; budgeted CPU defaults, ``PAPER_SETTING``
- :func:`run_semi` (:mod:`infnet.semi.algorithm`): the resumable run (algorithm or published pseudo-labels)

Names are imported lazily so that the CLI parser stays cheap.
"""

from __future__ import annotations

_EXPORTS = {
    "SemiConfig": "infnet.semi.config",
    "PAPER_SETTING": "infnet.semi.config",
    "run_semi": "infnet.semi.algorithm",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(name)
