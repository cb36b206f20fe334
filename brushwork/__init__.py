"""brushwork: neural style transfer (Gatys et al.), coarse-to-fine and fast."""

from .api import paint_fast, run, stylize
from .errors import BrushworkError
from .engine import Engine, Progress, Result
from .options import Options

__all__ = ["stylize", "run", "paint_fast", "Options", "Engine", "Progress", "Result", "BrushworkError"]
__version__ = "0.1.0"
