"""Jinja2 environments for the reports that ship their own templates (DR drills, assessments,
postmortems).

One place decides how those templates are loaded and rendered: from the package's ``templates``
folder, block tags trimmed so the templates can be indented for reading, and a missing Jinja2
named as the extra that brings it.  Jinja2 is imported only when a report is rendered, so the
commands that never write HTML do not need it.  A leaf module: it imports nothing of Buttress but
:mod:`buttress.errors`.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from buttress.errors import MissingExtra

if TYPE_CHECKING:
    import jinja2

__all__ = ["environment"]


@cache
def environment(
    package: str, *, command: str, extra: str, autoescape: bool = True, strict: bool = False
) -> jinja2.Environment:
    """The (cached) environment loading ``package``'s ``templates`` folder.

    ``command`` and ``extra`` name what to install when Jinja2 is missing; ``autoescape`` is off
    only for templates that do not write HTML (Markdown); ``strict`` makes an undefined name an
    error rather than an empty string.
    """
    try:
        import jinja2
    except ImportError as e:
        raise MissingExtra(command, extra, e.name or "jinja2") from None
    return jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined if strict else jinja2.Undefined,
    )
