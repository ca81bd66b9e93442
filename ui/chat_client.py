"""The page's side of a server restart: a heartbeat to ``/healthz``, a notice while the
server is gone, and a reload once it is back — with the text being typed kept.

Gradio's page just freezes when its server goes away mid-reply. This script notices
(two failed heartbeats), says so in a banner, keeps the draft in the tab's
``sessionStorage`` and reloads when the server answers again; the reloaded page shows
the stored history (a reply cut off by the restart is marked interrupted) and puts the
draft back in the box. The draft is cleared when it is sent, so a sent message never
comes back. Presentation only: nothing here talks to anything but this server.
"""

from __future__ import annotations

import json

__all__ = ["RECONNECT_HEAD", "RECONNECT_NOTICE"]

RECONNECT_NOTICE = "Connection to lastmile lost — reconnecting… (what you are typing is kept)"

RECONNECT_HEAD = """<script>
(() => {
  const KEY = "lastmile-draft", EVERY = 3000;
  const box = () => document.querySelector("#lm-input textarea");
  let misses = 0, lost = false;
  const banner = () => {
    let el = document.getElementById("lm-reconnect");
    if (!el) {
      el = document.createElement("div");
      el.id = "lm-reconnect";
      el.setAttribute("role", "alert");
      el.textContent = %s;
      document.body.appendChild(el);
    }
    return el;
  };
  document.addEventListener("input", (e) => {
    if (e.target === box()) sessionStorage.setItem(KEY, e.target.value);
  }, true);
  document.addEventListener("keydown", (e) => {
    if (e.target === box() && e.key === "Enter" && !e.shiftKey) sessionStorage.removeItem(KEY);
  }, true);
  document.addEventListener("click", (e) => {
    if (e.target.closest && e.target.closest("#lm-send")) sessionStorage.removeItem(KEY);
  }, true);
  const restore = () => {
    const draft = sessionStorage.getItem(KEY), el = box();
    if (!draft || !el) return !!el;
    if (!el.value) {
      el.value = draft;
      el.dispatchEvent(new Event("input", {bubbles: true}));
    }
    return true;
  };
  const waitBox = setInterval(() => { if (restore()) clearInterval(waitBox); }, 300);
  const beat = async () => {
    let ok = false;
    try {
      const r = await fetch("/healthz", {cache: "no-store"});
      ok = r.ok;
    } catch (err) { ok = false; }
    if (ok && lost) {
      banner().textContent = "Reconnected — reloading the chat…";
      const el = box();
      if (el && el.value) sessionStorage.setItem(KEY, el.value);
      setTimeout(() => location.reload(), 300);
      return;
    }
    misses = ok ? 0 : misses + 1;
    if (misses >= 2 && !lost) { lost = true; banner(); }
    setTimeout(beat, EVERY);
  };
  setTimeout(beat, EVERY);
})();
</script>""".replace("%s", json.dumps(RECONNECT_NOTICE))
