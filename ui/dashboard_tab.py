"""The Dashboard tab (admin): plots of latency per stage, spend and tokens over time,
provider health, cache and groundedness, plus the operator's controls.

It refreshes on a timer while open. Every handler re-checks the admin role on the
server, so hiding the tab is never the only protection.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, cast

import gradio as gr
import pandas as pd

from assistant.orchestrator import Assistant
from ui import dashboard
from ui.identity import Identity

if TYPE_CHECKING:
    from memory.store import ConversationStore

__all__ = ["build_dashboard"]

_QUIET: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}


def _numbers_html(numbers: dict[str, Any]) -> str:
    cells = "".join(f'<div class="lm-stat"><b>{html.escape(str(v))}</b><span>{html.escape(k)}</span></div>'
                    for k, v in numbers.items())
    return f'<div class="lm-stats">{cells}</div>'


def _cache(bot: Assistant, engine: Any) -> dict[str, Any]:
    try:
        from memory.response_cache import cache_stats
    except ImportError:  # caching not part of this build
        return {}
    return cache_stats(engine)


def _review_size(bot: Assistant) -> int | None:
    queue = getattr(bot, "review", None)
    pending = getattr(queue, "pending", None)
    try:
        return len(pending()) if callable(pending) else None
    except Exception:  # noqa: BLE001 - a dashboard tile must not take the page down
        return None


def _kill_switch(bot: Assistant, engine: Any) -> bool:
    try:
        from assistant.control import ControlFlags
    except ImportError:
        return False
    return bool(ControlFlags.from_settings(bot.settings, engine).status()["kill_switch"])


def _model(bot: Assistant) -> Any:
    try:
        return bot.model
    except Exception:  # noqa: BLE001 - no model: no breakers to show
        return None


def snapshot(bot: Assistant) -> tuple[Any, ...]:
    """Every figure on the tab, in layout order."""
    engine = cast("ConversationStore", bot.store).engine  # the app's store
    numbers = dashboard.summary_numbers(engine)
    cache = _cache(bot, engine)
    shown = {"turns": numbers["turns"], "failed replies": numbers["failed_replies"],
             "spend": f"${numbers['spend_usd']:.4f}",
             "fallback rate": f"{numbers['fallback_rate']:.0%}",
             "cache hit rate": f"{cache.get('hit_rate', 0):.0%}" if cache else "off",
             "review queue": _review_size(bot) if _review_size(bot) is not None else "off"}
    kill = _kill_switch(bot, engine)
    latency = dashboard.latency_frame(engine)
    latency["turn"] = latency["turn"].astype(str)
    caps = bot.budget.caps_usd() if bot.budget is not None else {"user": None, "global": None}
    return (_numbers_html(shown), latency, dashboard.spend_frame(engine, by="user"),
            dashboard.spend_frame(engine, by="purpose"), dashboard.breaker_states(_model(bot)),
            dashboard.groundedness(engine), kill, caps["user"], caps["global"],
            _spend_today(bot))


def _spend_today(bot: Assistant) -> pd.DataFrame:
    counters = bot.budget.counters() if bot.budget is not None else {}
    rows = [{"scope": scope, "spent_usd": round(spent / 1e9, 6), "reserved_usd": round(held / 1e9, 6)}
            for scope, (held, spent) in sorted(counters.items())]
    return pd.DataFrame(rows, columns=["scope", "spent_usd", "reserved_usd"])


def build_dashboard(bot: Assistant, identity: Identity) -> gr.Tab:
    with gr.Tab("Dashboard", id="dashboard", visible=False, elem_id="lm-tab-dashboard") as tab:
        numbers = gr.HTML(elem_id="lm-stats")
        with gr.Row():
            latency = gr.BarPlot(pd.DataFrame(columns=["turn", "stage", "ms"]), x="turn", y="ms",
                                 color="stage", title="Latency per stage per turn (ms)",
                                 elem_id="lm-plot-latency")
            health = gr.Dataframe(pd.DataFrame(columns=["provider", "state", "failures", "last_error"]),
                                  label="Providers and circuit breakers", interactive=False,
                                  elem_id="lm-health")
        with gr.Row():
            cost = gr.LinePlot(pd.DataFrame(columns=["day", "user", "cost_usd"]), x="day", y="cost_usd",
                               color="user", title="Cost per day by user (USD)", elem_id="lm-plot-cost")
            tokens = gr.BarPlot(pd.DataFrame(columns=["day", "purpose", "tokens"]), x="day",
                                y="tokens", color="purpose", title="Tokens per day by purpose",
                                elem_id="lm-plot-tokens")
        with gr.Row():
            grounded = gr.BarPlot(pd.DataFrame(columns=["score", "replies"]), x="score", y="replies",
                                  title="Groundedness of cited replies", elem_id="lm-plot-grounded")
            with gr.Column():
                gr.Markdown("### Controls")
                kill = gr.Checkbox(label="Kill switch: stop every remote model call now "
                                         "(safe mode answers locally or from sources)",
                                   elem_id="lm-kill")
                with gr.Row():
                    user_cap = gr.Number(label="Daily cap per user (USD, empty: none)",
                                         minimum=0, elem_id="lm-cap-user")
                    global_cap = gr.Number(label="Daily cap for everyone (USD, empty: none)",
                                           minimum=0, elem_id="lm-cap-global")
                with gr.Row():
                    apply_caps = gr.Button("Apply caps", size="sm", elem_id="lm-cap-apply")
                    reset_caps = gr.Button("Back to settings", size="sm", elem_id="lm-cap-reset")
                spend = gr.Dataframe(pd.DataFrame(columns=["scope", "spent_usd", "reserved_usd"]),
                                     label="Today's spend against the caps", interactive=False,
                                     elem_id="lm-spend-today")
                refresh = gr.Button("Refresh", size="sm", elem_id="lm-dash-refresh")
        timer = gr.Timer(15)
        outputs = [numbers, latency, cost, tokens, health, grounded, kill, user_cap, global_cap,
                   spend]

        def on_refresh(request: gr.Request) -> tuple[Any, ...]:
            identity.require(request, "admin")
            return snapshot(bot)

        def on_kill(on: bool, request: gr.Request) -> tuple[Any, ...]:
            viewer = identity.require(request, "admin")
            setter = getattr(bot, "set_kill_switch", None)
            if setter is None:
                raise gr.Error("This build has no kill switch.")
            setter(on, by=viewer.user_id)
            gr.Warning("Kill switch ON: remote models are off." if on else "Kill switch off.")
            return snapshot(bot)

        def on_caps(user_usd: float | None, global_usd: float | None, request: gr.Request) -> tuple[Any, ...]:
            viewer = identity.require(request, "admin")
            if bot.budget is None:
                raise gr.Error("Budgets need the SQL store.")
            try:
                bot.budget.set_cap("user", user_usd, by=viewer.user_id)
                bot.budget.set_cap("global", global_usd, by=viewer.user_id)
            except ValueError as exc:
                raise gr.Error(str(exc)) from exc
            gr.Info("Caps applied to every process on this database.")
            return snapshot(bot)

        def on_reset(request: gr.Request) -> tuple[Any, ...]:
            identity.require(request, "admin")
            if bot.budget is not None:
                bot.budget.reset_cap("user")
                bot.budget.reset_cap("global")
            return snapshot(bot)

        # Live updates (timer, kill switch) leave the cap inputs alone: an admin may be
        # typing a new cap while the figures refresh.
        live = [o for o in outputs if o is not user_cap and o is not global_cap]
        live_ids = {id(o) for o in live}

        def figures_only(values: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(v for o, v in zip(outputs, values, strict=True) if id(o) in live_ids)

        def on_kill_live(on: bool, request: gr.Request) -> tuple[Any, ...]:
            return figures_only(on_kill(on, request))

        def on_tick(request: gr.Request) -> tuple[Any, ...]:
            if not identity.viewer(request).allows("admin"):  # the timer runs for everyone
                return tuple(gr.skip() for _ in live)
            return figures_only(snapshot(bot))

        for event in (tab.select, refresh.click):
            event(on_refresh, None, outputs, **_QUIET)
        timer.tick(on_tick, None, live, **_QUIET)
        kill.input(on_kill_live, [kill], live, **_QUIET)
        apply_caps.click(on_caps, [user_cap, global_cap], outputs, **_QUIET)
        reset_caps.click(on_reset, None, outputs, **_QUIET)
    return tab
