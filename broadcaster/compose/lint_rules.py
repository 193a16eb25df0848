"""How the crisis linter reads French and English (DESIGN §5): folding, phrase lists, facts.

Every pattern is a regular expression over *folded* text (`fold`): lower case, accents removed,
typographic apostrophes and dashes made ASCII, whitespace runs collapsed to one space. The linter
wraps each phrase in word boundaries, so `dns` never matches inside `dnsx` nor `api` inside
`apiculture`. `facts` reads the times, durations, percentages, phone numbers and numbers of a text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from babel import Locale, UnknownLocaleError
from babel.numbers import get_decimal_symbol

from broadcaster.folding import Folded

__all__ = [
    "ALTERNATIVE",
    "APOLOGY",
    "BLAME",
    "Fact",
    "JARGON",
    "MINIMISING",
    "OVER_PROMISE",
    "PHONE",
    "Phrase",
    "THANKS",
    "facts",
]

#: A phone number: at least 8 digits in groups of 1-4, single separators ("01 23 45 67 89", "+33 1…").
PHONE = r"\+?(?=(?:[ .()-]{0,2}\d){8})\(?\d{1,4}\)?(?:[ .-]?\(?\d{1,4}\)?){1,7}"


@dataclass(frozen=True, slots=True)
class Phrase:
    """One pattern of a rule; `advice` is the plain-words fix, `unless` cancels a match.

    `unless` is matched against the *original* words, for the rare folded homonym
    (French "caché" folds to "cache", which is not the jargon "cache").
    """

    pattern: str
    advice: str = ""
    unless: str = ""


# Wording that puts the fault on the customer. The seeds: never blame the customer.
BLAME: tuple[Phrase, ...] = (
    Phrase(r"(?:votre|ta) (?:connexion|connection)(?: internet)?"),
    Phrase(r"(?:votre|ton) navigateur"),
    Phrase(r"(?:videz|vider|effacez|effacer|nettoyez|nettoyer|vide|efface) (?:votre |ton |le )?cache"),
    Phrase(r"vous avez mal(?: \w+)?"),
    Phrase(r"(?:une )?erreur de votre part"),
    Phrase(r"de votre cote"),
    Phrase(r"(?:c'est )?(?:de )?votre faute"),
    Phrase(r"vous vous etes trompes?"),
    Phrase(r"mauvaise manipulation"),
    Phrase(r"vous n'avez pas (?:bien )?(?:suivi|lu|saisi|rempli|verifie)"),
    Phrase(r"your (?:internet |network |wi-?fi )?connection"),
    Phrase(r"your (?:web )?browser"),
    Phrase(r"clear(?:ing)? your (?:browser )?(?:cache|cookies)"),
    Phrase(r"user error"),
    Phrase(r"on your (?:end|side)"),
    Phrase(r"you (?:entered|typed|mistyped)"),
    Phrase(r"you (?:must|may|might) have (?:entered|typed|made|clicked)"),
    Phrase(r"your (?:own )?(?:fault|mistake)"),
    Phrase(r"you did(?:n't| not) (?:follow|read|enter|check)"),
)

_SYSTEMS = 'say "our systems" or what customers see'
_CODE = 'say what customers see (e.g. "the site shows an error page")'

# Technical words customers do not need. Each carries a plain-words suggestion.
JARGON: tuple[Phrase, ...] = (
    Phrase(r"(?:http|erreurs?|errors?|codes?|status|statut) ?[45](?:\d\d|xx)", _CODE),
    # A bare 502/503/504 or 5xx; not an amount ("503 €"), not part of "1 500", and "500" only
    # when no noun follows ("500 commandes" is a quantity).
    Phrase(
        r"(?<!\d )(?<!\d[.,])(?:50[2-4]|[45]xx|500(?! ?[a-z]))(?![.,]\d)"
        r"(?! ?(?:€|\$|%|eur\b|euros?\b|dollars?\b))",
        _CODE,
    ),
    Phrase(r"dns", 'say "the site could not be reached"'),
    Phrase(r"bases? de donnees|bdd|databases?", 'say "our systems" or "customer accounts"'),
    Phrase(r"serveurs?|servers?", 'say "our website" or "our systems"'),
    Phrase(r"apis?", 'say "a connection between our systems" or name the partner service'),
    Phrase(r"sql|mysql|postgres(?:ql)?|mongodb|redis", _SYSTEMS),
    Phrase(r"cache", "say what customers should expect instead", unless=r"(?i)caché"),
    Phrase(r"cdn", 'say "the service that delivers our pages"'),
    Phrase(r"time-?outs?|time outs?", 'say "too slow to answer"'),
    Phrase(r"load[- ]?balancers?|repartiteurs? de charge", _SYSTEMS),
    Phrase(r"kubernetes|k8s|docker|clusters?", _SYSTEMS),
    Phrase(
        r"deploiements?|deployments?|deploy(?:ed|ing)?|redeploy(?:ed|ing)?", 'say "update" / "mise à jour"'
    ),
    Phrase(r"rollbacks?|roll(?:ed)? back", 'say "we went back to the previous version"'),
    Phrase(r"back-?end|front-?end|middleware|microservices?|reverse proxy|proxy", _SYSTEMS),
    Phrase(r"ssl|tls|ddos|hotfix|latence|latency|data ?centers?|datacentres?", _SYSTEMS),
)

# Certainty nobody can give during an outage.
OVER_PROMISE: tuple[Phrase, ...] = (
    # Not the noun: "extension de garantie" is a compensation, not a promise.
    Phrase(r"(?<!de )(?<!la )(?<!votre )(?<!une )(?<!sa )garanti(?:e|es|s|ssons|t)?|je (?:vous )?garantis"),
    Phrase(r"(?<![\d.,])100 ?(?:%|pour ?cent|percent|per cent)"),
    Phrase(r"(?:ne se reproduira|n'arrivera|ne se produira) (?:plus )?jamais(?: plus)?"),
    Phrase(r"(?:ne se reproduira|n'arrivera) plus"),
    Phrase(r"plus jamais"),
    Phrase(r"c'est promis|(?:nous|je) (?:vous )?promett?(?:ons|s)"),
    Phrase(r"sans aucun (?:doute|risque)|aucun risque|zero (?:risque|panne|bug)"),
    Phrase(
        r"dans \d+ ?(?:minutes?|min|secondes?) (?:c'est|ce sera|tout sera|tout est) "
        r"(?:regle|repare|resolu|termine|fini|reparti)"
    ),
    Phrase(r"(?:c'est|ce sera|tout sera) (?:regle|repare|resolu) dans \d+ ?(?:minutes?|min|secondes?)"),
    Phrase(r"(?<!money-back )(?<!money back )guarantee(?:s|d|ing)?"),
    Phrase(r"(?:will|would) never happen again|won't (?:ever )?happen again|will not happen again"),
    Phrase(r"never again"),
    Phrase(r"(?:we|i) promise"),
    Phrase(r"zero (?:risk|downtime)"),
    Phrase(
        r"(?:it'?s|it will be|will be|everything will be|everything is) (?:definitely|certainly|surely) "
        r"(?:fixed|resolved|back|sorted)"
    ),
    Phrase(
        r"in \d+ (?:minutes?|mins?|seconds?),? (?:it'?s|it will be|everything will be|everything is|"
        r"we'?re|we will be) (?:fixed|sorted|resolved|back)"
    ),
)

# Words that make the outage sound smaller than customers experience it.
MINIMISING: tuple[Phrase, ...] = (
    Phrase(
        r"(?:tout )?petits? (?:soucis?|problemes?|bugs?|couacs?|incidents?|contretemps|desagrements?|"
        r"dysfonctionnements?)|(?:toute )?petites? (?:pannes?|perturbations?)"
    ),
    Phrase(
        r"legers? (?:soucis?|problemes?|bugs?|incidents?|desagrements?|dysfonctionnements?)"
        r"|legeres? (?:pannes?|perturbations?|genes?)"
    ),
    Phrase(r"rien de (?:bien )?(?:grave|mechant|serieux|alarmant|inquietant)"),
    Phrase(r"pas (?:bien |tres |si )?grave|pas grand[- ]chose"),
    Phrase(r"(?:juste|seulement|que|simplement|a peine) (?:quelques|qq) (?:secondes|instants)"),
    Phrase(r"l'affaire de quelques (?:secondes|minutes|instants)"),
    Phrase(r"(?:seulement|que|juste) quelques (?:clients|utilisateurs|personnes)"),
    Phrase(
        r"quelques (?:clients|utilisateurs) seulement|une (?:poignee|minorite) de (?:clients|utilisateurs)"
    ),
    Phrase(r"(?:minor|small|little|tiny|slight) (?:glitch(?:es)?|hiccups?|issues?|problems?|bugs?|blips?)"),
    Phrase(r"nothing (?:serious|major|to worry about)|(?:no|not a) big deal"),
    Phrase(r"(?:only|just) (?:a few|a handful of|a couple of|some) (?:users|customers|people)"),
    Phrase(r"(?:only|just) (?:a few|a couple of) seconds|barely noticeable|just a blip"),
)

APOLOGY: tuple[Phrase, ...] = (
    Phrase(r"desole(?:e|s|es)?|navre(?:e|s|es)?|pardon|excus\w*|regrett(?:ons|e|ez)"),
    Phrase(r"sorry|apologi[sz](?:e|es|ed|ing)|apolog(?:y|ies)|we regret"),
)

# French "merci de + infinitive" asks ("Merci de repasser votre commande": please order again);
# "merci de votre patience", "merci d'avoir patienté" thank. English "thanks to" gives a cause.
_FR_DETERMINER = (
    r"(?:votre|vos|ton|ta|tes|notre|nos|mon|ma|mes|son|sa|ses|leurs?|la|le|les|l'|ce|cet|cette|ces"
    r"|un|une|des|tout|toute|tous|toutes)\b"
)
_FR_PLEASE = (
    rf" (?:de |d')(?!{_FR_DETERMINER})(?:bien )?(?:(?:nous|vous|me|te|lui|en|y) |[mt]')*"
    r"(?!avoir\b|etre\b)[a-z]+(?:er|ir|re|oir)\b"
)
# Thanks addressed to one's own people ("Grateful for our engineering teams", "Merci à nos équipes")
# do not thank the reader, unless the reader is thanked in the same breath ("… and you").
_STAFF = (
    r"(?:\w+ (?:and |et )?){0,3}?(?:teams?|engineers?|staff|crews?|colleagues|employees|partners"
    r"|equipes?|techniciens?|collaborat(?:eur|rice)s?|agents?|salarie(?:e|s|es)?|partenaires?)\b"
    r"(?! (?:and|et) (?:to |a )?(?:you|vous)\b)"
)
_EN_TO_STAFF = rf"(?: you)? (?:to|for) (?:all )?(?:our|the) {_STAFF}"
_FR_TO_STAFF = rf" (?:(?:a|aux) )?(?:(?:toutes|tous) )?(?:nos|notre) {_STAFF}"
# "We appreciate that / how…" acknowledges a feeling; "we appreciate your patience" thanks.
THANKS: tuple[Phrase, ...] = (
    Phrase(rf"merci(?!{_FR_PLEASE})(?!{_FR_TO_STAFF})|remerci\w*(?!{_FR_TO_STAFF})"),
    Phrase(
        r"(?:thanks?(?! to (?!you\b|all\b|everyone\b|everybody\b))|thankful|grateful|gratitude)"
        rf"(?!{_EN_TO_STAFF})"
        r"|appreciat(?:e|es|ed|ing|ion|ive)(?! (?:that|how)\b)"
    ),
)

# Wording that already points customers to another way of ordering.
ALTERNATIVE: tuple[Phrase, ...] = (
    Phrase(r"par tel|tel ?:|telephone|telephonique|appel\w*|numero|whatsapp|sms"),
    Phrase(r"magasins?|boutiques?|points? de vente|retrait|marketplace|appli(?:cation)?"),
    Phrase(r"service client|par (?:e-?)?mail|par courriel|site (?:mobile|allege)|version allegee"),
    Phrase(r"phone|telephone|call(?:ing)?|hotline|stores?|in-store|app|customer service|by e-?mail"),
    Phrase(r"lite site|mobile site"),
    # A written phone number is an alternative by itself.
    Phrase(PHONE),
)


# --- facts ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fact:
    """A time, duration, percentage, phone number or number; equal facts share a key.

    Keys: `t:<minutes since midnight>`, `d:<minutes>`, `p:<percent>`, `tel:<last 9 digits>`,
    `n:<number>`. An ambiguous fact has several ("2:30" in English: 150 or 870 minutes).
    """

    keys: frozenset[str]
    excerpt: str


_Reader = Callable[["re.Match[str]", str], "frozenset[str] | None"]


@lru_cache(maxsize=64)
def _decimal_symbol(locale: str) -> str:
    try:
        return str(get_decimal_symbol(locale))
    except (UnknownLocaleError, ValueError):
        return "."


@lru_cache(maxsize=64)
def _twelve_hour(locale: str) -> bool:
    """Whether the locale writes times on a 12-hour clock (CLDR short time pattern uses `h`)."""
    try:
        pattern = Locale.parse(locale).time_formats["short"].pattern
    except (UnknownLocaleError, ValueError, KeyError):
        return False
    return "h" in re.sub(r"'[^']*'", "", pattern)  # quoted literals: fr_CA writes "HH 'h' mm"


def _number_value(raw: str, locale: str) -> str:
    """ "1 500", "1,500" (en), "1.500" (fr) -> "1500"; "2,5" (fr), "2.5" -> "2.5"."""
    grouped = re.fullmatch(r"\d{1,3}([ .,])\d{3}(?:\1\d{3})*(?:[.,]\d+)?", raw)
    if grouped and grouped[1] != _decimal_symbol(locale):
        raw = raw.replace(grouped[1], "")
    try:
        value = Decimal(raw.replace(",", "."))
    except InvalidOperation:
        return raw
    return format(value.normalize(), "f")


def _phone(m: re.Match[str], locale: str) -> frozenset[str] | None:
    digits = re.sub(r"\D", "", m[0])
    if not 8 <= len(digits) <= 15:
        return None
    return frozenset({f"tel:{digits[-9:]}"})  # "+33 1 23…" and "01 23…" share their last 9 digits


def _clock12(m: re.Match[str], locale: str) -> frozenset[str] | None:
    hour, minute = int(m[1]), int(m[2] or 0)
    if not 1 <= hour <= 12 or minute > 59:
        return None
    hour = hour % 12 + (12 if m[3] == "p" else 0)
    return frozenset({f"t:{hour * 60 + minute}"})


def _clock24(m: re.Match[str], locale: str) -> frozenset[str] | None:
    hour, minute = int(m[1]), int(m[2])
    if hour > 23 or minute > 59:
        return None
    keys = {f"t:{hour * 60 + minute}"}
    if _twelve_hour(locale) and 1 <= hour <= 11 and not m[1].startswith("0"):
        keys.add(f"t:{(hour + 12) * 60 + minute}")  # English "2:30" may well mean the afternoon
    return frozenset(keys)


def _hours(m: re.Match[str], locale: str) -> frozenset[str] | None:
    hours, minutes = int(m[1]), int(m[2] or 0)
    if minutes > 59:
        return None
    total = hours * 60 + minutes
    # French "2 h" is a time ("à 2 h") or a duration ("dans 2 h"): keep both readings.
    return frozenset({f"d:{total}", f"t:{total}"} if hours <= 23 else {f"d:{total}"})


def _decimal_hours(m: re.Match[str], locale: str) -> frozenset[str] | None:
    minutes = (Decimal(f"{m[1]}.{m[2]}") * 60).to_integral_value()
    return frozenset({f"d:{minutes}"})


def _minutes(m: re.Match[str], locale: str) -> frozenset[str] | None:
    return frozenset({f"d:{int(m[1])}"})


def _percent(m: re.Match[str], locale: str) -> frozenset[str] | None:
    return frozenset({f"p:{_number_value(m[1], locale)}"})


def _noon(m: re.Match[str], locale: str) -> frozenset[str] | None:
    return frozenset({"t:720"})


def _midnight(m: re.Match[str], locale: str) -> frozenset[str] | None:
    return frozenset({"t:0"})


def _number(m: re.Match[str], locale: str) -> frozenset[str] | None:
    return frozenset({f"n:{_number_value(m[0], locale)}"})


_HOUR_UNIT = r"(?:h|hrs?|heures?|hours?)"
# Most specific first: each match masks its text from the readers after it.
_READERS: tuple[tuple[re.Pattern[str], _Reader], ...] = (
    (re.compile(rf"(?<![\w+]){PHONE}(?!\w)"), _phone),
    (re.compile(r"(?<![\w:.,])(\d{1,2})(?:[:.](\d{2}))? ?([ap])(?:\.m\.|m(?!\w))"), _clock12),
    (re.compile(r"(?<![\w:.,])(\d{1,2}):(\d{2})(?![\d:])"), _clock24),
    (re.compile(rf"(?<![\w:.,])(\d{{1,3}})[.,](\d{{1,2}}) ?{_HOUR_UNIT}(?!\w)"), _decimal_hours),
    (
        re.compile(rf"(?<![\w:.,])(\d{{1,3}}) ?{_HOUR_UNIT}(?: ?(\d{{2}})(?: ?(?:min|mn|minutes?))?)?(?!\w)"),
        _hours,
    ),
    (re.compile(r"(?<![\w:.,])(\d{1,4}) ?(?:min|mins|mn|minutes?)(?!\w)"), _minutes),
    (re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?) ?(?:%|(?:pour ?cent|percent|per cent)(?!\w))"), _percent),
    (re.compile(r"(?<![\w-])(?:midi|noon)(?![\w-])"), _noon),
    (re.compile(r"(?<![\w-])(?:minuit|midnight)(?![\w-])"), _midnight),
    (
        re.compile(r"(?<![\w.,])(?:\d{1,3}([ .,])\d{3}(?:\1\d{3})*(?!\d)(?:[.,]\d+)?|\d+(?:[.,]\d+)?)"),
        _number,
    ),
)


def facts(folded: Folded, locale: str) -> list[Fact]:
    """The facts of a folded text, in text order; `locale` decides "2,5" vs "2.5" and 12 h clocks."""
    work = folded.text
    found: list[tuple[int, Fact]] = []
    for regex, read in _READERS:
        masked = work
        for m in regex.finditer(work):
            keys = read(m, locale)
            if keys is None:
                continue
            found.append((m.start(), Fact(keys, folded.quote(m.start(), m.end()))))
            masked = masked[: m.start()] + "\x00" * (m.end() - m.start()) + masked[m.end() :]
        work = masked
    return [fact for _, fact in sorted(found, key=lambda item: item[0])]
