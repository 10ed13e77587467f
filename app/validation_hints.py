"""Hints added to a 422's messages: an unknown hyperparameter names the closest known one."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from app.hyperparameters import Hyperparameters


def closest_hyperparameter(name: str) -> str | None:
    """The known hyperparameter `name` most likely misspells, if any is close enough."""
    matches = difflib.get_close_matches(name, Hyperparameters.model_fields, n=1, cutoff=0.6)
    return matches[0] if matches else None


def hinted_message(loc: Sequence[Any], error_type: str, msg: str) -> str:
    """`msg`, with "did you mean ...?" when it refuses an unknown key directly inside `hyperparameters`."""
    if error_type != "extra_forbidden" or len(loc) < 2 or loc[-2] != "hyperparameters":
        return msg
    match = closest_hyperparameter(str(loc[-1]))
    return f"{msg}; did you mean {match}?" if match else msg
