"""Models: encoders, Inf-Net and its ablations, the registry/factory and bundled weights."""

from infnet.models.registry import create_model, list_models, load_checkpoint, save_checkpoint

__all__ = ["create_model", "list_models", "load_checkpoint", "save_checkpoint"]
