"""YAML loading and pydantic validation that fail with one clear ConfigError.

Every config file (radio, scenario) goes through :func:`load_yaml` and :func:`validate`, so a
missing file, a YAML syntax error, a misspelt key or a value out of range all end in a
:class:`testbed.errors.ConfigError` whose message names the file, the field, the value and what
is allowed, one problem per line::

    pluto-1r1t.yaml: center_freq_hz = 7e9 is outside 325e6..3.8e9 Hz allowed for device 'pluto'
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from testbed.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping.

    Raises ConfigError naming the path when the file is missing, unreadable, not UTF-8, not
    valid YAML or not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot be read ({err.strerror})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (byte {err.start}); allowed: a YAML text file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of field: value, got {type(data).__name__}")
    return data


def validate(model_cls: type[M], data: dict[str, Any], source: str) -> M:
    """Validate ``data`` against ``model_cls``; ConfigError with every problem, prefixed by ``source``."""
    try:
        return model_cls.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, model_cls)) from None


def format_number(value: Any) -> str:
    """Short engineering form of a number: 7e9, 325e6, 61.44e6, 520.833e3, -89.75; others as repr."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return repr(value)
    if not math.isfinite(value) or abs(value) < 1e4:
        return f"{value:g}"
    exponent = 3 * (int(math.floor(math.log10(abs(value)))) // 3)
    mantissa = f"{value / 10 ** exponent:.6g}"
    return f"{mantissa}e{exponent}"


def _allowed_fields(model_cls: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model that holds the field at ``loc``; [] when unknown."""
    for key in loc[:-1]:
        if model_cls is None or not isinstance(key, str) or key not in model_cls.model_fields:
            return []
        annotation = model_cls.model_fields[key].annotation
        model_cls = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return list(model_cls.model_fields) if model_cls is not None else []


def format_validation_error(
    err: ValidationError, source: str, model_cls: type[BaseModel] | None = None
) -> str:
    """One line per problem: ``source: field = value — what is allowed``.

    Parameters
    ----------
    err: the pydantic error.
    source: file name or other origin put in front of every line.
    model_cls: the validated model; when given, an unknown key lists the allowed keys.
    """
    lines = []
    for item in err.errors():
        loc = tuple(item["loc"])
        field = ".".join(str(part) for part in loc)
        kind = item["type"]
        if kind == "value_error":
            # Our own validators already name field, value and the allowed range.
            lines.extend(f"{source}: {line}" for line in str(item["ctx"]["error"]).splitlines())
        elif kind == "missing":
            lines.append(f"{source}: {field} is missing (required)")
        elif kind == "extra_forbidden":
            allowed = _allowed_fields(model_cls, loc)
            hint = f" — allowed: {', '.join(allowed)}" if allowed else ""
            lines.append(f"{source}: unknown field {field!r} = {format_number(item['input'])}{hint}")
        else:
            where = f"{field} = " if field else ""
            lines.append(f"{source}: {where}{format_number(item['input'])} — {item['msg']}")
    return "\n".join(lines)
