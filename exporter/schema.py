"""Turn parsed YAML into frozen dataclasses, reporting every problem with its key path.

The dataclasses are the schema: field names are the allowed keys, type hints say what a value
must be, defaults make a key optional. Field metadata adds what types cannot say:

- `check`: a callable that returns the (possibly normalised) value or raises ValueError whose
  message completes "key: ...".
- `check_each`: on a mapping field, a check applied to each value, with the problem reported
  at `key.path.NAME`.
- `secret_file_for`: on a `*_file` field, the name of the Secret field its file content fills.

A dataclass with a `schema_variants` class attribute `(key, {value: dataclass})` is a tagged
union: the value of `key` in the mapping picks the dataclass it is built as, and a key of
another variant is reported as belonging to that one.

Strings may reference the environment as `${NAME}` or `${NAME:-default}` (`$$` is a literal
`$`), so secrets can stay out of the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from collectors.checks import shown_path
from collectors.secret import Secret
from exporter.files import SECRET_FILE_LIMIT, decode_text, read_regular_file

T = TypeVar("T")

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class KeyProblem(ValueError):
    """Raised by a dataclass's `__post_init__` for a problem with one of its keys."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


class ConfigError(Exception):
    """All problems found in one config, each as `key.path: what is wrong`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))

    def one_line(self) -> str:
        """Every problem on one line, for a log record (log shippers split at newlines)."""
        return "; ".join(self.problems)


@dataclasses.dataclass
class Loader:
    """State of one load: the environment, where relative files are found, the problems found."""

    env: Mapping[str, str]
    base_dir: Path
    problems: list[str] = dataclasses.field(default_factory=list)
    secrets: list[str] = dataclasses.field(default_factory=list)

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}" if path else message)

    def expand(self, text: str, path: str) -> str | None:
        """Replace `${NAME}` references; None (and a problem) when one is unset."""
        missing: list[str] = []

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            missing.append(name)
            return ""

        result = _ENV_REF.sub(substitute, text)
        if missing:
            self.problem(path, f"environment variable {missing[0]} is not set")
            return None
        return result

    def read_secret_file(self, filename: str, path: str) -> str | None:
        """The secret in a file: a regular file of at most 64 KiB of UTF-8 text, one line."""
        file = Path(filename)
        if not file.is_absolute():
            file = self.base_dir / file
        try:
            value = decode_text(read_regular_file(file, SECRET_FILE_LIMIT), str(file))
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        value = value.rstrip("\r\n")
        if not value:
            self.problem(path, f"{shown_path(str(file))} is empty")
            return None
        if any(char < " " and char != "\t" or char == "\x7f" for char in value):
            self.problem(path, f"{shown_path(str(file))} holds control characters (binary?)")
            return None
        return value

    def build(self, cls: type[T], data: Any, path: str) -> T | None:
        """A `cls` from a mapping, or None when any of its keys had a problem."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            self.problem(path, f"expected a mapping, got {describe(data)}")
            return None
        what, elsewhere = "key", dict[str, str]()
        variants = getattr(cls, "schema_variants", None)
        if variants is not None:
            chosen = self.variant(variants, data, path)
            if chosen is None:
                return None
            cls, what, elsewhere = chosen
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        hints = get_type_hints(cls)
        before = len(self.problems)
        for key in data:
            if not isinstance(key, str) or key not in fields or key.startswith("_"):
                message = unknown_key_message(str(key), fields, what)
                self.problem(join(path, str(key)), message + elsewhere.get(str(key), ""))
        values: dict[str, Any] = {}
        for name, spec in fields.items():
            if name.startswith("_") or not spec.init:
                continue
            key_path = join(path, name)
            if name not in data or (data[name] is None and is_container(hints[name])):
                if (
                    spec.default is dataclasses.MISSING
                    and spec.default_factory is dataclasses.MISSING
                ):
                    self.problem(key_path, "required key is missing")
                continue
            value = self.convert(hints[name], data[name], key_path)
            if value is _INVALID:
                continue
            check: Callable[[Any], Any] | None = spec.metadata.get("check")
            if check is not None and value is not None:
                try:
                    value = check(value)
                except ValueError as exc:
                    self.problem(key_path, str(exc))
                    continue
            check_each: Callable[[Any], Any] | None = spec.metadata.get("check_each")
            if check_each is not None and isinstance(value, Mapping):
                value = self.check_items(check_each, value, key_path)
                if value is _INVALID:
                    continue
            values[name] = value
        for name, spec in fields.items():
            target = spec.metadata.get("secret_file_for")
            if target is None or values.get(name) is None:
                continue
            if data.get(target) is not None:
                self.problem(join(path, name), f"set either {target} or {name}, not both")
                continue
            secret = self.read_secret_file(values[name], join(path, name))
            if secret is None:
                continue
            self.secrets.append(secret)
            check = fields[target].metadata.get("check")
            try:
                values[target] = Secret(secret) if check is None else check(Secret(secret))
            except ValueError as exc:  # the check the value would get in the file itself
                self.problem(join(path, name), str(exc))
        if len(self.problems) > before:
            return None
        try:
            return cls(**values)
        except KeyProblem as exc:  # a check in __post_init__ that knows which key is wrong
            self.problem(join(path, exc.key), exc.message)
            return None
        except ValueError as exc:  # cross-field checks in __post_init__
            self.problem(path, str(exc))
            return None

    def variant(
        self, variants: tuple[str, Mapping[str, Any]], data: Mapping[Any, Any], path: str
    ) -> tuple[Any, str, dict[str, str]] | None:
        """(the dataclass `data`'s tag picks, "key for TAG VALUE", {other variants' key: hint})."""
        tag, table = variants
        value = data.get(tag)
        if not isinstance(value, str) or value not in table:
            choices = ", ".join(table)
            if tag not in data:
                self.problem(join(path, tag), f"required key is missing (one of {choices})")
            else:
                self.problem(join(path, tag), f"must be one of {choices}, got {describe(value)}")
            return None
        chosen = table[value]
        owners: dict[str, list[str]] = {}
        for name, other in table.items():
            for f in dataclasses.fields(other):
                owners.setdefault(f.name, []).append(name)
        hints = {
            key: f"; it applies to {tag} {' or '.join(names)}" for key, names in owners.items()
        }
        return chosen, f"key for {tag} {value}", hints

    def check_items(self, check: Callable[[Any], Any], value: Mapping[str, Any], path: str) -> Any:
        """`check` on each value; _INVALID, with a problem per bad value, if any fails."""
        result: dict[str, Any] = {}
        for key, item in value.items():
            try:
                result[key] = check(item)
            except ValueError as exc:
                self.problem(join(path, str(key)), str(exc))
        if len(result) < len(value):
            return _INVALID
        return types.MappingProxyType(result)

    def convert(self, hint: Any, value: Any, path: str) -> Any:
        origin = get_origin(hint)
        args = get_args(hint)
        if origin in (Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            options = [a for a in args if a is not type(None)]
            if len(options) == 1:
                return self.convert(options[0], value, path)
            self.problem(path, "unsupported union in schema")
            return _INVALID
        if value is None:
            self.problem(path, "a value is required (got null)")
            return _INVALID
        if origin is Literal:
            if value in args:
                return value
            choices = ", ".join(str(a) for a in args)
            self.problem(path, f"must be one of {choices}, got {value!r}")
            return _INVALID
        if hint is Secret:
            if not isinstance(value, str):
                self.problem(path, "expected a string")  # never echo what may be a password
                return _INVALID
            expanded = self.expand(value, path)
            if expanded is None:
                return _INVALID
            if "\0" in expanded:
                self.problem(path, "must not contain NUL characters")
                return _INVALID
            if expanded:
                self.secrets.append(expanded)
            return Secret(expanded)
        if hint is str:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                self.problem(path, f"expected a string, got {describe(value)}")
                return _INVALID
            expanded = self.expand(str(value), path)
            if expanded is not None and "\0" in expanded:
                self.problem(path, "must not contain NUL characters")
                return _INVALID
            return _INVALID if expanded is None else expanded
        if hint is bool:
            if isinstance(value, bool):
                return value
            self.problem(path, f"expected true or false, got {describe(value)}")
            return _INVALID
        if hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            self.problem(path, f"expected an integer, got {describe(value)}")
            return _INVALID
        if hint is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                if math.isfinite(value):
                    return float(value)
                self.problem(path, f"must be a finite number, got {value}")
                return _INVALID
            self.problem(path, f"expected a number, got {describe(value)}")
            return _INVALID
        if origin is tuple:
            if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
                self.problem(path, f"expected a list, got {describe(value)}")
                return _INVALID
            item_hint = args[0]
            items = [self.convert(item_hint, item, f"{path}[{i}]") for i, item in enumerate(value)]
            if any(item is _INVALID for item in items):
                return _INVALID
            return tuple(items)
        if origin in (dict, Mapping):
            if not isinstance(value, Mapping):
                self.problem(path, f"expected a mapping, got {describe(value)}")
                return _INVALID
            value_hint = args[1] if len(args) == 2 else Any
            result: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.problem(f"{path}.{key}", "keys must be strings")
                    return _INVALID
                converted = (
                    item if value_hint is Any else self.convert(value_hint, item, f"{path}.{key}")
                )
                if converted is _INVALID:
                    return _INVALID
                result[key] = converted
            return types.MappingProxyType(result)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            built = self.build(hint, value, path)
            return _INVALID if built is None else built
        if hint is Any:
            return value
        self.problem(path, f"unsupported type {hint!r} in schema")
        return _INVALID


_INVALID: Any = object()


def is_container(hint: Any) -> bool:
    """A mapping, list or section: left empty in YAML (`key:` with everything under it
    commented out) it means the same as leaving the key out, as Go's YAML reads it."""
    origin = get_origin(hint)
    return origin in (dict, Mapping, tuple) or (
        dataclasses.is_dataclass(hint) and isinstance(hint, type)
    )


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def unknown_key_message(key: str, allowed: Mapping[str, Any] | list[str], what: str = "key") -> str:
    names = sorted(k for k in allowed if not k.startswith("_"))
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what}{hint} (allowed: {', '.join(names)})"
