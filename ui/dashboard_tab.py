"""The Dashboard tab (admin): plots of latency per stage, spend and tokens over time,
provider health, cache and groundedness, drift checks and canary runs, plus the
operator's controls. Each panel says why it is empty when it is (no paid calls yet, no
breakers in a local-only chain, no drift check yet), so an empty plot never reads as
a broken one.

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
_TEXT, _FLOAT, _INT, _TIME = "object", "float64", "int64", "datetime64[ns]"


def _empty(**columns: str) -> pd.DataFrame:
    """An empty frame with typed columns: a plot reads an untyped empty column as numbers
    (a colour gradient labelled NaN)."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


_EMPTY_TURNS = _empty(turn=_INT, stage=_TEXT, ms=_FLOAT)
_EMPTY_TIMES = _empty(time=_TIME, stage=_TEXT, ms=_FLOAT, turns=_INT)


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


def _latency(engine: Any) -> dict[str, Any]:
    """Per turn (numbered) up to ``PER_TURN_MAX`` replies, else per time bucket: two plots,
    one shown (a plot's x column is fixed, and Gradio draws no data sent in an update)."""
    frame, x = dashboard.latency_series(engine)
    per_turn, note = x == "turn", ""
    if per_turn and frame.empty:
        note = "No replies yet: each reply's time per stage appears here, one bar per turn."
    elif not per_turn:
        turns = int(frame.groupby("time")["turns"].max().sum())
        note = (f"{turns} turns: each bar is the mean of the turns in its time bucket "
                f"(one bar per turn up to {dashboard.PER_TURN_MAX} turns).")
    empty = {"turn": _EMPTY_TURNS, "time": _EMPTY_TIMES}
    return {"latency": frame if per_turn else empty["turn"], "latency_time": empty["time"] if per_turn
            else frame, "latency_turn_box": gr.update(visible=per_turn),
            "latency_time_box": gr.update(visible=not per_turn), "latency_note": note}


def _costs(engine: Any) -> tuple[pd.DataFrame, str]:
    frame = dashboard.daily(dashboard.spend_frame(engine, by="user"))
    if dashboard.paid_calls(engine) == 0:
        return frame, ("No paid calls yet: every reply so far came from a model that costs "
                       "nothing here (local or scripted). Remote providers' spend shows per day.")
    return frame, ""


def _health_note(frame: pd.DataFrame, bot: Assistant) -> str:
    if not frame.empty:
        return ""
    chain = ", ".join(bot.settings.provider_specs)
    return (f"No circuit breakers in this chain ({chain}): breakers guard remote providers "
            "(OpenAI, Anthropic), and a local or scripted model has none. Put a remote provider "
            "in LASTMILE_PROVIDERS to see its health here.")


def _drift(engine: Any, bot: Assistant) -> tuple[str, pd.DataFrame]:
    latest = dashboard.latest_drift(engine)
    frame = dashboard.drift_frame(engine)
    if latest is None:
        s = bot.settings
        when = (f"every {s.drift_every_s / 3600:g} h" if s.drift_every_s
                else "never (LASTMILE_DRIFT_EVERY_S=0)")
        return (f"**Drift:** no check yet. A job worker checks {when}, once the last "
                f"{s.drift_recent_hours:g} h and the {s.drift_baseline_days:g} days before each hold "
                f"{s.drift_min_turns} turns (PSI ≥ 0.1: warn, ≥ 0.25: alert)."), frame
    rows = "".join(f"| {html.escape(name)} | {_fmt(m.get('psi'))} | {m.get('level', '')} | "
                   f"{_fmt(m.get('baseline'))} | {_fmt(m.get('recent'))} |\n"
                   for name, m in sorted(latest["metrics"].items()))
    head = (f"**Drift: {latest['level']}** (checked {latest['at']:%Y-%m-%d %H:%M} UTC; "
            f"{latest['recent_turns']} recent vs {latest['baseline_turns']} baseline turns)\n\n"
            "| signal | PSI | level | baseline | recent |\n|---|---|---|---|---|\n")
    return head + rows, frame


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3g}" if isinstance(value, float) else str(value)


def _canaries(engine: Any, bot: Assistant) -> tuple[pd.DataFrame, str]:
    frame = dashboard.canary_frame(engine)
    if not frame.empty:
        last = frame.iloc[-1]
        return frame, (f"Last canary run: {last['passed']} passed, {last['failed']} failed "
                       f"({last['time']:%Y-%m-%d %H:%M} UTC).")
    if bot.settings.canary_suite is None:
        return frame, ("No canary runs: set LASTMILE_CANARY_SUITE to a suite file (see `lastmile "
                       "eval`) and the job workers run it every LASTMILE_CANARY_EVERY_S seconds.")
    return frame, "No canary run yet: the first one starts within a minute of a job worker starting."


def figures(bot: Assistant) -> dict[str, Any]:
    """Every figure on the tab, by name (``ORDER`` lays them out)."""
    engine = cast("ConversationStore", bot.store).engine  # the app's store
    numbers = dashboard.summary_numbers(engine)
    cache = _cache(bot, engine)
    shown = {"turns": numbers["turns"], "failed replies": numbers["failed_replies"],
             "spend": f"${numbers['spend_usd']:.4f}",
             "fallback rate": f"{numbers['fallback_rate']:.0%}",
             "cache hit rate": f"{cache.get('hit_rate', 0):.0%}" if cache else "off",
             "review queue": _review_size(bot) if _review_size(bot) is not None else "off"}
    kill = _kill_switch(bot, engine)
    costs, cost_note = _costs(engine)
    health = dashboard.breaker_states(_model(bot))
    grounded = dashboard.groundedness(engine)
    grounded_note = "" if not grounded.empty else (
        "No grounded replies yet: a reply is scored when it answers from documents "
        "(share of its claims its cited sources support).")
    drift_text, drift = _drift(engine, bot)
    canaries, canary_note = _canaries(engine, bot)
    caps = bot.budget.caps_usd() if bot.budget is not None else {"user": None, "global": None}
    return {"numbers": _numbers_html(shown), **_latency(engine), "cost": costs, "cost_note": cost_note,
            "tokens": dashboard.daily(dashboard.spend_frame(engine, by="purpose")), "health": health,
            "health_note": _health_note(health, bot), "grounded": grounded,
            "grounded_note": grounded_note, "drift_text": drift_text, "drift": drift,
            "canaries": canaries, "canary_note": canary_note, "kill": kill, "user_cap": caps["user"],
            "global_cap": caps["global"], "spend": _spend_today(bot)}


#: The tab's outputs, in the order every handler returns them.
ORDER = ("numbers", "latency", "latency_time", "latency_turn_box", "latency_time_box", "latency_note",
         "cost", "cost_note", "tokens", "health", "health_note", "grounded", "grounded_note",
         "drift_text", "drift", "canaries", "canary_note", "kill", "user_cap", "global_cap", "spend")


def snapshot(bot: Assistant) -> tuple[Any, ...]:
    """Every figure on the tab, in ``ORDER``."""
    values = figures(bot)
    return tuple(values[name] for name in ORDER)


def _spend_today(bot: Assistant) -> pd.DataFrame:
    counters = bot.budget.counters() if bot.budget is not None else {}
    rows = [{"scope": scope, "spent_usd": round(spent / 1e9, 6), "reserved_usd": round(held / 1e9, 6)}
            for scope, (held, spent) in sorted(counters.items())]
    return pd.DataFrame(rows, columns=["scope", "spent_usd", "reserved_usd"])


def build_dashboard(bot: Assistant, identity: Identity) -> gr.Tab:
    with gr.Tab("Dashboard", id="dashboard", visible=False, elem_id="lm-tab-dashboard") as tab:
        numbers = gr.HTML(elem_id="lm-stats")
        with gr.Row():
            with gr.Column():
                with gr.Column() as latency_turn_box:
                    latency = gr.BarPlot(_EMPTY_TURNS, x="turn", y="ms", color="stage", x_title="turn",
                                         title="Latency per stage per turn (ms)",
                                         elem_id="lm-plot-latency")
                with gr.Column(visible=False) as latency_time_box:
                    latency_time = gr.BarPlot(_EMPTY_TIMES, x="time", y="ms", color="stage",
                                              x_title="time (UTC)", title="Mean latency per stage (ms)",
                                              elem_id="lm-plot-latency-time")
                latency_note = gr.Markdown(elem_id="lm-note-latency")
            with gr.Column():
                health = gr.Dataframe(pd.DataFrame(columns=["provider", "state", "failures", "last_error"]),
                                      label="Providers and circuit breakers", interactive=False,
                                      elem_id="lm-health")
                health_note = gr.Markdown(elem_id="lm-note-health")
        with gr.Row():
            with gr.Column():
                cost = gr.LinePlot(_empty(day=_TIME, user=_TEXT, cost_usd=_FLOAT),
                                   x="day", y="cost_usd", color="user", title="Cost per day by user (USD)",
                                   elem_id="lm-plot-cost")
                cost_note = gr.Markdown(elem_id="lm-note-cost")
            tokens = gr.BarPlot(_empty(day=_TIME, purpose=_TEXT, tokens=_INT),
                                x="day", y="tokens", color="purpose", title="Tokens per day by purpose",
                                elem_id="lm-plot-tokens")
        with gr.Row():
            with gr.Column():
                grounded = gr.BarPlot(_empty(score=_FLOAT, replies=_INT),
                                      x="score", y="replies", title="Groundedness of cited replies",
                                      elem_id="lm-plot-grounded")
                grounded_note = gr.Markdown(elem_id="lm-note-grounded")
            with gr.Column():
                drift_text = gr.Markdown(elem_id="lm-drift")
                drift = gr.LinePlot(_empty(time=_TIME, signal=_TEXT, psi=_FLOAT),
                                    x="time", y="psi", color="signal", title="Drift: PSI per signal",
                                    elem_id="lm-plot-drift")
        with gr.Row():
            with gr.Column():
                canaries = gr.LinePlot(_empty(time=_TIME, pass_rate=_FLOAT),
                                       x="time", y="pass_rate", title="Canary runs: share of turns passing",
                                       y_lim=[0, 1], elem_id="lm-plot-canary")
                canary_note = gr.Markdown(elem_id="lm-note-canary")
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
        outputs = [numbers, latency, latency_time, latency_turn_box, latency_time_box, latency_note,
                   cost, cost_note, tokens, health, health_note, grounded, grounded_note, drift_text,
                   drift, canaries, canary_note, kill, user_cap, global_cap, spend]
        assert len(outputs) == len(ORDER)

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
