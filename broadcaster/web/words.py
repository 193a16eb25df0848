"""The words of the public pages, in French and English (other languages read the English ones).

page_words("fr_CA")["upcoming"]  → "Maintenances prévues"
"""

from __future__ import annotations

__all__ = ["HISTORY_DAYS", "component_words", "page_words", "speaks"]

HISTORY_DAYS = 30

_COMPONENT_WORDS = {
    "fr": {"operational": "Opérationnel", "degraded": "Ralenti", "partial_outage": "Panne partielle",
           "major_outage": "Panne", "maintenance": "Maintenance"},
    "en": {"operational": "Operational", "degraded": "Degraded", "partial_outage": "Partial outage",
           "major_outage": "Outage", "maintenance": "Maintenance"},
}  # fmt: skip

_PAGE_WORDS = {
    "fr": {
        # status page
        "all_good": "Tous nos services fonctionnent normalement.", "incident": "Incident en cours",
        "maintenance": "Maintenance en cours", "components": "Services", "updated": "Mis à jour le",
        "upcoming": "Maintenances prévues",
        "history": f"Incidents des {HISTORY_DAYS} derniers jours", "none": "Aucun incident.",
        "past_maintenance": f"Maintenances des {HISTORY_DAYS} derniers jours",
        "feed": "Flux Atom", "back": "État des services", "colon": "\u00a0: ",
        # incident and maintenance pages
        "affects": "Services concernés", "starts": "Début", "end": "Fin", "duration": "Durée",
        "notices": "Avis publiés",
        "announced": "Maintenance annoncée", "rescheduled": "Maintenance reprogrammée",
        "started": "Maintenance commencée", "extended": "Maintenance prolongée",
        "shortened": "Maintenance écourtée", "completed": "Maintenance terminée",
        "cancelled": "Maintenance annulée", "outcome_completed": "Terminée", "outcome_cancelled": "Annulée",
        "planned_window": "Créneau prévu", "new_window": "Nouveau créneau",
        "old_window": "Créneau précédent", "new_end": "Fin désormais prévue",
        "old_end": "Fin prévue auparavant", "planned_end": "Fin prévue",
        # unsubscribe pages
        "unsubscribe_title": "Se désinscrire", "unsubscribe_ask": "Ne plus recevoir {what}\u00a0?",
        "unsubscribe_button": "Me désinscrire", "unsubscribed_title": "Désinscription effectuée",
        "unsubscribed": "Vous ne recevrez plus {what}.", "unsubscribed_on": "Désinscription enregistrée le",
        "resubscribe_ask": "Vous avez changé d’avis\u00a0?",
        "resubscribe_button": "Me réabonner", "resubscribed_title": "Abonnement rétabli",
        "resubscribed": "Vous recevrez de nouveau {what}.", "unknown_link": "Lien inconnu",
        "unknown_link_text": "Ce lien de désinscription n’existe pas ou plus.",
        "what_email": "nos avis d’incident et de maintenance à {address}",
        "what_other": "nos avis d’incident et de maintenance sur {channel}",
        "not_found": "Page introuvable",
    },
    "en": {
        "all_good": "All our services are working normally.", "incident": "Ongoing incident",
        "maintenance": "Maintenance in progress", "components": "Services", "updated": "Updated",
        "upcoming": "Scheduled maintenance",
        "history": f"Incidents in the last {HISTORY_DAYS} days", "none": "No incidents.",
        "past_maintenance": f"Maintenance in the last {HISTORY_DAYS} days",
        "feed": "Atom feed", "back": "Service status", "colon": ": ",
        "affects": "Affected services", "starts": "Start", "end": "End", "duration": "Duration",
        "notices": "Notices",
        "announced": "Maintenance announced", "rescheduled": "Maintenance rescheduled",
        "started": "Maintenance started", "extended": "Maintenance extended",
        "shortened": "Maintenance shortened", "completed": "Maintenance complete",
        "cancelled": "Maintenance cancelled", "outcome_completed": "Completed",
        "outcome_cancelled": "Cancelled",
        "planned_window": "Planned window", "new_window": "New window",
        "old_window": "Previous window", "new_end": "Now expected to end",
        "old_end": "Previously expected to end", "planned_end": "Expected to end",
        "unsubscribe_title": "Unsubscribe", "unsubscribe_ask": "Stop receiving {what}?",
        "unsubscribe_button": "Unsubscribe", "unsubscribed_title": "You are unsubscribed",
        "unsubscribed": "You will no longer receive {what}.", "unsubscribed_on": "Unsubscribed on",
        "resubscribe_ask": "Changed your mind?",
        "resubscribe_button": "Subscribe again", "resubscribed_title": "You are subscribed again",
        "resubscribed": "You will receive {what} again.", "unknown_link": "Unknown link",
        "unknown_link_text": "This unsubscribe link does not exist (any more).",
        "what_email": "our incident and maintenance notices at {address}",
        "what_other": "our incident and maintenance notices on {channel}",
        "not_found": "Page not found",
    },
}  # fmt: skip


def _language(locale: str) -> str:
    return locale.replace("-", "_").split("_")[0].lower()


def speaks(locale: str) -> bool:
    """Whether the pages have words in `locale`'s language (else they read English)."""
    return _language(locale) in _PAGE_WORDS


def page_words(locale: str) -> dict[str, str]:
    """The pages' words in `locale`'s language ("fr_CA" → French), English for any other."""
    return _PAGE_WORDS.get(_language(locale), _PAGE_WORDS["en"])


def component_words(locale: str) -> dict[str, str]:
    """A component status in plain words: {"partial_outage": "Panne partielle", …}."""
    return _COMPONENT_WORDS.get(_language(locale), _COMPONENT_WORDS["en"])
