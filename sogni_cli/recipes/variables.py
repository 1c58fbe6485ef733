"""Recipe variables: defaults, the environment variable a recipe names, and ``--set KEY=VALUE``."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from ..core.errors import UsageError
from ..core.loader import Problems
from .schema import Recipe, VarSpec, var_problem
from .template import did_you_mean


def coerce_text(v: VarSpec, raw: str, source: str) -> Any:
    """Turn the text of ``--set`` or an environment variable into the variable's type."""
    t = v.type
    text = raw.strip()
    try:
        if t == "string":
            return raw
        if t == "integer":
            return int(text)
        if t == "number":
            f = float(text)
            return int(f) if f.is_integer() and "." not in text and "e" not in text.lower() else f
        if t == "boolean":
            low = text.lower()
            if low in ("true", "yes", "on", "1"):
                return True
            if low in ("false", "no", "off", "0"):
                return False
            raise ValueError(low)
        if t in ("list", "object"):
            try:
                value = json.loads(text)
            except ValueError:
                import yaml

                value = yaml.safe_load(text)
            want = list if t == "list" else dict
            if not isinstance(value, want):
                raise ValueError(text)
            return value
    except (ValueError, TypeError, Exception) as exc:  # noqa: BLE001 - yaml errors too
        if isinstance(exc, UsageError):
            raise
        from .schema import TYPE_WORDS

        raise UsageError(f"{source}: {raw!r} is not {TYPE_WORDS.get(t, t)} (variable '{v.name}' is {t}).") from None
    return raw


def resolve_vars(recipe: Recipe, problems: Problems, sets: list[str] | None = None,
                 env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Variable values: ``--set`` > the environment variable the recipe names > the default."""
    env = os.environ if env is None else env
    given: dict[str, str] = {}
    for item in sets or []:
        if "=" not in item:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}.", hint="For example --set style=studio")
        key, value = item.split("=", 1)
        key = key.strip()
        if key not in recipe.vars:
            known = ", ".join(recipe.vars) or "none"
            raise UsageError(f"--set {key}: the recipe has no variable '{key}'{did_you_mean(key, recipe.vars)}.",
                             hint=f"Variables: {known}")
        given[key] = value
    values: dict[str, Any] = {}
    for name, v in recipe.vars.items():
        if name in given:
            value = coerce_text(v, given[name], f"--set {name}")
            source = f"--set {name}"
        elif v.env and env.get(v.env) is not None:
            value = coerce_text(v, env[v.env], f"environment variable {v.env}")
            source = f"environment variable {v.env}"
        elif v.has_default:
            values[name] = v.default
            continue
        else:
            how = f"--set {name}=VALUE" + (f" or the environment variable {v.env}" if v.env else "")
            problems.error(recipe.doc.key_mark(v.path), f"variable '{name}' has no value: give it a default, or {how}")
            values[name] = None
            continue
        problem = var_problem(v, value)
        if problem:
            raise UsageError(f"{source}: {problem}")
        values[name] = value
    return values
