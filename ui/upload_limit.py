"""Files over the upload size limit, refused in words before they are uploaded.

Gradio's page checks each picked or dropped file against the app's ``max_file_size``
(``ui.server`` sets it from ``LASTMILE_INGEST_MAX_FILE_MB``) before uploading, and on a
file over it shows an "Error" toast in KiB ("exceed the maximum allowed size of 976.6
Kb") and drops every file picked with it. ``LIMIT_HEAD`` runs first (a capture-phase
listener on the page): it takes such files out of the pick or the drop, lets the rest
go on to Gradio as usual, and notes the kept-back names and sizes in a hidden field of
that zone; the server turns them into the same sentence as any refused file
(``kept_back``), naming the limit and the setting:

- the chat box (``#lm-input``): the send event reads its field (``CHAT_FIELD``), so the
  line shows under the message, which is sent without the file;
- the Documents tab's upload (``#lm-upload``): its field (``DOCS_FIELD``) holds the
  latest pick's kept-back files, and its own event shows their lines above the upload's
  result (emptied by the next pick).

What the page claims here only ever reaches that person's own page as text.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["CHAT_FIELD", "DOCS_FIELD", "LIMIT_HEAD", "kept_back", "too_big"]

CHAT_FIELD = "lm-attach-refused"
DOCS_FIELD = "lm-upload-refused"
_MAX_ENTRIES = 20  # entries read from a field (a page could claim any number)

LIMIT_HEAD = """<script>
(() => {
  // [the zone, its hidden field, whether picks add up until the field is read]
  const ZONES = [["#lm-input", "#%CHAT%", true], ["#lm-upload", "#%DOCS%", false]];
  const limit = () => Number((window.gradio_config || {}).max_file_size) || Infinity;
  const zoneOf = (el) => ZONES.find(([box]) => el && el.closest && el.closest(box));
  const note = (zone, big) => {
    const [, id, adds] = zone;
    const field = document.querySelector(id + " textarea, " + id + " input");
    if (!field || (!big.length && (adds || !field.value))) return;
    let kept = [];
    if (adds) {
      try { kept = JSON.parse(field.value || "[]"); } catch (err) { kept = []; }
      if (!Array.isArray(kept)) kept = [];
    }
    kept = [...kept, ...big.map((f) => ({name: f.name, size: f.size}))];
    field.value = kept.length ? JSON.stringify(kept) : "";
    field.dispatchEvent(new Event("input", {bubbles: true}));
  };
  const split = (list) => {
    const ok = new DataTransfer(), big = [];
    for (const f of Array.from(list || [])) {
      if (f.size > limit()) big.push(f); else ok.items.add(f);
    }
    return [ok, big];
  };
  document.addEventListener("change", (e) => {
    const input = e.target, zone = zoneOf(input);
    if (!zone || !(input instanceof HTMLInputElement) || input.type !== "file") return;
    const [ok, big] = split(input.files);
    note(zone, big);
    if (!big.length) return;
    input.files = ok.files;
    if (!ok.files.length) { e.stopImmediatePropagation(); input.value = ""; }
  }, true);
  const ours = new WeakSet();
  document.addEventListener("drop", (e) => {
    const zone = zoneOf(e.target);
    if (ours.has(e) || !zone || !e.dataTransfer || !e.dataTransfer.files.length) return;
    const [ok, big] = split(e.dataTransfer.files);
    note(zone, big);
    if (!big.length) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    const again = new DragEvent("drop", {bubbles: true, cancelable: true, composed: true,
                                         dataTransfer: ok});
    ours.add(again);
    e.target.dispatchEvent(again);  // the rest (or nothing) goes to Gradio as a drop
  }, true);
})();
</script>""".replace("%CHAT%", CHAT_FIELD).replace("%DOCS%", DOCS_FIELD)


def too_big(name: str, size: float, max_bytes: int) -> str:
    """The sentence for a file over the size limit (every refusal of one says this)."""
    return (f"{name}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit "
            "(LASTMILE_INGEST_MAX_FILE_MB)")


def kept_back(raw: str | None, max_bytes: int) -> list[str]:
    """One refusal line per file a field says the page kept back as too big
    (``[{"name", "size"}]``); anything malformed is ignored, names are cut to their base name."""
    try:
        items = json.loads(raw or "[]")
    except ValueError:
        return []
    lines: list[str] = []
    for item in items[:_MAX_ENTRIES] if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        size = item.get("size")
        if not isinstance(size, (int, float)) or isinstance(size, bool) or not size >= 0:
            continue
        name = Path(str(item.get("name") or "")).name[:200] or "(no name)"
        lines.append(too_big(name, size, max_bytes) + ".")
    return list(dict.fromkeys(lines))
