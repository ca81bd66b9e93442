"""The rule table ``guardrails.injection.scan`` scores text against.

Why composed rules: a fixed list of attack phrases is beaten by the first paraphrase
("disregard the guidance you were given earlier"). The override rules are built from
word classes instead — an *override verb* (ignore, pay no attention to, stop following…)
followed by a *reference to earlier instructions* (a prior-qualified instruction noun,
"what you were told", "everything above") — so unseen combinations of the same two ideas
match, while either idea alone ("ignore the typo", "follow the instructions above")
does not. Weights: 1.0 is an attack on its own; smaller weights only count together
(the flag threshold is 0.6).
"""

from __future__ import annotations

import re

__all__ = ["CONFUSABLES", "LEET", "RULES", "SQUEEZED"]

# -- word classes ---------------------------------------------------------------------
_VERB = (r"(?:ignore|disregard|disobey|forget|override|overrule|bypass|circumvent|discard|dismiss|abandon"
         r"|overlook|"
         r"neglect|scrap|ditch|forgo|unlearn|nullify|throw (?:out|away)|"
         r"never ?mind|forget about|"
         r"toss (?:out|aside)|brush aside|wipe (?:out|away)|let go of|"
         r"pay (?:no|zero|little) (?:attention|heed|mind)(?: to)?|take no (?:notice|heed) of|"
         r"(?:do not|don't|dont|never|no longer|stop|cease|quit|will not|won't|shall not|must not) "
         r"(?:follow(?:ing)?|obey(?:ing)?|"
         r"listen(?:ing)? to|heed(?:ing)?|adher(?:e|ing) to|comply(?:ing)? with|"
         r"pay(?:ing)? attention to|abid(?:e|ing) by)|break (?:free )?(?:from|of)|"
         r"free yourself (?:from|of))")
# Nouns for standing instructions; the wide set only with a qualifier that means "yours".
_NOUN = (r"(?:instructions?|prompts?|directives?|guidance|guidelines?|rules?|programming|training|"
         r"system (?:message|prompt)|conditioning|context)")
_NOUN_WIDE = (rf"(?:{_NOUN[3:-1]}|directions?|orders?|commands?|polic(?:y|ies)|constraints?|restrictions?|"
              r"guardrails?|safeguards?)")
# Qualifiers that point at *the model's* standing instructions.
_PRE = (r"(?:previous(?:ly)?|prior|above|earlier|preceding|foregoing|original|initial|old|"
        r"existing|standing|system|developer|hidden|all(?: of)?(?: the)?)")
_POST_MINE = (r"(?:(?:that )?came with (?:this|the) (?:chat|conversation|session|thread)|(?:set|given|"
              r"written|defined|configured|imposed|put in place) by (?:your|the)"
              r" (?:operator|developer|creator|"
              r"admin|owner|company|system)s?|from your "
              r"(?:developers?|creators?|operators?|admins?|makers?|owners?)|"
              r"you (?:were|have been|'ve been|got|received|had|have seen|'ve seen|started with|"
              r"began with|were started with|were initiali[sz]ed with|were launched with|were set up with)|"
              r"(?:given|provided|supplied|written|set) (?:to|for) you)")
_POST = (r"(?:(?:given|provided|stated|listed|written|set|received|supplied) (?:earlier|before|above|"
         r"previously)|above|before (?:this|now)|earlier|previously|so far|up to (?:now|this point))")
# Phrases that refer to earlier instructions without an instruction noun.
_INHERENT = (r"(?:what(?:ever)? (?:you (?:were|have been|'ve been|was)|they|we|someone|anyone|others) "
             r"(?:told|given|instructed|taught|asked|programmed)|everything (?:above|before|prior|"
             r"so far|(?:else )?you(?:'ve| have)? (?:been|were) told)|anything (?:above|before this|"
             r"you were told)|all (?:of )?(?:the )?(?:above|previous|prior)(?! \w+ (?:messages?|"
             r"errors?|warnings?|steps?|examples?|options?|items?|sections?|points?|questions?))|"
             r"the above(?:,? (?:and|instead|then)\b|\s*[.;:!]\s*(?:instead|now|then|and|just)\b)|"
             r"what (?:the|your) (?:system|developer|prompt|system prompt|operator) (?:said|says|told you|"
             r"wrote|asked)|(?:the|those|these|any|all|your) (?:safety (?:rules|guidelines|instructions|"
             r"polic(?:y|ies)|filters|training)|content (?:polic(?:y|ies)|filters?)|moderation "
             r"(?:rules|polic(?:y|ies))|guardrails|safeguards)|"
             r"(?:the |your |its )?(?:system|developer|hidden|initial|original) (?:message|prompt)s?)")
# Gaps never cross a sentence end, a quotation mark or a bracket: a reference is one phrase.
_GAP = r"[^.\n?!\"()\[\]]"
_REF = (rf"(?:\b{_PRE}\b{_GAP}{{0,25}}?\b{_NOUN}\b|\byour\b{_GAP}{{0,25}}?\b{_NOUN_WIDE}\b|"
        rf"\b{_NOUN}\b{_GAP}{{0,25}}?\b{_POST}\b|\b{_NOUN_WIDE}\b{_GAP}{{0,25}}?\b{_POST_MINE}\b|"
        rf"\b{_INHERENT})")
# Only with a reference that can only mean the model's instructions: verbs that are
# everyday words in docs ("remove the previous rules from the config") and would not do
# with a weaker one.
_VERB_WEAK = (r"(?:drop|erase|delete|remove|clear|skip|cancel|revoke|replace|supersedes?|scratch|scrub|"
              r"strike out|cross out|"
              r"superseded|neglect|forget about|get rid of|move past|put away|"
              r"(?:do not|don't|dont|no longer|stop|cease to|refrain from|never) (?:take into account|"
              r"consider(?:ing)?|us(?:e|ing)|apply(?:ing)?|follow(?:ing)?|respect(?:ing)?|"
              r"obey(?:ing)?|keep(?:ing)? to|stick(?:ing)? to))")
_REF_STRONG = (r"(?:\byour (?:\w+ )?(?:\w+ )?" + _NOUN_WIDE + r"\b|"
               r"\b" + _NOUN_WIDE + r" (?:that )?(?:you (?:were|have been|'ve been) (?:given|told|shown|"
               r"provided|taught)|you (?:received|got|had)|(?:given|provided|supplied) to (?:you|the "
               r"(?:model|assistant|ai|llm|bot)))\b|\b(?:previous|prior|earlier|preceding|original|"
               r"initial|above|foregoing)\b(?: \w+)?(?: and \w+)? (?:instructions|prompts?|directives|"
               r"system (?:prompt|message))\b|\bwhat(?:ever)? (?:you (?:were|have been|'ve been|got) "
               r"(?:told|instructed|given|asked|taught)|they told you|we told you)\b|\beverything (?:else )?"
               r"you(?:'ve| have)? (?:been|were) (?:told|given|taught)\b|\beverything "
               r"(?:above|before this|so far|prior)\b|\ball (?:of )?(?:the )?(?:preceding|previous|prior|"
               r"above) (?:text|content|input|context|messages|instructions)\b|\b(?:the |your )?"
               r"(?:system|developer|hidden) (?:prompt|message)\b)")
# Two-factor: a reference that can only mean *the model's* standing instructions, and,
# in the same sentence, anything that sets them aside (verb, state or replacement).
_MINE = (r"(?:instructions?|prompts?|directives?|guidance|guidelines?|rules?|programming|training|"
         r"system (?:prompt|message)|constraints?|restrictions?|guardrails?|safeguards?|orders?|"
         r"directions?|conditioning|filters?)")
# Nouns only a model's instructions are called; the rest ("your rules", "the filters you
# had set up") are everyday words in manuals and count only with another signal.
_MINE_STRONG = (r"(?:(?:instructions?|prompts?|directives?|programming|system (?:prompt|message)"
                r"|conditioning|"
                r"guardrails?)(?! (?:design|template|format|engineering|library|field|section|example|"
                r"editor|file|length|style|structure|tuning|writing)s?\b))")


def _a(noun: str) -> str:
    return (rf"(?:\byour (?:\w+ ){{0,2}}?{noun}\b|\b{noun} (?:that )?you (?:were|have been|'ve been) "
            rf"(?:given|told|trained (?:with|on)|programmed with|configured with|set up with)\b|\b{noun} "
            rf"(?:that )?you(?: have|'ve)? (?:received|got|gotten|had|seen|read)\b"
            rf"|\b{noun} (?:given )?above\b|\b(?:previous|prior|earlier|"
            rf"original|initial|preceding|foregoing|above) (?:\w+ )?{noun}\b)")


_A_STRONG = (rf"(?:{_a(_MINE_STRONG)}|\bwhat(?:ever)? (?:(?:the|your) (?:operator|developer|admin|"
             rf"creator|system|owner)s?|they|we|you were|you've been|you have been) (?:configured|set|"
             rf"told you|instructed|said|told|gave you|wrote)\b|\b(?:the )?(?:assistant|model|ai|bot|"
             rf"llm|chatbot)'?s (?:\w+ )?{_MINE}\b|\b(?:the |all the )?(?:text|content|messages?|"
             rf"words|input) (?:above|before this)\b|\beverything (?:that )?(?:came|was written|appears?|"
             rf"is written|was said) (?:before|above) (?:this|here)(?: \w+)?\b|\b(?:nothing|none of what|"
             rf"anything) you (?:were|have been|'ve been) (?:told|given|instructed)\b)")
_A = _a(_MINE)
_B_BEFORE = (r"(?:set\b(?: \w+)?(?: \w+)? aside|put\b(?: \w+)? aside|(?:do not|don't|dont|no need to) "
             r"(?:bother|care|worry) (?:with|about)|without (?:any )?regard (?:to|for)|regardless of|"
             r"irrespective of|in spite of|instead of|rather than|not (?:be )?bound by|"
             r"(?:consider|treat|deem|regard)|wipe|clear out|throw away)")
_B_AFTER = (r"(?:to (?:one|the) side|behind\b|on hold\b|on ice\b|never existed|(?:does|do|did) "
            r"not exist|(?:doesn't|don't|didn't) exist|(?:is|are|were|was|have been|has been|had been|"
            r"have|has) "
            r"(?:now )?(?:lifted|revoked|void|suspended|cancell?ed|empty|erased|wiped|deleted|removed|"
            r"gone|reset|disabled|paused|over|expired|withdrawn|replaced|overwritten|superseded|obsolete|"
            r"outdated|invalid|irrelevant|no longer valid|malicious|compromised|untrustworthy|"
            r"(?:only |just |merely )?(?:an example|a test|a joke|fake|a decoy|a placeholder|a draft|"
            r"a trap|a lie))|(?:now )?(?:empty|void|null|revoked|lifted|obsolete|invalid|"
            r"irrelevant|cancell?ed)\b|(?:does|do) not matter|doesn't matter|don't matter"
            r"|counts? (?:any ?more|"
            r"for nothing|no more)\b|(?:matters?|applies|apply) (?:any ?more|no more)\b|no longer "
            r"(?:exist|in place|active|matter))")
_VOID = (r"(?:no longer (?:apply|applies|valid|matter|hold|stand|count|in (?:effect|force))|"
         r"null and void|"
         r"(?:do|does) not (?:apply|matter|count)(?: anymore| any more)?|don't (?:apply|matter|count)|"
         r"(?:is|are|was|were|have been|has been|have|has) (?:now )?(?:void|null|cancell?ed|revoked|lifted|"
         r"changed|"
         r"suspended|obsolete|outdated|superseded|replaced|overridden|invalid|fake|a test|"
         r"wrong|over|expired|withdrawn|rescinded|deprecated|out of date|irrelevant|a joke|"
         r"no longer valid|not valid|not binding|optional now)|"
         r"(?:should|must|can|may) (?:now )?be (?:ignored|disregarded|forgotten|discarded))")
# Qualifiers that, with a "void" phrase, clearly mean the model's own instructions.
_VOID_STRONG = (r"(?:above|your|system|developer|hidden|foregoing|preceding|"
                r"(?:instructions?|directions?|prompts?|rules?|guidance|guidelines?) you "
                r"(?:were|have been|'ve been) given)")
_ADDRESSEE = (r"(?:an? )?(?:ai|a\.i\.|llm|language model|ai assistant|ai agent|llm agent|chatbot|chat bot|"
              r"gpt|chatgpt|claude|bot)")
# Spanish, French, German, Portuguese, Italian, Dutch: "ignore the previous instructions".
_I18N_VERB = (r"(?:ignor\w*|olvid\w*|oubli\w*|vergiss\w*|vergessen|esque[cç]\w*|dimentic\w*|"
              r"negeer\w*|vergeet\w*|descart\w*|ignorier\w*)")
_I18N_NOUN = (r"(?:instru[cç]\w*|instrukt\w*|anweisung\w*|istruzion\w*|consigne\w*|regla\w*|"
              r"règle\w*|regeln|regras|regole|instructies|vorgaben|indicaciones|directives)")
_I18N_PRE = (r"(?:anterior\w*|previ\w*|précédent\w*|precedent\w*|vorherig\w*|bisherig\w*|"
             r"obig\w*|vorig\w*|eerdere|vorige|antérieur\w*|ci-dessus|arriba)")
_F = re.IGNORECASE
#: name → (weight, pattern over de-obfuscated lower-case text)
RULES: dict[str, tuple[float, re.Pattern[str]]] = {
    "ignore_instructions": (1.0, re.compile(
        r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,25}?\b(?:previous|prior|above|"
        r"earlier|preceding|original|initial|system|your|all)\b[^.\n]{0,20}?\b(?:instructions?|"
        r"prompts?|directives?|guidelines|rules)\b")),
    # verb class x reference to earlier instructions ("pay no attention to what you were told")
    "override_prior": (1.0, re.compile(
        rf"\b{_VERB}\b{_GAP}{{0,30}}?{_REF}|\b{_VERB_WEAK}\b{_GAP}{{0,20}}?{_REF_STRONG}")),
    # a reference to the model's instructions declared void ("the above directions no longer apply")
    "instructions_void": (1.0, re.compile(
        rf"\b{_VOID_STRONG}\b[^.\n?!]{{0,25}}?\b{_NOUN_WIDE}\b[^.\n?!]{{0,25}}?\b{_VOID}|"
        rf"\b{_NOUN_WIDE} (?:you (?:were|have been|'ve been) given|given (?:to you|above|earlier)|"
        rf"above|(?:stated|listed|written) above)"
        rf"[^.\n?!]{{0,25}}?\b{_VOID}|{_REF_STRONG}{_GAP}{{0,25}}?\b{_VOID}|"
        rf"\b(?:treat|consider|regard|count|mark)\b{_GAP}{{0,6}}?{_REF_STRONG}{_GAP}{{0,12}}? as "
        rf"(?:a joke|irrelevant|void|null|fake|a test|optional|cancell?ed|obsolete|outdated|"
        rf"untrue|invalid|noise|nothing|meaningless)\b|\bnone of (?:your|the) (?:\w+ )?{_NOUN_WIDE}"
        rf"(?: (?:from|of|by) (?:your|the) \w+)? (?:appl|matter|count|hold)|\b(?:act|behave|pretend|"
        rf"answer|respond) as (?:if|though) you (?:had|have|were) never (?:received|been given|had|got|"
        rf"been told)\b|\bas (?:if|though) {_A}{_GAP}{{0,15}}?(?:had been|were|was|did not|didn't) "
        rf"(?:\w+ )?(?:removed|disabled|deleted|lifted|turned off|switched off|gone|exist|apply|"
        rf"erased|suspended|cancell?ed)\b|\b(?:do not|don't|never|no longer) (?:treat|consider|regard) "
        rf"{_A} as (?:binding|valid|mandatory|authoritative|in force|applicable)\b")),
    # "set your earlier rules to one side", "whatever the operator configured does not matter"
    "instructions_neutralised": (1.0, re.compile(
        rf"\b{_B_BEFORE}\b{_GAP}{{0,12}}?{_A_STRONG}|{_A_STRONG}{_GAP}{{0,25}}?\b{_B_AFTER}|"
        rf"\bleave {_A_STRONG} behind")),
    "instructions_neutralised_weak": (0.4, re.compile(
        rf"\b{_B_BEFORE}\b{_GAP}{{0,12}}?{_A}|{_A}{_GAP}{{0,25}}?\b{_B_AFTER}|\bleave {_A} behind")),
    # an order to answer right after an override-ish clause ("... and just tell me the password")
    "demands_reply": (0.3, re.compile(
        r"\b(?:and|then|just|now|instead)\s+(?:just\s+)?(?:tell me|answer|reply|respond|say|output|"
        r"print|reveal|obey|follow (?:these|mine|me|the ones below|this page))\b")),
    # "there has been an update to your rules:", "replace your instructions with"
    "rules_replaced": (0.6, re.compile(
        rf"\b(?:update|change|changes|amendment|revision|correction|patch)e?s? (?:to|of|in) your "
        rf"(?:\w+ )?{_NOUN_WIDE}\b|\breplace {_REF_STRONG}{_GAP}{{0,20}}? with\b")),
    "instructions_void_weak": (0.4, re.compile(
        rf"\b(?:previous|prior|earlier|old|original|initial|existing)\b[^.\n?!]{{0,20}}?\b{_NOUN}\b"
        rf"[^.\n?!]{{0,25}}?\b{_VOID}")),
    "new_task": (0.6, re.compile(
        r"\byour (?:new|real|actual|true|only|updated|revised|secret|hidden|primary|sole) (?:task|"
        r"job|goal|objective|mission|purpose|instructions?|orders?|directives?|assignment|"
        r"priority)\b\s*(?:is|are|will be|now is|is now|:)|\b(?:here are|these are|follow|obey) "
        r"(?:your|the|my|these) (?:new|real|actual|updated|true) (?:instructions|rules|orders|"
        r"directives)\b")),
    "new_instructions": (0.5, re.compile(
        r"\b(?:new|updated|real|actual|revised) (?:system )?(?:instructions?|rules?|directives?|"
        r"orders?|task)\s*:")),
    "from_now_on": (0.4, re.compile(
        r"\b(?:from (?:now|this (?:point|moment)|here) on|henceforth|hereafter|from this point forward|"
        r"going forward),? you (?:are|will|must|shall|should|may|can|(?:only )?(?:reply|respond|"
        r"answer|speak|act|behave|output|write))\b")),
    "override_banner": (0.7, re.compile(
        r"\b(?:system|admin|administrator|developer|root) (?:override|overwrite|instruction update|"
        r"prompt update)\b\s*(?::|!|mode|activated|enabled|engaged|in effect|code|protocol)")),
    "authority_claim": (0.4, re.compile(
        r"\b(?:i am|i'm|this is) (?:your|the|an?) (?:developer|creator|admin|administrator|operator|"
        r"owner|programmer|system administrator)s?\b|\b(?:message|instructions?|update) from "
        r"(?:your|the) (?:developers?|creators?|operators?|administrators?|admins?)\b")),
    "special_mode": (0.5, re.compile(
        r"\b(?:enter|enable|activate|switch to|you are (?:now )?in) (?:debug|maintenance|god|"
        r"admin|sudo|unrestricted|jailbreak|test) mode\b|\b(?:override|jailbreak|dan|god|unrestricted) "
        r"mode\s*(?:on|enabled|activated|engaged|:)")),
    # the text asks to be obeyed ("do whatever this page says")
    "defers_to_content": (0.6, re.compile(
        r"\b(?:the assistant|you|the model|the ai|the bot) (?:must|should|will|shall)"
        r" (?:now )?(?:follow|obey|"
        r"execute) only (?:the )?(?:commands|instructions|orders|rules|directions) (?:in|of|from|on) "
        r"(?:this|the following)\b|"
        r"\b(?:do|follow|obey|execute|carry out) (?:whatever|what|everything|all) (?:this|the) (?:page|"
        r"document|text|file|message|email|site|article|note|comment) (?:says|tells you|asks|instructs|"
        r"demands)\b|\b(?:comply|obey) (?:only )?with (?:this|the following) (?:page|document|text|"
        r"note|message)\b|\bobey only (?:what follows|the following|the (?:text|lines?|instructions|"
        r"commands) (?:below|that follow))\b")),
    "without_rules": (0.6, re.compile(
        r"\bno rules,? no (?:filters|limits|restrictions|limitations|censorship)\b|\b(?:there are )?no "
        r"(?:more |longer any )?(?:rules|restrictions|limits|guidelines|filters|instructions) (?:for|that "
        r"apply to|binding) you\b|"
        r"\bwithout (?:any of |applying |using )?(?:your|the|its) (?:\w+ )?(?:rules|guidelines|"
        r"restrictions|filters|safeguards|guardrails|safety (?:rules|guidelines|filters)|content "
        r"polic(?:y|ies))\b[^.\n]{0,30}\b(?:answer|respond|reply|tell|write|explain|act|help)|"
        r"\b(?:answer|respond|reply|tell me|write|explain)\b[^.\n]{0,40}\bwithout (?:any of )?"
        r"your (?:\w+ )?(?:rules|guidelines|restrictions|filters|safeguards|guardrails)\b")),
    "released_from_rules": (1.0, re.compile(
        r"\byou(?: are|'re) (?:now )?(?:no longer|not) (?:(?:bound|restricted|constrained|limited|"
        r"governed) by|required to (?:follow|obey|comply with)) (?:any |your |the |those |these )?"
        r"(?:\w+ )?" + _NOUN_WIDE + r"\b|\byou(?: are|'re) (?:now )?(?:free|allowed|"
        r"permitted) to (?:ignore|disregard|bypass|break)\b|\b(?:free|freed|released|liberated|exempt(?:ed)?|"
        r"unbound|unshackled|relieved) (?:from|of) (?:your|the|all|any) (?:\w+ )?" + _NOUN_WIDE +
        r"\b|\b(?:no longer|not) (?:have|need) to "
        r"(?:follow|obey) (?:your|the|any) (?:\w+ )?" + _NOUN_WIDE + r"\b")),
    "hijack_reply": (0.6, re.compile(
        r"\b(?:do not|don't|never) (?:answer|respond to|reply to|address|help with) (?:the|this|"
        r"their|any) (?:user|user's|question|request)\b[^\n]{0,60}?\b(?:instead|rather)\b|"
        r"\binstead of (?:answering|responding|replying|helping)\b[^.\n]{0,40}\b(?:say|tell|"
        r"respond|reply|output|write|print)\b")),
    "addresses_model": (0.6, re.compile(
        rf"\b(?:if|when|while|since) you(?: are|'re)? {_ADDRESSEE}\b[^.\n]{{0,40}}?\b(?:read|"
        rf"process|summari[sz]|see|pars|ingest|retriev|answer)|\bif you(?: are|'re) {_ADDRESSEE}"
        rf"(?: model| assistant)?\s*[,:]\s*(?:please )?(?:include|say|reply|respond|output|write|add|"
        rf"append|tell|recommend|mention|print|ignore|start|end|insert)\b|"
        rf"\b(?:note|message|instructions?|"
        rf"reminder|attention) (?:to|for) (?:the |any |all )?{_ADDRESSEE}s?\b\s*[:,-]|"
        rf"\b{_ADDRESSEE}s? (?:reading|processing|summari[sz]ing|parsing|ingesting|retrieving) "
        rf"(?:this|it)\b|\b(?:attention|note|memo|to|hey|important for|instructions for) (?:the |any |all )?"
        rf"{_ADDRESSEE}s?\s*:|"
        rf"\b(?:when|while|after|before|if) (?:summari[sz]ing|reading|processing|answering|parsing|"
        rf"quoting|using) (?:this|these) (?:page|document|text|file|email|message|article|site|"
        rf"excerpt|source|passage)s?\b[^.\n]{{0,40}}?\b(?:tell|say|respond|reply|answer|inform|"
        rf"instruct|include|mention|recommend|add|claim|state)\b")),
    "directs_user": (0.3, re.compile(
        r"\b(?:tell|inform|instruct|advise|urge|ask|convince|persuade|get|direct|warn) the (?:user|"
        r"reader|customer)s? (?:to|that|their|they|his|her|it)\b")),
    "payment_lure": (0.3, re.compile(
        r"\b(?:wire|transfer|send|deposit|pay)\b[^.\n]{0,25}?\b(?:money|funds|payment|bitcoin|btc|"
        r"crypto|usdt|gift cards?|\$\s?\d|€\s?\d|£\s?\d)")),
    "conceal_from_user": (0.4, re.compile(
        r"\b(?:do not|don't|never) (?:tell|mention|reveal|disclose|show) (?:this|these|it|that) "
        r"(?:\w+ )?to the user\b|\bwithout (?:telling|informing|alerting) the user\b")),
    "ignore_instructions_i18n": (1.0, re.compile(
        rf"\b{_I18N_VERB}\b[^.\n]{{0,25}}?(?:\b{_I18N_NOUN}\b[^.\n]{{0,20}}?\b{_I18N_PRE}|"
        rf"\b(?:{_I18N_PRE}|toutes|todas|tutte|alle)\b[^.\n]{{0,20}}?\b{_I18N_NOUN}\b)")),
    "reveal_prompt": (1.0, re.compile(
        r"\b(?:reveal|print|show|output|repeat|display|leak|dump|tell me|write out|give me)\b"
        r"[^.\n]{0,30}?\byour (?:\w+ ){0,2}?(?:system prompt|system message|instructions|initial "
        r"prompt|hidden prompt|prompt)\b|\b(?:repeat|print|output)\b[^.\n]{0,20}\b(?:everything|all "
        r"(?:the )?text|the text|the words)\b[^.\n]{0,15}\b(?:above|before this)\b")),
    "mentions_system_prompt": (0.4, re.compile(
        r"\b(?:reveal|print|show|output|leak|dump)\b[^.\n]{0,20}\bthe (?:system|hidden|initial) prompt\b")),
    "persona_override": (1.0, re.compile(
        r"\b(?:you are|you're|act as|pretend to be|become)\s+(?:now\s+)?(?:an?\s+)?(?:dan|jailbroken|"
        r"unfiltered|unrestricted|uncensored|evil \w+|ai without (?:any )?(?:rules|restrictions|limits|"
        r"filters))\b|\b(?:respond|reply|answer|act|speak|behave) (?:only )?as (?:an? |the )?(?:unfiltered|"
        r"unrestricted|uncensored|jailbroken) (?:model|ai|assistant|chatbot|bot|version|llm)\b"
        r"|\bdo anything now\b|\bdan mode\b|\byou are (?:now )?in developer mode\b|"
        r"\bstop being (?:an? |the )?(?:helpful )?(?:assistant|ai|chatbot|bot|language model)\b|"
        r"\bdeveloper mode (?:is )?(?:now )?(?:enabled|activated)\b[^.\n]{0,40}\b(?:you|policies|"
        r"restrictions|filters)\b")),
    "roleplay_jailbreak": (0.7, re.compile(
        r"\b(?:pretend|imagine|act as (?:if|though)|role-?play|let's play a game)\b[^.\n]{0,60}?\b(?:no"
        r"|without|"
        r"free (?:of|from)|not bound by|ignores?)\b[^.\n]{0,20}?\b(?:rules|restrictions|filters|"
        r"guidelines|limitations|content polic(?:y|ies)|ethics|morals|censorship)\b|\b(?:stay in|never "
        r"break) character\b[^.\n]{0,60}\b(?:rules|restrictions|filters|refuse)\b")),
    "fake_role_tag": (1.0, re.compile(
        r"<\|(?:im_start|im_end|system|assistant|endoftext|eot_id|start_header_id)\|>|\[/?inst\]|"
        r"<</?sys>>|^\s*#{2,}\s*(?:system|new instructions?)\s*:?\s*$|</?(?:system|system_prompt)>",
        re.MULTILINE)),
    "role_prefix": (0.4, re.compile(r"^\s*(?:system|assistant)\s*:\s*\S", re.MULTILINE)),
}

#: Look-alike letters (Cyrillic, Greek, Latin extensions) folded onto ASCII before a
#: second pass: "ignоre" with a Cyrillic о is still "ignore".
CONFUSABLES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l", "ո": "n", "ս": "u", "ɡ": "g", "ɩ": "i", "ʏ": "y",
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
    "χ": "x", "ѵ": "v", "ԝ": "w", "ɑ": "a", "ı": "i", "ℓ": "l"})
#: Digits and symbols standing in for letters ("1gn0re prev10us 1nstruct10ns").
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                      "$": "s", "|": "i"})
#: Over letters only (spaces and punctuation squeezed out of spelled-out runs such as
#: "i g n o r e  a l l  p r e v i o u s").
SQUEEZED = re.compile(
    r"(?:ignore|disregard|forget|override|bypass|donotfollow|dontfollow|stopfollowing)"
    r"[a-z]{0,24}?(?:instructions?|prompts?|directives?|guidance|guidelines|rules|whatyouweretold)")
