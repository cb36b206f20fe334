"""The batch runner: many engine runs on the same pictures, as `brushwork compare`, the web
studio's grids and a Ray cluster run them.

A batch is a list of cells (cells.py), each one picture with its own Options. How it is run,
and why:
* One process, one network per (device, weights, pooling) (engines.py): an Engine holds every
  layer any cell needs (the forward pass stops at the deepest one a run asks for) and caches
  style Grams, so cells that differ in weights, steps or optimizer share their style targets.
* Cells that differ only in `steps` are one run (cells.run_groups): the shorter ones are
  snapshots of a single run of the largest value, taken through Engine.run's callback
  (runs.py). With a single scale a snapshot at step n is exactly what a run of n steps
  gives. With several scales (the default from 384 px) the run splits the largest value
  between its scales, so an earlier snapshot shows that run part-way, possibly still at a
  coarser scale (upsampled to the output size), not what a shorter run with its own split
  would give; pass `--scales 1` when the steps axis should mean "a run of this many steps".
  Accelerators call back only every few steps; a snapshot the engine did not report is run
  on its own.
* Every finished cell is cached (cache.py) under a hash of its full options, the run it is a
  snapshot of and its input images, so an interrupted or extended batch recomputes only what
  is new.
* Distances come from brushwork.score against the whole content and style images (not the
  style crop, not colour-matched copies), so every cell is measured with the same ruler.
* Where the runs go is the caller's choice of runner (runner.py): this process, one group
  after another, or a Ray cluster (brushwork.cluster, which only the commands import), both
  writing the same cache.

files.py plans the other kind of batch, one run per input file (`apply`, and `stylize` over
many photos): each input's output, checked before any work.
"""
