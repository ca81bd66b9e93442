"""How stored messages, live replies and sessions look in the chat.

Pure functions from library objects to Gradio values, kept apart from the event wiring
in ``ui.app`` so the look can change without touching behaviour. The CSS classes below
are the stable hooks the browser tests (and any theming) rely on.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from memory.store import SessionInfo, StoredMessage

__all__ = ["CSS", "HEAD", "INCOMPLETE_CLASS", "PROVIDER_CLASS", "TYPING", "assistant_content",
           "chat_messages", "header_html", "notice_markdown", "session_choices"]

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
#lm-notice { border: 1px solid #f59e0b; background: rgba(245, 158, 11, .10);
  border-radius: var(--radius-lg); padding: .6rem 1rem; }
#lm-notice p { margin: .2rem 0; }
#lm-sessions { max-height: 55vh; overflow-y: auto; }
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
.lm-sidebar-title { font-weight: 700; font-size: 1.1rem; }
footer { display: none !important; }
.lm-typing { display: inline-flex; gap: 4px; padding: .35rem 0; }
.lm-typing i { width: 7px; height: 7px; border-radius: 50%; background: currentColor;
  opacity: .3; animation: lm-blink 1.2s infinite ease-in-out; }
.lm-typing i:nth-child(2) { animation-delay: .2s; }
.lm-typing i:nth-child(3) { animation-delay: .4s; }
@keyframes lm-blink { 0%, 80%, 100% { opacity: .25; } 40% { opacity: .9; } }
"""


def header_html(model_label: str | None) -> str:
    """The title bar: product name plus which model answers by default."""
    badge = (f'<span class="lm-model" title="default model">{html.escape(model_label)}</span>'
             if model_label else '<span class="lm-model">model unavailable</span>')
    return f'<div class="lm-head"><span class="lm-brand">lastmile</span>{badge}</div>'


def notice_markdown(notice: str | None) -> str:
    """The operator's banner (e.g. how to install a missing model), or nothing."""
    return f"**Heads up:** {notice}" if notice else ""


def _close_fence(text: str) -> str:
    """A reply cut off inside a code block would swallow the caption; close it."""
    return text + "\n```" if text.count("```") % 2 else text


def assistant_content(text: str, provider: str | None, status: str = "ok",
                      note: str | None = None, finish_reason: str | None = None) -> str:
    """A finished reply: its text, then a caption naming the provider (and any problem)."""
    parts = [f'<span class="{PROVIDER_CLASS}">{html.escape(provider or "unknown")}</span>']
    if status == "ok" and finish_reason == "length":
        parts.append(f'<span class="{TRUNCATED_CLASS}">· stopped at the reply length limit</span>')
    if status != "ok":
        label = "Incomplete" if status == "incomplete" else "No reply"
        sentence = note or STORED_STATUS_NOTE.get(status, "")
        parts.append(f'<span class="{INCOMPLETE_CLASS}" data-status="{html.escape(status)}">'
                     f"⚠ {label} · {html.escape(sentence)}</span>")
    body = _close_fence(text).rstrip()
    caption = f'<div class="lm-meta">{"".join(parts)}</div>'
    return f"{body}\n\n{caption}" if body else caption


def chat_messages(history: Iterable[StoredMessage]) -> list[dict[str, str]]:
    """Stored messages as Gradio chat messages (oldest first)."""
    out: list[dict[str, str]] = []
    for msg in history:
        if msg.role == "user":
            out.append({"role": "user", "content": msg.content})
        elif msg.role == "assistant":
            out.append({"role": "assistant",
                        "content": assistant_content(msg.content, msg.provider, msg.status,
                                                    finish_reason=msg.finish_reason)})
    return out


def session_choices(sessions: Iterable[SessionInfo]) -> list[tuple[str, str]]:
    """(label, session_id) pairs for the sidebar list, most recent first."""
    return [(s.title, s.session_id) for s in sessions]
