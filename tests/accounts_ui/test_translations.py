"""The Simplified Chinese and Arabic catalogs: complete, placeholders intact, compiled.

The compiled .mo files are committed (a fresh clone needs no GNU gettext), so a .po edited
without running compilemessages must fail here rather than ship stale translations.
"""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

import pytest

import kefu

LOCALE = Path(kefu.__file__).parent / "locale"
LANGUAGES = ["zh_Hans", "ar"]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{\w*\}")


def read_po(path: Path) -> list[dict]:
    """Entries of a .po file: {"flags", "msgctxt", "msgid", "msgid_plural", "msgstr", ...}."""
    entries, entry, field = [], {"flags": set()}, None
    for line in [*path.read_text().splitlines(), ""]:
        if not line.strip():
            if "msgid" in entry:
                entries.append(entry)
            entry, field = {"flags": set()}, None
        elif line.startswith("#,"):
            entry["flags"] |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry[field] += ast.literal_eval(line)
        else:
            field, _, value = line.partition(" ")
            entry[field] = ast.literal_eval(value)
    return entries


def translations(entry: dict) -> list[str]:
    return [value for key, value in entry.items() if key.startswith("msgstr")]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_is_translated_with_its_placeholders(language):
    entries = read_po(LOCALE / language / "LC_MESSAGES" / "django.po")
    messages = [entry for entry in entries if entry["msgid"]]
    assert len(messages) > 200
    for entry in messages:
        assert "fuzzy" not in entry["flags"], entry["msgid"]
        for text in translations(entry):
            assert text.strip(), f"untranslated: {entry['msgid']!r}"
            assert sorted(PLACEHOLDER.findall(text)) == sorted(
                PLACEHOLDER.findall(entry["msgid"])
            ), f"placeholders differ: {entry['msgid']!r} -> {text!r}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalog_matches_the_source(language):
    folder = LOCALE / language / "LC_MESSAGES"
    with (folder / "django.mo").open("rb") as compiled:
        catalog = gettext.GNUTranslations(compiled)._catalog  # type: ignore[attr-defined]
    for entry in read_po(folder / "django.po"):
        if not entry["msgid"]:
            continue
        key = entry["msgid"]
        if "msgctxt" in entry:
            key = f"{entry['msgctxt']}\x04{key}"
        if "msgid_plural" in entry:
            for name, text in entry.items():
                if name.startswith("msgstr["):
                    assert catalog[(key, int(name[7:-1]))] == text, key
        else:
            assert catalog.get(key) == entry["msgstr"], f"run compilemessages: {key!r}"


def test_arabic_has_six_plural_forms():
    with (LOCALE / "ar" / "LC_MESSAGES" / "django.mo").open("rb") as compiled:
        arabic = gettext.GNUTranslations(compiled)
    assert [arabic.plural(n) for n in (0, 1, 2, 3, 11, 100)] == [0, 1, 2, 3, 4, 5]
