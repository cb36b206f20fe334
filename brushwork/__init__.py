"""brushwork: neural style transfer (Gatys et al.), coarse-to-fine and fast."""

from .api import run, stylize
from .errors import BrushworkError
from .optimize import Engine, Options, Progress, Result

__all__ = ["stylize", "run", "Options", "Engine", "Progress", "Result", "BrushworkError"]
__version__ = "0.1.0"
