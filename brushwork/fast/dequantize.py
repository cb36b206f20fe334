"""An int8 "QDQ" ONNX graph turned back into a float one, in memory.

The arbitrary-style networks ship as TFLite's int8 models converted to ONNX: each weight is
stored as int8 with a DequantizeLinear in front of it, and each activation goes through a
QuantizeLinear/DequantizeLinear pair that rounds it to 8 bits. Here every weight is
dequantized once into a float constant and every activation pair is dropped, which leaves
the float network that the int8 one approximates. On the project's CPU the float graph ran a
1024² picture about a quarter faster in onnxruntime than the int8 one (docs/benchmarks/
arbitrary.md), and it paints without the 8-bit rounding of every intermediate picture.
"""

from __future__ import annotations

import numpy as np


def dequantized_weight(node, initializers: dict) -> np.ndarray:
    """(x − zero point) · scale of a DequantizeLinear whose input is a stored tensor; a scale
    per channel lies along the node's axis (ONNX's default 1; 0 for a bias vector)."""
    from onnx import numpy_helper

    values = [numpy_helper.to_array(initializers[name]).astype(np.float32) for name in node.input]
    x, scale = values[0], values[1]
    zero = values[2] if len(values) > 2 else np.zeros_like(scale)
    if scale.size > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1) % x.ndim
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (x - zero) * scale


def dequantize(model):
    """The same ModelProto, changed in place to compute in float, and returned."""
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    passed: dict[str, str] = {}  # a dropped node's output -> the value it passed on
    kept = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in initializers:
            graph.initializer.append(numpy_helper.from_array(dequantized_weight(node, initializers), node.output[0]))
        elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            passed[node.output[0]] = node.input[0]
        else:
            kept.append(node)

    def source(name: str) -> str:
        while name in passed:
            name = passed[name]
        return name

    for node in kept:
        node.input[:] = [source(name) for name in node.input]
    kept += [helper.make_node("Identity", [source(out.name)], [out.name]) for out in graph.output if out.name in passed]
    del graph.node[:]
    graph.node.extend(kept)
    return model
