"""brushwork: neural style transfer (Gatys et al.), coarse-to-fine and fast."""

from .api import run, stylize
from .errors import BrushworkError
from .engine import Engine, Progress, Result
from .options import Options

__all__ = ["stylize", "run", "Options", "Engine", "Progress", "Result", "BrushworkError"]
__version__ = "0.1.0"
