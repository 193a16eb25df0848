"""What a customer message asks for (intent) and which language it is in (FR/EN), without a model.

Weighted phrase patterns per intent run over normalised text (`normalise`: folded by
`folding.fold`, apostrophes and punctuation made spaces, "merciii" -> "merci", "???" -> "?").
The best score wins; ties go to the first intent of `PRIORITY`. Subscribing and unsubscribing
are only read in short messages (`MAX_REQUEST_CHARS`); whether the sender may ask is the inbox's
check. Bot commands (`/status`, `/subscribe [component]`, `/lang fr`) are parsed before any
scoring. Only the first `MAX_CHARS` characters are read, so a 1 MiB paste costs the same as a
long e-mail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from broadcaster.folding import fold

__all__ = [
    "INTENTS",
    "MAX_CHARS",
    "MAX_REQUEST_CHARS",
    "PRIORITY",
    "REQUESTS",
    "Classification",
    "Intent",
    "classify",
    "detect_language",
]

Intent = Literal[
    "status_question", "order_problem", "complaint", "subscribe", "unsubscribe", "thanks", "other"
]

INTENTS: tuple[Intent, ...] = (
    "status_question", "order_problem", "complaint", "subscribe", "unsubscribe", "thanks", "other",
)  # fmt: skip

#: Tie-break order: acting on "stop" matters more than answering a question, which beats a thank-you.
PRIORITY: tuple[Intent, ...] = (
    "unsubscribe", "subscribe", "status_question", "order_problem", "complaint", "thanks", "other",
)  # fmt: skip

#: Characters read from a message; the intent of a customer message is in its first lines.
MAX_CHARS = 4096
#: A subscription request is deliberate and short ("stop", "désabonnez-moi svp"); longer text that
#: mentions one (a footer's "unsubscribe", a notification's "UnsubscribeURL") asks for nothing.
MAX_REQUEST_CHARS = 200
REQUESTS: frozenset[Intent] = frozenset({"subscribe", "unsubscribe"})


@dataclass(frozen=True, slots=True)
class Classification:
    """The intent and language of one message; `command`/`argument` are set for bot commands.

    `language` is "" when the text does not tell (the caller falls back to the subscriber's or the
    brand's locale); `confidence` is a 0..1 keyword score, not a probability.
    """

    intent: Intent
    language: str
    confidence: float
    command: str = ""
    argument: str = ""


# --- normalisation ----------------------------------------------------------------------------------

_ANGRY = "😡🤬😠👿🖕"
_GRATEFUL = "🙏"
_TAG = re.compile(r"<[^<>]{0,200}>")
_DROP = re.compile(rf"[^a-z0-9?!#{_ANGRY}{_GRATEFUL}]+")
_REPEAT_LETTER = re.compile(r"([a-z])\1{2,}")  # "merciii", "nuuul"; keeps real doubles ("ss")
_REPEAT_MARK = re.compile(r"([?!])[?!]*")


def normalise(text: str) -> str:
    """Fold accents and case, drop tags and punctuation (keeping ? and !), collapse repeats.

    >>> normalise("Paiement REFUSÉ??  C'est normal")
    'paiement refuse ? c est normal'
    """
    folded = fold(_TAG.sub(" ", text[:MAX_CHARS])).text
    cleaned = _DROP.sub(" ", folded)
    cleaned = _REPEAT_LETTER.sub(r"\1", cleaned)
    cleaned = _REPEAT_MARK.sub(r" \1 ", cleaned)
    return " ".join(cleaned.split())


# --- intent patterns (over normalised text: "can't" is "can t", "c'est" is "c est") ----------------

_CANT = r"(?:can ?t|cannot|can not|unable to|couldn ?t|won ?t)"
_BROKEN = (
    # French, casual spellings included ("sa marche pas", "beug").
    r"bug\w*|beug\w*|plante\w*|plantage|(?:en )?panne|hs|(?:marche|fonctionne|charge|repond) (?:pas|plus)"
    r"|rame|lent|souci\w*|problemes?|erreurs?|refuse|page blanche|bloque\w*|inaccessible"
    r"|re ?(?:marche|fonctionne)\w*|(?:marche|fonctionne) \?"
    r"|impossible d\w*|n ?arrive pas|arrive pas a|tourne en rond"
    # English.
    rf"|down|dead|broken|not (?:working|loading|responding)|(?:isn|doesn|don) ?t (?:work|load)\w*"
    rf"|{_CANT} (?:pay|check ?out|log ?in|login|order|access|connect|load|open|get)\w*"
    r"|errors?|fail\w*|crash\w*|slow|issues?|problems?|outage|glitch\w*|offline"
    r"|back (?:up|online)|going on|50[0234]|(?:work|works|working) (?:\?|for (?:anyone|you))"
)
_SUBJECT = (
    r"site|website|app|appli\w*|application|paiement|payer|payment|pay|checkout|panier|cart|paypal"
    r"|carte|card|compte|account|connexion|log ?in|login|page|commander"
)
_QUESTION = r"\?|est ce normal|c est normal|chez vous|c est general|it just me|anyone else|are you"

_Rule = tuple[float, "re.Pattern[str]"]


def _rules(weight: float, *patterns: str) -> list[_Rule]:
    return [(weight, re.compile(rf"(?<![a-z0-9])(?:{p})(?![a-z0-9])")) for p in patterns]


_RULES: dict[Intent, list[_Rule]] = {
    "unsubscribe": _rules(
        3.5,
        r"stop|unsub(?:scribe)?|desabonn\w*|desinscri\w*|opt ?out|spam\w*",
        r"(?:ne )?veux plus (?:recevoir|de)|plus de (?:messages?|notif\w*|alertes?|mails?|e ?mails?|sms)",
        r"(?:supprime|retire|enleve|desinscri)(?:z|s)? moi|arret\w* (?:les|vos|de m|de nous|d envoyer)",
        r"remove me|take me off|no more (?:alerts?|messages?|notifications?|e ?mails?|texts?)",
        r"turn off (?:the )?(?:notifications?|alerts?)"
        r"|don ?t want (?:these|any|your|the) (?:notifications?|messages?|alerts?|e ?mails?)",
    ),
    "subscribe": _rules(
        3.0,
        r"abonn(?:e|ez|er) moi|m abonn\w*|abonnement|(?:inscri(?:s|vez)|previens|prevenez|avertissez) moi",
        r"etre (?:prevenu|informe|averti)e?s?|m (?:avertir|informer|prevenir)|me prevenir",
        r"tenez moi au courant|tiens moi au courant|(?:recevoir|avoir) les (?:alertes|mises a jour|notif\w*)",
        r"(?:envoy\w* moi|m envoyer) (?:une?|les) (?:notif\w*|message|sms|mail|alerte)",
        r"subscribe|sign me up|notify me|alert me|ping me|let me know when",
        r"keep me (?:posted|updated|informed)",
        r"send me (?:a|an) (?:message|text|e ?mail|notification|alert)|subscribe me",
        r"(?:want|like to get|get|receive) (?:status |the )?(?:alerts|updates|notifications)",
    ),
    "status_question": _rules(1.5, _BROKEN),
    "order_problem": _rules(
        3.0,
        r"(?:ma|mon|mes) (?:commandes?|cdes?|colis|livraisons?|remboursement)",
        r"my (?:order|parcel|package|delivery)",
        r"rembours\w*|refund\w*|charged|debite\w*|preleve\w*|deux fois|twice|double",
        r"colis|parcel|package|livraison|delivery|delivered|tracking|numero de suivi|expedie\w*|livree?s?",
        r"commande (?:n )?#?\d+|order (?:n )?#?\d+|cde|confirmation (?:de commande|e ?mail)",
        r"wrong item|mauvais article|manque (?:un|des) articles?|missing|(?:paye|paid) but|annuler|cancel",
        r"(?:hasn ?t|has not|not|never|still not) (?:been )?(?:shipped|dispatched|arrived|delivered)",
    ),
    "complaint": _rules(
        2.5,
        r"inadmissible|scandal\w*|honte\w*|honteu\w*|nuls?|lamentable|pitoyable|minable|n importe quoi",
        r"marre|ras le bol|fout\w*|incompetent\w*|decu\w*|deception|ailleurs|plus jamais|pas pro|pas serieux",
        r"inacceptable|degout\w*|arnaque\w*|voleurs?|catastroph\w*|merde|putain|bordel|abuse",
        r"worst|unacceptable|ridiculous|useless|terrible|awful|horrible|joke|fed up|crap\w*|pathetic",
        r"disappoint\w*|disgrace\w*|shame\w*|nightmare|amateurs?|never (?:ordering|order|buying|shopping)",
        r"elsewhere|rubbish|garbage|scam\w*|wtf|sucks|furious|fuming|no communication|clowns?|guignols?",
        rf"[{_ANGRY}]",
    ),
    "thanks": _rules(
        2.0,
        rf"merci\w*|mrc|thx|ty|tysm|thanks?|thank (?:you|u)|appreciate\w*|cheers|[{_GRATEFUL}]",
    ),
}
# Emoji have no letters around them, so the look-arounds above still match them.
_SUBJECT_RE = re.compile(rf"(?<![a-z0-9])(?:{_SUBJECT})(?![a-z0-9])")
_QUESTION_RE = re.compile(rf"(?:{_QUESTION})")


def _scores(norm: str) -> dict[Intent, float]:
    scores: dict[Intent, float] = {}
    for intent, rules in _RULES.items():
        if intent in REQUESTS and len(norm) > MAX_REQUEST_CHARS:
            continue
        score = sum(weight for weight, pattern in rules if pattern.search(norm))
        if score:
            scores[intent] = score
    if "status_question" in scores:
        # Something broken on the site/payment/app, asked as a question: the classic "is it down?".
        scores["status_question"] += 0.5 * bool(_SUBJECT_RE.search(norm))
        scores["status_question"] += 1.0 * bool(_QUESTION_RE.search(norm))
    return scores


# --- commands ---------------------------------------------------------------------------------------

_COMMAND = re.compile(r"/([A-Za-z][A-Za-z0-9_]{0,31})(?:@\w{1,64})?(?:[ \t]+([^\r\n]{0,200}))?")
_COMMAND_INTENTS: dict[str, Intent] = {
    "/status": "status_question",
    "/subscribe": "subscribe",
    "/unsubscribe": "unsubscribe",
    "/stop": "unsubscribe",
}


def _command(text: str) -> Classification | None:
    match = _COMMAND.fullmatch(text.strip().split("\n", 1)[0].strip())
    if match is None:
        return None
    command = "/" + match.group(1).lower()
    argument = " ".join((match.group(2) or "").split())
    if command == "/lang":
        argument = argument.lower()
    return Classification(_COMMAND_INTENTS.get(command, "other"), "", 1.0, command, argument)


# --- language ---------------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_FR_WORDS = _words(
    "le la les l est c cest pas je j mon ma mes vous votre vos tu ton ta de du des d un une et ou a au aux"
    " ca sa que qu quoi quand quel quelle n ne plus rien chez avec pour sur dans encore vraiment toujours"
    " moi me m etre suis etes avez ai svp stp bcp merci mrc bonjour salut commande commander colis panne"
    " marche paiement rembourse remboursement livraison abonnez abonne abonnement desabonner desabonnez"
    " desinscription arretez nul nuls inadmissible honteux scandaleux appli alertes notifications messages"
    " oui non depuis fois aucun aucune personne cest tres tout seul vient remarche mais prevenu franchement"
    " deja alors donc car ils elle nous site client lamentable"
)  # "site" and the other _SHARED words count a quarter: alone they never decide.
_EN_WORDS = _words(
    "the is are my not no cant can t it its i me you your we to for of and on in at this that what when"
    " where how do does did will be been have has get got please pls thanks thx ty tysm thank hi hello"
    " order refund parcel package down anyone still yet again why who there any so just cheers works"
    " working checkout payment pay paid charged twice website loading broken slow error unsubscribe"
    " subscribe notify alerts updates from with an a was were am im dont doesnt isnt wont guys really"
    " never ever after about our us they them up off out let keep want would like ship elsewhere"
    " delivered delivery missing item worst unacceptable ridiculous useless terrible joke these those"
    " sending messaging turn me messages notifications"
)
_SHARED = frozenset(
    {"site", "a", "ok", "stop", "app", "bug", "top", "super", "amateurs", "hs", "page", "me", "messages",
     "notifications"}
)  # fmt: skip


def detect_language(text: str) -> str:
    """Return "fr" or "en" by counting each language's common words, or "" when it cannot tell.

    >>> [detect_language(t) for t in ("le site ne marche plus ?", "is checkout down", "ok")]
    ['fr', 'en', '']
    """
    return _language(normalise(text))


def _language(norm: str) -> str:
    words = _WORD.findall(norm)
    fr = sum(1.0 if w not in _SHARED else 0.25 for w in words if w in _FR_WORDS)
    en = sum(1.0 if w not in _SHARED else 0.25 for w in words if w in _EN_WORDS)
    if fr == en or max(fr, en) < 1:
        return ""
    return "fr" if fr > en else "en"


# --- classification ---------------------------------------------------------------------------------


def classify(text: str) -> Classification:
    """Classify one customer message (any channel) by intent and language.

    Only the first `MAX_CHARS` characters are read. A bot command is classified by its name:
    `classify("/subscribe checkout")` -> subscribe, command "/subscribe", argument "checkout".
    """
    command = _command(text[:MAX_CHARS])
    if command is not None:
        return command
    norm = normalise(text)
    language = _language(norm)
    scores = _scores(norm)
    if not scores:
        return Classification("other", language, 0.5)
    # Highest score; equal scores go to the intent listed first in PRIORITY.
    best = max(scores, key=lambda i: (scores[i], -PRIORITY.index(i)))
    runner_up = max((s for i, s in scores.items() if i != best), default=0.0)
    confidence = round(scores[best] / (scores[best] + runner_up + 1.0), 2)
    return Classification(best, language, confidence)
