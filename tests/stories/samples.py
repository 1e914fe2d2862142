"""Short synthetic reports (our own words) of a few events, in English and Russian, for story tests."""

from __future__ import annotations


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
