"""A preview as a JSON document — every channel × locale rendering, the linter's findings, who would
read the default locale — exactly what `broadcaster preview --json` prints and `POST /api/v1/preview`
answers."""

from __future__ import annotations

from collections.abc import Sequence

from broadcaster.compose.lint import Finding
from broadcaster.publishing.drafting import Fallback, Preview

__all__ = ["fallback_dict", "finding_dict", "preview_dict"]


def finding_dict(finding: Finding) -> dict[str, object]:
    return {
        "rule": finding.rule,
        "severity": finding.severity,
        "message": finding.message,
        "locale": finding.locale,
        "channel": finding.channel,
        "excerpt": finding.excerpt,
    }


def fallback_dict(fallback: Fallback) -> dict[str, object]:
    return {"locale": fallback.locale, "subscribers": fallback.readers, "missing": list(fallback.missing)}


def preview_dict(result: Preview, fallbacks: Sequence[Fallback]) -> dict[str, object]:
    return {
        "renders": {
            channel: {
                locale: {"title": m.title, "parts": list(m.parts), "html": m.html}
                for locale, m in per.items()
            }
            for channel, per in result.renders.items()
        },
        "findings": [finding_dict(f) for f in result.findings],
        "untranslated": {locale: list(names) for locale, names in result.untranslated.items()},
        "fallbacks": [fallback_dict(f) for f in fallbacks],
    }
