"""infnet: Inf-Net COVID-19 lung infection segmentation from CT.

Public API (lazy imports keep `import infnet` cheap for the CLI):

- :func:`create_model`, :func:`list_models` - model registry and factory
- :class:`Segmenter` - NumPy in, NumPy out prediction on slices and volumes
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models", "Segmenter", "InfnetError"]


def __getattr__(name: str):
    if name in ("create_model", "list_models"):
        from infnet.models import registry

        return getattr(registry, name)
    if name == "Segmenter":
        from infnet.inference import Segmenter

        return Segmenter
    if name == "InfnetError":
        from infnet.errors import InfnetError

        return InfnetError
    raise AttributeError(name)
