#!/usr/bin/env bash
# Fixed CPU runs whose outputs must stay bit-identical across a refactor.
# Usage: benchmarks/same_behaviour.sh DIR   (before and after a change; then in the second DIR:
# `sha256sum -c FIRST_DIR/SHA256SUMS`. The compare CSV holds timings, so only pictures are summed.)
set -euo pipefail
out="${1:?output folder}"
mkdir -p "$out"
data="$(python -c 'import importlib.resources as r; print(r.files("skimage") / "data")')"
photo="$data/astronaut.png"; style="$data/ihc.png"; style2="$data/coffee.png"
common=(--device cpu --seed 0 --quiet --overwrite)
brushwork stylize "$photo" -s "$style" -o "$out/default256.png" --size 256 --steps 60 --trace "$out/default256.json" "${common[@]}"
brushwork stylize "$photo" -s "$style" -o "$out/tutorial.png" --size 200 --steps 40 --preset tutorial "${common[@]}"
brushwork stylize "$photo" -s "$style" "$style2" --style-weights 2,1 -o "$out/blend-lum.png" --size 400 --steps 30 \
    --preserve-color luminance "${common[@]}"
brushwork compare "$photo" -s "$style" --vary style-weight=1,5 --vary preset=gatys,tutorial -o "$out/grid" \
    --size 128 --steps 15 --device cpu --quiet
brushwork apply "$photo" --model starry-night -o "$out/fast.png" --device cpu --quiet --overwrite
(cd "$out" && sha256sum default256.png tutorial.png blend-lum.png fast.png grid/cells/*.png > SHA256SUMS)
python - "$out" <<'PY'
import json, sys
t = json.load(open(f"{sys.argv[1]}/default256.json"))
print("default256 final J", t["steps"][-1]["total"])
PY
