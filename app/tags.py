"""A job's tags: short labels users find and group jobs by (POST /jobs, PATCH /jobs/{id}, GET /jobs?tag=).

Pure data, shared by the request bodies and the list's filter."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints

MAX_TAG_CHARS = 64  # job_tags.tag's length
MAX_TAGS = 32
# No control characters, no commas (a CLI may take them as `a,b`), no spaces at either end.
TAG_PATTERN = r"^[^\s,\x00-\x1f\x7f](?:[^,\x00-\x1f\x7f]*[^\s,\x00-\x1f\x7f])?$"
TAG_RULE = (
    f"1 to {MAX_TAG_CHARS} characters, without commas or control characters, "
    "not starting or ending with a space"
)

Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TAG_CHARS, pattern=TAG_PATTERN)]


def _deduplicated(tags: list[str]) -> list[str]:
    """The tags once each, in the order first given; a list that repeats a tag counts it once."""
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags, not {len(unique)}")
    return unique


Tags = Annotated[list[Tag], AfterValidator(_deduplicated)]
