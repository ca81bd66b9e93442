"""Citation verification with the real MiniLM encoder (no mocks)."""

from __future__ import annotations

import pytest

from benchmarks.citations import answer_for, evaluate, load_cases
from guardrails.citations import VERDICTS, CitationReport, spell_dates, verify_citations
from guardrails.claims import has_antonym_clash, numbers_match, parse_markers, split_sentences

SRC = {"1": "Marie Curie was born in Warsaw in 1867. She was the first woman to win a Nobel Prize, "
            "receiving the physics prize in 1903. In 1911 she won a second Nobel Prize, this time in "
            "chemistry. She did not live to see her daughter Irène win the chemistry prize in 1935.",
       "2": "The Eiffel Tower is 330 metres tall and receives about 7,000,000 visitors each year."}


def one(sentence: str, sources: dict[str, str] = SRC):  # type: ignore[no-untyped-def]
    report = verify_citations(sentence, sources)
    assert len(report.sentences) == 1, [s.text for s in report.sentences]
    return report.sentences[0]


def test_contract_shape() -> None:
    report = verify_citations("Hello! Curie was born in Warsaw in 1867 [1]. She won in 1913 [1].", SRC)
    assert isinstance(report, CitationReport)
    for s in report.sentences:
        assert isinstance(s.text, str) and isinstance(s.score, float) and s.verdict in VERDICTS
        assert all(isinstance(c, str) for c in s.cited)
    assert [s.verdict for s in report.sentences] == ["uncited", "supported", "unsupported"]
    assert report.sentences[1].cited == ["1"] and "[1]" not in report.sentences[1].text
    assert [s.text for s in report.flagged] == ["She won in 1913."]
    assert report.groundedness == pytest.approx(0.5)
    d = report.to_dict()
    assert d["flagged"] == 1 and len(d["sentences"]) == 3
    assert verify_citations("", SRC).groundedness == 1.0


def test_supported_exact_and_paraphrase() -> None:
    assert one("Marie Curie was born in Warsaw in 1867 [1].").verdict == "supported"
    assert one("In 1911 Curie received a second Nobel Prize, in chemistry [1].").verdict == "supported"


def test_number_and_date_mismatch() -> None:
    bad = one("Marie Curie was born in Warsaw in 1868 [1].")
    assert bad.verdict == "unsupported" and "number" in bad.reasons
    assert one("The Eiffel Tower gets about 7 million visitors a year [2].").verdict == "supported"
    assert one("The Eiffel Tower receives about 9 million visitors each year [2].").verdict == "unsupported"


def test_number_normalisation() -> None:
    assert numbers_match("1000 people, 5 percent, two dogs", "1,000 people, 5%, 2 dogs")
    assert numbers_match("about 1.8 million", "1.81 million")
    assert not numbers_match("1.8 million", "1.81 million")
    assert not numbers_match("15%", "5%")


def test_negation() -> None:
    bad = one("Curie lived to see her daughter Irène win the chemistry prize [1].")
    assert bad.verdict == "unsupported" and "negation" in bad.reasons


def test_swapped_name() -> None:
    bad = one("Marie Curie was born in Krakow in 1867 [1].")
    assert bad.verdict == "unsupported" and any(r.startswith("entity") for r in bad.reasons)


def test_fabricated_id() -> None:
    s = one("Marie Curie was born in Warsaw in 1867 [7].")
    assert s.verdict == "invalid_citation" and s.cited == ["7"] and s.score == 0.0
    assert one("Curie was born in 1867 [1][3].").verdict == "invalid_citation"


def test_uncited_claim_vs_filler() -> None:
    report = verify_citations("Here is what I found. Curie discovered radium in 1898. "
                              "Is there anything else? I hope this helps!", SRC)
    verdicts = [(s.verdict, s.claim) for s in report.sentences]
    assert verdicts == [("uncited", False), ("uncited", True), ("uncited", False), ("uncited", False)]
    assert [s.text for s in report.flagged] == ["Curie discovered radium in 1898."]


def test_multi_citation() -> None:
    ok = one("Curie was born in 1867, and the Eiffel Tower is 330 metres tall [1][2].")
    assert ok.verdict == "supported" and ok.cited == ["1", "2"]
    assert one("Curie was born in 1867 and the tower is 330 metres tall [1, 2].").cited == ["1", "2"]
    assert one("The Eiffel Tower is 330 metres tall [1].").verdict == "unsupported"  # wrong source


def test_marker_forms() -> None:
    assert parse_markers("A claim [1, 2][3-5].") == ("A claim.", ["1", "2", "3", "4", "5"])
    assert parse_markers("No markers here.") == ("No markers here.", [])


def test_sentence_splitting_edge_cases() -> None:
    text = ("Dr. Smith measured 3.5 kg, e.g. in the lab [1]. Prices rose 5%. [2] "
            "It was the U.S. market. Mr. Jones agreed [3][4]! Why? Yes.\n- A bullet point")
    assert split_sentences(text) == [
        "Dr. Smith measured 3.5 kg, e.g. in the lab [1].", "Prices rose 5%. [2]",
        "It was the U.S. market.", "Mr. Jones agreed [3][4]!", "Why?", "Yes.", "A bullet point"]
    report = verify_citations("Curie was born in Warsaw in 1867. [1] She won in 1911.", SRC)
    assert [s.cited for s in report.sentences] == [["1"], []]


def test_role_swaps_between_names_in_the_same_source() -> None:
    src = {"1": "Neil Armstrong and Buzz Aldrin landed in the lunar module Eagle, while Michael "
                "Collins remained in lunar orbit aboard Columbia. Kylian Mbappé scored a hat-trick."}
    ok = one("Armstrong and Aldrin landed in the lunar module [1].", src)
    assert ok.verdict == "supported", ok.reasons
    bad = one("Collins and Aldrin landed in the lunar module [1].", src)
    assert bad.verdict == "unsupported" and any(r.startswith("role") for r in bad.reasons)


def test_negation_scope_and_distance() -> None:
    src = {"1": "Watson, Crick and Wilkins received the Nobel Prize in 1962. Franklin had died in "
                "1958 and was not included. UDP is connectionless and does not guarantee delivery."}
    assert "negation" in one("Franklin was included in the 1962 Nobel Prize [1].", src).reasons
    assert "negation" in one("UDP guarantees delivery [1].", src).reasons
    assert one("UDP does not guarantee delivery [1].", src).verdict == "supported"
    # Both sides negative, with different heads: they agree.
    assert one("Iceland does not maintain a standing army [1].",
               {"1": "Iceland has no standing army."}).verdict == "supported"


def test_direction_acronyms_and_number_units() -> None:
    boe = {"1": "The Bank of England held Bank Rate at 5.25% in February."}
    assert "antonym" in one("The Bank of England raised Bank Rate to 5.25% [1].", boe).reasons
    ecb = {"1": "The European Central Bank raised its deposit rate to 4% in September 2023."}
    assert one("The ECB raised its deposit rate to four percent in September 2023 [1].", ecb).verdict == "supported"
    assert not numbers_match("Shakespeare wrote 154 plays.", "He wrote 39 plays and 154 sonnets.")
    assert not numbers_match("Argentina won 4-3 on penalties", "Argentina won 4-2 on penalties after a 3-3 draw")
    assert numbers_match("twenty-six metres", "26 metres") and numbers_match("his two crewmates", "Aldrin")
    assert not numbers_match("a three-year warranty", "a two-year warranty")


def test_partial_support_names_the_unsupported_clause() -> None:
    src = {"1": "Under the GDPR, organisations must report a personal data breach to the supervisory "
                "authority within 72 hours of becoming aware of it."}
    bad = one("Breaches must be reported within 72 hours, and every affected customer must be compensated [1].", src)
    assert bad.verdict == "unsupported" and any("compensated" in r for r in bad.reasons)


@pytest.mark.slow  # ~20 s on an idle box: 220 cases through the real encoder
def test_labelled_set_and_benchmark_on_held_out_splits() -> None:
    cases = load_cases()
    assert len(cases) >= 400
    assert {c["label"] for c in cases} == set(VERDICTS)
    assert {c["split"] for c in cases} == {"dev", "test", "dev2", "holdout"}
    assert len({c["id"] for c in cases}) == len(cases)
    assert answer_for({"sentence": "X is 5.", "cited": ["1", "2"]}) == "X is 5 [1][2]."
    res = evaluate([c for c in cases if c["split"] in ("test", "holdout")])
    assert res["test"]["precision"] >= 0.90 and res["test"]["recall"] >= 0.85, res["test"]
    # The fresh held-out split is small (55 cases): a looser floor that still catches a regression.
    assert res["holdout"]["precision"] >= 0.85 and res["holdout"]["recall"] >= 0.75, res["holdout"]


@pytest.mark.parametrize("text, claim", [
    ("Noted — I'll keep that in mind.", False),  # chat acknowledgements assert nothing
    ("Got it, thanks for telling me.", False),
    ("Sounds good, I will remember that.", False),
    ("The ferry takes ten minutes.", True),  # a number written as a word is still a number
    ("Paris is the capital of France.", True),
    ("I'll check the Tagus ferry times.", True),  # "I'll" is no name, "Tagus" is
])
def test_what_counts_as_a_claim(text: str, claim: bool) -> None:
    from guardrails.claims import is_claim

    assert is_claim(text) is claim
    [sentence] = verify_citations(text, {"1": "Unrelated text about gardening."}).sentences
    assert sentence.claim is claim and sentence.verdict == "uncited"


PER_DIEM = {"1": "The daily per diem is 45 EUR within the EU and 60 EUR outside the EU."}


@pytest.mark.parametrize("answer", ["45 EUR [1]", "It is 45 EUR [1].", "45 EUR per day [1]"])
def test_a_bare_answer_is_bound_in_the_questions_frame(answer: str) -> None:
    asked = "What is the per diem outside the EU?"
    wrong = verify_citations(answer, PER_DIEM, question=asked).sentences[0]
    assert wrong.status == "not_supported" and "binding:@out" in wrong.reasons
    assert wrong.text == answer.replace(" [1]", "")  # shown as written, checked in its frame
    right = verify_citations(answer.replace("45", "60"), PER_DIEM, question=asked).sentences[0]
    assert right.status == "supported"
    # Asked about the EU itself, the same bare 45 is the right one.
    inside = verify_citations(answer, PER_DIEM, question="What's the per diem within the EU?")
    assert inside.sentences[0].status == "supported"


def test_a_full_claim_keeps_its_own_frame_whatever_the_question() -> None:
    # A sentence that states its own subject and qualifier is judged as it stands: the
    # question only fills in what a bare answer leaves out.
    claim = "The per diem within the EU is 45 EUR [1]."
    got = verify_citations(claim, PER_DIEM, question="What is the per diem outside the EU?")
    assert got.sentences[0].status == "supported"
    # No question (or an empty one): a bare value has no frame to be bound in.
    for q in (None, "", "?"):
        assert verify_citations("45 EUR [1]", PER_DIEM, question=q).sentences[0].reasons == []


@pytest.mark.parametrize("question", ["Is the per diem outside the EU 45 EUR?",  # yes/no: no frame
                                      "Tell me the per diem outside the EU.",  # not a question
                                      "What is " + "the per diem outside the EU and " * 8 + "?"])
def test_only_a_short_wh_question_frames_an_answer(question: str) -> None:
    # "No, it is 60 EUR" denies the question's 45: reading it with the question's values
    # would flag a right answer. A long question would turn a bare answer into the question.
    for answer in ("No, it is 60 EUR [1].", "45 EUR [1]"):
        assert verify_citations(answer, PER_DIEM, question=question).sentences[0].status == "supported"


def test_the_last_question_of_a_message_frames_the_answer() -> None:
    asked = "Thanks, that helps! And what is the per diem outside the EU?"
    got = verify_citations("45 EUR [1]", PER_DIEM, question=asked).sentences[0]
    assert got.status == "not_supported" and "binding:@out" in got.reasons


@pytest.mark.parametrize(("text", "parts"), [
    ("In 1980 the U.S. Supreme Court ruled on it [1].", 1),  # a name goes on after "U.S."
    ("He spoke at the Allen and Co. Sun Valley conference.", 1),
    ("Annie Zaleski of The A.V. Club praised it.", 1),
    ("He moved to the U.S. The next year he left.", 2),  # a function word opens a sentence
    ("It was founded as Smith & Co. He sold it in 1990.", 2),
    ("It is in Washington, D.C. It has 5 rooms.", 2),
])
def test_an_abbreviation_ends_a_sentence_only_before_a_new_one(text: str, parts: int) -> None:
    # A split inside "the U.S. Supreme Court ruled ... [1]" leaves the front as an uncited
    # claim and checks only the tail against the source.
    assert len(split_sentences(text)) == parts


def test_a_month_in_a_claim_matches_a_sources_iso_date() -> None:
    src = {"1": "PUBLISHED: 2018-06-30T07:00:00Z. The museum reopened after a two-year renovation."}
    ok = verify_citations("The museum reopened in June 2018 after a renovation [1].", src).sentences[0]
    wrong = verify_citations("The museum reopened in July 2018 after a renovation [1].", src).sentences[0]
    assert ok.status == "supported", ok.reasons
    assert wrong.status != "supported" and any(r.startswith("entity:") for r in wrong.reasons)


def test_an_abbreviated_month_in_a_source_reads_as_the_month() -> None:
    # News pages date themselves "Nov 10, 2018" / "Jan. 27, 2019"; the claim says "November".
    src = {"1": "Nov 10, 2018 at 8:26 PM\nThe former congresswoman died on Saturday. She was 78."}
    ok = verify_citations("The former congresswoman died on November 10, 2018, aged 78 [1].", src).sentences[0]
    wrong = verify_citations("The former congresswoman died on December 10, 2018, aged 78 [1].",
                             src).sentences[0]
    assert ok.status == "supported", ok.reasons
    assert wrong.status != "supported" and wrong.score < ok.score
    assert spell_dates("Sept. 3 1999, Dec.5, the Jan team") == "September 3 1999, December 5, the Jan team"


@pytest.mark.parametrize(("claim", "evidence", "clash"), [
    ("Pets are permitted indoors.", "Pets are permitted outdoors only.", True),
    ("The course is optional.", "The course is mandatory for all new staff.", True),
    ("Parental leave is unpaid.", "Parental leave is paid for 14 weeks.", True),
    ("Drones are allowed in the park.", "Drones are prohibited in the park.", True),
    ("The desk is open on weekends.", "The desk is open on weekdays.", True),
    # the same side in other words is no clash
    ("Smoking is allowed inside the terminal.", "Smoking is allowed within the terminal only, never outside.",
     False),
    ("Drones are forbidden in the park.", "Drones are prohibited in the park.", False),
    ("The training is required.", "The training is mandatory, not optional.", False),
    ("Masks are mandatory in the east wing.",
     "Visitors must wear a mask in the east wing; masks are optional elsewhere.", False),
    # a negated side is the other side: the negation check reads those
    ("Smoking is not allowed indoors.", "Smoking is prohibited indoors.", False),
    ("Pets are prohibited in the rooms.", "Pets are not allowed in the rooms.", False),
])
def test_opposite_words_clash_and_same_side_words_do_not(claim: str, evidence: str, clash: bool) -> None:
    assert has_antonym_clash(claim, evidence) is clash


@pytest.mark.parametrize(("claim", "evidence", "match"), [
    ("The desk closes at 6 pm.", "The desk is open from 8:00 to 18:00.", True),
    ("Check-in begins at 15:00.", "Check-in starts at 3 p.m.", True),
    ("The desk opens at 8:30 am.", "The desk opens at 8:30.", True),
    ("Lunch is served at noon.", "Lunch is served at 12:00.", True),
    ("The desk closes at 5 pm.", "The desk is open from 8:00 to 18:00.", False),
    ("The gym closes at 10 am.", "The gym closes at 10 pm.", False),
    ("Check-in begins at 14:00.", "Check-in starts at 3 pm.", False),
])
def test_a_12_hour_clock_time_is_its_24_hour_time(claim: str, evidence: str, match: bool) -> None:
    assert numbers_match(claim, evidence) is match


def test_a_thousands_comma_does_not_cut_a_clause_and_except_negates() -> None:
    src = {"1": "Loans of less than 1,000 EUR carry a 5% fee. The library is open every day except Sunday."}
    assert one("Loans below 1,000 EUR carry a 5% fee [1].", src).verdict == "supported"
    assert "negation" in one("The library is open on Sunday [1].", src).reasons
    assert one("The library is open on Monday [1].", src).verdict != "supported"  # no Monday named
