"""The worker's registry of handles: models, datasets and tensors kept between requests.

Commands are tensor-level (create, run, read back) so that large objects stay in the worker and
the orchestrator refers to them by a short string handle such as ``"model:3"``.
"""

from __future__ import annotations

import threading
from typing import Any


class HandleRegistry:
    """Objects kept alive by handle ``"<kind>:<n>"``; ``n`` counts up and is never reused."""

    def __init__(self) -> None:
        self._objects: dict[str, tuple[str, Any]] = {}
        self._next = 1
        self._lock = threading.Lock()

    def add(self, obj: Any, *, kind: str) -> str:
        """Keep ``obj``; return its new handle (``add(net, kind="model") -> "model:3"``)."""
        if not kind or not kind.replace("_", "").isalnum():
            raise ValueError(
                f"handle kind must be a non-empty word of letters, digits or '_', got {kind!r}"
            )
        with self._lock:
            handle = f"{kind}:{self._next}"
            self._next += 1
            self._objects[handle] = (kind, obj)
        return handle

    def get(self, handle: str, *, kind: str | None = None) -> Any:
        """The object behind ``handle``; with ``kind``, also check that it is of that kind."""
        with self._lock:
            entry = self._objects.get(handle) if isinstance(handle, str) else None
        if entry is None:
            raise ValueError(f"unknown handle {handle!r}; live handles: {self._describe_live()}")
        actual_kind, obj = entry
        if kind is not None and actual_kind != kind:
            raise ValueError(f"handle {handle!r} is a {actual_kind}, expected a {kind}")
        return obj

    def free(self, handle: str) -> None:
        """Drop ``handle`` so its object can be garbage-collected; unknown handles raise."""
        with self._lock:
            removed = self._objects.pop(handle, None) if isinstance(handle, str) else None
        if removed is None:
            raise ValueError(f"unknown handle {handle!r}; live handles: {self._describe_live()}")

    def kinds(self) -> dict[str, str]:
        """Every live handle and its kind."""
        with self._lock:
            return {handle: kind for handle, (kind, _) in self._objects.items()}

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    def __contains__(self, handle: object) -> bool:
        with self._lock:
            return handle in self._objects

    def _describe_live(self) -> str:
        live = sorted(self.kinds())
        if not live:
            return "none"
        shown = ", ".join(live[:10])
        return shown if len(live) <= 10 else f"{shown} and {len(live) - 10} more"
