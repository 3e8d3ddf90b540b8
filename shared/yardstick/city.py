"""The city profile: units, ranking groups, service windows, complaint categories and reason tags."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal, Self, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

__all__ = [
    "SLUG_PATTERN",
    "UNCATEGORISED",
    "Category",
    "City",
    "CityProfile",
    "CityProfileError",
    "Group",
    "Reason",
    "Unit",
    "UnitKind",
    "Window",
    "default_city_path",
    "load_city",
    "parse_city",
]

SLUG_PATTERN: Final = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")

# The classifier files feedback that matches no category here, so a profile
# category of that name would make "unclassified" and "classified" indistinguishable.
UNCATEGORISED: Final = "uncategorised"

UnitKind = Literal["department", "district"]


def _slug(value: str) -> str:
    if not SLUG_PATTERN.fullmatch(value):
        raise ValueError(
            f"id {value!r} is not a lowercase slug (a-z, 0-9 and single hyphens, e.g. 'xihu-district')"
        )
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        # ValueError covers keys zoneinfo refuses outright, such as absolute paths.
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Asia/Shanghai')") from None
    return value


Slug = Annotated[str, AfterValidator(_slug)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Reference = Annotated[str, StringConstraints(min_length=1)]


class _Entry(BaseModel):
    # A key the model does not know is almost always a typo in the hand-edited
    # file; ignoring it would silently drop what the editor meant to say.
    model_config = ConfigDict(frozen=True, extra="forbid")


class City(_Entry):
    """The city itself; `timezone` decides which calendar year an item belongs to."""

    id: Slug
    name: Text
    name_zh: Text
    timezone: Annotated[str, AfterValidator(_time_zone)]


class Group(_Entry):
    """A ranking group: units are ranked against the other units of their group."""

    id: Slug
    name: Text
    name_zh: Text | None = None


class Unit(_Entry):
    """A scored unit: a municipal department or a district."""

    id: Slug
    name: Text
    name_zh: Text
    group: Reference
    kind: UnitKind = "department"


class Window(_Entry):
    """A service window of a unit, where a rating kiosk stands."""

    id: Slug
    unit: Reference
    hall: Text
    district: Reference | None = None
    name: Text | None = None


class Category(_Entry):
    """A complaint category with its default responsible unit and the classifier's cues."""

    id: Slug
    name: Text
    name_zh: Text
    unit: Reference
    keywords: list[Text]
    examples: list[Text] = []

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == UNCATEGORISED:
            raise ValueError(
                f"id {UNCATEGORISED!r} is reserved: the system files feedback matching no category under it"
            )
        return value

    @field_validator("keywords")
    @classmethod
    def _has_keywords(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one keyword is needed: the classifier matches keywords first")
        return value


class Reason(_Entry):
    """A reason tag a kiosk may send with a rating."""

    id: Slug
    name: Text
    name_zh: Text


_T = TypeVar("_T")
_E = TypeVar("_E", bound=_Entry)


class CityProfileError(Exception):
    """A city profile that breaks the rules; `errors` lists every broken rule, each saying where."""

    def __init__(self, errors: Sequence[str], source: str | None = None) -> None:
        self.errors: list[str] = list(errors)
        self.source = source
        where = f"city profile {source}" if source else "city profile"
        count = f"{len(self.errors)} error" + ("" if len(self.errors) == 1 else "s")
        lines = "".join(f"\n  - {error}" for error in self.errors)
        super().__init__(f"{where} is invalid ({count}):{lines}")

    def __reduce__(self) -> tuple[type[CityProfileError], tuple[list[str], str | None]]:
        # The default would rebuild from the formatted message, not from the error list.
        return (type(self), (self.errors, self.source))


# Sections in file order; the order also sorts the error list so it reads top to bottom.
_SECTIONS: Final[dict[str, type[_Entry]]] = {
    "groups": Group,
    "units": Unit,
    "windows": Window,
    "categories": Category,
    "reasons": Reason,
}
_REQUIRED_SECTIONS: Final = ("groups", "units")
_TOP_LEVEL_KEYS: Final = ("city", *_SECTIONS)


class CityProfile(BaseModel):
    """The whole profile with lookups by id; constructing one checks every cross-reference.

    Lookups by id (`unit`, `window`, ...) raise `KeyError` for an unknown id; use the
    `*_ids` sets to test membership.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    city: City
    groups: tuple[Group, ...]
    units: tuple[Unit, ...]
    windows: tuple[Window, ...] = ()
    categories: tuple[Category, ...] = ()
    reasons: tuple[Reason, ...] = ()

    _groups: Mapping[str, Group] = PrivateAttr(default_factory=dict)
    _units: Mapping[str, Unit] = PrivateAttr(default_factory=dict)
    _windows: Mapping[str, Window] = PrivateAttr(default_factory=dict)
    _categories: Mapping[str, Category] = PrivateAttr(default_factory=dict)
    _reasons: Mapping[str, Reason] = PrivateAttr(default_factory=dict)
    _units_in_group: Mapping[str, tuple[Unit, ...]] = PrivateAttr(default_factory=dict)
    _windows_of: Mapping[str, tuple[Window, ...]] = PrivateAttr(default_factory=dict)
    _categories_of: Mapping[str, tuple[Category, ...]] = PrivateAttr(default_factory=dict)
    _timezone: ZoneInfo | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # Raised as is (pydantic wraps only ValueError), so a profile built in code
        # fails the same way as one read from a file.
        errors = _consistency_errors(_items_of(self))
        if errors:
            raise CityProfileError([message for _, message in sorted(errors, key=lambda e: e[0])])
        self._groups = MappingProxyType({group.id: group for group in self.groups})
        self._units = MappingProxyType({unit.id: unit for unit in self.units})
        self._windows = MappingProxyType({window.id: window for window in self.windows})
        self._categories = MappingProxyType({category.id: category for category in self.categories})
        self._reasons = MappingProxyType({reason.id: reason for reason in self.reasons})
        self._units_in_group = MappingProxyType(
            {group.id: tuple(u for u in self.units if u.group == group.id) for group in self.groups}
        )
        self._windows_of = MappingProxyType(
            {unit.id: tuple(w for w in self.windows if w.unit == unit.id) for unit in self.units}
        )
        self._categories_of = MappingProxyType(
            {unit.id: tuple(c for c in self.categories if c.unit == unit.id) for unit in self.units}
        )
        self._timezone = ZoneInfo(self.city.timezone)
        return self

    # The lookups below are cached on the instance (the profile is frozen): a pydantic private
    # attribute is reached through __getattr__, and the id sets were built anew on every call, a
    # few microseconds each on the paths that check every item of a request.

    @cached_property
    def timezone(self) -> ZoneInfo:
        """The city's time zone; an item's year is the calendar year in this zone."""
        assert self._timezone is not None  # set by the validator of every constructed profile
        return self._timezone

    @cached_property
    def groups_by_id(self) -> Mapping[str, Group]:
        return self._groups

    @cached_property
    def units_by_id(self) -> Mapping[str, Unit]:
        return self._units

    @cached_property
    def windows_by_id(self) -> Mapping[str, Window]:
        return self._windows

    @cached_property
    def categories_by_id(self) -> Mapping[str, Category]:
        return self._categories

    @cached_property
    def reasons_by_id(self) -> Mapping[str, Reason]:
        return self._reasons

    @cached_property
    def group_ids(self) -> frozenset[str]:
        return frozenset(self._groups)

    @cached_property
    def unit_ids(self) -> frozenset[str]:
        return frozenset(self._units)

    @cached_property
    def window_ids(self) -> frozenset[str]:
        return frozenset(self._windows)

    @cached_property
    def category_ids(self) -> frozenset[str]:
        return frozenset(self._categories)

    @cached_property
    def reason_ids(self) -> frozenset[str]:
        return frozenset(self._reasons)

    @property  # from the fields (a copy with other units computes its own)
    def departments(self) -> tuple[Unit, ...]:
        return tuple(unit for unit in self.units if unit.kind == "department")

    @property  # from the fields (a copy with other units computes its own)
    def districts(self) -> tuple[Unit, ...]:
        return tuple(unit for unit in self.units if unit.kind == "district")

    def group(self, group_id: str) -> Group:
        return _lookup(self._groups, group_id, "group")

    def unit(self, unit_id: str) -> Unit:
        return _lookup(self._units, unit_id, "unit")

    def window(self, window_id: str) -> Window:
        return _lookup(self._windows, window_id, "window")

    def category(self, category_id: str) -> Category:
        return _lookup(self._categories, category_id, "category")

    def reason(self, reason_id: str) -> Reason:
        return _lookup(self._reasons, reason_id, "reason")

    def units_in_group(self, group_id: str) -> tuple[Unit, ...]:
        """The units ranked in a group, in file order."""
        return _lookup(self._units_in_group, group_id, "group")

    def windows_of(self, unit_id: str) -> tuple[Window, ...]:
        """The service windows of a unit, in file order; empty for a unit without windows."""
        return _lookup(self._windows_of, unit_id, "unit")

    def categories_of(self, unit_id: str) -> tuple[Category, ...]:
        """The categories whose default responsible unit is `unit_id`."""
        return _lookup(self._categories_of, unit_id, "unit")


def _lookup(table: Mapping[str, _T], key: str, kind: str) -> _T:
    try:
        return table[key]
    except KeyError:
        raise KeyError(f"unknown {kind} {key!r}") from None


def default_city_path() -> Path:
    """The Hangzhou demo profile shipped inside the package, used when no profile is configured."""
    shipped = resources.files("yardstick").joinpath("cities", "hangzhou.yaml")
    # The services read the profile by path; a package installed as a zip has none.
    if not isinstance(shipped, Path):
        raise RuntimeError(f"the demo city profile is not a file on disk: {shipped}")
    return shipped


def load_city(path: str | Path) -> CityProfile:
    """Read and check a city profile file; raises `CityProfileError` listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CityProfileError([f"cannot read the file: {exc}"], source=str(path)) from exc
    return parse_city(text, source=str(path))


def parse_city(text_or_mapping: str | Mapping[str, Any], *, source: str | None = None) -> CityProfile:
    """Check a city profile given as YAML text or as an already parsed mapping.

    `source` names the text in the error message (`load_city` passes the path).

    Every problem is collected and raised together in one `CityProfileError`, each
    message naming where it is (`units[3] (xihu-district): group 'districtz' does
    not exist`), so a hand-edited file is fixed in one pass rather than one error
    per restart.

    Besides the field rules of each entry and of city-profile.md: ids are unique per
    kind; a group without units is an error, because it would publish an empty
    ranking and is almost always a leftover or a misspelt group id; a keyword given
    to two categories is an error, because the classifier matches keywords first and
    could then only guess; a YAML key given twice in one mapping is an error, because
    YAML would silently keep the last one.
    """
    if isinstance(text_or_mapping, str):
        try:
            loader = _StrictLoader(text_or_mapping)
            try:
                document = loader.get_single_data()
            finally:
                loader.dispose()
        except yaml.YAMLError as exc:
            raise CityProfileError([f"not valid YAML: {exc}"], source=source) from exc
        repeated = loader.repeated_keys
    else:
        document, repeated = text_or_mapping, []

    errors: list[tuple[_Position, str]] = [((-1, i), message) for i, message in enumerate(repeated)]
    if not isinstance(document, Mapping):
        kind = "nothing" if document is None else type(document).__name__
        hint = " (to read a file, use load_city)" if isinstance(document, str) else ""
        errors.append(((-1, 0), f"the profile must be a mapping with the keys {_keys()}; got {kind}{hint}"))
        raise CityProfileError([message for _, message in errors], source=source)

    for key in document:
        if key not in _TOP_LEVEL_KEYS:
            errors.append(((-1, 0), f"unknown top-level key {key!r} (expected {_keys()})"))

    city = _parse_city_entry(document.get("city"), errors)
    items: dict[str, list[_Item]] = {}
    for order, (name, model) in enumerate(_SECTIONS.items()):
        items[name] = _parse_section(name, order, model, document, errors)
    errors.extend(_consistency_errors(items))

    if errors or city is None:
        raise CityProfileError([message for _, message in sorted(errors, key=lambda e: e[0])], source=source)
    return CityProfile(
        city=city,
        groups=tuple(_entries(items["groups"], Group)),
        units=tuple(_entries(items["units"], Unit)),
        windows=tuple(_entries(items["windows"], Window)),
        categories=tuple(_entries(items["categories"], Category)),
        reasons=tuple(_entries(items["reasons"], Reason)),
    )


# (section order, index in section): city and file-level problems sort first.
_Position = tuple[int, int]


@dataclass(frozen=True)
class _Item:
    """One entry of a section as written, with its parsed form when it passed its own checks."""

    label: str  # "units[3]"
    position: _Position
    raw: Mapping[str, Any]
    entry: _Entry | None

    @property
    def id(self) -> str | None:
        value = self.raw.get("id")
        return value if isinstance(value, str) and value else None

    @property
    def where(self) -> str:
        """The label and, when there is one, the id: `units[3] (xihu-district)`."""
        return f"{self.label} ({self.id})" if self.id else self.label


class _StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that records keys given twice in one mapping instead of keeping the last."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeated_keys: list[str] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            if key_node.value in seen:
                line = key_node.start_mark.line + 1
                self.repeated_keys.append(
                    f"line {line}: key {key_node.value!r} is given twice in one mapping"
                )
            seen.add(key_node.value)
        return super().construct_mapping(node, deep)


def _keys() -> str:
    return ", ".join(_TOP_LEVEL_KEYS)


def _parse_city_entry(raw: object, errors: list[tuple[_Position, str]]) -> City | None:
    if raw is None:
        errors.append(((-1, 0), "missing required section 'city'"))
        return None
    if not isinstance(raw, Mapping):
        errors.append(((-1, 0), f"city: expected a mapping of fields, got {type(raw).__name__}"))
        return None
    try:
        return City.model_validate(raw)
    except ValidationError as exc:
        errors.extend(((-1, 0), f"city: {_describe(error)}") for error in exc.errors())
        return None


def _parse_section(
    name: str,
    order: int,
    model: type[_Entry],
    document: Mapping[str, Any],
    errors: list[tuple[_Position, str]],
) -> list[_Item]:
    raw_section = document.get(name)
    if raw_section is None:
        if name in _REQUIRED_SECTIONS:
            errors.append(((order, -1), f"missing required section {name!r}"))
        return []
    if not isinstance(raw_section, list):
        errors.append(((order, -1), f"{name}: expected a list, got {type(raw_section).__name__}"))
        return []

    items: list[_Item] = []
    for index, raw in enumerate(raw_section):
        position = (order, index)
        if not isinstance(raw, Mapping):
            errors.append(
                (position, f"{name}[{index}]: expected a mapping of fields, got {type(raw).__name__}")
            )
            continue
        item = _Item(label=f"{name}[{index}]", position=position, raw=raw, entry=None)
        try:
            item = replace(item, entry=model.model_validate(raw))
        except ValidationError as exc:
            errors.extend((position, f"{item.where}: {_describe(error)}") for error in exc.errors())
        items.append(item)
    return items


def _describe(error: ErrorDetails) -> str:
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    if error["type"] == "missing":
        return f"missing required field {field!r}"
    if error["type"] == "extra_forbidden":
        return f"unknown key {field!r}"
    if error["type"] == "value_error":
        # Our own validators' messages, without pydantic's "Value error, " prefix.
        message = str(error.get("ctx", {}).get("error", error["msg"]))
    else:
        message = error["msg"]
    return f"{field}: {message}" if field else message


def _items_of(profile: CityProfile) -> dict[str, list[_Item]]:
    sections: dict[str, Sequence[_Entry]] = {
        "groups": profile.groups,
        "units": profile.units,
        "windows": profile.windows,
        "categories": profile.categories,
        "reasons": profile.reasons,
    }
    return {
        name: [
            _Item(label=f"{name}[{i}]", position=(order, i), raw=entry.model_dump(), entry=entry)
            for i, entry in enumerate(entries)
        ]
        for order, (name, entries) in enumerate(sections.items())
    }


def _entries(items: Sequence[_Item], model: type[_E]) -> list[_E]:
    return [item.entry for item in items if isinstance(item.entry, model)]


def _consistency_errors(items: Mapping[str, Sequence[_Item]]) -> list[tuple[_Position, str]]:
    """Rules across entries: unique ids, references, populated groups, distinct keywords.

    Ids and groups are taken as written even from entries that failed their own
    checks, so one bad entry does not also report every reference to it as missing.
    """
    errors: list[tuple[_Position, str]] = []

    def report(item: _Item, problem: str) -> None:
        errors.append((item.position, f"{item.where}: {problem}"))

    for section in items.values():
        first: dict[str, _Item] = {}
        for item in section:
            if item.id is None:
                continue
            if item.id in first:
                report(item, f"duplicate id {item.id!r} (first at {first[item.id].label})")
            else:
                first[item.id] = item

    group_ids = {item.id for item in items["groups"] if item.id}
    unit_kinds = {item.id: item.raw.get("kind", "department") for item in items["units"] if item.id}
    populated = {group for item in items["units"] if isinstance(group := item.raw.get("group"), str)}

    for item in items["groups"]:
        if isinstance(item.entry, Group) and item.entry.id not in populated:
            report(item, "group has no units (every ranking group needs at least one)")
    for item in items["units"]:
        if isinstance(item.entry, Unit) and item.entry.group not in group_ids:
            report(item, f"group {item.entry.group!r} does not exist")
    for item in items["windows"]:
        if not isinstance(item.entry, Window):
            continue
        if item.entry.unit not in unit_kinds:
            report(item, f"unit {item.entry.unit!r} does not exist")
        district = item.entry.district
        if district is not None and district not in unit_kinds:
            report(item, f"district {district!r} does not exist")
        elif district is not None and unit_kinds[district] != "district":
            report(item, f"district {district!r} is a unit of kind {unit_kinds[district]!r}, not a district")

    keyword_owner: dict[str, str] = {}
    for item in items["categories"]:
        if not isinstance(item.entry, Category):
            continue
        if item.entry.unit not in unit_kinds:
            report(item, f"unit {item.entry.unit!r} does not exist")
        for keyword in dict.fromkeys(k.casefold() for k in item.entry.keywords):
            owner = keyword_owner.setdefault(keyword, item.entry.id)
            if owner != item.entry.id:
                report(item, f"keyword {keyword!r} is also a keyword of category {owner!r}")
    return errors
