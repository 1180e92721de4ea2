"""Distributed data parallel training through `torchrun` (NCCL on GPU, gloo on CPU).

For owners and suspects whose training outgrows one GPU or one machine. Every rank runs the
same `train_model` on its shard of each epoch's permutation; gradients are averaged by
`DistributedDataParallel`; rank 0 alone writes checkpoints and reports progress.

The orchestrator talks to one worker. To train on several processes it asks that worker's
`train` command for `nproc_per_node > 1`; the worker then launches

    torchrun --nproc_per_node N -m taggants_worker.distributed <request.json>

and relays rank 0's progress (JSON lines on its stdout) as its own. Multi-machine users run the
same module under their own `torchrun` on each node.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as torch_dist
from torch import nn

PROGRESS_PREFIX = "taggants-progress "
RESULT_PREFIX = "taggants-result "


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a data-parallel job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        if not self.enabled:
            return model
        ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar tensor over ranks."""
        if not self.enabled:
            return value
        value = value.detach().clone()
        torch_dist.all_reduce(value)
        return value / self.world_size

    def check_same_weights(self, model: nn.Module) -> list[str]:
        """SHA-256 of each rank's weights; raises if the ranks have drifted apart."""
        digest = weights_digest(model)
        digests: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(digests, digest)
        if len(set(digests)) != 1:
            raise RuntimeError(f"data-parallel ranks hold different weights: {digests}")
        return digests


SINGLE_PROCESS = DistInfo()


def weights_digest(model: nn.Module) -> str:
    """Hex SHA-256 over the model's parameters (names and bytes, in order).

    Buffers are left out: DDP gives every rank rank 0's buffers before each forward pass, but
    batch-norm running statistics then move with each rank's own batch; rank 0's are saved.
    """
    sha = hashlib.sha256()
    for name, tensor in model.named_parameters():
        sha.update(name.encode())
        sha.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return sha.hexdigest()


def init_from_env() -> tuple[DistInfo, torch.device]:
    """Join the process group `torchrun` describes in the environment; pick this rank's device."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device, backend = torch.device("cuda", local), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    torch_dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world), device


def run_torchrun(
    request: dict[str, Any],
    *,
    nproc_per_node: int,
    on_progress: Callable[[dict[str, Any]], None],
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run `train_model(**request)` under torchrun with N local processes; rank 0's result."""
    if nproc_per_node < 2:
        raise ValueError(f"nproc_per_node must be ≥ 2 for a distributed run, got {nproc_per_node}")
    with tempfile.TemporaryDirectory(prefix="taggants-ddp-") as folder:
        request_file = Path(folder) / "request.json"
        request_file.write_text(json.dumps(request))
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc_per_node}",
            "-m",
            "taggants_worker.distributed",
            str(request_file),
        ]
        env = {**os.environ, **(extra_env or {})}
        return _relay(command, env=env, on_progress=on_progress)


def _relay(
    command: list[str], *, env: dict[str, str], on_progress: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    result = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                if line.startswith(PROGRESS_PREFIX):
                    on_progress(json.loads(line[len(PROGRESS_PREFIX) :]))
                elif line.startswith(RESULT_PREFIX):
                    result = json.loads(line[len(RESULT_PREFIX) :])
                else:
                    sys.stderr.write(line)
        except BaseException:
            process.terminate()
            raise
    if process.returncode != 0 or result is None:
        raise RuntimeError(
            f"torchrun exited with code {process.returncode} before rank 0 sent its result; "
            "see the worker's stderr for the failing rank's traceback"
        )
    return result


def main(argv: list[str]) -> int:
    """Entry point under torchrun: every rank trains; rank 0 prints progress and the result."""
    from .data import DatasetSpec
    from .train import train_model

    request = json.loads(Path(argv[0]).read_text())
    dist, device = init_from_env()
    torch.set_num_threads(int(request.pop("threads_per_rank", 0)) or torch.get_num_threads())
    try:

        def progress(**event: Any) -> None:
            print(PROGRESS_PREFIX + json.dumps(event), flush=True)

        test = request.pop("test_data", None)
        result = train_model(
            **{k: v for k, v in request.items() if k != "data"},
            data=DatasetSpec.from_wire(request["data"]),
            test_data=DatasetSpec.from_wire(test) if test else None,
            device=device,
            progress=progress,
            dist=dist,
        )
        if dist.is_main:
            print(RESULT_PREFIX + json.dumps(result), flush=True)
    finally:
        torch_dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
