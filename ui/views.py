"""How stored messages, live replies and sessions look in the chat.

Pure functions from library objects to Gradio values, kept apart from the event wiring
in ``ui.app`` so the look can change without touching behaviour. The CSS classes below
are the stable hooks the browser tests (and any theming) rely on.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from assistant.reply import STOPPED
from assistant.reply_record import ReplyRecord
from memory.store import SessionInfo, StoredMessage
from ui.verdicts import (
    LABELS,
    NOT_VERIFIED,
    UNVERIFIED_CLASS,
    annotated_html,
    display_verdict,
    evidence_html,
    not_verified,
    safe_markdown,
)

__all__ = ["CSS", "HEAD", "INCOMPLETE_CLASS", "PROVIDER_CLASS", "TYPING", "assistant_content",
           "chat_messages", "chat_view", "citations_html", "header_html", "notice_markdown",
           "session_choices"]

#: A reply's provider caption; one per finished assistant message.
PROVIDER_CLASS = "lm-provider"
#: The marker on a reply that ended at the token limit.
TRUNCATED_CLASS = "lm-truncated"
#: The marker on a reply whose status is not ``ok``.
INCOMPLETE_CLASS = "lm-incomplete"

# The store keeps only an internal error string, so stored failures get a fixed,
# user-safe sentence; a live turn shows the library's own ``Reply.error`` instead.
STORED_STATUS_NOTE = {
    "incomplete": "This reply was cut off before it finished.",
    "error": "The model could not answer this message.",
    "stopped": "You stopped this reply; the text so far is kept.",
}

#: Shown in the reply bubble until the first chunk arrives (a local model may take a while).
TYPING = ('<span class="lm-typing" role="status" aria-label="The assistant is writing">'
          "<i></i><i></i><i></i></span>")

# Gradio's per-message copy button copies the raw message, caption included; this keeps
# the clipboard to the reply itself. Presentation only: no effect on what is stored.
HEAD = """<script>
(() => {
  const clip = navigator.clipboard;
  if (!clip || !clip.writeText) return;
  const write = clip.writeText.bind(clip);
  clip.writeText = (text) =>
    write(String(text).replace(/\\s*<div class="lm-meta">[\\s\\S]*?<\\/div>\\s*$/, ""));
})();
</script>"""

CSS = """
#lm-chat button[aria-label="Clear"] { display: none; }  /* history lives in the store */
#lm-header .lm-head { display: flex; align-items: baseline; gap: .75rem; padding: .25rem 0 .5rem; }
#lm-header .lm-brand { font-size: 1.35rem; font-weight: 700; letter-spacing: -.01em; }
#lm-header .lm-model { font-size: .8rem; padding: .1rem .55rem; border-radius: 999px;
  background: var(--block-background-fill); border: 1px solid var(--border-color-primary);
  color: var(--body-text-color-subdued); font-family: var(--font-mono); }
#lm-header .lm-user { margin-left: auto; font-size: .85rem; color: var(--body-text-color-subdued); }
#lm-notice { border: 1px solid #f59e0b; background: rgba(245, 158, 11, .10);
  border-radius: var(--radius-lg); padding: .6rem 1rem; }
#lm-notice p { margin: .2rem 0; }
#lm-sessions { max-height: 55vh; overflow-y: auto; }
/* The rename box is a form field, not another chat in the list. */
#lm-rename-box { flex-wrap: wrap; gap: 4px; margin-top: .5rem; padding-top: .5rem;
  border-top: 1px solid var(--border-color-primary); }
#lm-rename-box::before { content: "Title of this chat"; width: 100%; font-size: .75rem;
  color: var(--body-text-color-subdued); }
#lm-title input { font-size: .85rem; border: 1px dashed var(--border-color-primary);
  background: transparent; box-shadow: none; }
/* A long message scrolls inside the box instead of growing the page past the header. */
#lm-input textarea { max-height: 30vh !important; overflow-y: auto !important; }
#lm-sessions .wrap { flex-direction: column; gap: 2px; }
#lm-sessions label { width: 100%; border-radius: var(--radius-md); white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; }
#lm-sessions label > span { overflow: hidden; text-overflow: ellipsis; }
#lm-sessions input[type=radio] { display: none; }
#lm-sessions label { background: transparent; border: none; box-shadow: none; }
#lm-sessions label:hover { background: var(--background-fill-secondary); }
#lm-sessions label.selected { background: var(--color-accent-soft);
  color: var(--body-text-color); font-weight: 600; }
.lm-meta { margin-top: .5rem; font-size: .75rem; color: var(--body-text-color-subdued);
  display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
.lm-provider { font-family: var(--font-mono); }
.lm-incomplete { color: #b45309; font-weight: 600; }
.lm-badge { padding: 0 .4rem; border-radius: 999px; background: rgba(245, 158, 11, .15); }
.lm-citations { border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg);
  padding: .5rem .8rem; font-size: .85rem; }
.lm-cite-head { font-weight: 600; margin-bottom: .25rem; }
.lm-cite summary { cursor: pointer; }
.lm-origin { font-size: .75rem; color: var(--body-text-color-subdued); }
.lm-cite[data-verdict=unsupported] .lm-verdict, .lm-cite[data-verdict=invalid_citation] .lm-verdict
  { color: #b91c1c; font-weight: 600; }
.lm-cite[data-verdict=supported] .lm-verdict { color: #15803d; }
.lm-cite-sentence[data-verdict=unsupported] .lm-verdict,
.lm-cite-sentence[data-verdict=invalid_citation] .lm-verdict { color: #b91c1c; font-weight: 600; }
.lm-cite-sentence[data-verdict=supported] .lm-verdict { color: #15803d; }
.lm-stats { display: flex; flex-wrap: wrap; gap: .75rem; }
.lm-stat { border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg);
  padding: .4rem .9rem; display: flex; flex-direction: column; min-width: 8rem; }
.lm-stat b { font-size: 1.3rem; }
.lm-stat span { font-size: .75rem; color: var(--body-text-color-subdued); }
.lm-sidebar-title { font-weight: 700; font-size: 1.1rem; }
.lm-claim.lm-v-supported { border-bottom: 2px solid #15803d; }
.lm-claim.lm-v-partly { border-bottom: 2px dashed #b45309; }
.lm-claim.lm-v-not_supported { background: rgba(185, 28, 28, .10);
  border-bottom: 2px solid #b91c1c; }
.lm-claim.lm-v-not_checkable { border-bottom: 1px dotted var(--body-text-color-subdued); }
.lm-vbadge { font-size: .72rem; padding: 0 .35rem; border-radius: 999px; white-space: nowrap; }
.lm-vbadge.lm-v-supported, .lm-cite[data-shown=supported] .lm-verdict { color: #15803d; }
.lm-vbadge.lm-v-partly, .lm-cite[data-shown=partly] .lm-verdict { color: #b45309; }
.lm-vbadge.lm-v-not_supported, .lm-cite[data-shown=not_supported] .lm-verdict
  { color: #b91c1c; font-weight: 600; }
.lm-vbadge.lm-v-not_checkable { color: var(--body-text-color-subdued); }
.lm-unverified { color: #b45309; font-weight: 600; }
mark.lm-evidence { background: rgba(250, 204, 21, .45); padding: 0 .1rem; }
footer { display: none !important; }
.lm-typing { display: inline-flex; gap: 4px; padding: .35rem 0; }
.lm-typing i { width: 7px; height: 7px; border-radius: 50%; background: currentColor;
  opacity: .3; animation: lm-blink 1.2s infinite ease-in-out; }
.lm-typing i:nth-child(2) { animation-delay: .2s; }
.lm-typing i:nth-child(3) { animation-delay: .4s; }
@keyframes lm-blink { 0%, 80%, 100% { opacity: .25; } 40% { opacity: .9; } }
"""


def header_html(model_label: str | None, user_id: str | None = None) -> str:
    """The title bar: product name, which model answers by default, who is signed in."""
    badge = (f'<span class="lm-model" title="default model">{html.escape(model_label)}</span>'
             if model_label else '<span class="lm-model">model unavailable</span>')
    who = f'<span class="lm-user">{html.escape(user_id)}</span>' if user_id else ""
    return f'<div class="lm-head"><span class="lm-brand">lastmile</span>{badge}{who}</div>'


def notice_markdown(notice: str | None) -> str:
    """The operator's banner (e.g. how to install a missing model), or nothing."""
    return f"**Heads up:** {notice}" if notice else ""


def _close_fence(text: str) -> str:
    """A reply cut off inside a code block would swallow the caption; close it."""
    return text + "\n```" if text.count("```") % 2 else text


def _meta(latency_ms: float | None, tokens: int | None, cost: float | None,
          prompt_tokens: int | None = None) -> list[str]:
    parts = []
    if latency_ms:
        parts.append(f'<span class="lm-latency">{latency_ms / 1000:.1f} s</span>')
    if tokens:  # the reply's own tokens; what the prompt cost is in the tooltip
        prompt = f' title="the prompt was {prompt_tokens} tokens"' if prompt_tokens else ""
        parts.append(f'<span class="lm-tokens"{prompt}>reply {tokens} tokens</span>')
    if cost:
        parts.append(f'<span class="lm-cost">${cost:.4f}</span>')
    return parts


def assistant_content(text: str, provider: str | None, status: str = "ok",
                      note: str | None = None, finish_reason: str | None = None, *,
                      latency_ms: float | None = None, tokens: int | None = None,
                      prompt_tokens: int | None = None,
                      cost: float | None = None, badges: Iterable[str] = (),
                      checks: Sequence[Any] | None = None) -> str:
    """A finished reply: its text (each checked claim with its verdict beside it, from
    ``checks``), then a caption naming the provider, latency, tokens and cost (and any
    problem or badge such as "pending review", or "not verified against your documents"
    when the answer claims something no shown source supports)."""
    parts = [f'<span class="{PROVIDER_CLASS}">{html.escape(provider or "unknown")}</span>',
             *_meta(latency_ms, tokens, cost, prompt_tokens)]
    parts += [f'<span class="lm-badge">{html.escape(b)}</span>' for b in badges]
    if status == "ok" and text.strip() and not_verified(text, checks):
        parts.append(f'<span class="{UNVERIFIED_CLASS}">⚠ {NOT_VERIFIED}</span>')
    if status == "ok" and finish_reason == "length":
        parts.append(f'<span class="{TRUNCATED_CLASS}">· stopped at the reply length limit</span>')
    if status not in ("ok", "pending_review"):
        label = {"incomplete": "Incomplete", "stopped": "Stopped"}.get(status, "No reply")
        sentence = note or STORED_STATUS_NOTE.get(status, "")
        # The status rides in a class too: Gradio's chat sanitizer drops data- attributes.
        parts.append(f'<span class="{INCOMPLETE_CLASS} lm-status-{html.escape(status)}" '
                     f'data-status="{html.escape(status)}">'
                     f"⚠ {label} · {html.escape(sentence)}</span>")
    shown = [c for c in checks or () if display_verdict(c)]
    body = (annotated_html(text, shown) if shown else safe_markdown(_close_fence(text))).rstrip()
    caption = f'<div class="lm-meta">{"".join(parts)}</div>'
    return f"{body}\n\n{caption}" if body else caption


def _badges(msg: StoredMessage) -> list[str]:
    record = ReplyRecord.from_dict(msg.context)
    badges = []
    if msg.status == "pending_review" or record.review_status == "pending":
        badges.append("pending review")
    if record.notice:
        badges.append(record.notice)
    return badges


#: Shown under a user message whose reply never came (``StoredMessage.interrupted``).
INTERRUPTED_MARK = "⚠ interrupted — no reply"


def chat_messages(history: Iterable[StoredMessage]) -> list[dict[str, str]]:
    """Stored messages as Gradio chat messages (oldest first)."""
    return chat_view(history)[0]


def chat_view(history: Iterable[StoredMessage], feedback: dict[int, int] | None = None,
              costs: dict[int, float] | None = None, errors: dict[int, str] | None = None
              ) -> tuple[list[dict[str, str]], list[list[Any]], list[str | None]]:
    """(chat messages, ``[message_id, role]`` per bubble, like state per reply).

    Superseded messages (regenerated or edited away) are left out; tool traffic is not
    shown. ``costs`` maps a user message id to the USD its turn cost; ``errors`` gives a
    live turn's own error sentence for its reply (the store keeps only a generic one).
    """
    feedback, costs, errors = feedback or {}, costs or {}, errors or {}
    out: list[dict[str, str]] = []
    ids: list[list[Any]] = []
    liked: list[str | None] = []
    turn: int | None = None
    live = [m for m in history if m.status != "superseded"]
    # A stopped reply leaves its message "interrupted" (issue 12's machinery), yet it came.
    replied = {prev.id for prev, nxt in itertools.pairwise(live)
               if prev.role == "user" and nxt.role == "assistant" and nxt.content}
    for msg in live:
        if msg.role == "user":
            turn = msg.id
            # A turn whose reply never came (issue 12): marked here, never in the stored text.
            mark = (f'\n\n<span class="lm-interrupted">{INTERRUPTED_MARK}</span>'
                    if msg.interrupted and msg.id not in replied else "")
            out.append({"role": "user", "content": msg.content + mark})
        elif msg.role == "assistant" and (msg.content or msg.status != "ok"):
            status = "stopped" if msg.status == "incomplete" and msg.error == STOPPED else msg.status
            out.append({"role": "assistant", "content": assistant_content(
                msg.content, msg.provider, status, errors.get(msg.id),
                finish_reason=msg.finish_reason,
                latency_ms=msg.latency_ms, tokens=msg.completion_tokens or None,
                prompt_tokens=msg.prompt_tokens,
                cost=costs.get(turn) if turn is not None else None, badges=_badges(msg),
                checks=ReplyRecord.from_dict(msg.context).checks)})
            liked.append({1: "Like", -1: "Dislike"}.get(feedback.get(msg.id, 0)))
        else:
            continue
        ids.append([msg.id, msg.role])
    return out, ids, liked


_VERDICT = {"supported": LABELS["supported"], "unsupported": LABELS["not_supported"],
            "not_supported": LABELS["not_supported"], "partial": LABELS["partly"],
            "uncited": LABELS["not_checkable"], "not_checkable": LABELS["not_checkable"],
            "invalid_citation": "✗ not supported (no such source)"}


def _get(item: Any, *names: str) -> Any:
    for name in names:
        value = item.get(name) if isinstance(item, dict) else getattr(item, name, None)
        if value not in (None, ""):
            return value
    return None


def _sentences_html(citation: Any) -> str:
    """The answer's sentences citing this source, each with its own verdict, so the one
    a source does not back is visible even when others citing it are fine."""
    rows = []
    for check in _get(citation, "sentences") or ():
        verdict = str(_get(check, "verdict") or "uncited")
        seen = _get(check, "evidence")
        quote = (f' <q class="lm-evidence-quote">{html.escape(str(seen))}</q>'
                 if isinstance(seen, str) and seen else "")
        rows.append(f'<li class="lm-cite-sentence" data-verdict="{html.escape(verdict)}" '
                    f'data-shown="{display_verdict(check) or ""}">'
                    f'{html.escape(str(_get(check, "text") or ""))} <span class="lm-verdict">'
                    f'{html.escape(_VERDICT.get(verdict, verdict))}</span>{quote}</li>')
    return f'<ul class="lm-cite-sentences">{"".join(rows)}</ul>' if rows else ""


def _origin_html(item: Any) -> str:
    """Say so when lastmile, not the model, matched a sentence to this source."""
    if _get(item, "origin") != "attributed":
        return ""
    return (' <span class="lm-origin" title="The model did not cite this; lastmile matched '
            'the sentence to the source and checked it.">· attributed by lastmile</span>')


def citations_html(citations: Iterable[Any] | None) -> str:
    """The sources panel under the chat: each cited source with title, snippet and verdict."""
    items = list(citations or [])
    if not items:
        return ""
    rows = []
    for item in items:
        verdict = str(_get(item, "verdict") or "uncited")
        title = _get(item, "title", "path") or "source"
        snippet = str(_get(item, "snippet", "text") or "")[:400]
        # The evidence the check found is highlighted; without one, the snippet is it.
        spans = [e for c in _get(item, "sentences") or () if isinstance(e := _get(c, "evidence"), str)]
        shown = {"partial": "partly", "unsupported": "not_supported",
                 "invalid_citation": "not_supported"}.get(verdict, verdict)
        rows.append(
            f'<details class="lm-cite" data-verdict="{html.escape(verdict)}" '
            f'data-shown="{html.escape(shown)}">'
            f'<summary><b>[{html.escape(str(_get(item, "source_id", "id") or "?"))}]</b> '
            f'{html.escape(str(title))} <span class="lm-verdict">'
            f'{html.escape(_VERDICT.get(verdict, verdict))}</span>{_origin_html(item)}</summary>'
            f'<blockquote>{evidence_html(snippet, spans or [snippet])}</blockquote>'
            f'{_sentences_html(item)}</details>')
    return '<div class="lm-citations"><div class="lm-cite-head">Sources</div>' + "".join(rows) + "</div>"


def session_choices(sessions: Iterable[SessionInfo]) -> list[tuple[str, str]]:
    """(label, session_id) pairs for the sidebar list, most recent first."""
    return [(s.title, s.session_id) for s in sessions]
