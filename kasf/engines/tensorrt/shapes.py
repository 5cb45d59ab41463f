"""Giving a TensorRT execution context its input shape and checking the output shape it then
gives, with messages that name the tensor, the shape and the optimisation profile's range: both
TensorRT calls answer in return values (a bool, a shape with -1), never by raising."""

from __future__ import annotations

from typing import Sequence

from ...errors import KasfError


def profile_range(engine, name: str, profile: int = 0) -> str:
    """The shapes optimisation profile `profile` takes for the input `name`, as a message says them."""
    low, opt, high = engine.get_tensor_profile_shape(name, profile)
    return f"{list(low)} to {list(high)} (optimal {list(opt)})"


def set_input_shape(engine, context, name: str, shape: Sequence[int], source: str) -> None:
    """context.set_input_shape, refused shapes raised as a KasfError with the profile's range."""
    if not context.set_input_shape(name, tuple(shape)):
        raise KasfError(f"TensorRT refused the input shape {list(shape)} of {name!r} for {source}: its optimisation "
                        f"profile takes {profile_range(engine, name)}; rebuild with `kasf build --min-batch/"
                        "--max-batch` for other batch sizes")


def check_output_shape(context, name: str, expected: Sequence[int], source: str) -> None:
    """The output shape the context gives for the input shape it was set: exactly `expected`
    ([batch, frames, 17, 3], what kasf's output buffers hold), or a KasfError saying what it is."""
    shape = [int(d) for d in context.get_tensor_shape(name)]
    if shape == list(expected):
        return
    if -1 in shape:
        what = "dimensions TensorRT leaves unresolved (-1)"
    elif len(shape) != len(expected):
        what = f"rank {len(shape)}, not {len(expected)}"
    else:
        what = "other sizes"
    raise KasfError(f"{source} would give {name!r} the shape {list(shape)} for this input, with {what}; kasf's "
                    f"engines give {list(expected)} ([batch, frames, joints, 3]): rebuild it with `kasf build` "
                    "from a `kasf export` graph")
