"""Item filters of the v1 API: include/exclude by attribute values, numeric ranges.

One structured form, :class:`ItemFilter` (the ``filter`` object of POST bodies and of
retrieval's internal requests), and the query-parameter form of GET requests, parsed by
:func:`parse_query_filter`:

* ``include=ATTR:v1,v2`` keeps items having at least one of the values (repeatable; the
  values of repeated ``include`` on one attribute add up, different attributes must all
  match);
* ``exclude=ATTR:v1,v2`` drops items having any of the values;
* ``where=ATTRopNUMBER`` with ``op`` among ``>=``, ``<=``, ``>``, ``<``, ``=`` keeps items
  whose numeric attribute is in range (an item without a value fails the range).

Values match case-insensitively; a value holding a comma needs the POST form. Whatever the
filter, an item whose ``available`` is false is never returned. Unknown attributes and
ranges on categorical attributes are checked against the bundle by
:func:`check_filter` (422 naming the attribute and the known ones).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.contracts.errors import ValidationError

MAX_FILTER_VALUES = 200
MAX_FILTER_ATTRIBUTES = 50
AttrName = Annotated[str, Field(min_length=1, max_length=100)]
AttrValues = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=200)]],
    Field(min_length=1, max_length=MAX_FILTER_VALUES),
]
_WHERE = re.compile(r"^\s*([^<>=\s][^<>=]*?)\s*(>=|<=|>|<|=)\s*(\S.*?)\s*$")


class NumericRange(BaseModel):
    """Bounds on a numeric attribute; every bound given must hold."""

    gte: float | None = None
    gt: float | None = None
    lte: float | None = None
    lt: float | None = None

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _some_bound(self) -> NumericRange:
        bounds = [self.gte, self.gt, self.lte, self.lt]
        if all(b is None for b in bounds):
            raise ValueError("a range needs at least one of gte, gt, lte, lt")
        if any(b is not None and not math.isfinite(b) for b in bounds):
            raise ValueError("range bounds must be finite numbers")
        return self

    def holds(self, value: float) -> bool:
        """Whether ``value`` (NaN: missing, never holds) is inside every bound."""
        if math.isnan(value):
            return False
        return not (
            (self.gte is not None and value < self.gte)
            or (self.gt is not None and value <= self.gt)
            or (self.lte is not None and value > self.lte)
            or (self.lt is not None and value >= self.lt)
        )


class ItemFilter(BaseModel):
    """Which items may be returned (beside availability, always applied).

    ``include``: attribute -> values, an item must have at least one value of each
    attribute listed; ``exclude``: attribute -> values, an item having any is dropped;
    ``range``: numeric attribute -> bounds.
    """

    include: Annotated[dict[AttrName, AttrValues], Field(max_length=MAX_FILTER_ATTRIBUTES)] = {}
    exclude: Annotated[dict[AttrName, AttrValues], Field(max_length=MAX_FILTER_ATTRIBUTES)] = {}
    range: Annotated[dict[AttrName, NumericRange], Field(max_length=MAX_FILTER_ATTRIBUTES)] = {}

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "include": {"categories": ["fantasy", "poetry"]},
                "exclude": {"authors": ["Ann Lee"]},
                "range": {"price": {"lte": 20}, "year": {"gte": 2000}},
            }
        },
    )

    @field_validator("include", "exclude")
    @classmethod
    def _strip(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        return {k.strip(): [x.strip() for x in vals] for k, vals in v.items()}

    @property
    def empty(self) -> bool:
        """True when nothing but availability restricts the items."""
        return not (self.include or self.exclude or self.range)

    def names(self) -> set[str]:
        """Every attribute the filter names."""
        return set(self.include) | set(self.exclude) | set(self.range)

    def matches(self, attributes: dict[str, Any]) -> bool:
        """Whether one item (its attributes as the API shows them) passes the filter."""
        for name, wanted in self.include.items():
            if not _values(attributes.get(name)) & {w.lower() for w in wanted}:
                return False
        for name, unwanted in self.exclude.items():
            if _values(attributes.get(name)) & {w.lower() for w in unwanted}:
                return False
        for name, bounds in self.range.items():
            if not bounds.holds(_number(attributes.get(name))):
                return False
        return True


def _values(value: Any) -> set[str]:
    if value is None:
        return set()
    if isinstance(value, (list, tuple)):
        return {str(v).lower() for v in value}
    return {str(value).lower()}


def _number(value: Any) -> float:
    try:
        return float(value) if value is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def parse_query_filter(
    include: list[str] | None, exclude: list[str] | None, where: list[str] | None
) -> ItemFilter | None:
    """The GET form (``include=ATTR:v1,v2``, ``exclude=...``, ``where=ATTR>=N``) as an
    :class:`ItemFilter`; None when no parameter was given.

    Raises:
        ValidationError: A parameter that does not follow the syntax (422 saying how).
    """
    if not (include or exclude or where):
        return None
    out: dict[str, Any] = {"include": {}, "exclude": {}, "range": {}}
    for param, given in (("include", include), ("exclude", exclude)):
        for text in given or []:
            name, sep, values = text.partition(":")
            vals = [v.strip() for v in values.split(",") if v.strip()]
            if not sep or not name.strip() or not vals:
                raise ValidationError(
                    f"{param}={text!r} is not ATTRIBUTE:value1,value2; for example "
                    f"{param}=categories:fantasy,poetry"
                )
            out[param].setdefault(name.strip(), []).extend(vals)
    ops = {">=": "gte", ">": "gt", "<=": "lte", "<": "lt"}
    for text in where or []:
        m = _WHERE.match(text)
        number = _number(m.group(3)) if m else math.nan
        if m is None or not math.isfinite(number):
            raise ValidationError(
                f"where={text!r} is not ATTRIBUTE<op>NUMBER with <op> one of >=, <=, >, <, =; "
                "for example where=price<=20 or where=year>=2000"
            )
        bounds = out["range"].setdefault(m.group(1).strip(), {})
        if m.group(2) == "=":
            bounds.update(gte=number, lte=number)
        else:
            bounds[ops[m.group(2)]] = number
    try:
        return ItemFilter.model_validate(out)
    except Exception as exc:  # pydantic's error, as the API's 422
        raise ValidationError(f"the filter parameters are not valid: {exc}") from exc


def check_filter(flt: ItemFilter | None, attribute_types: dict[str, str]) -> None:
    """422 when the filter names an attribute the bundle does not have, or asks a range of
    a categorical attribute (the message lists the known attributes and their types)."""
    if flt is None:
        return
    known = ", ".join(f"{n} ({t})" for n, t in sorted(attribute_types.items())) or "none"
    for name in sorted(flt.names()):
        if name not in attribute_types:
            raise ValidationError(
                f"unknown attribute {name!r} in the filter; the catalogue's attributes are: "
                f"{known}",
                attribute=name,
                known=sorted(attribute_types),
            )
    for name in sorted(flt.range):
        if attribute_types[name] != "numeric":
            raise ValidationError(
                f"attribute {name!r} is {attribute_types[name]}: a range (where=/range) "
                f"needs a numeric attribute; use include=/exclude= for it. Attributes: {known}",
                attribute=name,
                known=sorted(attribute_types),
            )
    for name in sorted(set(flt.include) | set(flt.exclude)):
        if attribute_types[name] != "categorical":
            raise ValidationError(
                f"attribute {name!r} is numeric: include/exclude take categorical attributes; "
                f"use where={name}>=... (a range) for it. Attributes: {known}",
                attribute=name,
                known=sorted(attribute_types),
            )


def fewer_than_k(returned: int, k: int, matched: int | None) -> dict[str, Any]:
    """The response fields saying whether (and why) fewer than ``k`` items came back."""
    if returned >= k:
        return {"matched": matched, "fewer_than_k": False, "fewer_reason": None}
    if matched is not None and matched < k:
        reason = (f"only {matched} items pass the filter, availability and the exclusions "
                  f"(k={k}); widen the filter for more")
    else:
        reason = f"only {returned} items could be returned (k={k})"
    return {"matched": matched, "fewer_than_k": True, "fewer_reason": reason}
