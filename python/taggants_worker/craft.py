"""Crafting taggants by gradient matching (METHOD.md, Signing, steps 4 and 5).

Given a surrogate model (or an ensemble), K keys and each key's signing images, find taggants
δ_j with ‖δ_j‖∞ ≤ ε and x_j + δ_j in [0, 1] that minimise

    Σ_i [ 1 − cos(Σ_{j∈S_i} ∇θ L(f(A(x_j + δ_j)), y_j), ∇θ L(f(x_i), y_i)) ]  (+ λ · perceptual)

(see gradient_matching.py for the objective and its chunked gradient). The optimiser is signed
Adam (Adam fed the sign of the gradient) with learning rate `step_size`·ε, decayed ×0.1 at 3/8,
5/8 and 7/8 of the steps; after each step the taggants are projected onto the ε-ball and the
valid pixel range. Each of R restarts starts from a uniform draw in [−ε, ε]; since the objective
is a sum of independent per-key terms (a taggant serves one key), the best restart is kept per
key. Restarts are compared on the quantised taggants without augmentation, so the comparison is
deterministic and measures what gets published.

Quantisation (step 5): the result is rounded to the 8-bit grid and then clamped in integer
space, so every signed pixel differs from its original by at most floor(eps_255) exactly.

Units: `eps_255` is in 1/255; tensors named `*_01` or holding taggants are in [0, 1] units.
Randomness (initialisation and augmentation) comes from one CPU torch.Generator seeded with
`seed`, so runs are reproducible on the CPU and a resumed run continues the same stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional
from torch.nn.attention import SDPBackend, sdpa_kernel

from .augment import AugmentSpec, draw_augmentation
from .craft_state import CraftState, fingerprint, load_state, save_state
from .gradient_matching import (
    KeyBatch,
    MatchTarget,
    compute_key_grads,
    matching_cosine,
    matching_objective_and_grad,
    select_parameters,
)
from .perceptual import PerceptualPenalty, make_perceptual_penalty

LR_MILESTONES = (3 / 8, 5 / 8, 7 / 8)  # fractions of the steps where the step size drops ×0.1
ENSEMBLE_REDUCTIONS = ("mean", "sum")

ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Surrogate:
    """A surrogate model prepared for crafting.

    model: maps float images [N, C, H, W] in [0, 1] to logits [N, classes] (input normalisation
        inside the model). Crafting puts it in eval mode and changes which parameters require
        gradients.
    input_size: (H, W) the model expects; signing images must have this size, and keys are
        upsampled (nearest) to it.
    augment: the differentiable augmentation matching the model's training recipe.
    normalization: {"mean": [...], "std": [...]} per channel in [0, 1] pixel units, applied
        before the model (as the checkpoint records it); None when the model takes raw [0, 1].
    """

    model: nn.Module
    input_size: tuple[int, int]
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    normalization: dict[str, list[float]] | None = None


class _Normalized(nn.Module):
    """Calls `model` on (x − mean) / std; parameters stay those of `model` (names unchanged
    for `param_prefixes`, since only `model`'s own named_parameters are selected)."""

    def __init__(self, model: nn.Module, *, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] in [0, 1]
        return self.model((images - self.mean) / self.std)


@dataclass(frozen=True)
class CraftSettings:
    """Settings of one crafting job. Special values are documented per field.

    eps_255: perturbation bound ε in 1/255 units, in (0, 255].
    steps: signed-Adam steps per restart.
    restarts: random initialisations; the best per key is kept.
    step_size: learning rate in units of ε (0.1 → lr = 0.1·ε in [0, 1] units).
    aug_draws: augmentation draws per signing image and step (≥ 1; 2 by default).
    perceptual: "none" or "ssim" (no LPIPS: it would need backbone weights, never downloaded).
    perceptual_weight: λ of the perceptual penalty (per key: λ · mean over its images).
    seed: seed of the initialisation and augmentation generator.
    chunk_size: most augmented images in one forward/backward pass (bounds memory).
    param_prefixes: match only parameters whose name starts with one of these; None = all.
    ensemble: how several surrogates' objectives combine: "mean" or "sum".
    state_path: where to checkpoint for resuming; None = no checkpoints.
    checkpoint_every: steps between checkpoints (0 = never, even with a state_path).
    """

    eps_255: float
    steps: int = 250
    restarts: int = 1
    step_size: float = 0.1
    aug_draws: int = 2
    perceptual: str = "none"
    perceptual_weight: float = 0.0
    seed: int = 0
    chunk_size: int = 256
    param_prefixes: tuple[str, ...] | None = None
    ensemble: str = "mean"
    state_path: str | None = None
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.eps_255 <= 255:
            raise ValueError(f"eps_255 must be in (0, 255] (units of 1/255), got {self.eps_255}")
        positive = {"steps": self.steps, "restarts": self.restarts, "aug_draws": self.aug_draws}
        positive["chunk_size"] = self.chunk_size
        for name, value in positive.items():
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if not self.step_size > 0:
            raise ValueError(f"step_size must be > 0 (units of ε), got {self.step_size}")
        if self.perceptual_weight < 0:
            raise ValueError(f"perceptual_weight must be >= 0, got {self.perceptual_weight}")
        if self.ensemble not in ENSEMBLE_REDUCTIONS:
            raise ValueError(
                f"ensemble must be one of {ENSEMBLE_REDUCTIONS}, got {self.ensemble!r}"
            )
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0 steps, got {self.checkpoint_every}")

    @property
    def eps_01(self) -> float:
        """ε in [0, 1] pixel units."""
        return self.eps_255 / 255.0


@dataclass
class CraftResult:
    signed: torch.Tensor  # uint8 [K, n, C, H, W]
    taggants: torch.Tensor  # float32 [K, n, C, H, W], [0, 1] units, before quantisation
    cosine: torch.Tensor  # float32 [K]: before quantisation, no augmentation, mean over models
    cosine_quantised: torch.Tensor  # float32 [K]: the same on the signed uint8 images
    objective_per_key: torch.Tensor  # float64 [K]: kept restart's objective, quantised
    restart_objectives: torch.Tensor  # float64 [R, K]: every restart's objective, quantised

    @property
    def objective(self) -> float:
        return float(self.objective_per_key.sum())


def quantise(original: torch.Tensor, taggants: torch.Tensor, eps_255: float) -> torch.Tensor:
    """Signed uint8 images: round(255·(x + δ)), clamped so |signed − original| ≤ eps_255.

    original: uint8 [..., C, H, W]; taggants: float, same shape, [0, 1] units.
    """
    bound = math.floor(eps_255)  # pixel values are integers, so this is the exact bound
    signed = torch.round(original.to(torch.float64) + taggants.double() * 255.0)
    base = original.to(torch.int16)
    low = (base - bound).clamp_min(0)
    high = (base + bound).clamp_max(255)
    return torch.minimum(torch.maximum(signed.to(torch.int16), low), high).to(torch.uint8)


def prepare_targets(
    surrogate: Surrogate,
    keys: torch.Tensor,
    key_labels: torch.Tensor,
    *,
    param_prefixes: Sequence[str] | None = None,
) -> list[MatchTarget]:
    """One MatchTarget per key on `surrogate`: eval mode, matched parameters, key gradient.

    keys: uint8 [K, C, r, r], upsampled nearest-exact to the surrogate's input size, as
    prediction resizes keys (torchvision's NEAREST_EXACT).
    """
    model = surrogate.model.eval()  # eval: normalisation statistics frozen, dropout off
    device = next(model.parameters()).device
    params = select_parameters(model, param_prefixes)
    forward = model
    if surrogate.normalization is not None:
        forward = _Normalized(model, **surrogate.normalization).to(device)
    key_images = keys.to(device, torch.float32) / 255.0  # [K, C, r, r]
    key_images = functional.interpolate(key_images, size=surrogate.input_size, mode="nearest-exact")
    grads = compute_key_grads(forward, params, key_images, key_labels.to(device))
    return [MatchTarget(model=forward, params=params, key_grad=g) for g in grads]


def measure_cosine(
    *,
    surrogates: Sequence[Surrogate],
    images: torch.Tensor,
    image_labels: torch.Tensor,
    keys: torch.Tensor,
    key_labels: torch.Tensor,
    chunk_size: int = 256,
    param_prefixes: Sequence[str] | None = None,
) -> torch.Tensor:
    """Per key, cos(Σ_j ∇θ L(f(x_j), y_j), g_i) of given signing images, without augmentation,
    averaged over the surrogates: float32 [K]. Measures how much alignment survives a change
    of the signed images (e.g. JPEG re-encoding). Shapes as in `craft_taggants`."""
    _validate_inputs(surrogates, images, image_labels, keys, key_labels)
    with sdpa_kernel([SDPBackend.MATH]):
        cosine = torch.zeros(images.shape[0], dtype=torch.float64)
        for surrogate in surrogates:
            targets = prepare_targets(surrogate, keys, key_labels, param_prefixes=param_prefixes)
            device = next(surrogate.model.parameters()).device
            signed = images.to(device, torch.float32) / 255.0
            for k, target in enumerate(targets):
                value = matching_cosine(
                    target, signed[k], image_labels[k].to(device), chunk_size=chunk_size
                )
                cosine[k] += float(value) / len(surrogates)
    return cosine.float()


def lr_at(step: int, steps: int, base_lr: float) -> float:
    """Step size before step `step` (0-based): ×0.1 at each milestone fraction passed."""
    drops = sum(step >= round(steps * fraction) for fraction in LR_MILESTONES)
    return base_lr * 0.1**drops


class _Crafter:
    """One crafting job: prepared targets, the random stream and the optimisation loop."""

    def __init__(
        self,
        *,
        surrogates: Sequence[Surrogate],
        images: torch.Tensor,
        image_labels: torch.Tensor,
        keys: torch.Tensor,
        key_labels: torch.Tensor,
        settings: CraftSettings,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.settings = settings
        self.surrogates = list(surrogates)
        self.on_progress = on_progress
        self.device = next(self.surrogates[0].model.parameters()).device
        self.original = images  # uint8 [K, n, C, H, W], CPU
        self.clean = images.to(self.device, torch.float32) / 255.0  # [K, n, C, H, W], [0, 1]
        self.labels = image_labels.to(self.device)  # int64 [K, n]
        self.penalty: PerceptualPenalty | None = make_perceptual_penalty(settings.perceptual)
        scale = 1.0 / len(self.surrogates) if settings.ensemble == "mean" else 1.0
        self.weight = scale  # per surrogate
        self.targets = [
            prepare_targets(s, keys, key_labels, param_prefixes=settings.param_prefixes)
            for s in self.surrogates
        ]
        self.generator = torch.Generator().manual_seed(settings.seed)
        self.job = self._fingerprint(images, image_labels, keys, key_labels)

    # ---- preparation -------------------------------------------------------------------

    def _fingerprint(self, images, image_labels, keys, key_labels) -> str:
        tensors = {"images": images, "image_labels": image_labels}
        tensors |= {"keys": keys, "key_labels": key_labels}
        for m, surrogate in enumerate(self.surrogates):
            for name, value in surrogate.model.state_dict().items():
                tensors[f"surrogate{m}.{name}"] = value
        settings = asdict(self.settings)
        for volatile in ("state_path", "checkpoint_every"):
            settings.pop(volatile)
        settings["augment"] = [asdict(s.augment) for s in self.surrogates]
        settings["normalization"] = [s.normalization for s in self.surrogates]
        return fingerprint(tensors, settings)

    # ---- one step ----------------------------------------------------------------------

    def objective_and_grad(self, taggants: torch.Tensor):
        """Training objective of every key and its gradient w.r.t. taggants [K, n, C, H, W].

        Draws a fresh augmentation per image, per key and per surrogate from the generator.
        Returns (objective float64 [K], matching cosine float64 [K], gradient like taggants).
        """
        k_count, n = taggants.shape[:2]
        grad = torch.zeros_like(taggants)
        objective = torch.zeros(k_count, dtype=torch.float64)
        cosine = torch.zeros(k_count, dtype=torch.float64)
        for k in range(k_count):
            for surrogate, targets in zip(self.surrogates, self.targets, strict=True):
                draw = draw_augmentation(
                    surrogate.augment, self.settings.aug_draws * n, self.generator
                )
                labels = self.labels[k].repeat(self.settings.aug_draws)
                batch = KeyBatch(self.clean[k], labels, draw, surrogate.augment)
                value, key_grad = matching_objective_and_grad(
                    targets[k], batch, taggants[k], chunk_size=self.settings.chunk_size
                )
                grad[k] += self.weight * key_grad
                objective[k] += self.weight * float(value)
                cosine[k] += (1.0 - float(value)) / len(self.surrogates)
            if self.penalty is not None and self.settings.perceptual_weight > 0:
                value, penalty_grad = self._penalty_and_grad(k, taggants[k])
                grad[k] += penalty_grad
                objective[k] += value
        return objective, cosine, grad

    def _penalty_and_grad(self, k: int, taggant: torch.Tensor):
        delta = taggant.detach().requires_grad_(True)
        signed = self.clean[k] + delta
        value = self.settings.perceptual_weight * self.penalty(self.clean[k], signed).mean()
        (grad,) = torch.autograd.grad(value, delta)
        return float(value.detach()), grad

    @torch.no_grad()
    def project(self, taggants: torch.Tensor) -> None:
        """In place: onto the ε-ball, then so that clean + taggants stays in [0, 1]."""
        taggants.clamp_(-self.settings.eps_01, self.settings.eps_01)
        taggants.copy_((self.clean + taggants).clamp_(0.0, 1.0) - self.clean)

    # ---- evaluation --------------------------------------------------------------------

    def evaluate(self, signed_01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective and cosine per key of signed images [K, n, C, H, W] in [0, 1], without
        augmentation. Returns (objective float64 [K], cosine float64 [K])."""
        k_count = signed_01.shape[0]
        objective = torch.zeros(k_count, dtype=torch.float64)
        cosine = torch.zeros(k_count, dtype=torch.float64)
        for k in range(k_count):
            for targets in self.targets:
                value = matching_cosine(
                    targets[k], signed_01[k], self.labels[k], chunk_size=self.settings.chunk_size
                )
                objective[k] += self.weight * (1.0 - float(value))
                cosine[k] += float(value) / len(self.targets)
            if self.penalty is not None and self.settings.perceptual_weight > 0:
                with torch.no_grad():
                    penalty = self.penalty(self.clean[k], signed_01[k]).mean()
                objective[k] += self.settings.perceptual_weight * float(penalty)
        return objective, cosine

    def signed_01(self, taggants: torch.Tensor) -> torch.Tensor:
        signed = quantise(self.original, taggants.cpu(), self.settings.eps_255)
        return signed.to(self.device, torch.float32) / 255.0

    # ---- the loop ----------------------------------------------------------------------

    def initial_state(self) -> CraftState:
        k_count = self.original.shape[0]
        return CraftState(
            restart=0,
            step=0,
            taggants=None,
            optimizer=None,
            generator=self.generator.get_state(),
            best_taggants=torch.zeros(self.original.shape, dtype=torch.float32),
            best_objective=torch.full((k_count,), math.inf, dtype=torch.float64),
            restart_objectives=torch.full(
                (self.settings.restarts, k_count), math.nan, dtype=torch.float64
            ),
        )

    def run(self) -> CraftResult:
        s = self.settings
        state = load_state(s.state_path, self.job) if s.state_path else None
        state = state or self.initial_state()
        self.generator.set_state(state.generator)

        for restart in range(state.restart, s.restarts):
            taggants, optimizer = self._start_restart(state, restart)
            first = state.step if restart == state.restart else 0
            for step in range(first, s.steps):
                objective, cosine = self._step(taggants, optimizer, step)
                if s.checkpoint_every and (step + 1) % s.checkpoint_every == 0:
                    self._save(restart, step + 1, taggants, optimizer, state)
                self._report(restart, step, taggants, objective, cosine)
            self._finish_restart(restart, taggants, state)
            if s.checkpoint_every:
                self._save(restart + 1, 0, None, None, state)
        result = self._result(state)
        if s.state_path and s.checkpoint_every:
            Path(s.state_path).unlink(missing_ok=True)
        return result

    def _start_restart(self, state: CraftState, restart: int):
        eps_01 = self.settings.eps_01
        if restart == state.restart and state.taggants is not None:
            taggants = state.taggants.to(self.device).clone()
        else:
            # Uniform in [−ε, ε] (scaled by ε), drawn on the CPU so seeds reproduce anywhere.
            noise = torch.rand(self.original.shape, generator=self.generator)
            taggants = ((noise * 2.0 - 1.0) * eps_01).to(self.device)
            self.project(taggants)
        taggants.requires_grad_(True)
        base_lr = self.settings.step_size * eps_01
        optimizer = torch.optim.Adam([taggants], lr=base_lr)
        if restart == state.restart and state.optimizer is not None:
            optimizer.load_state_dict(state.optimizer)
        return taggants, optimizer

    def _step(self, taggants: torch.Tensor, optimizer: torch.optim.Adam, step: int):
        """One signed-Adam step in place; returns the step's (objective [K], cosine [K])."""
        objective, cosine, grad = self.objective_and_grad(taggants.detach())
        for group in optimizer.param_groups:
            group["lr"] = lr_at(
                step, self.settings.steps, self.settings.step_size * self.settings.eps_01
            )
        taggants.grad = grad.sign()  # signed Adam
        optimizer.step()
        self.project(taggants.data)
        return objective, cosine

    def _report(self, restart, step, taggants, objective, cosine) -> None:
        if self.on_progress is None:
            return
        with torch.no_grad():
            eps_used = float(taggants.abs().mean()) / self.settings.eps_01
            mse = float(taggants.square().mean())
        self.on_progress(
            {
                "restart": restart + 1,
                "restarts": self.settings.restarts,
                "step": step + 1,
                "steps": self.settings.steps,
                "objective": float(objective.sum()),
                "objective_per_key": [float(v) for v in objective],
                "cosine_mean": float(cosine.mean()),
                "eps_used": eps_used,  # mean |δ| / ε
                "psnr": 10.0 * math.log10(1.0 / mse) if mse > 0 else math.inf,  # dB
            }
        )

    def _finish_restart(self, restart: int, taggants: torch.Tensor, state: CraftState) -> None:
        final = taggants.detach().cpu()
        objective, _ = self.evaluate(self.signed_01(final))
        state.restart_objectives[restart] = objective
        better = objective < state.best_objective  # strict: an earlier restart wins ties
        state.best_objective = torch.where(better, objective, state.best_objective)
        state.best_taggants[better] = final[better]

    def _save(self, restart, step, taggants, optimizer, state: CraftState) -> None:
        state.restart, state.step = restart, step
        state.taggants = None if taggants is None else taggants.detach().cpu().clone()
        state.optimizer = None if optimizer is None else optimizer.state_dict()
        state.generator = self.generator.get_state()
        save_state(self.settings.state_path, state, self.job)

    def _result(self, state: CraftState) -> CraftResult:
        taggants = state.best_taggants
        signed = quantise(self.original, taggants, self.settings.eps_255)
        _, cosine = self.evaluate((self.clean + taggants.to(self.device)).clamp(0.0, 1.0))
        objective, cosine_quantised = self.evaluate(signed.to(self.device, torch.float32) / 255.0)
        return CraftResult(
            signed=signed,
            taggants=taggants,
            cosine=cosine.float(),
            cosine_quantised=cosine_quantised.float(),
            objective_per_key=objective,
            restart_objectives=state.restart_objectives,
        )


def craft_taggants(
    *,
    surrogates: Sequence[Surrogate],
    images: torch.Tensor,
    image_labels: torch.Tensor,
    keys: torch.Tensor,
    key_labels: torch.Tensor,
    settings: CraftSettings,
    on_progress: ProgressCallback | None = None,
) -> CraftResult:
    """Crafts taggants for every key's signing images.

    images: uint8 [K, n, C, H, W], the signing images of key i in row i.
    image_labels: int64 [K, n], their labels (normally all equal to the key's label).
    keys: uint8 [K, C, r, r], key images at their base resolution.
    key_labels: int64 [K].
    on_progress: called after every step with a flat event (may raise to stop the job; with
        a state_path and checkpoint_every it can then be resumed).
    """
    _validate_inputs(surrogates, images, image_labels, keys, key_labels)
    # The fused attention kernels (flash, memory-efficient) have no double backward; the math
    # kernel computes the same attention and can be differentiated twice.
    with sdpa_kernel([SDPBackend.MATH]):
        return _craft(
            surrogates=surrogates,
            images=images,
            image_labels=image_labels,
            keys=keys,
            key_labels=key_labels,
            settings=settings,
            on_progress=on_progress,
        )


def _craft(**job: Any) -> CraftResult:
    return _Crafter(**job).run()


def _validate_inputs(surrogates, images, image_labels, keys, key_labels) -> None:
    if not surrogates:
        raise ValueError("crafting needs at least one surrogate model, got none")
    if images.dtype != torch.uint8 or images.dim() != 5:
        raise ValueError(
            f"signing images must be uint8 [K, n, C, H, W], got {images.dtype} {list(images.shape)}"
        )
    k_count, n, channels, height, width = images.shape
    if k_count == 0 or n == 0:
        raise ValueError(
            f"crafting needs at least one key and one signing image per key, got "
            f"{k_count} keys × {n} images"
        )
    if tuple(image_labels.shape) != (k_count, n):
        raise ValueError(
            f"image_labels must be [K, n] = {[k_count, n]}, got {list(image_labels.shape)}"
        )
    if keys.dtype != torch.uint8 or keys.dim() != 4 or keys.shape[:2] != (k_count, channels):
        raise ValueError(
            f"keys must be uint8 [K={k_count}, C={channels}, r, r], "
            f"got {keys.dtype} {list(keys.shape)}"
        )
    if tuple(key_labels.shape) != (k_count,):
        raise ValueError(f"key_labels must be [K] = [{k_count}], got {list(key_labels.shape)}")
    for m, surrogate in enumerate(surrogates):
        if tuple(surrogate.input_size) != (height, width):
            raise ValueError(
                f"surrogate {m} expects {tuple(surrogate.input_size)} images but the signing "
                f"images are {(height, width)}; resize the dataset or use a surrogate trained at "
                "that size"
            )
