"""Articles the soak's feed server publishes, each with the tags a careful reader would give it.

Written for the soak (not taken from any source): short, plain news items about the region, so
that every post whose tags are known can be checked after the run. `expected` names the primary
country and the security topics that must be among the stored tags; other tags may be there too.
The `{n}` in a title makes every publication a distinct story.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Article:
    title: str
    body: str
    primary: str  # ISO 3166-1 alpha-2 of the primary country
    topics: tuple[str, ...]


ARTICLES: tuple[Article, ...] = (
    Article(
        "Kazakhstan and Russia expand military exercises ({n})",
        "<p>Kazakhstan and Russia will hold joint military exercises near the southern border, the defence "
        "ministry in Astana said. Troops, armoured units and air defence crews of the Kazakh army take part.</p>",
        "KZ", ("military",)),
    Article(
        "Tajik border guards clash with drug smugglers ({n})",
        "<p>Border guards in Tajikistan detained smugglers carrying heroin across the Panj river from "
        "Afghanistan, the State Committee for National Security in Dushanbe reported. Drug trafficking on the "
        "Tajik-Afghan border has grown this year.</p>",
        "TJ", ("crime-trafficking",)),  # border guards are the actors; what happened is a drug seizure
    Article(
        "Uzbekistan convicts Islamic State recruiters ({n})",
        "<p>A court in Tashkent sentenced five men for recruiting fighters for the Islamic State terrorist "
        "group. Uzbek prosecutors said the recruiters targeted migrant workers.</p>",
        "UZ", ("terrorism",)),
    Article(
        "Kyrgyzstan detains opposition activists after protests ({n})",
        "<p>Police in Bishkek detained dozens of protesters after a rally against the government of "
        "Kyrgyzstan. Human rights groups condemned the arrests of journalists and activists.</p>",
        "KG", ("unrest",)),
    Article(
        "Georgia and Armenia discuss Black Sea transit ({n})",
        "<p>The foreign ministers of Georgia and Armenia met in Tbilisi to discuss trade corridors and "
        "diplomatic relations. Georgian officials signed a memorandum on transit.</p>",
        "GE", ("diplomacy",)),
    Article(
        "Azerbaijan reports shelling on the Armenian border ({n})",
        "<p>The defence ministry of Azerbaijan said its positions came under fire from Armenian forces near "
        "the border. Baku said two soldiers were wounded in the shelling; Yerevan denied it.</p>",
        "AZ", ("armed-conflict",)),
    Article(
        "Taliban fighters and ISKP militants clash in northern Afghanistan ({n})",
        "<p>Taliban forces fought Islamic State Khorasan (ISKP) militants in Kunduz province of Afghanistan, "
        "local officials said. The terrorist group claimed responsibility for a suicide bombing last week.</p>",
        "AF", ("terrorism",)),
    Article(
        "Russian hackers target Moldovan election commission ({n})",
        "<p>Moldova's election commission in Chisinau said a cyberattack by Russian hackers knocked its "
        "website offline. Officials blamed a hacker group linked to Russian intelligence for the "
        "distributed denial-of-service attack.</p>",
        "MD", ("cyber",)),
    Article(
        "Turkmenistan tightens control of the Afghan frontier ({n})",
        "<p>Turkmenistan has sent additional border troops to its frontier with Afghanistan, officials in "
        "Ashgabat said, to stop smuggling and illegal crossings of the Turkmen border.</p>",
        "TM", ("border-security",)),
    Article(
        "Corruption trial of former Kazakh minister opens ({n})",
        "<p>A court in Almaty opened the trial of a former minister of Kazakhstan accused of taking bribes "
        "and embezzlement. The anti-corruption agency said the bribery scheme cost the budget millions.</p>",
        "KZ", ("corruption",)),
)
