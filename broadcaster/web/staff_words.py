"""The words of the staff's sign-in and account pages, in French and English."""

from __future__ import annotations

__all__ = ["staff_language", "staff_words"]

_WORDS = {
    "fr": {
        "sign_in": "Connexion", "email": "Adresse e-mail", "password": "Mot de passe",
        "code": "Code de l’application d’authentification (ou code de secours)",
        "code_hint": "Laissez vide si vous n’avez pas encore configuré la double authentification.",
        "submit_sign_in": "Se connecter", "password_set": "Mot de passe enregistré : connectez-vous.",
        "setup": "Choisir votre mot de passe",
        "new_password": "Nouveau mot de passe (12 caractères au moins)",
        "again": "Le même, encore une fois", "save": "Enregistrer",
        "mismatch": "Les deux mots de passe diffèrent.",
        "account": "Votre compte", "role": "Rôle", "second_factor": "Double authentification",
        "on": "activée", "off": "non configurée", "enrol": "Configurer la double authentification",
        "enrol_needed": "Votre rôle exige la double authentification : configurez-la pour continuer.",
        "scan": "Scannez ce code avec votre application (Aegis, Google Authenticator, 1Password…),"
                " ou saisissez la clé :",
        "confirm_code": "Code affiché par l’application", "confirm": "Activer",
        "recovery": "Vos codes de secours",
        "recovery_hint": "Chacun sert une fois, si vous perdez votre téléphone. Gardez-les en lieu sûr :"
                         " ils ne seront plus affichés.",
        "log_out": "Se déconnecter", "log_out_everywhere": "Se déconnecter partout",
        "logged_out_everywhere": "Toutes vos sessions sont fermées.",
        "last_login": "Dernière connexion",
    },
    "en": {
        "sign_in": "Sign in", "email": "E-mail address", "password": "Password",
        "code": "Code from your authenticator app (or a recovery code)",
        "code_hint": "Leave empty if you have not set up two-factor authentication yet.",
        "submit_sign_in": "Sign in", "password_set": "Password saved: sign in.",
        "setup": "Choose your password", "new_password": "New password (at least 12 characters)",
        "again": "The same again", "save": "Save", "mismatch": "The two passwords differ.",
        "account": "Your account", "role": "Role", "second_factor": "Two-factor authentication",
        "on": "on", "off": "not set up", "enrol": "Set up two-factor authentication",
        "enrol_needed": "Your role requires two-factor authentication: set it up to go on.",
        "scan": "Scan this code with your app (Aegis, Google Authenticator, 1Password…), or type the key:",
        "confirm_code": "Code shown by the app", "confirm": "Turn on",
        "recovery": "Your recovery codes",
        "recovery_hint": "Each works once, if you lose your phone. Keep them somewhere safe:"
                         " they will not be shown again.",
        "log_out": "Sign out", "log_out_everywhere": "Sign out everywhere",
        "logged_out_everywhere": "All your sessions are closed.",
        "last_login": "Last sign-in",
    },
}  # fmt: skip


def staff_language(locale: str) -> str:
    """fr for any French locale, else en: the staff pages speak these two."""
    return "fr" if locale.lower().startswith("fr") else "en"


def staff_words(locale: str) -> dict[str, str]:
    return _WORDS[staff_language(locale)]
