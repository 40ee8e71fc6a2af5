"""An OpenFeature provider that reads the degraded mode: flags follow the ecosystem's standard.

.. code-block:: python

    from openfeature import api
    from buttress.modes.openfeature import ModesProvider

    api.set_provider(ModesProvider(switch))
    client = api.get_client()
    if client.get_boolean_value("recommendations", True):
        ...

What each flag resolves to, in the current mode (``reason`` ``TARGETING_MATCH`` and the mode's name
as ``variant``): a feature in ``off:`` is ``False``, one in ``keeps:`` is ``True``, a key of
``flags:`` has its value; ``buttress.mode`` is the mode's name (``"normal"`` when none is on);
``buttress.shed.<criticality>`` says whether that criticality is shed.  Anything else is the
caller's default with reason ``DEFAULT``; a value of the wrong type is the default with
``TYPE_MISMATCH``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

from buttress.errors import MissingExtra

try:
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.exception import ErrorCode
    from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
    from openfeature.provider import AbstractProvider
    from openfeature.provider.metadata import Metadata
except ImportError as e:  # pragma: no cover - exercised by the bare-install test
    raise MissingExtra("the OpenFeature provider", "modes", "openfeature-sdk") from e

from .switch import ModeSwitch

__all__ = ["MODE_FLAG", "SHED_PREFIX", "ModesProvider"]

MODE_FLAG = "buttress.mode"
SHED_PREFIX = "buttress.shed."

T = TypeVar("T")


class ModesProvider(AbstractProvider):
    """Resolves flags from a :class:`ModeSwitch`."""

    def __init__(self, switch: ModeSwitch) -> None:
        super().__init__()
        self.switch = switch

    def get_metadata(self) -> Metadata:
        return Metadata(name="buttress-modes")

    def _resolve(self, key: str, default: T, types: tuple[type, ...]) -> FlagResolutionDetails[T]:
        mode = self.switch.current
        value: Any
        variant: str | None
        if key == MODE_FLAG:
            value, variant = (mode.name if mode else "normal"), (mode.name if mode else None)
        elif key.startswith(SHED_PREFIX):
            value = self.switch.sheds(key[len(SHED_PREFIX) :])
            variant = mode.name if mode else None
        else:
            value, variant = self.switch.flag(key)
        if value is None:
            return FlagResolutionDetails(value=default, reason=Reason.DEFAULT)
        wrong_bool = isinstance(value, bool) and bool not in types
        if wrong_bool or not isinstance(value, types):
            return FlagResolutionDetails(
                value=default,
                reason=Reason.ERROR,
                error_code=ErrorCode.TYPE_MISMATCH,
                error_message=f"flag {key!r} is {type(value).__name__} in mode {variant!r}",
            )
        reason = Reason.TARGETING_MATCH if variant else Reason.STATIC
        typed = cast("T", value)  # checked against ``types`` just above
        return FlagResolutionDetails(value=typed, reason=reason, variant=variant or "normal")

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, (bool,))

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, (str,))

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, (int,))

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        resolved = self._resolve(flag_key, default_value, (float, int))
        if isinstance(resolved.value, int) and not isinstance(resolved.value, bool):
            resolved.value = float(resolved.value)
        return resolved

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return FlagResolutionDetails(value=default_value, reason=Reason.DEFAULT)
