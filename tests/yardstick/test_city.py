"""Tests of the city profile loader and of the shipped Hangzhou profile."""

from __future__ import annotations

import copy
import os
import pickle
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from yardstick.city import (
    UNCATEGORISED,
    City,
    CityProfile,
    CityProfileError,
    Group,
    Unit,
    Window,
    default_city_path,
    load_city,
    parse_city,
)

REPO = Path(__file__).resolve().parents[2]
CJK = re.compile(r"[\u4e00-\u9fff]")

HANGZHOU_DISTRICTS = {
    "shangcheng-district": "上城区",
    "gongshu-district": "拱墅区",
    "xihu-district": "西湖区",
    "binjiang-district": "滨江区",
    "xiaoshan-district": "萧山区",
    "yuhang-district": "余杭区",
    "linping-district": "临平区",
    "qiantang-district": "钱塘区",
    "fuyang-district": "富阳区",
    "linan-district": "临安区",
    "tonglu-county": "桐庐县",
    "chunan-county": "淳安县",
    "jiande-city": "建德市",
}

_MINIMAL: dict[str, Any] = {
    "city": {"id": "testville", "name": "Testville", "name_zh": "测试市", "timezone": "Asia/Shanghai"},
    "groups": [
        {"id": "departments", "name": "Municipal departments"},
        {"id": "districts", "name": "Districts"},
    ],
    "units": [
        {
            "id": "health-commission",
            "name": "Health Commission",
            "name_zh": "市卫健委",
            "group": "departments",
        },
        {"id": "education", "name": "Education Bureau", "name_zh": "市教育局", "group": "departments"},
        {
            "id": "xihu-district",
            "name": "Xihu District",
            "name_zh": "西湖区",
            "group": "districts",
            "kind": "district",
        },
    ],
    "windows": [
        {
            "id": "health-commission-w1",
            "unit": "health-commission",
            "hall": "Hall",
            "district": "xihu-district",
        },
        {"id": "education-w1", "unit": "education", "hall": "Hall", "name": "Enrollment desk"},
    ],
    "categories": [
        {
            "id": "seeing-a-doctor",
            "name": "Difficulty seeing a doctor",
            "name_zh": "看病难",
            "unit": "health-commission",
            "keywords": ["挂号", "doctor"],
            "examples": ["挂号要排三个小时"],
        },
        {
            "id": "school-enrollment",
            "name": "School enrollment",
            "name_zh": "入学难",
            "unit": "education",
            "keywords": ["入学", "school"],
        },
    ],
    "reasons": [{"id": "long-wait", "name": "Long wait", "name_zh": "等候时间长"}],
}


def minimal_profile() -> dict[str, Any]:
    """A small valid profile as a mapping, a fresh copy each time so a test may break it."""
    return copy.deepcopy(_MINIMAL)


def errors_of(document: dict[str, Any] | str) -> list[str]:
    with pytest.raises(CityProfileError) as raised:
        parse_city(document)
    return raised.value.errors


# The shipped Hangzhou profile


@pytest.fixture(scope="module")
def hangzhou() -> CityProfile:
    return load_city(default_city_path())


def test_hangzhou_profile_loads(hangzhou: CityProfile) -> None:
    assert hangzhou.city.id == "hangzhou"
    assert hangzhou.city.name_zh == "杭州"
    assert hangzhou.timezone == ZoneInfo("Asia/Shanghai")


def test_hangzhou_has_its_13_districts_and_counties(hangzhou: CityProfile) -> None:
    districts = {unit.id: unit.name_zh for unit in hangzhou.districts}
    assert districts == HANGZHOU_DISTRICTS
    assert all(unit.group == "districts" for unit in hangzhou.districts)
    assert set(hangzhou.units_in_group("districts")) == set(hangzhou.districts)


def test_hangzhou_departments_each_have_two_to_four_windows(hangzhou: CityProfile) -> None:
    assert 35 <= len(hangzhou.departments) <= 45
    for department in hangzhou.departments:
        assert department.group != "districts", department.id
        assert 2 <= len(hangzhou.windows_of(department.id)) <= 4, department.id
    assert {"health-commission", "public-security", "education"} <= hangzhou.unit_ids


def test_hangzhou_windows_stand_in_a_district(hangzhou: CityProfile) -> None:
    for window in hangzhou.windows:
        assert window.district is not None, window.id
        assert hangzhou.unit(window.district).kind == "district", window.id


def test_hangzhou_categories_have_chinese_and_english_keywords(hangzhou: CityProfile) -> None:
    assert 15 <= len(hangzhou.categories) <= 25
    for category in hangzhou.categories:
        chinese = [k for k in category.keywords if CJK.search(k)]
        english = [k for k in category.keywords if k.isascii()]
        assert len(chinese) >= 5, category.id
        assert len(english) >= 3, category.id
        assert 3 <= len(category.examples) <= 6, category.id
    assert hangzhou.category("seeing-a-doctor").unit == "health-commission"


def test_hangzhou_keywords_do_not_hide_inside_another_categorys_keywords(hangzhou: CityProfile) -> None:
    # Exact duplicates are refused by the loader; this also catches "bus" in "business".
    owned = [(category.id, k.casefold()) for category in hangzhou.categories for k in category.keywords]
    clashes = [(a, k, b, other) for a, k in owned for b, other in owned if a != b and k in other]
    assert clashes == []


def test_hangzhou_reasons_include_a_positive_one(hangzhou: CityProfile) -> None:
    assert 6 <= len(hangzhou.reasons) <= 10
    assert {"long-wait", "excellent-service"} <= hangzhou.reason_ids


def test_deploy_copy_is_a_relative_symlink_to_the_shipped_profile() -> None:
    deployed = REPO / "deploy" / "cities" / "hangzhou.yaml"
    assert deployed.is_symlink()
    assert os.readlink(deployed) == "../../shared/yardstick/cities/hangzhou.yaml"
    assert deployed.resolve() == default_city_path().resolve()


# Lookups


def test_lookups_by_id() -> None:
    profile = parse_city(minimal_profile())
    assert profile.unit("education").name == "Education Bureau"
    assert profile.window("health-commission-w1").district == "xihu-district"
    assert [w.id for w in profile.windows_of("health-commission")] == ["health-commission-w1"]
    assert profile.windows_of("xihu-district") == ()
    assert [u.id for u in profile.units_in_group("departments")] == ["health-commission", "education"]
    assert [c.id for c in profile.categories_of("education")] == ["school-enrollment"]
    assert profile.unit("xihu-district").kind == "district"
    assert profile.unit("education").kind == "department"
    assert profile.window_ids == {"health-commission-w1", "education-w1"}
    assert profile.units_by_id["education"] is profile.unit("education")


def test_cached_lookups_stay_out_of_equality_serialisation_and_copies() -> None:
    """The id sets and maps are cached on the frozen profile: a profile that has answered lookups
    still equals and dumps as one that has not, and a copy answers the same."""
    used, fresh = parse_city(minimal_profile()), parse_city(minimal_profile())
    assert used.unit_ids == {"health-commission", "education", "xihu-district"}
    assert used.unit_ids is used.unit_ids  # built once
    assert "school-enrollment" in used.category_ids and used.timezone == ZoneInfo("Asia/Shanghai")
    assert used == fresh
    assert used.model_dump() == fresh.model_dump() and used.model_dump_json() == fresh.model_dump_json()
    for copied in (copy.copy(used), used.model_copy()):
        assert copied == fresh
        assert copied.unit_ids == used.unit_ids and copied.windows_by_id == used.windows_by_id


@pytest.mark.parametrize(
    ("lookup", "key"),
    [("unit", "nowhere"), ("window", "nowhere-w1"), ("category", "nothing"), ("units_in_group", "nope")],
)
def test_lookup_of_an_unknown_id_raises_key_error(lookup: str, key: str) -> None:
    profile = parse_city(minimal_profile())
    with pytest.raises(KeyError, match=key):
        getattr(profile, lookup)(key)


def test_profile_is_frozen() -> None:
    profile = parse_city(minimal_profile())
    with pytest.raises(ValueError, match="frozen"):
        profile.unit("education").name = "Other"  # type: ignore[misc]


def test_yaml_text_and_mapping_give_the_same_profile() -> None:
    text = yaml.safe_dump(minimal_profile(), allow_unicode=True)
    assert parse_city(text) == parse_city(minimal_profile())


# Errors


def test_several_errors_are_reported_together() -> None:
    document = minimal_profile()
    document["city"]["timezone"] = "Asia/Hangzhou"
    document["units"][1]["group"] = "departmentz"
    document["units"][2]["id"] = "Xihu_District"
    document["windows"][1]["unit"] = "educaton"
    document["categories"][0]["keywords"] = []
    document["reasons"].append({"id": "long-wait", "name": "Again", "name_zh": "重复"})

    errors = errors_of(document)

    assert errors == [
        "city: timezone: unknown time zone 'Asia/Hangzhou' (use an IANA name such as 'Asia/Shanghai')",
        "units[1] (education): group 'departmentz' does not exist",
        "units[2] (Xihu_District): id: id 'Xihu_District' is not a lowercase slug"
        " (a-z, 0-9 and single hyphens, e.g. 'xihu-district')",
        # The unit with the bad id is still known by that id, not by the one the window uses.
        "windows[0] (health-commission-w1): district 'xihu-district' does not exist",
        "windows[1] (education-w1): unit 'educaton' does not exist",
        "categories[0] (seeing-a-doctor): keywords: at least one keyword is needed:"
        " the classifier matches keywords first",
        "reasons[1] (long-wait): duplicate id 'long-wait' (first at reasons[0])",
    ]


def test_the_exception_message_lists_every_error_and_the_file(tmp_path: Path) -> None:
    document = minimal_profile()
    document["units"][2]["group"] = "nowhere"
    document["windows"][0]["unit"] = "nobody"
    path = tmp_path / "city.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")

    with pytest.raises(CityProfileError) as raised:
        load_city(path)

    message = str(raised.value)
    assert message.startswith(f"city profile {path} is invalid (3 errors):")
    assert "units[2] (xihu-district): group 'nowhere' does not exist" in message
    assert "windows[0] (health-commission-w1): unit 'nobody' does not exist" in message
    # The group lost its only unit to the typo.
    assert "groups[1] (districts): group has no units" in message
    assert raised.value.source == str(path)


def test_duplicate_ids_are_refused_per_kind() -> None:
    document = minimal_profile()
    document["units"].append(dict(document["units"][1], name="Education Bureau again"))
    # The same id in another kind is fine: ids are unique per kind.
    document["groups"].append({"id": "education", "name": "Education"})
    document["units"].append({"id": "school", "name": "School", "name_zh": "学校", "group": "education"})

    assert errors_of(document) == ["units[3] (education): duplicate id 'education' (first at units[1])"]


@pytest.mark.parametrize(
    "bad", ["Health", "health_commission", "health--commission", "-health", "health-", ""]
)
def test_an_id_that_is_not_a_lowercase_slug_is_refused(bad: str) -> None:
    document = minimal_profile()
    document["categories"][1]["id"] = bad
    [error] = errors_of(document)
    assert error.startswith("categories[1]")
    assert f"id {bad!r} is not a lowercase slug" in error


def test_unknown_keys_are_refused() -> None:
    document = minimal_profile()
    document["units"][0]["gruop"] = "departments"
    document["city"]["timezon"] = "Asia/Shanghai"
    document["reason"] = []

    assert errors_of(document) == [
        "unknown top-level key 'reason' (expected city, groups, units, windows, categories, reasons)",
        "city: unknown key 'timezon'",
        "units[0] (health-commission): unknown key 'gruop'",
    ]


def test_a_window_naming_a_missing_unit_is_refused() -> None:
    document = minimal_profile()
    document["windows"][0]["unit"] = "health-comission"
    assert errors_of(document) == [
        "windows[0] (health-commission-w1): unit 'health-comission' does not exist"
    ]


def test_a_window_district_must_be_a_district() -> None:
    document = minimal_profile()
    document["windows"][0]["district"] = "education"
    document["windows"][1]["district"] = "binjiang-district"
    assert errors_of(document) == [
        "windows[0] (health-commission-w1):"
        " district 'education' is a unit of kind 'department', not a district",
        "windows[1] (education-w1): district 'binjiang-district' does not exist",
    ]


@pytest.mark.parametrize("zone", ["Asia/Hangzhou", "CST", "/etc/localtime", "../zoneinfo/UTC", ""])
def test_a_bad_timezone_is_refused(zone: str) -> None:
    document = minimal_profile()
    document["city"]["timezone"] = zone
    [error] = errors_of(document)
    assert error == f"city: timezone: unknown time zone {zone!r} (use an IANA name such as 'Asia/Shanghai')"


def test_a_category_unit_must_exist() -> None:
    document = minimal_profile()
    document["categories"][0]["unit"] = "hospital"
    assert errors_of(document) == ["categories[0] (seeing-a-doctor): unit 'hospital' does not exist"]


def test_the_reserved_category_id_is_refused() -> None:
    document = minimal_profile()
    document["categories"][0]["id"] = UNCATEGORISED
    [error] = errors_of(document)
    assert error.startswith("categories[0] (uncategorised): id: id 'uncategorised' is reserved")


def test_a_keyword_of_two_categories_is_refused() -> None:
    document = minimal_profile()
    document["categories"][1]["keywords"].append("Doctor")
    assert errors_of(document) == [
        "categories[1] (school-enrollment): keyword 'doctor' is also a keyword of category 'seeing-a-doctor'"
    ]


def test_a_group_without_units_is_refused() -> None:
    document = minimal_profile()
    document["groups"].append({"id": "economic", "name": "Economic departments"})
    assert errors_of(document) == [
        "groups[2] (economic): group has no units (every ranking group needs at least one)"
    ]


def test_missing_fields_and_sections_are_reported() -> None:
    document = minimal_profile()
    del document["units"][0]["name_zh"]
    del document["windows"][0]["hall"]
    del document["groups"]

    assert errors_of(document) == [
        "missing required section 'groups'",
        # Still a unit for the window that names it: one mistake, one error.
        "units[0] (health-commission): missing required field 'name_zh'",
        # Without the groups section no group exists; each unit says so.
        "units[1] (education): group 'departments' does not exist",
        "units[2] (xihu-district): group 'districts' does not exist",
        "windows[0] (health-commission-w1): missing required field 'hall'",
    ]


def test_wrong_shapes_are_reported() -> None:
    document = minimal_profile()
    document["windows"] = {"id": "education-w1"}
    document["reasons"].append("long-wait")
    document["units"][1]["kind"] = "bureau"
    document["categories"][0]["keywords"] = ["doctor", 7]

    errors = errors_of(document)

    assert errors == [
        "units[1] (education): kind: Input should be 'department' or 'district'",
        "windows: expected a list, got dict",
        "categories[0] (seeing-a-doctor): keywords[1]: Input should be a valid string",
        "reasons[1]: expected a mapping of fields, got str",
    ]


def test_a_key_given_twice_in_yaml_is_refused() -> None:
    text = yaml.safe_dump(minimal_profile(), allow_unicode=True, default_flow_style=False)
    text = text.replace("  timezone: Asia/Shanghai\n", "  timezone: Asia/Shanghai\n  timezone: UTC\n")
    [error] = errors_of(text)
    assert re.fullmatch(r"line \d+: key 'timezone' is given twice in one mapping", error)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("city: [unclosed", "not valid YAML"),
        ("", "the profile must be a mapping"),
        ("deploy/cities/hangzhou.yaml", "use load_city"),
    ],
)
def test_text_that_is_not_a_profile_is_refused(text: str, expected: str) -> None:
    [error] = errors_of(text)
    assert expected in error


def test_an_unreadable_file_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(CityProfileError, match="cannot read the file"):
        load_city(tmp_path / "missing.yaml")


def test_a_profile_built_in_code_is_checked_too() -> None:
    city = City(id="testville", name="Testville", name_zh="测试市", timezone="UTC")
    group = Group(id="departments", name="Departments")
    unit = Unit(id="education", name="Education", name_zh="教育局", group="departments")
    window = Window(id="education-w1", unit="educaton", hall="Hall")

    with pytest.raises(CityProfileError) as raised:
        CityProfile(city=city, groups=(group,), units=(unit,), windows=(window,))

    assert raised.value.errors == ["windows[0] (education-w1): unit 'educaton' does not exist"]


def test_the_error_survives_pickling() -> None:
    error = CityProfileError(["a", "b"], source="city.yaml")
    copied = pickle.loads(pickle.dumps(error))
    assert copied.errors == ["a", "b"]
    assert copied.source == "city.yaml"
    assert str(copied) == str(error)
