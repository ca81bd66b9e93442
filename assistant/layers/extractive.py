"""The extractive-answer layer: the one place where a model too small to write grounded
answers (``ChatModel.grounded_writer`` is False: the embedded SmolLM2-135M) gets help.

On a chat turn it plans the reply from the turn's snippets (``assistant.extractive_answer``):

* ``lead``: the verified quote (fact or source sentence, with its ``[n]``) is streamed at
  once; then the model is asked for one more sentence, and what it writes is kept only
  where the citation checker finds it supported by a shown source, on the question's
  topic and not a repeat of the quote (usually nothing is left: that is the point);
* ``refuse``: "I don't find this in your documents" (and the nearest passage), with no
  model call, so the model cannot talk its way around it;
* ``model``: the request passes through untouched (chit-chat, writing, general questions).

Non-chat calls (facts, summaries, structured extraction) always pass through. The layer
wraps the small provider itself (``wrap``), so it applies wherever that model answers:
alone, as a fallback after a remote one, in safe mode or as the cheap routing tier; a
capable model is never wrapped and answers as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage

from assistant.extractive_answer import AnswerPlan, plan_answer
from assistant.layers.resilience import stream_closing
from assistant.providers.base import ChatModel, ModelChunk, ModelRequest, ModelWrapper, Usage, walk

__all__ = ["ADD_PROMPT", "ExtractiveModel", "wrap"]

log = logging.getLogger(__name__)
ADD_PROMPT = ("In one short sentence, add anything else the numbered sources say that helps answer "
              "my question, citing the source like [1]. If there is nothing to add, say nothing.")
MAX_ADD_TOKENS = 48


def wrap(model: ChatModel, mode: str) -> ChatModel:
    """``model`` inside an ``ExtractiveModel`` when ``mode`` says so (``LASTMILE_EXTRACTIVE_ANSWERS``:
    ``auto``: only a model that is not a ``grounded_writer``; ``on``: any; ``off``: none)."""
    if mode == "off" or any(isinstance(node, ExtractiveModel) for node in walk(model)):
        return model
    weak = any(not getattr(node, "grounded_writer", True) for node in walk(model))
    return ExtractiveModel(model) if mode == "on" or weak else model


class ExtractiveModel(ModelWrapper):
    """Lead with a verified quote, refuse what the documents do not cover, or pass through."""

    def request(self, request: ModelRequest) -> Iterator[ModelChunk]:
        chat = request.metadata.get("purpose", "chat") == "chat" and request.response_schema is None
        question = next((str(m.content) for m in reversed(request.messages)
                         if isinstance(m, HumanMessage)), "")
        snippets: Sequence[Mapping[str, Any]] = request.metadata.get("snippets") or []
        plan = AnswerPlan("model")
        if chat and question:
            try:
                plan = plan_answer(question, snippets)
            except Exception:
                log.warning("extractive planning failed; the model answers alone", exc_info=True)
        if plan.action == "model":
            yield from stream_closing(self.inner, request)
            return
        yield ModelChunk(text=plan.text, provider=self.label)
        usage = Usage(0, 0)
        if plan.action == "lead" and plan.quote is not None and plan.quote.kind == "document":
            extra, usage = self._addition(request, plan, question, snippets)
            if extra:
                yield ModelChunk(text="\n\n" + extra, provider=self.label)
        yield ModelChunk(usage=usage, finish_reason="stop", provider=self.label)

    def _addition(self, request: ModelRequest, plan: AnswerPlan, question: str,
                  snippets: Sequence[Mapping[str, Any]]) -> tuple[str, Usage]:
        """What the model adds after the quote that the checker supports (often nothing)."""
        follow = ModelRequest([*request.messages, AIMessage(content=plan.text),
                               HumanMessage(content=ADD_PROMPT)],
                              max_tokens=min(request.max_tokens, MAX_ADD_TOKENS),
                              temperature=request.temperature, stop=request.stop,
                              metadata={**request.metadata, "purpose": "chat"})
        parts: list[str] = []
        usage = Usage(0, 0)
        try:
            for chunk in stream_closing(self.inner, follow):
                parts.append(chunk.text)
                usage = chunk.usage or usage
        except Exception as exc:  # noqa: BLE001 - the quote already answers; the addition is optional
            log.info("the model's addition failed (%s); the quote stands alone", exc)
            return "", usage
        return supported_addition("".join(parts), plan, question, snippets), usage


def supported_addition(text: str, plan: AnswerPlan, question: str,
                       snippets: Sequence[Mapping[str, Any]]) -> str:
    """The sentences of ``text`` a shown source supports (cited, or attributable to one),
    that answer the question as well as a quote would (``rank``) and say something the
    quote does not: new content words and a new value."""
    from assistant.extractive_answer import LEAD_THRESHOLD, Candidate, rank
    from guardrails.citations import verify_citations
    from guardrails.claims import content_stems, numbers, parse_markers, split_sentences

    sources = {str(s.get("id")): str(s.get("text") or "") for s in snippets if str(s.get("id")).isdigit()}
    quoted = plan.quote.text if plan.quote else plan.text
    have, values = content_stems(quoted), {v for v, _ in numbers(quoted)}
    kept: list[str] = []
    for sentence in split_sentences(text):
        clean, cited = parse_markers(sentence)
        stems = content_stems(clean)
        if len(stems - have) < 2 or not {v for v, _ in numbers(clean)} - values:
            continue  # a repeat of the quote, or no new value: nothing added
        ranked = rank(question, [Candidate(clean, "", "document")])
        if not ranked or ranked[0][0] < LEAD_THRESHOLD:
            continue  # true or not, it does not answer this question
        for sid in [c for c in cited if c in sources] or list(sources):
            report = verify_citations(f"{clean} [{sid}]", sources)
            if report.sentences and all(s.verdict == "supported" for s in report.sentences if s.claim):
                kept.append(f"{clean.rstrip('.')} [{sid}].")
                break
    return " ".join(kept)
