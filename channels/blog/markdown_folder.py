"""Markdown folder publisher: one file per incident in a Hugo/Jekyll content folder.

The first update creates `<YYYY-MM-DD>-<slug>-<hash6>.md` (front matter + timeline); each follow-up
rewrites it atomically (temp file in the same folder, then `os.replace`) with the new section on top.
Front-matter values are JSON, which is valid YAML: titles with colons or quotes stay intact.
Each section starts with `<!-- update: KEY -->`, so a retried update is never written twice.
The body comes from the composer with what people wrote already escaped (`channels.blog.markup`); the
title and status in the front matter get `<` and `>` as references, since a theme may print them raw.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING

from channels.base import CheckResult, Unauthorized, Unavailable
from channels.blog.settings import BlogSettings

if TYPE_CHECKING:
    from channels.blog.entry import BlogEntry

__all__ = ["MarkdownFolderPublisher", "front_matter", "render_document", "slugify"]

_NAME = re.compile(r"\d{4}-\d{2}-\d{2}-[a-z0-9-]+-[0-9a-f]{6}\.md")
_MARKER_START = "<!-- update: "
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_ATX_HEADING = re.compile(r"^(\s{0,3})(#{1,5})(?=\s|$)")
_MANAGED = ("title", "lastmod", "status")
_MAX_SLUG = 60
_CONFIG_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR}


def slugify(title: str) -> str:
    """An ASCII file-name slug of at most 60 characters: "Résolu : Paiement" → "resolu-paiement"."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_title.lower()).strip("-")
    return slug[:_MAX_SLUG].rstrip("-") or "incident"


def _yaml(value: object) -> str:
    # JSON strings are YAML double-quoted scalars; U+2028/9 are line breaks to YAML 1.1 readers.
    return json.dumps(value, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _front_text(text: str) -> str:
    # No tag can start without "<"; "&" and quotes stay, as Hugo escapes them again when printing.
    return text.replace("<", "&lt;").replace(">", "&gt;")


def front_matter(fields: dict[str, object]) -> str:
    """`---` + one `key: json-value` line per field + `---`."""
    lines = [f"{key}: {_yaml(value)}" for key, value in fields.items()]
    return "---\n" + "\n".join(lines) + "\n---\n"


def _section(entry: BlogEntry) -> str:
    """`<!-- update: KEY -->`, `## <time> — <status>`, then the update's Markdown one level down."""
    lines: list[str] = []
    fenced = False
    for line in entry.markdown.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            line = _ATX_HEADING.sub(r"\1\2#", line)
        lines.append(line)
    body = "\n".join(lines).strip("\n")
    return f"{_MARKER_START}{entry.marker} -->\n## {entry.heading}\n\n{body}\n"


def render_document(entry: BlogEntry) -> str:
    """A new incident file holding `entry` as its only section."""
    when = entry.published_at.isoformat(timespec="seconds")
    fields: dict[str, object] = {
        "title": _front_text(entry.title),
        "date": when,
        "lastmod": when,
        "draft": False,
        "status": _front_text(entry.status),
        "tags": ["incident"],
    }
    return f"{front_matter(fields)}\n{_section(entry)}"


def _add_section(document: str, entry: BlogEntry) -> str:
    """`document` with its managed front-matter keys updated and `entry` above the newest section."""
    head, body = _split(document.replace("\r\n", "\n"))  # a file saved by a Windows editor
    values = {"title": _front_text(entry.title), "lastmod": entry.published_at.isoformat(timespec="seconds")}
    values["status"] = _front_text(entry.status)
    seen: set[str] = set()
    lines = []
    for line in head:  # keys we do not manage (hand-added ones too) are kept verbatim
        key = line.split(":", 1)[0].strip()
        if key in values and ":" in line and not line[:1].isspace():
            line = f"{key}: {_yaml(values[key])}"
            seen.add(key)
        lines.append(line)
    lines += [f"{key}: {_yaml(values[key])}" for key in _MANAGED if key not in seen]
    at = body.find(_MARKER_START)
    at = at if at >= 0 else len(body) - len(body.lstrip("\n"))
    body = f"{body[:at]}{_section(entry)}\n{body[at:]}"
    return "---\n" + "\n".join(lines) + "\n---\n" + (body if body.startswith("\n") else "\n" + body)


def _split(document: str) -> tuple[list[str], str]:
    """Front-matter lines and the body; a file without front matter gets an empty one."""
    if document.startswith("---\n"):
        end = document.find("\n---\n", 3)
        if end >= 0:
            return document[4:end].splitlines(), document[end + 5 :]
    return [], document


class MarkdownFolderPublisher:
    """Writes incident files into `markdown_dir`; file I/O runs in a worker thread."""

    def __init__(self, settings: BlogSettings) -> None:
        self._dir = settings.markdown_dir.strip()

    def __repr__(self) -> str:
        return f"MarkdownFolderPublisher(markdown_dir={self._dir!r})"

    async def publish(self, entry: BlogEntry, thread_ref: str) -> str:
        """Add `entry` to file `thread_ref`, or start the incident's file; return the file name."""
        return await asyncio.to_thread(self._publish, entry, thread_ref)

    def _publish(self, entry: BlogEntry, thread_ref: str) -> str:
        folder = self._folder()
        marker = f"{_MARKER_START}{entry.marker} -->"
        if _NAME.fullmatch(thread_ref):  # anything else (another publisher's id) starts a new file
            document = self._read(folder / thread_ref)
            if document is not None:
                if marker not in document:  # else: a retry, the section is already there
                    self._write(folder / thread_ref, _add_section(document, entry))
                return thread_ref
        digest = hashlib.sha256(entry.key.encode("utf-8")).hexdigest()[:6]
        # A retried first update (perhaps after midnight): find the file it already wrote.
        for existing in sorted(folder.glob(f"*-{digest}.md")):
            if _NAME.fullmatch(existing.name) and marker in (self._read(existing) or ""):
                return existing.name
        name = f"{entry.published_at:%Y-%m-%d}-{slugify(entry.title)}-{digest}.md"
        self._write(folder / name, render_document(entry))
        return name

    def _folder(self) -> Path:
        if not self._dir:
            raise Unauthorized("no Markdown folder configured: set channels.blog.markdown_dir")
        folder = Path(self._dir).expanduser()
        if not folder.is_dir():
            raise Unauthorized(f"cannot write to blog.markdown_dir {str(folder)!r}: no such folder")
        return folder

    def _read(self, path: Path) -> str | None:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None  # deleted by hand: the incident starts a new file
        except (OSError, UnicodeDecodeError) as exc:
            raise self._error(path.parent, exc) from None

    def _write(self, path: Path, text: str) -> None:
        """Atomic: readers (a running `hugo server`) see the old file or the new one, never half."""
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        except OSError as exc:
            raise self._error(path.parent, exc) from None
        tmp = ""
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)  # mkstemp makes 0600; keep the file readable by the site builder
            os.replace(tmp, path)
        except OSError as exc:
            if tmp:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise self._error(path.parent, exc) from None

    def _error(self, folder: Path, exc: OSError | UnicodeDecodeError) -> Unauthorized | Unavailable:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        if isinstance(exc, OSError) and exc.errno in _CONFIG_ERRNOS:
            return Unauthorized(f"cannot write to blog.markdown_dir {str(folder)!r}: {detail}")
        return Unavailable(f"writing to blog.markdown_dir {str(folder)!r} failed: {detail}")

    async def check(self) -> CheckResult:
        """The folder exists and a file can be created in it (a real probe, then removed)."""
        return await asyncio.to_thread(self._check)

    def _check(self) -> CheckResult:
        fix = "create the folder (your Hugo content/incidents or Jekyll _posts) and let this user write to it"
        try:
            folder = self._folder()
            fd, probe = tempfile.mkstemp(prefix=".broadcaster-check.", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except Unauthorized as exc:
            return CheckResult(False, exc.reason, fix=fix)
        except OSError as exc:
            return CheckResult(False, self._error(Path(self._dir), exc).reason, fix=fix)
        return CheckResult(True, f"ok: Markdown folder {str(folder)!r} is writable")

    async def aclose(self) -> None:
        """Nothing to release: files are opened and closed per write."""
        return None
