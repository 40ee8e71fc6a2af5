"""Line-aware YAML loading.

:func:`load_yaml` parses a YAML file into plain Python data *and* remembers where every key and
value sits (line and column), refusing hostile input (alias bombs, deep nesting, control
characters) with a located error.  :func:`buttress.spec.validation.validate` then runs a pydantic
model over that data and reports every problem at its line, column and field.  Every section of
``reliability.yaml`` (and the other spec formats: OpenSLO, sloth, experiments) is read through here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from yaml.reader import ReaderError

from buttress.errors import SpecError

__all__ = [
    "Document",
    "Loc",
    "load_yaml",
    "load_yaml_documents",
    "load_yaml_documents_text",
    "load_yaml_text",
]

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists a spec file may have (real files stay under 15)."""
MAX_NODES = 100_000
"""Most values (scalars, mappings, lists) one document may hold, aliases expanded."""
MAX_ALIAS_NODES = 10_000
"""Most values all aliases together may expand to: a few hundred bytes of nested aliases (the
"billion laughs") would otherwise expand to billions."""
MAX_BYTES = 10_000_000
"""Largest spec file read (10 MB)."""

Loc = tuple[str | int, ...]


@dataclass
class Document:
    """Parsed YAML: ``data`` plus the position of every node, keyed by its path from the root."""

    file: str
    data: Any
    values: dict[Loc, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Loc, tuple[int, int]] = field(default_factory=dict)

    def position(self, loc: Iterable[str | int]) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the node at ``loc``, or of its nearest ancestor."""
        path = tuple(loc)
        while True:
            if path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
            if not path:
                # An empty file has no node at all: its only place is its start.
                return (1, 1) if self.data is None and not self.values else (None, None)
            path = path[:-1]

    def error(self, loc: Iterable[str | int], message: str) -> SpecError:
        """A :class:`SpecError` for the node at ``loc`` in this document."""
        path = tuple(loc)
        line, col = self.position(path)
        return SpecError(message, file=self.file, line=line, column=col, field=dotted(path) or None)

    def refuse_empty(self, expected: str) -> None:
        """Raise a located error when the file holds no YAML at all (empty, or only comments):
        a file that says nothing is a mistake, not an empty configuration."""
        if self.data is None:
            raise self.error((), f"the file is empty (expected {expected})")

    def sub(self, loc: Iterable[str | int]) -> Document:
        """A view of the node at ``loc`` as a document of its own (positions keep pointing at the
        file)."""
        prefix = tuple(loc)
        n = len(prefix)
        data: Any = self.data
        for part in prefix:
            data = data[part]
        values = {k[n:]: v for k, v in self.values.items() if k[:n] == prefix}
        keys = {k[n:]: v for k, v in self.keys.items() if k[:n] == prefix and len(k) > n}
        doc = Document(self.file, data, values, keys)
        doc._prefix = prefix  # type: ignore[attr-defined]
        return doc


def dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


if TYPE_CHECKING:
    _LoaderBase = yaml.SafeLoader
else:
    _LoaderBase = object


class _Guards(_LoaderBase):
    """SafeLoader with YAML 1.2 booleans: only true/false are booleans, so keys such as ``on:``,
    ``off:``, ``yes:`` and ``no:`` (and the country code ``NO``) stay strings.

    It also refuses hostile input with a located :class:`SpecError` instead of running out of
    stack or memory: nesting deeper than :data:`MAX_DEPTH`, a merge key (``<<``) that merges its
    own mapping, and (in :func:`_build`) recursive aliases and alias expansions past
    :data:`MAX_ALIAS_NODES` / :data:`MAX_NODES`.
    """

    file = "<string>"

    def prepare(self, file: str) -> None:
        self.file = file
        self.depth = 0
        self.flattening: set[int] = set()
        self.alias_marks: dict[tuple[int, int], yaml.Mark] = {}
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.built = 0
        self.aliased = 0
        self.entry: tuple[Loc, tuple[int, int]] | None = None

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent) and parent is not None and mark is not None:
            # Where each alias is used, so that errors inside it point there, not at its anchor.
            slot = index if isinstance(index, int) else id(index)
            self.alias_marks[(id(parent), slot)] = mark
        if self.depth >= MAX_DEPTH and isinstance(
            event, yaml.MappingStartEvent | yaml.SequenceStartEvent
        ):
            raise SpecError(
                f"nested deeper than {MAX_DEPTH} levels of mappings and lists",
                file=self.file,
                line=mark.line + 1 if mark is not None else None,
                column=mark.column + 1 if mark is not None else None,
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        if id(node) in self.flattening:
            raise _error_at(node, self.file, "a merge key (<<) merges the mapping it belongs to")
        self.flattening.add(id(node))
        try:
            super().flatten_mapping(node)
        finally:
            self.flattening.discard(id(node))
        if len(node.value) > MAX_NODES:
            raise _error_at(
                node,
                self.file,
                f"merge keys (<<) expand this mapping to more than {MAX_NODES} keys",
            )


class _Loader(_Guards, yaml.SafeLoader):
    """The pure-Python loader (used where PyYAML was built without libyaml)."""

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # Bounded in the scanner already: a line of thousands of '[' costs it quadratic time.
        if self.flow_level >= MAX_DEPTH:
            mark = self.get_mark()
            raise SpecError(
                f"nested deeper than {MAX_DEPTH} levels of mappings and lists",
                file=self.file,
                line=mark.line + 1,
                column=mark.column + 1,
            )
        super().fetch_flow_collection_start(TokenClass)


if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _CLoader(
        _Guards,
        yaml.composer.Composer,
        CParser,
        yaml.constructor.SafeConstructor,
        yaml.resolver.Resolver,
    ):
        """libyaml scans and parses (six times faster on a large file); composing stays in
        Python, in :class:`_Guards`, so depth, aliases and merges are checked as with
        :class:`_Loader`.  (libyaml bounds nothing itself; flow nesting is refused by the
        composer's depth check instead of the scanner's.)"""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)


# YAML 1.2 booleans, for both loaders (the mixin comes first in their method order).
_Guards.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _Guards.yaml_implicit_resolvers.setdefault(_first, []).append(
        ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"))
    )

_CONTROL_NAMES = {0: "NUL", 7: "BEL", 8: "BS", 0x0B: "VT", 0x0C: "FF", 0x1B: "ESC", 0x7F: "DEL"}


def _loader(text: str, file: str) -> _Guards:
    """A loader for ``text`` (libyaml's parser when PyYAML has it); a character YAML does not
    allow (NUL, other control characters) raises a :class:`SpecError` at its line and column."""
    try:
        if yaml.__with_libyaml__:
            # libyaml reports a bad character lazily and at a byte offset: check the text first,
            # as the pure-Python reader does, so the error names its line and column.
            bad = yaml.reader.Reader.NON_PRINTABLE.search(text)
            if bad is not None:
                raise ReaderError(file, bad.start(), ord(bad.group()), "unicode", "not printable")
            loader: _Guards = _CLoader(text)
        else:
            loader = _Loader(text)
    except ReaderError as e:
        pos = e.position
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        code = e.character if isinstance(e.character, int) else ord(str(e.character)[:1] or "\0")
        name = _CONTROL_NAMES.get(code)
        what = f"U+{code:04X}" + (f" ({name})" if name else "")
        raise SpecError(
            f"character {what} is not allowed in YAML (control and other non-printable "
            "characters must be escaped in a double-quoted string)",
            file=file,
            line=line,
            column=column,
        ) from None
    loader.prepare(file)
    return loader


def _yaml_error(e: yaml.YAMLError, file: str) -> SpecError:
    """A PyYAML error as a :class:`SpecError` at its mark (1-based), when it has one."""
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        return SpecError(
            f"YAML syntax error: {e.problem or e.context}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        )
    return SpecError(f"YAML error: {' '.join(str(e).split())}", file=file)


def _too_deep(file: str) -> SpecError:
    return SpecError(f"nested too deeply (more than {MAX_DEPTH} levels, or recursive)", file=file)


def _read_text(path: str | Path) -> str:
    """The UTF-8 text of ``path``; a missing file, a directory, a file over :data:`MAX_BYTES` or
    bytes that are not UTF-8 (named by byte offset, line and column) raise SpecError."""
    p = Path(path)
    try:
        if p.is_file() and p.stat().st_size > MAX_BYTES:
            limit = MAX_BYTES // 1_000_000
            raise SpecError(f"larger than {limit} MB: not a spec file", file=str(p))
        data = p.read_bytes()
    except FileNotFoundError:
        raise SpecError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise SpecError("is a directory, expected a YAML file", file=str(path)) from None
    except OSError as e:
        raise SpecError(f"cannot read the file ({e.strerror or e})", file=str(path)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        start = e.start
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise SpecError(
            f"not UTF-8 text: byte 0x{data[start]:02x} at byte offset {start} ({e.reason}); "
            "save the file as UTF-8",
            file=str(path),
            line=line,
            column=column,
        ) from None


def load_yaml_text(text: str, file: str = "<string>") -> Document:
    """Parse YAML ``text``; syntax errors, duplicate keys and hostile input (see :class:`_Loader`)
    become :class:`SpecError`."""
    loader = _loader(text, file)
    try:
        doc = Document(file, None)
        try:
            node = loader.get_single_node()
            if node is not None:
                doc.data = _build(loader, node, (), doc)
        except yaml.YAMLError as e:  # syntax, and what the constructor refuses (bad merges)
            raise _yaml_error(e, file) from None
        return doc
    except RecursionError:  # a last resort: the loader's own limits come first
        raise _too_deep(file) from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> Document:
    """Read and parse the YAML file at ``path``."""
    return load_yaml_text(_read_text(path), str(path))


def load_yaml_documents_text(text: str, file: str = "<string>") -> list[Document]:
    """Parse every YAML document in ``text`` (``---`` separated), keeping positions like
    :func:`load_yaml_text`.  Empty documents are dropped; errors are :class:`SpecError`."""
    loader = _loader(text, file)
    docs: list[Document] = []
    try:
        try:
            while loader.check_node():
                node = loader.get_node()
                doc = Document(file, None)
                if node is not None:
                    doc.data = _build(loader, node, (), doc)
                docs.append(doc)
        except yaml.YAMLError as e:
            raise _yaml_error(e, file) from None
    except RecursionError:
        raise _too_deep(file) from None
    finally:
        loader.dispose()
    return [d for d in docs if d.data is not None]


def load_yaml_documents(path: str | Path) -> list[Document]:
    """Read and parse the (possibly multi-document) YAML file at ``path``; see
    :func:`load_yaml_documents_text`."""
    return load_yaml_documents_text(_read_text(path), str(path))


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _error_at(node: yaml.Node, file: str | None, message: str, path: Loc = ()) -> SpecError:
    """``message`` at ``node``'s line and column, about the field at ``path`` (if any)."""
    line, column = _mark(node)
    return SpecError(message, file=file, line=line, column=column, field=dotted(path) or None)


def _fail(doc: Document, path: Loc, at: tuple[int, int], message: str) -> SpecError:
    line, column = at
    return SpecError(message, file=doc.file, line=line, column=column, field=dotted(path) or None)


_STR_TAG = "tag:yaml.org,2002:str"


def _scalar(loader: _Guards, node: yaml.Node, path: Loc, doc: Document, at: tuple[int, int]) -> Any:
    if node.tag == _STR_TAG:  # only scalar nodes come here
        # What SafeConstructor.construct_yaml_str returns, without construct_object's bookkeeping
        # (most scalars of a spec are strings: every key and most values).
        return node.value
    try:
        return loader.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as e:  # an unknown tag (!!python/object), !!binary that is not
        raise _fail(doc, path, at, f"cannot read this value: {e.problem}") from None
    except (ValueError, OverflowError, TypeError) as e:  # 2022-02-30, a 5,000-digit integer
        text = str(node.value)
        shown = text if len(text) <= 40 else text[:37] + "..."
        reason = " ".join(str(e).split(";")[0].split())
        raise _fail(doc, path, at, f"cannot read the value {shown!r} ({reason})") from None


def _build(
    loader: _Guards, node: yaml.Node, path: Loc, doc: Document, at: tuple[int, int] | None = None
) -> Any:
    """The Python value of ``node`` (at ``path``; ``at``: where it is written, which for an alias
    is where the alias is used), recording positions, with aliases expanded within bounds."""
    at = at or _mark(node)
    doc.values[path] = at
    key = id(node)
    if key in loader.active:
        raise _fail(doc, path, at, "an alias refers to a mapping or list that contains it")
    if len(path) > MAX_DEPTH:
        raise _fail(doc, path, at, f"nested deeper than {MAX_DEPTH} levels (aliases expanded)")
    loader.built += 1
    outermost = False
    if key in loader.seen:
        if loader.entry is None:  # the alias being expanded, named when the bound is reached
            loader.entry = (path, at)
            outermost = True
        loader.aliased += 1
        if loader.aliased > MAX_ALIAS_NODES:
            where, mark = loader.entry
            raise _fail(
                doc,
                where,
                mark,
                f"aliases expand to more than {MAX_ALIAS_NODES} values (an alias bomb?)",
            )
    else:
        loader.seen.add(key)
    if loader.built > MAX_NODES:
        raise _fail(doc, path, at, f"more than {MAX_NODES} values in one document")
    value = _value(loader, node, path, doc, at)
    if outermost:
        loader.entry = None
    return value


def _value(loader: _Guards, node: yaml.Node, path: Loc, doc: Document, at: tuple[int, int]) -> Any:
    key = id(node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        loader.active.add(key)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            k = None
            key_at = _mark(key_node)
            if isinstance(key_node, yaml.ScalarNode):
                k = _scalar(loader, key_node, path, doc, key_at)
            if not isinstance(k, str | int | float | bool):
                raise _error_at(key_node, doc.file, "mapping keys must be plain scalars", path)
            if k in out:
                raise _error_at(key_node, doc.file, f"duplicate key {k!r}", (*path, str(k)))
            sub = (*path, k) if isinstance(k, str) else (*path, str(k))
            doc.keys[sub] = key_at
            used = loader.alias_marks.get((key, id(key_node)))
            out[k] = _build(loader, value_node, sub, doc, _mark_of(used))
        loader.active.discard(key)
        return out
    if isinstance(node, yaml.SequenceNode):
        loader.active.add(key)
        items = []
        for i, item in enumerate(node.value):
            used = loader.alias_marks.get((key, i))
            items.append(_build(loader, item, (*path, i), doc, _mark_of(used)))
        loader.active.discard(key)
        return items
    return _scalar(loader, node, path, doc, at)


def _mark_of(mark: yaml.Mark | None) -> tuple[int, int] | None:
    return None if mark is None else (mark.line + 1, mark.column + 1)
