"""deepres: the system of "Deep Residual Learning for Image Recognition" (He et al., 2015)."""

__version__ = "0.1.0"

__all__ = ["__version__", "create_model", "list_models", "list_pretrained", "load_weights", "save_weights"]


def __getattr__(name: str):
    # The model API loads on first use: `deepres` (the command) starts without importing torch, so a
    # Ctrl-C during its start-up is the one-line "interrupted" of every other moment, not a traceback.
    if name == "list_pretrained":
        from .pretrained import list_pretrained

        return list_pretrained
    if name in __all__:
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'deepres' has no attribute {name!r}")
