"""`brushwork export MODEL --onnx OUT.onnx`: the network as ONNX, checked against PyTorch.

The graph takes `image` (N×3×H×W float RGB in [0, 1], any N, H, W) and returns `stylized`
of the same shape; strength and colour preservation are left to the caller. After writing,
onnxruntime runs it on a test image and the result must match PyTorch's (fp32) within
TOLERANCE, else the file is removed and the command fails.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .. import images
from ..errors import BrushworkError
from .backend import onnx_graph
from .net import load_model

TOLERANCE = 1e-4  # max |onnxruntime − PyTorch| on a [0, 1] image


def export_onnx(model_path: Path, output: Path, overwrite: bool = False) -> float:
    """Write the ONNX file and return the largest difference from PyTorch on a test input."""
    output = Path(output)
    if output.suffix != ".onnx":
        raise BrushworkError(f"the ONNX file must end in .onnx, got {output}")
    images.check_writable(output, overwrite)
    try:
        import onnx  # noqa: F401  (torch.onnx needs it)
        import onnxruntime
    except ImportError:
        raise BrushworkError('ONNX export needs onnx and onnxruntime: pip install "brushwork[fast]"') from None
    net = load_model(model_path).net
    data = onnx_graph(net)
    check = torch.rand(2, 3, 72, 90, generator=torch.Generator().manual_seed(1))  # another size, batch and aspect
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": check.numpy()})
    with torch.no_grad():
        expected = net(check)
    difference = float((torch.from_numpy(got) - expected).abs().max())
    if not difference <= TOLERANCE:
        raise BrushworkError(f"the exported model differs from PyTorch by {difference:.2e} (> {TOLERANCE}); not written")
    images.write_atomic(output, data)
    return difference
