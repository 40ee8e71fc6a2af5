"""How outbox messages are written: payloads as compact JSON text, uids as random hex.

Both run once per message on the producer's and the relay's hot paths, hence the care: the JSON
encoder's C core is built once, and uids are cut from a pool of random bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from buttress.randomids import random_ids

__all__ = ["NOT_JSON", "decode", "encode", "new_uid"]


def _make_encode() -> Callable[[Any], str]:
    """Compact JSON, NaN refused: the standard encoder's C core built once, with no circular
    reference bookkeeping (a cycle ends in ``RecursionError``, refused like any other payload
    JSON cannot hold).  ``JSONEncoder.encode`` builds that core on every call, which costs a
    relay more than the encoding of a small payload itself.  Falls back to ``encode`` where the C
    core is missing or does not produce the same text."""
    reference = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return reference.encode
    try:
        core = make(
            None,
            reference.default,
            json.encoder.encode_basestring_ascii,
            None,
            ":",
            ",",
            False,
            False,
            False,
        )

        def encode(payload: Any) -> str:
            return "".join(core(payload, 0))

        sample = {"a": [1, 2.5, "\u00e9\n", None, True, {"b": -0.0}], "c": "d"}
        if encode(sample) == reference.encode(sample):
            return encode
    except Exception:  # pragma: no cover - another signature: the plain encoder then
        pass
    return reference.encode  # pragma: no cover


encode = _make_encode()
"""Compact JSON text of a payload; raises one of :data:`NOT_JSON` for one JSON cannot hold."""

new_uid = random_ids(12, 256)
"""96 random bits in hex: a message's id."""


NOT_JSON = (TypeError, ValueError, RecursionError)
decode = json.JSONDecoder().decode
