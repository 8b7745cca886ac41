"""One hash of a whole training state, in a canonical byte layout (issue 16).

Why the whole state: two runs that agree on the weights but not on the optimizer's moments, the
learning-rate schedule or the random generator will disagree from the next step on, so a
commitment that left any of it out would let a prover fake the part it leaves out. Hashed, in
this order, each part tagged and length-prefixed so no two states share a byte string:

1. the step index;
2. the model's ``state_dict`` (parameters and buffers), by name: name, dtype, shape, raw bytes;
3. the optimizer's ``state_dict`` and the scheduler's (if any), canonicalized: mappings by
   sorted key, lists in order, tensors as dtype, shape and raw bytes, floats by ``float.hex``
   (exact), ints, bools, strings and None tagged;
4. torch's global random generator state.

Raw bytes are the tensor's memory in its own dtype (little-endian on the machines torch runs
on), so the hash is bitwise: a replay must match to the last bit, in the environment the
manifest records (:mod:`pasar.train.environment`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


def state_hash(model: Any, optimizer: Any, step: int, scheduler: Any = None) -> str:
    """The sha256 (hex) of the training state after ``step`` steps."""
    import torch

    digest = hashlib.sha256()
    _feed(digest, b"step", str(step).encode())
    for name, tensor in sorted(model.state_dict().items()):
        _feed(digest, b"param", name.encode())
        _tensor(digest, tensor)
    _value(digest, optimizer.state_dict())
    _value(digest, scheduler.state_dict() if scheduler is not None else None)
    _tensor(digest, torch.get_rng_state())
    return digest.hexdigest()


def tensor_bytes(tensor: Any) -> bytes:
    """A tensor's raw memory in its own dtype (any dtype: viewed as bytes, not converted)."""
    import torch

    flat = tensor.detach().cpu().contiguous().reshape(-1)
    return bytes(flat.view(torch.uint8).numpy().tobytes())


def _feed(digest: Any, tag: bytes, data: bytes) -> None:
    digest.update(tag + b":" + len(data).to_bytes(8, "big") + data)


def _tensor(digest: Any, tensor: Any) -> None:
    _feed(digest, b"dtype", str(tensor.dtype).encode())
    _feed(digest, b"shape", ",".join(str(n) for n in tensor.shape).encode())
    _feed(digest, b"data", tensor_bytes(tensor))


def _value(digest: Any, value: Any) -> None:
    import torch

    if isinstance(value, torch.Tensor):
        _tensor(digest, value)
    elif isinstance(value, Mapping):
        _feed(digest, b"map", str(len(value)).encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, str(k))):
            _value(digest, key)
            _value(digest, value[key])
    elif isinstance(value, list | tuple):
        _feed(digest, b"list", str(len(value)).encode())
        for item in value:
            _value(digest, item)
    elif isinstance(value, bool):
        _feed(digest, b"bool", b"1" if value else b"0")
    elif isinstance(value, int):
        _feed(digest, b"int", str(value).encode())
    elif isinstance(value, float):
        _feed(digest, b"float", value.hex().encode())
    elif isinstance(value, str):
        _feed(digest, b"str", value.encode())
    elif value is None:
        _feed(digest, b"none", b"")
    else:
        raise TypeError(f"the training state holds a {type(value).__name__}, which it cannot hash")


def state_tensors(model: Any, optimizer: Any) -> dict[str, Any]:
    """The floating-point tensors of a training state, by a stable name: the model's
    ``state_dict`` (``model.NAME``) and the optimizer's per-parameter state
    (``optimizer.INDEX.KEY``) — what tolerance mode compares (:mod:`pasar.train.tolerance`)
    where a bitwise hash cannot (another environment rounds differently). A copy, detached."""
    out: dict[str, Any] = {}
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            out[f"model.{name}"] = tensor.detach().clone()
    for index, values in optimizer.state_dict().get("state", {}).items():
        for key, value in values.items():
            if hasattr(value, "is_floating_point") and value.is_floating_point():
                out[f"optimizer.{index}.{key}"] = value.detach().clone()
    return out
