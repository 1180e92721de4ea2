"""The gradient-matching objective of one key and its gradient with respect to the taggants
(METHOD.md, Signing, step 4).

For key i with key image x_i and key label y_i, and its signing images x_j (labels y_j) with
taggants δ_j, on a surrogate f with parameters θ (normalisation layers in eval mode):

    g_i = ∇θ L(f(x_i), y_i)                                (the key gradient, fixed)
    G_i = Σ_d Σ_j ∇θ L(f(A_d(x_j + δ_j)), y_j)             (summed over draws d and images j)
    objective_i = 1 − cos(G_i, g_i)

L is the summed cross-entropy. Summing the draws into one gradient (rather than averaging one
cosine per draw) matches what training does: over its epochs the model accumulates the gradients
of many augmented views of each signing image, and it is that sum which should point along g_i.

Memory: the double backward through G_i holds activations of every image it covers, so the
augmented batch (draws × images) is cut into chunks of at most `chunk_size` images. G_i is linear
in the images but the cosine is not, so with several chunks we run two passes:
  1. accumulate G_i = Σ_c G_c over chunks with first-order gradients only;
  2. u = ∂objective/∂G_i (cheap, closed form through autograd on a leaf), then per chunk the
     vector–Jacobian product ∂⟨G_c, u⟩/∂δ, which needs the chunk's graph only while it runs.
A single chunk takes the direct path (one double backward), which costs one pass less.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from .augment import AugmentDraw, AugmentSpec, apply_augmentation

Grads = list[torch.Tensor]


@dataclass
class MatchTarget:
    """Everything the objective needs about one (surrogate, key) pair, fixed during crafting."""

    model: nn.Module  # in eval mode
    params: list[nn.Parameter]  # the parameters whose gradients are matched
    key_grad: Grads  # g_i, one tensor per parameter, detached


def select_parameters(model: nn.Module, prefixes: Sequence[str] | None) -> list[nn.Parameter]:
    """The parameters to match: all of them, or those whose name starts with one of `prefixes`.

    Parameters left out get requires_grad=False so no gradient is computed for them.
    """
    named = list(model.named_parameters())
    if prefixes is None:
        chosen = [p for _, p in named]
    else:
        chosen = [p for name, p in named if any(name.startswith(pre) for pre in prefixes)]
        if not chosen:
            tops = sorted({name.split(".")[0] for name, _ in named})
            raise ValueError(
                f"no surrogate parameter name starts with any of {list(prefixes)}; "
                f"top-level names are {tops}"
            )
    chosen_ids = {id(p) for p in chosen}
    for _, p in named:
        p.requires_grad_(id(p) in chosen_ids)
    return chosen


def compute_key_grads(
    model: nn.Module, params: list[nn.Parameter], keys: torch.Tensor, key_labels: torch.Tensor
) -> list[Grads]:
    """g_i for every key: keys float [K, C, H, W] in [0, 1] at the model's input size."""
    grads = []
    for i in range(keys.shape[0]):
        logits = model(keys[i : i + 1])
        loss = functional.cross_entropy(logits, key_labels[i : i + 1], reduction="sum")
        grads.append([g.detach() for g in torch.autograd.grad(loss, params)])
    return grads


def cosine(a: Grads, b: Grads) -> torch.Tensor:
    """Cosine similarity of two gradients given as lists of per-parameter tensors."""
    dot = sum((x * y).sum() for x, y in zip(a, b, strict=True))
    norm_a = torch.sqrt(sum((x * x).sum() for x in a))
    norm_b = torch.sqrt(sum((y * y).sum() for y in b))
    return dot / (norm_a * norm_b).clamp_min(1e-30)


@dataclass
class KeyBatch:
    """The augmented signing images of one key for one step.

    clean: float [n, C, H, W] in [0, 1]; labels: int64 [n];
    draw: one augmentation per augmented image, [D·n] where image k is source k mod n.
    """

    clean: torch.Tensor
    labels: torch.Tensor
    draw: AugmentDraw
    spec: AugmentSpec

    @property
    def augmented_count(self) -> int:
        return len(self.draw)

    def chunk_loss(self, model: nn.Module, taggant: torch.Tensor, start: int, stop: int):
        """Summed loss of augmented images [start, stop) given taggants [n, C, H, W]."""
        n = self.clean.shape[0]
        source = torch.arange(start, stop, device=self.clean.device) % n
        images = (self.clean + taggant)[source]
        logits = model(apply_augmentation(images, self.draw.rows(start, stop), self.spec))
        return functional.cross_entropy(logits, self.labels[source], reduction="sum")


def _chunks(total: int, chunk_size: int) -> list[tuple[int, int]]:
    return [(s, min(s + chunk_size, total)) for s in range(0, total, chunk_size)]


def matching_objective_and_grad(
    target: MatchTarget, batch: KeyBatch, taggant: torch.Tensor, *, chunk_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns (1 − cos(G_i, g_i) as a detached scalar, its gradient w.r.t. `taggant`).

    taggant: float [n, C, H, W] (a plain tensor; this function makes its own leaf).
    """
    delta = taggant.detach().requires_grad_(True)
    spans = _chunks(batch.augmented_count, chunk_size)

    if len(spans) == 1:
        loss = batch.chunk_loss(target.model, delta, *spans[0])
        summed = torch.autograd.grad(loss, target.params, create_graph=True)
        objective = 1.0 - cosine(list(summed), target.key_grad)
        (grad,) = torch.autograd.grad(objective, delta)
        return objective.detach(), grad

    # Pass 1: the summed gradient G_i, first order only.
    summed = [torch.zeros_like(p) for p in target.params]
    for start, stop in spans:
        loss = batch.chunk_loss(target.model, delta, start, stop)
        for acc, g in zip(summed, torch.autograd.grad(loss, target.params), strict=True):
            acc.add_(g)
    leaf = [g.requires_grad_(True) for g in summed]
    objective = 1.0 - cosine(leaf, target.key_grad)
    direction = torch.autograd.grad(objective, leaf)  # u = ∂objective/∂G_i

    # Pass 2: per chunk, ∂⟨G_c, u⟩/∂δ; their sum is ∂objective/∂δ by the chain rule.
    grad = torch.zeros_like(delta)
    for start, stop in spans:
        loss = batch.chunk_loss(target.model, delta, start, stop)
        chunk_grad = torch.autograd.grad(loss, target.params, create_graph=True)
        projected = sum((g * u).sum() for g, u in zip(chunk_grad, direction, strict=True))
        grad += torch.autograd.grad(projected, delta)[0]
    return objective.detach(), grad


def matching_cosine(
    target: MatchTarget, clean: torch.Tensor, labels: torch.Tensor, *, chunk_size: int
) -> torch.Tensor:
    """cos(Σ_j ∇θ L(f(x_j), y_j), g_i) without augmentation, for evaluation; clean [n,C,H,W]."""
    summed = [torch.zeros_like(p) for p in target.params]
    for start, stop in _chunks(clean.shape[0], chunk_size):
        logits = target.model(clean[start:stop])
        loss = functional.cross_entropy(logits, labels[start:stop], reduction="sum")
        for acc, g in zip(summed, torch.autograd.grad(loss, target.params), strict=True):
            acc.add_(g)
    return cosine(summed, target.key_grad).detach()
