"""Short synthetic reports (our own words) of a few events, in English and Russian, for story tests."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from xml.sax.saxutils import escape


def rss(*items: tuple[str, tuple[str, str], datetime], title: str = "T") -> bytes:
    """An RSS feed of reports: (slug, (title, text), date) each, linked to http://example.org/<slug>."""
    entries = "".join(
        f"<item><title>{escape(headline)}</title><link>http://example.org/{slug}</link>"
        f"<guid>http://example.org/{slug}</guid><pubDate>{format_datetime(at)}</pubDate>"
        f"<description>{escape(text)}</description></item>"
        for slug, (headline, text), at in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(title)}</title>'
            f"<link>http://example.org/</link><description>d</description>{entries}</channel></rss>").encode()


def filler(seed: str) -> str:
    """Forty words of their own per post: enough text not to be tiny, nothing shared with others."""
    consonants = "bdfglmnprstvz"
    return " ".join(seed + "".join(consonants[(i * 7 + j * 3) % 13] for j in range(4)) for i in range(40))


DERBENT_EN = ("Gunmen attack churches and synagogues in Derbent and Makhachkala",
              "On June 23 gunmen attacked an Orthodox church and a synagogue in Derbent and a police post in "
              "Makhachkala. Nineteen people were killed, among them priest Nikolai Kotelnikov and 15 police "
              "officers, the Investigative Committee said. " + filler("bd"))
DERBENT_RU = ("Нападения на церкви и синагоги в Дербенте и Махачкале",
              "23 июня боевики напали на православную церковь и синагогу в Дербенте и на пост ДПС в "
              "Махачкале. Погибли священник Николай Котельников и 15 полицейских, сообщил Следственный "
              "комитет. " + filler("fg"))
NALCHIK_RU = ("В Нальчике подожгли еврейский культурный центр",
              "Неизвестные подожгли строящийся еврейский культурный центр в Нальчике 29 октября. "
              "Пострадавших нет, на стене написали лозунги. " + filler("lm"))
AIRPORT_EN = ("Mob storms Makhachkala airport",
              "A crowd stormed the airport of Makhachkala on October 29 looking for passengers of a flight "
              "from Tel Aviv. Twenty people were injured. " + filler("np"))
KABUL_EN = ("Suicide bomber kills two Russian embassy staff in Kabul",
            "A suicide bomber blew himself up at the consular entrance of the Russian embassy in Kabul on "
            "September 5, killing two embassy staff. " + filler("rs"))
