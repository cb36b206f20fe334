"""Fast mode's throughput: frames per second in batches, on any device (the GPU target is 512²).

    python benchmarks/fast_fps.py [--model starry-night] [--size 512] [--batches 1,8,32] [--device auto]

Per batch size:
  * network: the batch already on the device and the output left there, in the precision
    `brushwork apply` picks (bf16 on CUDA): what the accelerator itself sustains;
  * network, channels_last: the same with NHWC tensors, to see whether the layout pays;
  * end to end: float RGB frames on the host in and stylized frames on the host out, through
    `brushwork.fast.apply.Stylizer` (what `brushwork apply` pays per frame besides decoding
    and encoding the files).
Random frames (never zeros), warm-up first, the device synchronized before each clock read,
median of --repeats timed runs of --frames frames each.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from brushwork.fast.apply import Settings, Stylizer, resolve_model
from brushwork.fast.net import load_model


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def frames_per_second(step, batch: int, frames: int, repeats: int, device: torch.device) -> float:
    """Median frames/s of `step()` (one batch) run frames/batch times in a row."""
    calls = max(1, frames // batch)
    for _ in range(3):
        step()
    synchronize(device)
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            step()
        synchronize(device)
        rates.append(calls * batch / (time.perf_counter() - started))
    return statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="starry-night")
    parser.add_argument("--size", type=int, default=512, help="square frame side in px")
    parser.add_argument("--batches", default="1,8,32", help="batch sizes to time")
    parser.add_argument("--frames", type=int, default=256, help="frames per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default="benchmarks/results/fast-fps.json")
    args = parser.parse_args()

    model = load_model(resolve_model(args.model))
    stylizer = Stylizer(model, Settings(device=args.device))
    device, dtype = stylizer.device, stylizer.dtype
    net = stylizer.net
    net_nhwc = copy.deepcopy(net).to(memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(0)
    autocast = lambda: torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)  # noqa: E731

    rates: dict[str, dict[str, float]] = {}
    for batch in (int(b) for b in args.batches.split(",")):
        host = torch.rand(batch, 3, args.size, args.size, generator=generator)
        on_device = host.to(device)
        nhwc = on_device.contiguous(memory_format=torch.channels_last)

        def network(module: torch.nn.Module = net, x: torch.Tensor = on_device) -> None:
            with torch.inference_mode(), autocast():
                module(x)

        rates[str(batch)] = {
            "network": frames_per_second(network, batch, args.frames, args.repeats, device),
            "network, channels_last": frames_per_second(lambda: network(net_nhwc, nhwc), batch, args.frames, args.repeats, device),
            "end to end (host tensors)": frames_per_second(lambda: stylizer(host), batch, args.frames, args.repeats, device),
        }
        print(f"batch {batch}: " + ", ".join(f"{k} {v:.1f}/s" for k, v in rates[str(batch)].items()), file=sys.stderr, flush=True)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    print(f"\n{args.model} (width {net.width}) at {args.size}x{args.size}, {name}, {str(dtype).removeprefix('torch.')}: frames per second")
    columns = list(next(iter(rates.values())))
    print(f"{'batch':>6s} " + " ".join(f"{c:>26s}" for c in columns))
    for batch, row in rates.items():
        print(f"{batch:>6s} " + " ".join(f"{row[c]:26.1f}" for c in columns))
    report = {
        "device": name, "torch": torch.__version__, "dtype": str(dtype).removeprefix("torch."), "model": args.model,
        "width": net.width, "size": args.size, "frames_per_second": rates,
    }  # fmt: skip
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
