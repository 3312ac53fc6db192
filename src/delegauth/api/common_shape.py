"""AuthZEN bodies in the common shape, read by msgspec into typed structs (api/fast.py).

A body of one evaluation, or a batch of them, in the shape nearly every request takes
(authzen.plain_evaluation's "common shape") is read here without building a dict per
object: msgspec decodes it straight into the structs below, checking every type as it
goes, in about 40% of json.loads' time, and plain_evaluation's checks then reduce to the
ids' Casbin names.

Every struct forbids members it does not declare, so a body these accept has exactly this
shape, nested five deep at most (no depth to check), and nothing the route would look at
is skipped: no ``context``, no ``properties`` on subject or action, no other member of
``resource.properties`` or of the batch's ``options``. A member given twice counts once,
the last time, as json.loads counts it. Anything these refuse (another shape, a repeated
or unknown member, JSON that json.loads would read otherwise: NaN, a BOM, a lone surrogate)
raises, and the caller leaves the body to the general path, which answers as always.
tests/unit/test_common_shape.py compares these with json.loads and plain_evaluation.

This is the one module that uses msgspec.
"""

from __future__ import annotations

import msgspec

__all__ = ["Evaluation", "NotCommon", "read_batch", "read_evaluation"]

NotCommon = (msgspec.DecodeError, msgspec.ValidationError)  # what the readers raise


class _Subject(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    id: str


class _Action(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class _Properties(msgspec.Struct, forbid_unknown_fields=True):
    area: str


class _Resource(msgspec.Struct, forbid_unknown_fields=True):
    type: str
    id: str
    properties: _Properties


class Evaluation(msgspec.Struct, forbid_unknown_fields=True):
    subject: _Subject
    action: _Action
    resource: _Resource


class _Options(msgspec.Struct, forbid_unknown_fields=True):
    evaluations_semantic: str


class _Batch(msgspec.Struct, forbid_unknown_fields=True):
    evaluations: list[Evaluation]
    options: _Options | msgspec.UnsetType = msgspec.UNSET  # an explicit null is refused


_evaluation = msgspec.json.Decoder(Evaluation)
_batch = msgspec.json.Decoder(_Batch)


def read_evaluation(raw: bytes) -> Evaluation:
    """One evaluation in the common shape. Raises one of NotCommon for any other body."""
    return _evaluation.decode(raw)


def read_batch(raw: bytes) -> tuple[list[Evaluation], str | None]:
    """A batch's evaluations, each in the common shape, and its ``evaluations_semantic``
    (None: no ``options``). Raises one of NotCommon for any other body."""
    body = _batch.decode(raw)
    options = body.options
    if options is msgspec.UNSET:
        return body.evaluations, None
    return body.evaluations, options.evaluations_semantic
