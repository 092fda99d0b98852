"""Safe YAML with positions: job files become small trees whose nodes remember their line and column.

PyYAML's loaders either lose positions (`yaml.load`) or trust the input too much: they keep the last of
two duplicate keys, expand aliases without bound (billion laughs), and libyaml's C composer recurses without
a depth limit (a deeply nested file crashes the interpreter). So this module reads the *event* stream (from
libyaml when available, else the pure-Python parser) and composes the tree itself, refusing each of those.
Only the YAML core-schema tags are accepted; anything else (`!!python/object`, custom `!tags`) is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

from cronframework.errors import SpecError
from cronframework.heap import gc_paused

MAX_FILE_BYTES: Final = 1 << 20
MAX_DEPTH: Final = 64
MAX_ALIAS_NODES: Final = 100_000  # nodes that aliases may add on top of the ones written out

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CORE = "tag:yaml.org,2002:"
_MERGE_TAG: Final = _CORE + "merge"
_STR_TAG: Final = _CORE + "str"
_SCALAR_TAGS: Final = frozenset(_CORE + t for t in ("null", "bool", "int", "float", "str", "timestamp"))
_MAP_TAG: Final = _CORE + "map"
_SEQ_TAG: Final = _CORE + "seq"


@dataclass(frozen=True)
class Pos:
    """1-based line and column, as editors show them."""

    line: int
    col: int


class _Positioned:
    """Line and column kept as two ints (a Pos object per node costs more than parsing it on large files)."""

    __slots__ = ("col0", "line0")

    def __init__(self, mark: Any) -> None:
        self.line0: int = mark.line
        self.col0: int = mark.column

    @property
    def pos(self) -> Pos:
        return Pos(self.line0 + 1, self.col0 + 1)


class YScalar(_Positioned):
    __slots__ = ("value",)
    size = 1

    def __init__(self, value: Any, mark: Any) -> None:
        self.line0, self.col0, self.value = mark.line, mark.column, value


class YMap(_Positioned):
    __slots__ = ("entries", "plain", "size")

    def __init__(self, entries: dict[Any, tuple[YScalar, YNode]], plain: dict[Any, Any], mark: Any, size: int):
        self.line0, self.col0 = mark.line, mark.column
        self.entries = entries  # key -> (key node, value node), in document order
        self.plain = plain  # the same mapping as plain Python values, built alongside (see to_python)
        self.size = size  # nodes after alias expansion, this one included


class YSeq(_Positioned):
    __slots__ = ("items", "plain", "size")

    def __init__(self, items: list[YNode], plain: list[Any], mark: Any, size: int) -> None:
        self.line0, self.col0 = mark.line, mark.column
        self.items = items
        self.plain = plain
        self.size = size


YNode = YScalar | YMap | YSeq
_MERGE_KEY: Final = object()


def decode(data: bytes, file: str) -> str:
    """Bytes -> text, refusing oversized and non-UTF-8 files with the byte offset of the first bad byte."""
    _check_size(len(data), file)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        head = data[: exc.start]
        line, col = head.count(b"\n") + 1, exc.start - (head.rfind(b"\n") + 1) + 1
        raise SpecError(f"not UTF-8 at byte {exc.start}", file=file, line=line, col=col) from None


def _check_size(size: int, file: str) -> None:
    if size > MAX_FILE_BYTES:
        raise SpecError(f"file is {size} bytes; limit {MAX_FILE_BYTES >> 20} MiB", file=file)


def parse(text: str, file: str) -> YNode | None:
    """The single document in `text` as a positioned tree; None when there is no document at all."""
    _check_size(len(text.encode("utf-8", "surrogatepass")), file)
    loader = _Loader(text)
    try:
        with gc_paused():
            return _Composer(loader, file).document()
    except yaml.MarkedYAMLError as exc:
        raise _marked_error(exc, text, file) from None
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, file) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise SpecError(f"invalid YAML: {exc}", file=file) from None
    finally:
        loader.dispose()


def to_python(node: YNode) -> Any:
    """Plain dicts, lists and scalars (built during parsing); aliased subtrees are shared objects."""
    return node.value if isinstance(node, YScalar) else node.plain


def _plain(node: YNode) -> Any:
    return node.value if type(node) is YScalar else node.plain  # type: ignore[union-attr]


class _Composer:
    """Events -> YNode tree, enforcing depth, alias-expansion, duplicate-key and tag rules as it goes."""

    def __init__(self, loader: yaml.SafeLoader, file: str) -> None:
        self._loader: Any = loader  # PyYAML's parser methods are untyped
        self._file = file
        self._anchors: dict[str, YNode | None] = {}  # None while the anchored node is still open
        self._alias_nodes = 0
        self._resolved: dict[str, str] = {}

    def document(self) -> YNode | None:
        self._loader.get_event()  # StreamStartEvent
        start = self._loader.get_event()
        if isinstance(start, StreamEndEvent):
            return None
        root = self._node(self._loader.get_event(), 0)
        self._loader.get_event()  # DocumentEndEvent
        extra = self._loader.get_event()
        if isinstance(extra, DocumentStartEvent):
            raise self._error("a job file holds one YAML document; found a second one", extra)
        return root

    def _error(self, message: str, event: Event) -> SpecError:
        mark: Any = event.start_mark  # the parser sets marks on every event
        return SpecError(message, file=self._file, line=mark.line + 1, col=mark.column + 1)

    def _resolve(self, value: str, plain: bool) -> str:
        """The implicit tag of a scalar; job files repeat values a lot, so resolutions are cached."""
        if not plain:  # quoted: always a string
            return _STR_TAG
        tag = self._resolved.get(value)
        if tag is None:
            tag = self._resolved[value] = self._loader.resolve(ScalarNode, value, (True, False))
        return tag

    def _unsupported(self, tag: str | None, event: Event) -> SpecError:
        return self._error(f"unsupported YAML tag {_short(tag)}; job files use plain YAML values", event)

    def _node(self, event: Event, depth: int) -> YNode:
        if isinstance(event, AliasEvent):
            return self._alias(event)
        if depth > MAX_DEPTH:
            raise self._error(f"nesting deeper than {MAX_DEPTH} levels", event)
        anchor = event.anchor  # type: ignore[attr-defined]  # every node event has one
        if anchor is not None:
            self._anchors[anchor] = None
        node: YNode
        if isinstance(event, ScalarEvent):
            node = self._scalar(event)
        elif isinstance(event, SequenceStartEvent):
            node = self._sequence(event, depth)
        elif isinstance(event, MappingStartEvent):
            node = self._mapping(event, depth)
        else:  # the parser guarantees a node event here; anything else is a parser bug
            raise self._error(f"unexpected YAML event {type(event).__name__}", event)
        if anchor is not None:
            self._anchors[anchor] = node
        return node

    def _alias(self, event: AliasEvent) -> YNode:
        if event.anchor not in self._anchors:
            raise self._error(f"alias *{event.anchor} names no anchor defined before it", event)
        target = self._anchors[event.anchor]
        if target is None:
            raise self._error(f"alias *{event.anchor} refers to a node that contains it", event)
        self._alias_nodes += target.size
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise self._error(f"aliases expand to more than {MAX_ALIAS_NODES} nodes; refusing", event)
        return target

    def _scalar(self, event: ScalarEvent) -> YScalar:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(event.value, event.implicit[0])
        mark = event.start_mark
        if tag == _STR_TAG:
            return YScalar(event.value, mark)
        if tag == _MERGE_TAG:
            return YScalar(_MERGE_KEY, mark)
        if tag not in _SCALAR_TAGS:
            raise self._unsupported(tag, event)
        node = ScalarNode(tag, event.value, None, None)
        try:
            value = self._loader.yaml_constructors[tag](self._loader, node)
        except (yaml.YAMLError, ValueError):
            raise self._error(f"{event.value!r} is not a valid {_short(tag)}", event) from None
        return YScalar(value, mark)

    def _collection_tag(self, event: MappingStartEvent | SequenceStartEvent, expected: str) -> None:
        if event.tag not in (None, "!", expected):
            raise self._unsupported(event.tag, event)

    def _sequence(self, event: SequenceStartEvent, depth: int) -> YSeq:
        self._collection_tag(event, _SEQ_TAG)
        items: list[YNode] = []
        while not isinstance(child := self._loader.get_event(), SequenceEndEvent):
            items.append(self._node(child, depth + 1))
        size = 1 + sum(item.size for item in items)
        return YSeq(items, [_plain(item) for item in items], event.start_mark, size)

    def _mapping(self, event: MappingStartEvent, depth: int) -> YMap:
        self._collection_tag(event, _MAP_TAG)
        entries: dict[Any, tuple[YScalar, YNode]] = {}
        merged: dict[Any, tuple[YScalar, YNode]] = {}
        size = 1
        while not isinstance(key_event := self._loader.get_event(), MappingEndEvent):
            if type(key_event) is ScalarEvent and key_event.anchor is None:
                key = self._scalar(key_event)  # the usual case, without _node's dispatch
                if isinstance(key.value, bool):  # YAML 1.1 reads a key `on:` (retry.on) as true: keys are names
                    key = YScalar(key_event.value, key_event.start_mark)
            else:
                key = self._key(self._node(key_event, depth + 1), key_event)
            value = self._node(self._loader.get_event(), depth + 1)
            size += 1 + value.size
            if key.value is _MERGE_KEY:
                self._merge(value, merged, key_event)
            elif key.value in entries:
                first = entries[key.value][0]
                where = f"line {first.line0 + 1}:{first.col0 + 1}"
                raise self._error(f"duplicate key {key.value!r} (first at {where})", key_event)
            else:
                entries[key.value] = (key, value)
        for name, entry in merged.items():
            entries.setdefault(name, entry)
        plain = {name: _plain(value) for name, (_, value) in entries.items()}
        return YMap(entries, plain, event.start_mark, size)

    def _key(self, node: YNode, event: Event) -> YScalar:
        if not isinstance(node, YScalar):
            raise self._error("mapping keys must be plain scalars, not lists or mappings", event)
        return node

    def _merge(self, value: YNode, merged: dict[Any, tuple[YScalar, YNode]], event: Event) -> None:
        """`<<: *defaults` (or a list of them): earlier sources win, explicit keys override all of them."""
        sources = value.items if isinstance(value, YSeq) else [value]
        for source in sources:
            if not isinstance(source, YMap):
                raise self._error("'<<' merges a mapping or a list of mappings", event)
            for name, entry in source.entries.items():
                merged.setdefault(name, entry)


def _short(tag: str | None) -> str:
    text = str(tag)
    return "!!" + text[len(_CORE) :] if text.startswith(_CORE) else text


def _marked_error(exc: yaml.MarkedYAMLError, text: str, file: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    parts = [p for p in (exc.context, exc.problem) if p]
    message = "invalid YAML: " + ": ".join(parts)
    lines = text.splitlines()
    if mark is not None and "alias" in message and mark.line < len(lines) and "*" in lines[mark.line]:
        message += " (a value starting with '*' must be quoted, e.g. \"* * * * *\")"
    line = mark.line + 1 if mark else None
    col = mark.column + 1 if mark else None
    return SpecError(message, file=file, line=line, col=col)


def _reader_error(exc: yaml.reader.ReaderError, text: str, file: str) -> SpecError:
    head = text[: exc.position]
    line, col = head.count("\n") + 1, exc.position - (head.rfind("\n") + 1) + 1
    char = exc.character if isinstance(exc.character, int) else ord(exc.character)
    return SpecError(f"invalid YAML: character U+{char:04X} is not allowed", file=file, line=line, col=col)
