"""Reading YAML for transfer rules: line numbers for every mapping key, duplicate keys refused, syntax errors as
RuleError with their line, and the small wording helpers the validation messages share."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import yaml

from dialogue.transfer_rules import RuleError, RuleProblem


class Located(dict[Any, Any]):
    """A YAML mapping that remembers its line and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class RuleLoader(yaml.SafeLoader):
    pass


def _construct_located(loader: RuleLoader, node: yaml.MappingNode) -> Located:
    mapping = Located(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping.key_lines:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first given on line {mapping.key_lines[key]})", key_node.start_mark
            )
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


RuleLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_located)


def load_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=RuleLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        if exc.context_mark and mark and exc.context_mark.line != mark.line:
            what += f" (the construct began on line {exc.context_mark.line + 1})"
        raise RuleError([RuleProblem("file", f"YAML syntax error: {what}", line)]) from exc
    except yaml.YAMLError as exc:
        raise RuleError([RuleProblem("file", f"YAML syntax error: {exc}")]) from exc


def line_of(mapping: Any, key: Any = None) -> int | None:
    if not isinstance(mapping, Located):
        return None
    return mapping.key_lines.get(key, mapping.line) if key is not None else mapping.line


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def shown(value: Any) -> str:
    kind = {bool: "true/false", int: "a number", float: "a number", str: "text", list: "a list"}.get(type(value))
    kind = kind or ("a mapping" if isinstance(value, dict) else type(value).__name__)
    return f"{value!r} ({kind})"


def suggestion(word: Any, known: Iterable[str]) -> str:
    candidates = sorted(known)
    close = difflib.get_close_matches(str(word), candidates, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(candidates) or 'none'}"


def unknown(kind: str, word: Any, known: Iterable[str]) -> str:
    return f"unknown {kind} {word!r} ({suggestion(word, known)})"
