"""The message catalogue (``byflyt/messages.toml``) and the lookups over it."""

from __future__ import annotations

from typing import get_args

import pytest

from byflyt.i18n import LANGS, MESSAGES, mode_name, read_catalogue, t
from byflyt.models.base import Mode


def test_every_mode_has_a_name_in_both_languages() -> None:
    missing = [mode for mode in get_args(Mode) if f"mode_{mode}" not in MESSAGES]
    assert not missing
    assert all(MESSAGES[f"mode_{mode}"][lang] for mode in get_args(Mode) for lang in LANGS)
    assert mode_name("bus", "nb") == "buss"
    assert mode_name("no_such_mode", "en") == "no_such_mode"


def test_the_catalogue_reads_its_tables_in_order() -> None:
    messages = read_catalogue('[b]\nnb = "to"\nen = "two"\n\n[a]\nen = "one"\nnb = "en"\n')
    assert messages == {"b": {"nb": "to", "en": "two"}, "a": {"nb": "en", "en": "one"}}
    assert list(messages) == ["b", "a"]
    assert t("mode", "nb") == MESSAGES["mode"]["nb"] == "Reisemåte"


@pytest.mark.parametrize(
    "text",
    ['[a]\nnb = "en"\n', '[a]\nnb = "en"\nen = "one"\nde = "eins"\n', '[a]\nnb = 1\nen = "one"\n'],
)
def test_a_key_without_exactly_both_languages_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"\[a\]"):
        read_catalogue(text)
