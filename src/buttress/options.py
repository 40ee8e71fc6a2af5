"""One frozen options type per policy: every parameter, its default, its bounds and its docs.

A policy's parameters are declared once, as fields of a frozen dataclass built from the helpers
below (:func:`integer`, :func:`number`, :func:`duration`, :func:`choice`, ...).  Everything else
derives from that declaration:

* the policy's constructor takes its defaults from the options class (``max_queue: int =
  BulkheadOptions.max_queue``) and validates by building the options object;
* the pipeline builder's methods take the constructor's signature (``ParamSpec``);
* the ``reliability.yaml`` models, their JSON Schema and the docs' defaults tables are generated
  from the fields (:mod:`buttress.spec.options`, ``scripts/gen_docs.py``).

Validation lives here once: whole numbers refuse ``bool``, numbers refuse NaN (and infinity unless
a field allows it), durations are seconds.  Every failure raises
:class:`~buttress.errors.ConfigError` naming the parameter and the value.

This module is part of the policy core: standard library only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field
from typing import Any, ClassVar, TypedDict, TypeVar, Unpack

from .errors import ConfigError

__all__ = [
    "REQUIRED",
    "Bounds",
    "check_flag",
    "check_integer",
    "check_number",
    "check_order",
    "check_seconds",
    "Option",
    "Options",
    "choice",
    "duration",
    "exceptions",
    "flag",
    "integer",
    "number",
    "number_or_none",
    "custom",
]

REQUIRED: Any = MISSING
"""Default of a field the caller must give (``rate`` of a rate limiter)."""

_KEY = "buttress"
_O = TypeVar("_O", bound="Options")


def is_number(v: object) -> bool:
    """An ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(v, int | float) and not isinstance(v, bool)


class Bounds(TypedDict, total=False):
    """The bounds a number may be given: ``ge`` (``>=``), ``gt`` (``>``), ``le`` (``<=``), ``lt``
    (``<``); absent or ``None``, no bound.  The keyword arguments of :func:`integer`,
    :func:`number` and the ``check_*`` helpers."""

    ge: float | None
    gt: float | None
    le: float | None
    lt: float | None


def bounds_text(**bounds: Unpack[Bounds]) -> str:
    """``>= 1``, ``> 0 and <= 1``: the bounds in words, for messages and the docs."""
    b = bounds.get
    words = ((">=", b("ge")), (">", b("gt")), ("<=", b("le")), ("<", b("lt")))
    return " and ".join(f"{op} {x:g}" for op, x in words if x is not None)


def within(
    v: float, ge: float | None, gt: float | None, le: float | None, lt: float | None
) -> bool:
    """Is ``v`` inside the bounds (NaN never is)?"""
    if math.isnan(v):
        return False
    return not (
        (ge is not None and not v >= ge)
        or (gt is not None and not v > gt)
        or (le is not None and not v <= le)
        or (lt is not None and not v < lt)
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Option:
    """What one options field accepts.  ``kind`` is one of ``integer``, ``number``, ``duration``,
    ``choice``, ``flag``, ``exceptions``, ``value``; ``spec`` says whether ``reliability.yaml`` may
    set it (callables and objects are code-only)."""

    kind: str
    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    optional: bool = False
    allow_inf: bool = False
    choices: tuple[str, ...] = ()
    spec: bool = True
    check: Callable[[str, Any], Any] | None = None
    shown: str | None = None  # how the docs show the default, when repr() would not do

    def bounds(self) -> str:
        return bounds_text(ge=self.ge, gt=self.gt, le=self.le, lt=self.lt)

    def validate(self, name: str, v: Any) -> Any:
        """``v`` normalised (``int`` seconds to ``float``, one exception type to a tuple), or
        :class:`ConfigError`."""
        if v is None and self.optional:
            return None
        k = self.kind
        if k == "integer":
            if isinstance(v, bool) or not isinstance(v, int) or not self._in(v):
                raise ConfigError(name, v, self._expected("an integer"))
        elif k in ("number", "duration"):
            finite = is_number(v) and (self.allow_inf or not math.isinf(v))
            if not finite or not self._in(v):
                what = "a number of seconds" if k == "duration" else "a number"
                if not self.allow_inf:
                    what = "a finite " + what[2:]
                raise ConfigError(name, v, self._expected(what))
            v = float(v)
        elif k == "choice":
            if v not in self.choices:
                raise ConfigError(name, v, self._expected(f"one of {', '.join(self.choices)}"))
        elif k == "flag":
            if not isinstance(v, bool):
                raise ConfigError(name, v, self._expected("True or False"))
        elif k == "exceptions":
            types = v if isinstance(v, tuple) else (v,)
            if not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
                raise ConfigError(name, v, "must be an exception type or a tuple of them")
            v = types
        if self.check is not None:
            v = self.check(name, v)
        return v

    def _in(self, v: float) -> bool:
        return within(v, self.ge, self.gt, self.le, self.lt)

    def _expected(self, what: str) -> str:
        b = self.bounds()
        text = f"must be {what}{' ' + b if b else ''}"
        return text + ", or None" if self.optional else text


def _field(default: Any, option: Option) -> Any:
    return dataclasses.field(default=default, metadata={_KEY: option})


def integer(
    default: Any, doc: str, *, optional: bool = False, spec: bool = True, **bounds: Unpack[Bounds]
) -> Any:
    """A whole number (``bool`` refused)."""
    return _field(default, Option("integer", doc, optional=optional, spec=spec, **bounds))


def number(
    default: Any,
    doc: str,
    *,
    allow_inf: bool = False,
    optional: bool = False,
    spec: bool = True,
    **bounds: Unpack[Bounds],
) -> Any:
    """A real number, stored as ``float`` (NaN refused; infinity unless ``allow_inf``; ``None``
    too when ``optional``)."""
    option = Option("number", doc, allow_inf=allow_inf, optional=optional, spec=spec, **bounds)
    return _field(default, option)


def number_or_none(default: Any, doc: str, **bounds: Unpack[Bounds]) -> Any:
    """:func:`number` with ``optional=True``."""
    return number(default, doc, optional=True, **bounds)


def duration(
    default: Any,
    doc: str,
    *,
    ge: float | None = 0,
    gt: float | None = None,
    optional: bool = False,
    allow_inf: bool = False,
    spec: bool = True,
) -> Any:
    """Seconds, stored as ``float``; ``reliability.yaml`` may also write ``250ms``, ``2s``."""
    return _field(
        default,
        Option("duration", doc, ge=ge, gt=gt, optional=optional, allow_inf=allow_inf, spec=spec),
    )


def choice(default: Any, doc: str, choices: Sequence[str], *, spec: bool = True) -> Any:
    """One of a few names."""
    return _field(default, Option("choice", doc, choices=tuple(choices), spec=spec))


def flag(default: Any, doc: str, *, optional: bool = False, spec: bool = True) -> Any:
    """``True`` or ``False`` (``None`` too when ``optional``)."""
    return _field(default, Option("flag", doc, optional=optional, spec=spec))


def exceptions(default: tuple[type[BaseException], ...], doc: str, *, spec: bool = True) -> Any:
    """Exception types; one type is accepted for a tuple of one.  ``reliability.yaml`` names them
    (built-in names or dotted import paths)."""
    return _field(default, Option("exceptions", doc, spec=spec, shown=_exc_names(default)))


def custom(
    default: Any,
    doc: str,
    *,
    check: Callable[[str, Any], Any] | None = None,
    optional: bool = False,
    spec: bool = False,
    shown: str | None = None,
) -> Any:
    """Anything ``check`` accepts (a callable, a nested options object, an object); code-only
    unless ``spec``."""
    return _field(
        default, Option("value", doc, check=check, optional=optional, spec=spec, shown=shown)
    )


def callable_or_none(name: str, v: Any) -> Any:
    """A ``check`` for hooks and predicates."""
    if v is not None and not callable(v):
        raise ConfigError(name, v, "must be callable, or None")
    return v


def check_integer(name: str, v: Any, **bounds: Unpack[Bounds]) -> int:
    """``v`` as a whole number within bounds, or :class:`ConfigError` (for parameters outside an
    options type)."""
    return Option("integer", "", **bounds).validate(name, v)  # type: ignore[no-any-return]


def check_flag(name: str, v: Any) -> bool:
    """``v`` if it is ``True`` or ``False``, or :class:`ConfigError`."""
    return Option("flag", "").validate(name, v)  # type: ignore[no-any-return]


def check_number(name: str, v: Any, **bounds: Unpack[Bounds]) -> float:
    """``v`` as a finite ``float`` within bounds, or :class:`ConfigError`."""
    return Option("number", "", **bounds).validate(name, v)  # type: ignore[no-any-return]


def check_seconds(name: str, v: Any, *, gt: float | None = None) -> float:
    """``v`` as a finite number of seconds (``>= 0``, or ``> gt``), or :class:`ConfigError`."""
    opt = Option("duration", "", ge=None if gt is not None else 0, gt=gt)
    return opt.validate(name, v)  # type: ignore[no-any-return]


def check_order(low: str, low_value: float, high: str, high_value: float | None) -> None:
    """:class:`ConfigError` naming ``high`` when it is below ``low`` (a maximum under its
    minimum); a ``high_value`` of None means no maximum."""
    if high_value is not None and high_value < low_value:
        raise ConfigError(high, high_value, f"must be >= {low} ({low_value:g})")


def _exc_names(types: tuple[type[BaseException], ...]) -> str:
    return "[" + ", ".join(t.__name__ for t in types) + "]"


class Options:
    """Base of every options type: checks each field on construction (:meth:`Option.validate`),
    then the cross-field rules of :meth:`check`.  Subclasses are
    ``@dataclass(frozen=True, kw_only=True)``."""

    policy: ClassVar[str] = ""  # the class the options configure, for the docs
    _described: ClassVar[tuple[tuple[Field[Any], Option], ...]]  # describe()'s, per class

    def __post_init__(self) -> None:
        for f, opt in self.describe():
            v = getattr(self, f.name)
            nv = opt.validate(f.name, v)
            if nv is not v:
                object.__setattr__(self, f.name, nv)
        self.check()

    def check(self) -> None:
        """Cross-field rules (``cap >= base``); raise :class:`ConfigError`."""

    @classmethod
    def describe(cls) -> tuple[tuple[Field[Any], Option], ...]:
        """Each field with its :class:`Option`, in declaration order."""
        # Read on every construction (and by the spec's loaders for every section), so computed
        # once per class: each class's own entry, since a subclass has fields of its own.
        found: tuple[tuple[Field[Any], Option], ...] | None = cls.__dict__.get("_described")
        if found is None:
            found = tuple(
                (f, f.metadata[_KEY])
                for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                if _KEY in f.metadata
            )
            cls._described = found
        return found

    @classmethod
    def from_arguments(cls: type[_O], arguments: Mapping[str, Any]) -> _O:
        """The options named by this type's fields, taken from ``arguments``: a policy's
        constructor passes ``locals()``, whose keywords are the fields (tests/core/test_options.py
        checks that the signature and the fields agree), so the list is written once."""
        return cls(**{f.name: arguments[f.name] for f, _ in cls.describe()})

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Field name to default, for the fields that have one."""
        return {f.name: f.default for f, _ in cls.describe() if f.default is not MISSING}

    def replace(self: _O, **changes: Any) -> _O:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def as_kwargs(self) -> dict[str, Any]:
        """Field name to value (nested options stay objects)."""
        return {f.name: getattr(self, f.name) for f, _ in self.describe()}

    @classmethod
    def param_docs(cls) -> str:
        """The fields as a docstring ``:param:`` list (appended to the policy's docstring)."""
        lines = []
        for f, opt in cls.describe():
            if f.default is MISSING:
                d = "required"
            else:
                d = "default " + (opt.shown or _shown(f.default))
            lines.append(f":param {f.name}: {opt.doc} ({d}).")
        return "\n".join(lines)


def _shown(v: Any) -> str:
    if isinstance(v, Options):
        return f"{type(v).__name__}()"
    if isinstance(v, float) and v.is_integer():
        return repr(v)
    return repr(v)


def shown_default(f: Field[Any], opt: Option) -> str:
    """How the docs show a field's default."""
    if f.default is MISSING:
        return "required"
    return opt.shown or _shown(f.default)


def documented(options: type[Options]) -> Callable[[type[Any]], type[Any]]:
    """Class decorator: append the options' ``:param:`` list to the class docstring, so
    ``help(Bulkhead)`` shows every parameter with its default without a second copy in the
    source."""

    def deco(cls: type[Any]) -> type[Any]:
        cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n\n" + options.param_docs() + "\n"
        cls.options_type = options
        return cls

    return deco
