"""Settings errors a user can act on: the environment variable at fault, its value, what it may be.

pydantic reports a bad setting by its field (``http_port``); a user set ``WATTFLOW_QUESTDB_HTTP_PORT``.
:func:`settings_error` turns a validation error into a :class:`~wattflow.errors.SettingsError` that names the
variable, the value given and the values allowed. :func:`unknown_variables` finds ``WATTFLOW_*`` variables that
no setting reads (a typo silently leaves the default in place) and the closest known name for each.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

import annotated_types
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from wattflow.errors import SettingsError

#: Variables wattflow reads that are not fields of a settings class.
EXTRA_VARIABLES = frozenset({"WATTFLOW_SETTINGS_FILE"})


def variable_of(model: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` of ``model``."""
    return f"{model.model_config.get('env_prefix', '')}{field}".upper()


def allowed_values(info: FieldInfo) -> str:
    """What a field accepts, in words: its choices, its type and bounds."""
    if info.description:
        return info.description
    annotation = info.annotation
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    options = [a for a in typing.get_args(annotation) if a is not type(None)] if union else [annotation]
    literal = [value for a in options if typing.get_origin(a) is typing.Literal for value in typing.get_args(a)]
    if literal:
        return "one of " + ", ".join(str(v) for v in literal)
    names = {int: "an integer", float: "a number", bool: "true or false", str: "text"}
    kind = next((names[a] for a in options if a in names), getattr(options[0], "__name__", str(options[0])))
    bounds = []
    for rule in info.metadata:
        for attr, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(rule, getattr(annotated_types, attr.capitalize())):
                bounds.append(f"{word} {getattr(rule, attr)}")
        if isinstance(rule, annotated_types.MinLen) and rule.min_length > 0:
            bounds.append("not empty")
    return f"{kind} {' and '.join(bounds)}".strip()


def settings_error(error: ValidationError, model: type[BaseSettings]) -> SettingsError:
    """One :class:`SettingsError` for every problem in ``error``, each line naming its variable."""
    lines = []
    hints = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        info = model.model_fields.get(field)
        variable = variable_of(model, field) if info is not None else model.__name__
        given = problem.get("input")
        shown = "" if isinstance(given, Mapping) else f"={str(given)!r}"
        lines.append(f"{variable}{shown}: {problem['msg']}")
        if info is not None:
            default = info.get_default(call_default_factory=True)
            hints.append(f"set {variable} to {allowed_values(info)}, or unset it for the default ({default})")
    return SettingsError("bad setting " + "; ".join(lines),
                         hint="; ".join(hints) + " (from the environment or the settings file, `wattflow config`)")


def known_variables(models: Iterable[type[BaseSettings]]) -> set[str]:
    """Every variable a field of these settings classes reads, and :data:`EXTRA_VARIABLES`."""
    return {variable_of(model, field) for model in models for field in model.model_fields} | EXTRA_VARIABLES


def unknown_variables(environ: Mapping[str, str], known: set[str]) -> list[tuple[str, str | None]]:
    """``WATTFLOW_*`` variables of ``environ`` no setting reads, each with the closest known name (or None)."""
    out = []
    for name in sorted(environ):
        if name.startswith("WATTFLOW_") and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
            out.append((name, close[0] if close else None))
    return out


def check_model(model: type[BaseSettings], **kwargs: Any) -> BaseSettings:
    """``model(**kwargs)``, with a validation error turned into :func:`settings_error`."""
    try:
        return model(**kwargs)
    except ValidationError as error:
        raise settings_error(error, model) from None
