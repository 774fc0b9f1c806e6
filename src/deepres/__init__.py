"""deepres: the system of "Deep Residual Learning for Image Recognition" (He et al., 2015)."""

__version__ = "0.1.0"

from .models import create_model, list_models, load_weights, save_weights  # noqa: E402

__all__ = ["__version__", "create_model", "list_models", "load_weights", "save_weights"]
