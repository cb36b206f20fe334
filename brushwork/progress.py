"""Progress for long runs: a tqdm bar on a terminal, plain log lines in logs and CI."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

from .engine import Progress


def format_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class ProgressReporter:
    """A callback for Engine.run. On a TTY: a bar with step, loss and it/s. Otherwise a line
    about every tenth of the run, so logs stay readable."""

    def __init__(self, desc: str = "stylize", stream: TextIO | None = None, enabled: bool = True, position: int = 0):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.desc = desc
        self.position = position
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar: tqdm | None = None
        self.last_line_step = 0

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        r = progress.record
        if self.tty:
            if self.bar is None:
                self.bar = tqdm(total=progress.total_steps, desc=self.desc, file=self.stream, position=self.position,
                                leave=self.position == 0, dynamic_ncols=True, unit="step")
            self.bar.set_postfix_str(f"loss={r.total:.4g} scale={progress.scale + 1}/{progress.n_scales} {r.width}x{r.height}",
                                     refresh=False)
            self.bar.update(progress.step - self.bar.n)
            return
        every = max(1, progress.total_steps // 10)
        if progress.step - self.last_line_step >= every or progress.step == progress.total_steps or progress.step == 1:
            rate = progress.step / r.seconds if r.seconds > 0 else 0.0
            print(
                f"{self.desc}: step {progress.step}/{progress.total_steps} scale {progress.scale + 1}/{progress.n_scales} "
                f"{r.width}x{r.height} loss {r.total:.4g} (content {r.content:.4g}, style {r.style:.4g}, tv {r.tv:.3g}) "
                f"{rate:.2f} it/s",
                file=self.stream,
                flush=True,
            )
            self.last_line_step = progress.step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
