"""Usernames for new staff (pure): folding names to a-z, the template, cutting, clash suffixes."""

from __future__ import annotations

import pytest

from aupctl import config as config_mod
from aupctl.errors import ConfigError
from aupctl.usernames import (
    NameParts,
    NotLatinError,
    allocate,
    check_template,
    cut,
    fold,
    problem,
    render,
    variants,
    with_suffix,
)


@pytest.mark.parametrize(
    ("name", "folded"),
    [
        ("Zoë", "zoe"),
        ("Łukasz", "lukasz"),
        ("Straße", "strasse"),
        ("ẞ", "ss"),
        ("Ærøskøbing", "aeroskobing"),
        ("Øystein", "oystein"),
        ("Œuvre", "oeuvre"),
        ("İlkay", "ilkay"),
        ("Yıldız", "yildiz"),
        ("Þóra Sigurðardóttir", "thorasigurdardottir"),
        ("Đorđević", "dordevic"),
        ("Ħamrun", "hamrun"),
        ("Dvořák", "dvorak"),
        ("Siobhán Ó Briain", "siobhanobriain"),
        ("Smith-Jones", "smithjones"),
        ("O'Brien", "obrien"),
        ("O’Brien", "obrien"),  # a typographic apostrophe
        ("D'Angelo", "dangelo"),
        ("van der Berg", "vanderberg"),
        ("St. John", "stjohn"),
        ("a,b", "ab"),
        ("*Bright*", "bright"),
        ("(&(uid=*))", "uid"),
        ("Back\\slash", "backslash"),
        ("#Hash", "hash"),
        ('Jack "JJ"', "jackjj"),
        ("  spaced  out ", "spacedout"),
        ("Ŀl", "ll"),
        ("Ĳsbrand", "ijsbrand"),
        ("Åsa-Çelik", "asacelik"),
    ],
)
def test_fold_latin_names(name: str, folded: str) -> None:
    assert fold(name) == folded


@pytest.mark.parametrize("name", ["Иван", "Δημήτρης", "王芳", "محمد", "Smith Иванов"])
def test_fold_refuses_other_scripts(name: str) -> None:
    with pytest.raises(NotLatinError) as exc:
        fold(name)
    assert "not in the Latin alphabet" in str(exc.value)


def test_fold_drops_symbols_only_names_to_nothing() -> None:
    assert fold("***") == ""
    assert fold("( )") == ""


def test_check_template_names_the_unknown_field() -> None:
    assert check_template("{first_initial}{last_name}") == ["first_initial", "last_name"]
    assert check_template("{first_name}.{last_name}") == ["first_name", "last_name"]
    assert check_template("s{staff_code}") == ["staff_code"]
    with pytest.raises(ValueError, match=r"unknown field \{surname\}"):
        check_template("{first_initial}{surname}")
    with pytest.raises(ValueError, match="no format spec"):
        check_template("{last_name:.5}")
    with pytest.raises(ValueError, match="cannot be in a username"):
        check_template("{first_name} {last_name}")
    with pytest.raises(ValueError, match="uses no field"):
        check_template("staff")
    with pytest.raises(ValueError, match="not a valid template"):
        check_template("{first_name")


def test_config_refuses_a_bad_username_template() -> None:
    text = """
[school]
name = "X"
aup_version = "1"
[directory]
flavour = "openldap"
url = "ldaps://127.0.0.1:1"
bind_dn = "cn=a,dc=x"
base_dn = "dc=x"
staff_ou = "ou=Staff"
leavers_ou = "ou=Leavers"
groups_ou = "ou=Groups"
[accounts]
username = "{first_initial}{lastname}"
"""
    with pytest.raises(ConfigError, match=r"accounts\.username: .*unknown field \{lastname\}"):
        config_mod.parse(text, "test.toml")


def test_render_uses_the_template_fields() -> None:
    parts = NameParts("Elizabeth", "Carter", "Liz", "HB0042")
    assert render("{first_initial}{last_name}", parts) == "ecarter"
    assert render("{preferred_name}.{last_name}", parts) == "liz.carter"
    assert render("{first_name}.{last_name}", parts) == "elizabeth.carter"
    assert render("{last_name}{staff_code}", parts) == "carterhb0042"
    # no preferred name: the first name stands in
    assert render("{preferred_name}{last_name}", NameParts("Tom", "Gray")) == "tomgray"
    with pytest.raises(ValueError, match="staff_code gives no letters"):
        render("{last_name}{staff_code}", NameParts("Tom", "Gray"))
    with pytest.raises(NotLatinError):
        render("{first_initial}{last_name}", NameParts("Dmitri", "Иванов"))


def test_cut_never_ends_on_punctuation() -> None:
    assert cut("abcdefghij", 5) == "abcde"
    assert cut("liz.carter", 4) == "liz"
    assert cut("ab", 20) == "ab"


def test_allocate_adds_the_next_free_suffix() -> None:
    taken = {"jsmith", "jsmith2"}
    assert allocate("jsmith", taken, 20) == "jsmith3"
    assert allocate("jsmith", taken, 20) == "jsmith4"
    assert allocate("zoe", taken, 20) == "zoe"
    assert {"jsmith3", "jsmith4", "zoe"} <= taken


def test_allocate_cuts_so_the_suffix_still_fits() -> None:
    base = "mwolfeschlegelsteinhausen"
    taken: set[str] = set()
    first = allocate(cut(base, 20), taken, 20)
    second = allocate(cut(base, 20), taken, 20)
    third = allocate(cut(base, 20), taken, 20)
    assert first == "mwolfeschlegelsteinh"
    assert second == "mwolfeschlegelstein2"
    assert third == "mwolfeschlegelstein3"
    assert all(len(u) <= 20 for u in (first, second, third))
    assert with_suffix(base, 12, 20) == "mwolfeschlegelstei12"
    assert list(variants("ab", 20, upto=3)) == ["ab", "ab2", "ab3"]


@pytest.mark.parametrize(
    ("username", "why"),
    [
        ("", "is empty"),
        ("a" * 21, "longer than 20"),
        ("Bad User", "may hold only"),
        (".dot", "may hold only"),
        ("dash-", "may hold only"),
        ("12345", "only digits"),
    ],
)
def test_problem_says_why_a_username_is_invalid(username: str, why: str) -> None:
    assert why in (problem(username, 20) or "")


def test_problem_accepts_good_usernames() -> None:
    for good in ("jsmith", "liz.carter", "a_b-c", "jsmith2", "x"):
        assert problem(good, 20) is None
