"""Where the engine lived in brushwork 0.1, kept so that old imports still work.

New code imports from the modules that now hold these names: options.py, devices.py,
plan.py, lbfgs.py, objective.py and engine.py.
"""

from .devices import available_bytes, cpu_has_bf16, pick_device, pick_dtype  # noqa: F401
from .engine import Engine, Progress, Result, StepRecord, image_key  # noqa: F401
from .lbfgs import HISTORY as LBFGS_HISTORY, LBFGS, MAX_PIXEL_STEP  # noqa: F401
from .objective import cuda_graphed  # noqa: F401
from .options import COLOR_MODES, DEFAULT_LR, DEFAULT_MAX_PIXELS, OPTIMIZERS, PRECISIONS, Options  # noqa: F401
from .plan import (  # noqa: F401
    MULTISCALE_FROM,
    SCALE_SPLIT,
    Plan,
    activation_elements,
    estimate_peak_bytes,
    largest_fitting_size,
    min_side,
    scale_sizes,
    schedule,
)
