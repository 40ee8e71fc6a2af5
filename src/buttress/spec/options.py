"""``reliability.yaml`` models generated from the policies' options types.

:func:`spec_model` turns a frozen :class:`~buttress.options.Options` dataclass into a strict
pydantic model: one field per option that the file may set, with the same default, the same
bounds (so the JSON Schema shows them), the option's doc as its description, durations that also
read ``250ms``, and exception types named by their import paths.  The model's
:meth:`OptionsModel.to_options`
builds the options object, so a value is checked by exactly the rules the constructor applies; a
rule that fails (``cap`` below ``base``) is reported at the parameter's own key.
"""

from __future__ import annotations

import builtins
import importlib
from dataclasses import MISSING
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, create_model, model_validator
from pydantic.functional_validators import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

from buttress.errors import ConfigError
from buttress.options import Option, Options

from .types import Duration

__all__ = [
    "ExceptionNames",
    "OptionsModel",
    "VariantModel",
    "exception_name",
    "resolve_exception",
    "spec_model",
    "variant_model",
]


OPTION_ERROR = "buttress_option"
"""The pydantic error type of a value an options type refused (its context names the
parameter)."""


def resolve_exception(name: str) -> type[BaseException]:
    """``ConnectionError`` or ``package.module.Error`` to the class; ``ValueError`` if it is
    none."""
    obj: Any
    if "." not in name:
        obj = getattr(builtins, name, None)
    else:
        module, _, attr = name.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attr, None)
        except ImportError:
            obj = None
    if not (isinstance(obj, type) and issubclass(obj, BaseException)):
        raise ValueError(f"{name!r} is not an exception class (built-in name or dotted path)")
    return obj


def exception_name(t: type[BaseException]) -> str:
    """The name ``reliability.yaml`` uses for ``t``: built-ins bare, others by dotted path."""
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _one_or_many(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


def _known(names: list[str]) -> list[str]:
    for n in names:
        resolve_exception(n)
    return names


ExceptionNames = Annotated[list[str], BeforeValidator(_one_or_many), AfterValidator(_known)]
"""Exception classes by name: one name or a list."""


class OptionsModel(BaseModel):
    """Base of the generated models: strict keys, frozen, and a bridge to the options type."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    options_type: ClassVar[type[Options]]

    def option_values(self) -> dict[str, Any]:
        """The declared options as the options type takes them (names resolved, nested models
        turned into options)."""
        out: dict[str, Any] = {}
        fields = type(self).model_fields
        for f, opt in self.options_type.describe():
            if f.name not in fields:
                continue
            v = getattr(self, f.name)
            if opt.kind == "exceptions":
                v = tuple(resolve_exception(n) for n in v)
            elif isinstance(v, BaseModel) and hasattr(v, "to_options"):
                v = v.to_options()
            out[f.name] = v
        return out

    def to_options(self) -> Options:
        """The validated options object."""
        return self.options_type(**self.option_values())

    @model_validator(mode="after")
    def _options_accept(self) -> OptionsModel:
        try:
            self.to_options()
        except ConfigError as e:
            # The spec loader moves the location onto the parameter's own key (validation.validate).
            raise PydanticCustomError(
                OPTION_ERROR, "{message}", {"parameter": e.parameter, "message": str(e)}
            ) from None
        return self


def _annotation(opt: Option) -> Any:
    t: Any = _base_annotation(opt)
    bounds: dict[str, Any] = {}
    if opt.kind in ("integer", "number", "duration"):
        bounds = {
            k: getattr(opt, k) for k in ("ge", "gt", "le", "lt") if getattr(opt, k) is not None
        }
    if opt.kind == "number":
        bounds["allow_inf_nan"] = opt.allow_inf
    if bounds:
        t = Annotated[t, Field(**bounds)]
    return t | None if opt.optional else t


def _base_annotation(opt: Option) -> Any:
    t: Any
    if opt.kind == "integer":
        t = Annotated[int, Strict()]
    elif opt.kind == "number":
        t = float
    elif opt.kind == "duration":
        t = Duration
    elif opt.kind == "choice":
        t = Literal[opt.choices]
    elif opt.kind == "flag":
        t = Annotated[bool, Strict()]
    elif opt.kind == "exceptions":
        t = ExceptionNames
    else:
        t = Any
    return t


def _default(f: Any, opt: Option) -> Any:
    if f.default is MISSING:
        return ...
    if opt.kind == "exceptions":
        return [exception_name(t) for t in f.default]
    return f.default


def spec_model(
    options: type[Options],
    name: str,
    *,
    doc: str | None = None,
    fields: dict[str, tuple[Any, Any]] | None = None,
    exclude: tuple[str, ...] = (),
    base: type[OptionsModel] = OptionsModel,
) -> type[OptionsModel]:
    """A pydantic model for ``options``: every option with ``spec=True``, minus ``exclude``;
    ``fields`` replaces or adds fields as ``name: (annotation, default)``."""
    defs: dict[str, Any] = {}
    for f, opt in options.describe():
        if not opt.spec or f.name in exclude:
            continue
        defs[f.name] = (_annotation(opt), Field(_default(f, opt), description=opt.doc))
    docs = {f.name: opt.doc for f, opt in options.describe()}
    for key, (annotation, default) in (fields or {}).items():
        defs[key] = (annotation, Field(default, description=docs.get(key)))
    model: type[OptionsModel] = create_model(
        name, __base__=base, __doc__=doc or f"Declared :class:`{options.__qualname__}`.", **defs
    )
    model.options_type = options
    return model


class VariantModel(OptionsModel):
    """Base of :func:`variant_model`'s flat models: a tag picks one of several options types."""

    tag: ClassVar[str]
    variants: ClassVar[dict[str, type[Options]]]

    def chosen(self) -> type[Options]:
        """The options type the tag names."""
        return self.variants[getattr(self, self.tag)]

    def option_values(self) -> dict[str, Any]:
        """The variant's declared fields (unset ones keep the variant's defaults)."""
        cls = self.chosen()
        out: dict[str, Any] = {}
        for f, opt in cls.describe():
            v = getattr(self, f.name, None)
            if f.name in self.model_fields_set and v is not None:
                out[f.name] = (
                    tuple(resolve_exception(n) for n in v) if opt.kind == "exceptions" else v
                )
        return out

    def to_options(self) -> Options:
        return self.chosen()(**self.option_values())

    @model_validator(mode="after")
    def _fields_apply(self) -> VariantModel:
        own = {f.name for f, _ in self.chosen().describe()}
        every = {f.name for cls in self.variants.values() for f, _ in cls.describe()}
        foreign = sorted((every - own) & self.model_fields_set)
        if foreign:
            takes = "; ".join(
                f"{self.tag} {k!r} takes {', '.join(f.name for f, o in c.describe() if o.spec)}"
                for k, c in self.variants.items()
            )
            value = getattr(self, self.tag)
            raise ValueError(
                f"{', '.join(foreign)} do(es) not apply to {self.tag} {value!r}; {takes}"
            )
        return self


def variant_model(
    name: str,
    tag: str,
    variants: dict[str, type[Options]],
    *,
    doc: str,
    fields: dict[str, tuple[Any, Any]] | None = None,
    base: type[VariantModel] = VariantModel,
) -> type[VariantModel]:
    """One flat model for several options types, chosen by the ``tag`` key (``mode: ratio``,
    ``algorithm: aimd``); the first variant is the default.  A field that exists only in other
    variants is refused, naming what the chosen one takes."""
    names = list(variants)
    defs: dict[str, Any] = {
        tag: (Literal[tuple(names)], Field(names[0], description=f"One of {', '.join(names)}"))
    }
    for cls in variants.values():
        for f, opt in cls.describe():
            if not opt.spec:
                continue
            applies = [
                k for k, c in variants.items() if f.name in {g.name for g, _ in c.describe()}
            ]
            defaults = ", ".join(
                f"{k}: {_default_text(c, f.name)}" for k, c in variants.items() if k in applies
            )
            if f.name in defs:
                continue
            defs[f.name] = (
                _annotation(opt) | None,
                Field(
                    None, description=f"{opt.doc} ({tag} {', '.join(applies)}; default {defaults})"
                ),
            )
    for key, (annotation, default) in (fields or {}).items():
        defs[key] = (annotation, default)
    model: type[VariantModel] = create_model(name, __base__=base, __doc__=doc, **defs)
    model.tag = tag
    model.variants = variants
    model.options_type = variants[names[0]]
    return model


def _default_text(cls: type[Options], name: str) -> str:
    for f, _ in cls.describe():
        if f.name == name:
            return repr(f.default)
    return "-"
