"""The command registry, the context commands receive, and the handle registry."""

import threading

import pytest
import torch

from taggants_worker import registry
from taggants_worker.handles import HandleRegistry
from taggants_worker.registry import Cancelled, Context, command


def make_context(events: list | None = None, cancel: threading.Event | None = None) -> Context:
    return Context(
        request_id=1,
        command="test",
        handles=HandleRegistry(),
        device=torch.device("cpu"),
        emit_progress=(events if events is not None else []).append,
        cancel_event=cancel,
    )


@command("test.add")
def add(ctx: Context, *, a: int, b: int = 2) -> dict:
    ctx.progress(stage="adding")
    return {"sum": a + b}


def test_a_registered_command_runs_with_checked_arguments() -> None:
    events: list = []
    assert registry.invoke("test.add", make_context(events), {"a": 1}) == {"sum": 3}
    assert events == [{"stage": "adding"}]


def test_unknown_and_missing_arguments_are_type_errors_naming_them() -> None:
    with pytest.raises(TypeError, match="unknown argument\\(s\\) c; it accepts: a, b"):
        registry.invoke("test.add", make_context(), {"a": 1, "c": 3})
    with pytest.raises(TypeError, match="missing required argument\\(s\\): a"):
        registry.invoke("test.add", make_context(), {})


def test_an_unknown_command_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown command 'nope'; known commands: .*test.add"):
        registry.get_command("nope")


def test_registering_a_name_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        command("test.add")(lambda ctx: {})


def test_command_arguments_must_be_keyword_only() -> None:
    def positional(ctx, a):  # noqa: ANN001, ANN202
        return {}

    with pytest.raises(TypeError, match="'a' must be keyword-only"):
        command("test.positional")(positional)


def test_a_command_must_return_a_map() -> None:
    @command("test.returns_list")
    def returns_list(ctx: Context) -> list:
        return [1]

    with pytest.raises(TypeError, match="returned a list"):
        registry.invoke("test.returns_list", make_context(), {})


def test_progress_raises_cancelled_once_the_request_is_cancelled() -> None:
    cancel = threading.Event()
    events: list = []
    ctx = make_context(events, cancel)
    ctx.progress(step=1)
    cancel.set()
    with pytest.raises(Cancelled, match="request 1 \\(test\\) was cancelled"):
        ctx.progress(step=2)
    assert events == [{"step": 1}]
    with pytest.raises(Cancelled):
        ctx.sleep(10)  # returns at once instead of sleeping


def test_handles_name_their_kind_and_are_checked_on_use() -> None:
    handles = HandleRegistry()
    model = object()
    handle = handles.add(model, kind="model")
    assert handle == "model:1"
    assert handles.get(handle, kind="model") is model
    with pytest.raises(ValueError, match="'model:1' is a model, expected a dataset"):
        handles.get(handle, kind="dataset")
    assert handles.add(object(), kind="dataset") == "dataset:2"
    handles.free(handle)
    with pytest.raises(ValueError, match="unknown handle 'model:1'; live handles: dataset:2"):
        handles.get(handle)
    with pytest.raises(ValueError, match="unknown handle"):
        handles.free(handle)
    with pytest.raises(ValueError, match="handle kind must be"):
        handles.add(model, kind="a:b")
