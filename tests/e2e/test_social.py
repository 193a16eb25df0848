"""One incident's story on the live social channels: first post, then follow-ups in its thread."""

from __future__ import annotations

import pytest

from broadcaster.db import SessionFactory
from tests.conftest import make_settings
from tests.e2e.helpers import deliver, draft, follow_up, open_, resolve
from tests.peers.graph_api import GraphApiPeer

pytestmark = pytest.mark.slow


async def test_facebook_page_gets_one_post_and_follow_ups_as_comments(
    database_url: str, sessions: SessionFactory
) -> None:
    with GraphApiPeer() as graph:
        facebook = {
            "page_id": graph.page_id,
            "page_access_token": "PAGE-TOKEN",
            "graph_base_url": graph.base_url,
        }
        settings = make_settings(database_url, channels={"facebook": facebook})
        first = draft(
            "investigating", "Le paiement échoue. Désolés, on enquête.", "Payment fails. Sorry, on it."
        )
        opened = await open_(sessions, settings, first, force=True)
        assert opened.incident.id is not None
        assert (await deliver(sessions, settings, opened))["facebook"] == {"sent": 1}
        second = await follow_up(
            sessions,
            settings,
            opened.incident.id,
            draft(
                "identified",
                "Cause trouvée, correctif en cours. Désolés.",
                "Cause found, fix under way. Sorry.",
            ),
        )
        assert (await deliver(sessions, settings, second))["facebook"] == {"sent": 1}
        third = await resolve(
            sessions,
            settings,
            opened.incident.id,
            draft(
                "resolved",
                "Tout fonctionne. Merci pour votre patience.",
                "All good. Thank you for your patience.",
            ),
        )
        assert (await deliver(sessions, settings, third))["facebook"] == {"sent": 1}

        assert len(graph.posts) == 1
        post_id = graph.posts[0]["id"]
        assert "Le paiement échoue" in graph.posts[0]["message"]
        assert [c["parent"] for c in graph.comments] == [post_id, post_id]
        assert "Cause trouvée" in graph.comments[0]["message"]
        assert "Merci pour votre patience" in graph.comments[1]["message"]
        assert {r["version"] for r in graph.posts + graph.comments} == {"v21.0"}
