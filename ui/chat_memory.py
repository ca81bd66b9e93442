"""The in-chat "memory updated" notice: after a turn, what the facts job learned, updated
or forgot from that message, a link to the fact in the Memory tab, and an undo.

The job runs in the background (the outbox), so the notice waits for it a little and
gives up quietly: no notice is better than a late one blocking the page. Undo goes
through ``bot.facts`` with the viewer's id like every other memory control: a learned
fact is forgotten (erased), an updated one gets its previous text back as a new
version. A forgotten fact's text is erased by design, so there is nothing to undo.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

from assistant.orchestrator import Assistant

__all__ = ["MemoryChange", "changes_from", "notice_html", "undo", "wait_for_changes"]

#: The notice's link: opens the Memory tab, then marks the fact's row (its id rides in
#: the notice's ``data-fact``), scrolls to it and puts its id in the "Fact id" box, ready
#: to correct or forget. A forgotten fact has no row: the tab just opens.
OPEN_MEMORY_JS = """() => {
  const tab = [...document.querySelectorAll('#lm-tabs button[role=tab]')]
    .find((b) => b.textContent.trim() === 'Memory');
  if (tab) tab.click();
  const wanted = [...document.querySelectorAll(
    '#lm-memory-changes [data-fact]:not([data-op=forgotten])')].map((li) => li.dataset.fact);
  let tries = 0;
  const mark = () => {
    const rows = [...document.querySelectorAll('#lm-facts tbody tr')];
    const row = rows.find((r) => wanted.includes((r.querySelector('td')?.textContent || '').trim()));
    if (!row) { if (wanted.length && ++tries < 60) setTimeout(mark, 250); return; }
    rows.forEach((r) => r.classList.remove('lm-linked'));
    row.classList.add('lm-linked');
    row.scrollIntoView({block: 'center'});
    const box = document.querySelector('#lm-fact-id textarea, #lm-fact-id input');
    if (box) {
      box.value = row.querySelector('td').textContent.trim();
      box.dispatchEvent(new Event('input', {bubbles: true}));
    }
  };
  setTimeout(mark, 250);
}"""


@dataclass(frozen=True)
class MemoryChange:
    """One fact change a message caused: ``op`` learned / updated / forgotten."""

    op: str
    fact_id: int
    text: str
    previous_text: str = ""
    undoable: bool = True
    key: str = ""  # what the fact is about (``home``): all a forgotten one still says


def changes_from(bot: Assistant, user_id: str, message_id: int) -> list[MemoryChange]:
    """What message ``message_id`` did to the user's facts (read from their history).
    Forgetting a fact erases every version of it: that is one change, not one per version."""
    found: list[MemoryChange] = []
    forgot: dict[str, MemoryChange] = {}
    facts = bot.facts.list(user_id, include_history=True)
    by_id = {f.id: f for f in facts}
    for fact in sorted(facts, key=lambda f: f.id):
        made_here = bool(fact.source_ids) and fact.source_ids[0] == message_id \
            and fact.extractor != "user-edit"
        if made_here and fact.status == "valid" and fact.supersedes is None:
            found.append(MemoryChange("learned", fact.id, fact.text))
        elif made_here and fact.status == "valid":
            old = by_id.get(fact.supersedes or -1)
            found.append(MemoryChange("updated", fact.id, fact.text, old.text if old else ""))
        elif (fact.reason or "").endswith(f"(msg-{message_id})") and fact.status in ("forgotten", "invalid"):
            forgot[fact.key or str(fact.id)] = MemoryChange("forgotten", fact.id, fact.text,
                                                            undoable=False, key=fact.key)
    return found + list(forgot.values())


def wait_for_changes(bot: Assistant, user_id: str, message_id: int, *,
                     wait_s: float = 8.0) -> list[MemoryChange]:
    """Poll for the message's fact changes until the facts jobs are done (or ``wait_s``)."""
    if not bot.facts.enabled:
        return []
    deadline = time.monotonic() + wait_s
    jobs = getattr(bot, "jobs", None)
    while True:
        changes = changes_from(bot, user_id, message_id)
        idle = jobs is not None and not jobs.pending(["facts"], include_delayed=True)
        if changes or idle or time.monotonic() > deadline:
            return changes
        time.sleep(0.25)


_VERB = {"learned": "Learned", "updated": "Updated", "forgotten": "Forgot"}


def notice_html(changes: list[MemoryChange]) -> str:
    """The notice above the input: one line per change, a Memory-tab link, undo hints."""
    if not changes:
        return ""
    rows = []
    for c in changes:
        what = html.escape(c.text) if c.text else \
            f"what you told me about your {html.escape(c.key)} (its text is erased)" if c.key else \
            "a fact (its text is erased)"
        before = f' <span class="lm-mem-was">(was: {html.escape(c.previous_text)})</span>' \
            if c.previous_text else ""
        rows.append(f'<li class="lm-mem-change" data-op="{c.op}" data-fact="{c.fact_id}">'
                    f"<b>{_VERB[c.op]}</b> {what}{before}</li>")
    return ('<div class="lm-mem-notice" role="status"><span class="lm-mem-head">🧠 Memory '
            f'updated</span><ul>{"".join(rows)}</ul></div>')


def undo(bot: Assistant, user_id: str, changes: list[dict[str, Any]]) -> str:
    """Undo the notice's changes (as the page kept them); returns a sentence for a toast."""
    done = []
    for c in changes:
        change = MemoryChange(**c)
        if not change.undoable:
            continue
        if change.op == "learned":
            bot.facts.forget(user_id, change.fact_id)
        elif change.op == "updated" and change.previous_text:
            bot.facts.edit(user_id, change.fact_id, change.previous_text)
        else:
            continue
        done.append(change.op)
    return "Undone." if done else "Nothing to undo."
