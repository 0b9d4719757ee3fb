"""Byte and text encodings of what the store keeps besides labels: checkpoints and rounds."""

from __future__ import annotations

import io
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from .errors import StoreCorruptedError


def dump_state_dicts(state_dicts: Sequence[Mapping[str, object]]) -> bytes:
    """Serialise model state dicts with ``torch.save`` (tensors moved to the CPU).

    Only tensors and plain containers are accepted, because the store loads them back with
    ``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
    """
    import torch

    if isinstance(state_dicts, Mapping) or not isinstance(state_dicts, Sequence):
        raise TypeError(
            "state_dicts must be a list of state dicts (one per ensemble member), "
            f"not {type(state_dicts).__name__}"
        )
    cpu_dicts = []
    for index, state in enumerate(state_dicts):
        if not isinstance(state, Mapping):
            raise TypeError(f"state_dicts[{index}] is a {type(state).__name__}, not a state dict")
        cpu_state = OrderedDict()
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu()
            elif not isinstance(value, (int, float, bool, str, type(None))):
                raise TypeError(
                    f"state_dicts[{index}][{name!r}] is a {type(value).__name__}; checkpoints "
                    "hold only tensors and plain numbers so they can be loaded without "
                    "unpickling arbitrary objects"
                )
            cpu_state[str(name)] = value
        # Module versions (e.g. BatchNorm's) live here; load_state_dict reads them back.
        version_info = getattr(state, "_metadata", None)
        if version_info is not None:
            cpu_state._metadata = version_info
        cpu_dicts.append(cpu_state)
    buffer = io.BytesIO()
    torch.save(cpu_dicts, buffer)
    return buffer.getvalue()


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def load_state_dicts(payload: bytes) -> list[dict[str, object]]:
    """Inverse of :func:`dump_state_dicts`, with ``weights_only=True`` (no arbitrary pickle).

    Raises
    ------
    StoreCorruptedError
        The payload is not a list of state dicts that loads that way.
    """
    import torch

    fix = "delete the row from the table checkpoints; the labels do not depend on it"
    try:
        state_dicts = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - damaged bytes fail in many ways (zip, pickle, EOF)
        raise StoreCorruptedError(
            "the stored checkpoint cannot be loaded with torch.load(weights_only=True); it is "
            f"damaged or holds objects other than tensors ({_first_line(error)}); {fix}"
        ) from error
    if not isinstance(state_dicts, list) or not all(
        isinstance(state, Mapping) for state in state_dicts
    ):
        raise StoreCorruptedError(
            f"the stored checkpoint holds a {type(state_dicts).__name__}, not a list of "
            f"state dicts (one per ensemble member); {fix}"
        )
    return state_dicts


def _json_default(value: object) -> object:
    # numpy scalars and arrays (and tensors) know how to become Python numbers and lists.
    for method in ("item", "tolist"):
        convert = getattr(value, method, None)
        if callable(convert):
            try:
                return convert()
            except (TypeError, ValueError):
                continue
    raise TypeError(
        f"round history values must be JSON-serialisable (numbers, strings, lists, dicts); "
        f"got {type(value).__name__}"
    )


def dump_round(data: Mapping[str, object]) -> str:
    """Encode one history entry as JSON text."""
    if not isinstance(data, Mapping):
        raise TypeError(f"a round must be a dict, not {type(data).__name__}")
    return json.dumps(dict(data), default=_json_default)


def load_round(text: str, round_id: int | None = None) -> dict[str, object]:
    """Decode one history entry.

    Raises
    ------
    StoreCorruptedError
        The text is not a JSON object (it was edited outside alwidget).
    """
    try:
        data = json.loads(text)
    except ValueError:  # json.JSONDecodeError, and non-UTF-8 bytes
        data = None
    if not isinstance(data, dict):
        where = "a round" if round_id is None else f"round {round_id}"
        raise StoreCorruptedError(
            f"the learning history entry of {where} (table rounds) is {str(text)[:80]!r}, "
            "not a JSON object; it was edited outside alwidget. Fix its JSON or delete the "
            "row (the labels do not depend on it)."
        )
    return data
