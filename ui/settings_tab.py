"""The Settings tab (admin): the provider chain, the local model file, the system prompt,
temperature, citation policy and review threshold, changed for every process at once.

What is saved is an override over the environment's settings (``memory.runtime_settings``,
the same ``control_flags`` mechanism as the budget caps), so "Back to the environment's
settings" simply removes them. A value equal to the environment's is no override. Every
handler re-checks the admin role on the server; ``ui.settings_api`` offers the same over
HTTP (``/admin/settings``), refused with 403 to anyone else.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import gradio as gr

from assistant.errors import LastmileError
from assistant.orchestrator import Assistant
from memory.runtime_settings import TUNABLE, check_value
from ui.chat_tab import QUIET, friendly
from ui.identity import Identity

__all__ = ["build_settings", "save_settings", "settings_snapshot"]

LABELS = {"providers": "Provider chain", "local_model_path": "Local model file (GGUF)",
          "system_prompt": "System prompt", "temperature": "Temperature",
          "citation_policy": "Citation policy", "review_threshold": "Review threshold"}
POLICIES = ["annotate", "strip", "reask"]


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def settings_snapshot(bot: Assistant) -> dict[str, Any]:
    """What is in force, what the environment says, and who changed what."""
    current, base = bot.settings, bot.tunables.base
    overrides = bot.runtime.overrides()
    try:
        model = bot.model.label
    except LastmileError as exc:
        model = f"unavailable ({exc.user_message})"
    return {"settings": {n: _plain(getattr(current, n)) for n in TUNABLE},
            "environment": {n: _plain(getattr(base, n)) for n in TUNABLE},
            "overridden": sorted(overrides), "model": model}


def save_settings(bot: Assistant, values: dict[str, Any], *, by: str) -> dict[str, Any]:
    """Override the fields in ``values`` for every process (``ValueError`` names a bad
    one, and nothing is written then); a value equal to the environment's drops the
    override instead. Returns the new snapshot."""
    if not isinstance(values, dict) or not values:
        raise ValueError("send the settings to change as an object, e.g. {\"temperature\": 0.3}")
    clean = {name: check_value(name, value) for name, value in values.items()}
    base = bot.tunables.base
    same = [n for n, v in clean.items() if v == _plain(getattr(base, n))]
    changed = {n: v for n, v in clean.items() if n not in same}
    if changed:
        bot.runtime.set(changed, by=by)
    if same:
        bot.runtime.reset(same, by=by)
    return settings_snapshot(bot)


def _short(value: Any) -> str:
    text = "(embedded default)" if value is None else str(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _status_html(snap: dict[str, Any], refresh_s: float) -> str:
    shown = snap["overridden"]
    what = (", ".join(LABELS[n] for n in shown) if shown
            else "nothing: every value comes from the environment")
    was = "".join(f"<li>{html.escape(LABELS[n])}: the environment says "
                  f"<code>{html.escape(_short(snap['environment'][n]))}</code></li>" for n in shown)
    return (f'<div class="lm-settings-status"><p>Answering with <code>{html.escape(snap["model"])}'
            f"</code>. Changed here: {html.escape(what)}.</p>"
            f"{f'<ul>{was}</ul>' if was else ''}<p><small>Saved changes reach every "
            f"lastmile process on this database within {refresh_s:g} s, at the next turn."
            "</small></p></div>")


def build_settings(bot: Assistant, identity: Identity) -> gr.Tab:
    refresh_s = bot.settings.control_refresh_s
    with gr.Tab("Settings", id="settings", visible=False, elem_id="lm-tab-settings") as tab:
        status = gr.HTML(elem_id="lm-settings-status")
        providers = gr.Textbox(label=LABELS["providers"], elem_id="lm-set-providers",
                               info="In fallback order, provider:model, e.g. "
                                    "openai:my-model,local (OpenAI-compatible servers: "
                                    "OPENAI_BASE_URL)")
        model_path = gr.Textbox(label=LABELS["local_model_path"], elem_id="lm-set-model-path",
                                info="A .gguf file on the server for the local provider; "
                                     "empty: the embedded SmolLM2-135M")
        prompt = gr.Textbox(label=LABELS["system_prompt"], lines=4, max_lines=12,
                            elem_id="lm-set-prompt")
        with gr.Row():
            temperature = gr.Slider(0, 2, step=0.05, label=LABELS["temperature"],
                                    elem_id="lm-set-temperature")
            threshold = gr.Slider(0, 1, step=0.05, label=LABELS["review_threshold"],
                                  info="Answers less confident than this go to human review",
                                  elem_id="lm-set-threshold")
        policy = gr.Radio(POLICIES, label=LABELS["citation_policy"], elem_id="lm-set-policy",
                          info="Cited sentences their source does not support: annotate, "
                               "strip, or re-ask the model once")
        with gr.Row():
            save = gr.Button("Save for every process", variant="primary", elem_id="lm-settings-save")
            reset = gr.Button("Back to the environment's settings", elem_id="lm-settings-reset")
        fields = [providers, model_path, prompt, temperature, policy, threshold]  # TUNABLE's order

        def shown(snap: dict[str, Any]) -> tuple[Any, ...]:
            values = snap["settings"]
            return (_status_html(snap, refresh_s), *(values[n] if values[n] is not None else ""
                                                     for n in TUNABLE))

        @friendly
        def on_show(request: gr.Request) -> tuple[Any, ...]:
            identity.require(request, "admin")
            return shown(settings_snapshot(bot))

        @friendly
        def on_save(chain: str, path: str, system: str, temp: float, cite: str, review: float,
                    request: gr.Request) -> tuple[Any, ...]:
            viewer = identity.require(request, "admin")
            form = dict(zip(TUNABLE, (chain, (path or "").strip() or None, system, temp, cite,
                                      review), strict=True))
            current = settings_snapshot(bot)["settings"]
            edited = {n: v for n, v in form.items() if v != current[n]}
            if not edited:
                gr.Info("Nothing changed.")
                return shown(settings_snapshot(bot))
            try:
                snap = save_settings(bot, edited, by=viewer.user_id)
            except ValueError as exc:
                raise gr.Error(str(exc)) from None
            gr.Info(f"Saved for every process: the next turn answers with {snap['model']}.")
            return shown(snap)

        @friendly
        def on_reset(request: gr.Request) -> tuple[Any, ...]:
            viewer = identity.require(request, "admin")
            bot.runtime.reset(by=viewer.user_id)
            gr.Info("Back to the environment's settings, in every process.")
            return shown(settings_snapshot(bot))

        outputs = [status, *fields]
        tab.select(on_show, None, outputs, **QUIET)
        save.click(on_save, fields, outputs, **QUIET)
        reset.click(on_reset, None, outputs, **QUIET)
    return tab
