"""The page parts written in Python: every value escaped, the markup the templates had."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from lxml import html as lxml_html
from markupsafe import Markup

from aggregator.web.fragments import chip_list, facet_items


@dataclass
class Link:
    name: str
    href: str
    count: int | None = None
    active: bool = False


HOSTILE = '<script>alert("x")</script> & \'quoted\''


def test_chips_are_links_by_kind_countries_first() -> None:
    chips = chip_list([Link("Kazakhstan", "/?country=KZ&topic=terrorism")], [Link("Almaty", "/?place=almaty")],
                      [Link("Terrorism", "/?topic=terrorism")])
    assert isinstance(chips, Markup)
    tree = lxml_html.fragment_fromstring(str(chips))
    assert (tree.tag, tree.get("class"), tree.get("aria-label")) == ("ul", "chips", "Tags")
    assert [(a.get("class"), a.get("href"), a.text) for a in tree.iter("a")] == [
        ("chip country", "/?country=KZ&topic=terrorism", "Kazakhstan"),
        ("chip place", "/?place=almaty", "Almaty"),
        ("chip topic", "/?topic=terrorism", "Terrorism")]


def test_a_post_without_tags_has_no_chip_list() -> None:
    assert chip_list([], [], []) == Markup()


@pytest.mark.parametrize("build", [
    lambda link: chip_list([link], [], []),
    lambda link: facet_items([link]),
])
def test_names_and_links_are_escaped(build: object) -> None:
    link = Link(HOSTILE, '/?q="><script>alert(1)</script>')
    out = str(build(link))  # type: ignore[operator]
    assert "<script>" not in out
    tree = lxml_html.fragment_fromstring(out, create_parent="div")
    anchor = next(tree.iter("a"))
    assert anchor.get("href") == link.href
    assert anchor.text_content() == HOSTILE


@pytest.mark.parametrize(("link", "expected"), [
    (Link("Kazakhstan", "/?country=KZ", 12345), ("Kazakhstan", "12,345", None)),
    (Link("Terrorism", "/", 0, active=True), ("Terrorism", "0", "true")),
    (Link("Central Asia", "/?region=central-asia"), ("Central Asia", None, None)),  # count not known yet
])
def test_facet_entries_show_name_count_and_whether_chosen(link: Link, expected: tuple[str, str | None, str | None],
                                                         ) -> None:
    item = lxml_html.fragment_fromstring(str(facet_items([link])))
    anchor = item.find("a")
    count = anchor.find("span[@class='n']")
    assert (anchor.find("span[@class='name']").text, None if count is None else count.text,
            anchor.get("aria-current")) == expected
    assert anchor.get("href") == link.href
