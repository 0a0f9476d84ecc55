"""Label and field selectors, parsed with the grammar and error messages of k8s.io/apimachinery."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

# A valid label value (and the name part of a key): at most 63 alphanumerics, '-', '_', '.', alphanumeric ends.
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|[^\s=!(),]+)")

# Fields a field selector may name, beyond metadata.name and metadata.namespace (per kind, as the real server).
_FIELDS_BY_KIND = {
    "Pod": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "status.phase", "status.podIP", "status.nominatedNodeName"),
    "Namespace": ("status.phase",),
    "Node": ("spec.unschedulable",),
}


class SelectorError(ValueError):
    """A selector the real API server would reject with 400 BadRequest."""


LabelMatcher = Callable[[Mapping[str, str]], bool]
FieldMatcher = Callable[[dict], bool]


def _check_value(key: str, value: str) -> None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        raise SelectorError(
            f'unable to parse requirement: values[0][{key}]: Invalid value: "{value}": a valid label must be an empty '
            "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
            "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def _check_key(key: str) -> None:
    prefix, _sep, name = key.rpartition("/")
    if not name or len(name) > 63 or not _LABEL_VALUE.match(name) or len(prefix) > 253:
        raise SelectorError(
            f'unable to parse requirement: key: Invalid value: "{key}": name part must consist of alphanumeric '
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character")


def _tokens(text: str) -> list[str]:
    tokens, pos, text = [], 0, text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _label_requirement(key: str, op: str, values: set[str]) -> LabelMatcher:
    if op == "exists":
        return lambda labels: key in labels
    if op == "!":
        return lambda labels: key not in labels
    if op in ("=", "==", "in"):
        return lambda labels: labels.get(key) in values
    return lambda labels: labels.get(key) not in values  # != and notin also match objects without the key


def _field_requirement(path: str, op: str, value: str) -> FieldMatcher:
    if op == "!=":
        return lambda obj: _field_value(obj, path) != value
    return lambda obj: _field_value(obj, path) == value


def parse_label_selector(selector: str | Mapping[str, str] | None) -> LabelMatcher:
    """A predicate on a labels dict. A mapping means equality on every key (a Service's selector)."""
    if not selector:
        return lambda labels: True
    if isinstance(selector, Mapping):
        wanted = dict(selector)
        return lambda labels: all(labels.get(k) == v for k, v in wanted.items())
    tokens = _tokens(selector)
    requirements: list[LabelMatcher] = []
    i = 0

    def expect_identifier(after: str) -> str:
        nonlocal i
        if i >= len(tokens) or tokens[i] in ("=", "==", "!=", "!", "(", ")", ","):
            found = tokens[i] if i < len(tokens) else "EOS"
            raise SelectorError(f"found '{found}', expected: identifier{after}")
        i += 1
        return tokens[i - 1]

    while True:
        negated = i < len(tokens) and tokens[i] == "!"
        if negated:
            i += 1
        key = expect_identifier(" after '!'" if negated else "")
        _check_key(key)
        op = tokens[i] if i < len(tokens) else None
        if negated or op in (None, ","):
            if negated and op not in (None, ","):
                raise SelectorError(f"found '{op}', expected: ',' or 'end of string'")
            requirements.append(_label_requirement(key, "!" if negated else "exists", set()))
        elif op in ("=", "==", "!="):
            i += 1
            value = "" if i >= len(tokens) or tokens[i] == "," else expect_identifier("")
            _check_value(key, value)
            requirements.append(_label_requirement(key, op, {value}))
        elif op in ("in", "notin"):
            i += 1
            if i >= len(tokens) or tokens[i] != "(":
                raise SelectorError(f"found '{tokens[i] if i < len(tokens) else 'EOS'}', expected: '('")
            i += 1
            values: set[str] = set()
            while True:
                if i < len(tokens) and tokens[i] not in (",", ")"):
                    _check_value(key, tokens[i])
                    values.add(tokens[i])
                    i += 1
                if i < len(tokens) and tokens[i] == ",":
                    i += 1
                    continue
                if i < len(tokens) and tokens[i] == ")":
                    i += 1
                    break
                raise SelectorError(f"found '{tokens[i] if i < len(tokens) else 'EOS'}', expected: ',' or ')'")
            requirements.append(_label_requirement(key, op, values))
        else:
            raise SelectorError(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if i >= len(tokens):
            break
        if tokens[i] != ",":
            raise SelectorError(f"found '{tokens[i]}', expected: ',' or 'end of string'")
        i += 1
    return lambda labels: all(req(labels) for req in requirements)


def _field_value(obj: dict, path: str) -> str:
    value: object = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def parse_field_selector(selector: str | None, kind: str) -> FieldMatcher:
    """A predicate on whole objects, for the fields the real server supports for this kind."""
    if not selector:
        return lambda obj: True
    supported = ("metadata.name", "metadata.namespace") + _FIELDS_BY_KIND.get(kind, ())
    requirements: list[FieldMatcher] = []
    for term in selector.split(","):
        match = re.fullmatch(r"\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*", term)
        if not match:
            raise SelectorError(f"invalid selector: '{selector}'; can't understand '{term}'")
        field_name, op, value = match.groups()
        if field_name not in supported:
            raise SelectorError(f'field label not supported: {field_name}')
        requirements.append(_field_requirement(field_name, op, value))
    return lambda obj: all(req(obj) for req in requirements)
