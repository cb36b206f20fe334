"""Our L-BFGS: a quasi-Newton step on one image, kept inside [0, 1], that never waits for the device."""

from __future__ import annotations

from typing import Callable

import torch

HISTORY = 100  # curvature pairs kept at most
MAX_PIXEL_STEP = 0.25


class LBFGS:
    """L-BFGS on one image tensor, one evaluation per step, without line search.

    The update of torch.optim.LBFGS(max_iter=1, no line search), with three changes:
    * pixels are clamped to [0, 1] after each step and the step actually taken is what enters
      the curvature history. Unclamped, a few percent of the pixels drift out of range, where
      the style loss likes them, and clamping the output afterwards costs several percent of
      the objective;
    * it never reads a value back to the host (torch's reads the loss and tests the curvature
      with Python `if`s), so on a GPU the steps queue up without waiting: a pair without
      positive curvature, which torch drops, keeps its slot in the history but is masked out
      of the product (so a full history holds fewer useful pairs than torch's would);
    * the product of the inverse-Hessian estimate with the gradient is computed in the compact
      form of Byrd, Nocedal & Schnabel (1994): five matrix-vector products with the stored
      pairs and two m×m triangular solves, where the two-loop recursion runs about 8 tiny
      kernels per pair. On a GPU those launches, not the arithmetic, were most of a step
      (12 ms against 3 ms for the network's forward and backward at 512 px on an H200).
    """

    def __init__(
        self,
        param: torch.Tensor,
        lr: float = 1.0,
        history_size: int = HISTORY,
        h_diag: torch.Tensor | None = None,
    ):
        """`h_diag`: a known scale of the inverse Hessian (from the previous, coarser scale) for
        the first step; without one the first step is torch's cautious min(1, 1/‖g‖₁)."""
        self.param, self.lr, self.history_size = param, lr, history_size
        self.history: torch.Tensor | None = None  # m × 2 × N: (s_i, y_i) in slot i, filled cyclically
        self.sy: torch.Tensor | None = None  # m × m, s_i·y_j by slot
        self.yy: torch.Tensor | None = None  # m × m, y_i·y_j by slot
        self.count = 0  # pairs stored so far; the oldest is overwritten once m are stored
        self.prev_grad: torch.Tensor | None = None
        self.prev_step: torch.Tensor | None = None
        self.first_h_diag = h_diag
        self.h_diag = torch.ones((), device=param.device) if h_diag is None else h_diag
        # The m×m algebra in float64 (cheap, and R can be ill-conditioned); MPS has no float64.
        self.small_dtype = torch.float32 if param.device.type == "mps" else torch.float64

    def _remember(self, s: torch.Tensor, grad: torch.Tensor, prev_grad: torch.Tensor) -> None:
        """Store the pair (s, y = grad - prev_grad) and the dot products it adds to sy and yy;
        y is written straight into its slot (no image-sized temporary)."""
        m, n = self.history_size, s.numel()
        if self.history is None:
            self.history = torch.empty(m, 2, n, device=s.device, dtype=torch.float32)
            self.sy = torch.zeros(m, m, device=s.device, dtype=torch.float32)
            self.yy = torch.zeros(m, m, device=s.device, dtype=torch.float32)
        k, used = self.count % m, min(self.count + 1, m)
        self.history[k, 0] = s
        y = torch.sub(grad, prev_grad, out=self.history[k, 1])
        # Three matrix-vector products (one (2m×N)·(N×2) product is 2-3× slower on a CPU).
        stored_s, stored_y = self.history[:used, 0], self.history[:used, 1]
        self.sy[:used, k] = stored_s @ y
        self.sy[k, :used] = stored_y @ s
        self.yy[:used, k] = self.yy[k, :used] = stored_y @ y
        self.count += 1
        ys, yy = self.sy[k, k], self.yy[k, k]
        self.h_diag = torch.where(ys > 1e-10, ys / yy, self.h_diag)

    def _inverse_hessian_times(self, g: torch.Tensor) -> torch.Tensor:
        """H·g for H = the L-BFGS inverse-Hessian estimate with H0 = h_diag·I (compact form:
        H·g = γg + S·u − γY·p, p = R⁻¹Sᵀg, u = R⁻ᵀ((D + γYᵀY)p − γYᵀg), R = triu(SᵀY), D = diag(SᵀY))."""
        m = self.history_size
        used = min(self.count, m)
        oldest = self.count % m if self.count >= m else 0  # chronological order = slots rolled by this
        history = self.history[:used].view(2 * used, -1)
        dt = self.small_dtype

        def chronological(t: torch.Tensor) -> torch.Tensor:
            return t.to(dt).roll([-oldest] * t.dim(), list(range(t.dim())))

        dots = history @ g
        a, c = chronological(dots[0::2]), chronological(dots[1::2])
        sy, yy = chronological(self.sy[:used, :used]), chronological(self.yy[:used, :used])
        gamma = self.h_diag.to(dt)
        # Pairs without positive curvature are left out: their rows and columns are decoupled.
        w = (torch.diagonal(sy) > 1e-10).to(dt)
        keep, left_out = w[:, None] * w[None, :], torch.diag(1 - w)
        r = torch.triu(sy) * keep + left_out
        middle = (torch.diag(torch.diagonal(sy)) + gamma * yy) * keep + left_out
        p = torch.linalg.solve_triangular(r, (a * w)[:, None], upper=True)
        u = torch.linalg.solve_triangular(r.T, middle @ p - (gamma * c * w)[:, None], upper=False)
        coefficients = torch.cat([u, -gamma * p], 1).roll(oldest, 0).reshape(-1)  # interleaved like history's rows
        return (history.T @ coefficients.to(g.dtype)).add_(self.h_diag * g)  # in place: one vector fewer

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        """One evaluation and one update. The update works in place wherever the numbers stay
        the same, so that it holds few image-sized vectors: at print size they, not the
        network's activations, decide the peak (plan.optimizer_vectors counts them)."""
        with torch.enable_grad():
            loss = closure()
        grad = self.param.grad.reshape(-1).float()  # a copy below: a CUDA graph rewrites x.grad in place
        # Pixels held at 0 or 1 by the clamp whose gradient pushes them further out are not free
        # to move: leave them out of the step and of the curvature pairs (projected gradient).
        flat = self.param.detach().reshape(-1)
        grad = grad.masked_fill(((flat <= 0) & (grad > 0)) | ((flat >= 1) & (grad < 0)), 0)
        if self.prev_grad is None:
            direction = -grad
            if self.first_h_diag is None:
                t = (1.0 / grad.abs().sum()).clamp(max=1.0) * self.lr  # torch's first, cautious step
            else:
                t = self.first_h_diag * self.lr
        else:
            self._remember(self.prev_step, grad, self.prev_grad)
            self.prev_grad = self.prev_step = None  # stored in the history; let them go before the product
            direction = self._inverse_hessian_times(grad).neg_()
            t = self.lr
        self.prev_grad = grad
        step = direction.mul_(t)
        # No pixel moves more than MAX_PIXEL_STEP in one step: a curvature pair spoiled by bf16
        # noise (tiny steps right after a rescale) must not throw the image away.
        low, high = step.aminmax()
        step.mul_((MAX_PIXEL_STEP / torch.maximum(-low, high).clamp_min(1e-12)).clamp(max=1.0))
        moved = (flat + step).clamp_(0, 1)
        # The step actually taken after clamping to valid pixels, so the curvature pairs stay true.
        self.prev_step = torch.sub(moved, flat, out=step)
        self.param.copy_(moved.view_as(self.param))
        return loss.detach()
