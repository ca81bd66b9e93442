"""guardrails.frames: the clause and term rules that keep binding checks off sentences
with no rival qualifier (issue 13: the older labelled splits lost precision to them).
Pure Python, no encoder: each test checks one rule on sentences of its own."""

from __future__ import annotations

from guardrails.frames import check_binding, frame_terms, units


def texts(source: str) -> list[str]:
    return [u.text.strip() for u in units(source)]


def test_between_x_and_y_is_one_range_not_two_clauses() -> None:
    source = "A typical hive holds one queen and between 30,000 and 60,000 worker bees."
    assert texts(source) == ["A typical hive holds one queen", "between 30,000 and 60,000 worker bees."]
    assert check_binding("A hive can hold 30000 to 60000 workers", units(source)) is None
    # A real clause "and" still cuts.
    assert len(units("Tickets cost 5 EUR and passes cost 40 EUR.")) == 2


def test_an_example_or_comparison_after_a_comma_stays_with_its_clause() -> None:
    source = ("The Nile carries silt to the Mediterranean, more than any other river in Africa. "
              "A variable tariff can rise after an initial term, such as two years.")
    assert len(units(source)) == 2
    assert check_binding("The Nile carries more silt than any other African river", units(source)) is None
    assert check_binding("The tariff may rise after a first term like two years", units(source)) is None


def test_a_fronted_qualifier_without_a_number_stays_with_its_clause() -> None:
    source = "For most commuters, the city allows up to 2 bags on a bus, about one suitcase."
    first = texts(source)[0]
    assert first.startswith("For most commuters, the city allows")
    assert check_binding("The city lets commuters bring as much as 2 bags on the bus", units(source)) is None
    # A fronted phrase that holds a value is a frame of its own.
    assert len(units("After the first 2 hours, parking costs 3 EUR per hour.")) == 2


def test_bare_most_is_a_majority_not_an_upper_bound() -> None:
    assert "<" not in frame_terms("Most visitors arrive by train")[0]
    assert "<" in frame_terms("Each visitor brings at most 2 bags")[0]


def test_a_number_that_names_a_thing_is_not_a_bound_value() -> None:
    values, plain = frame_terms("The Galaxy 24 Ultra weighs 233 grams")
    assert "#24" not in values and "#233" in values and "galaxy_24" in plain
    # After a label word, in either case, it names the class.
    assert frame_terms("Severity 2 tickets")[1] == frame_terms("severity 2 tickets")[1] >= {"severity_2"}
    # Plain words, range words and months leave the number a value.
    assert "#12" in frame_terms("Express delivery costs 12 EUR")[0]
    assert "#6" in frame_terms("Flights over 6 hours")[0]
    assert "#4" in frame_terms("The office closes on July 4")[0]
    # A version is a name too; an amount after a capitalised word stays a value.
    assert "node_20.11" in frame_terms("Node 20.11 is faster than Node 18")[1]
    assert "#4.9" in frame_terms("Costs 4.90 EUR")[0]
    source = "Node 20.11 shipped in January. Its maintainers say it starts 30% faster than Node 18."
    assert check_binding("Node 20.11 starts 30% faster than Node 18", units(source)) is None
    source = "The Galaxy 24 has a plastic back and weighs 196 grams."
    assert check_binding("The Galaxy 24 weighs 196 grams", units(source)) is None


def test_a_gapped_clause_has_its_own_subject() -> None:
    source = "Phones carry a 1-year guarantee and chargers a 3-month guarantee."
    wrong = check_binding("Phones have a 3-month guarantee", units(source))
    assert wrong is not None and wrong.term == "phon"
    assert check_binding("Chargers have a 3-month guarantee", units(source)) is None
    # A clause that opens with its own verb shares the first clause's subject.
    priced = "Overnight delivery takes 1 day and costs 20 EUR; ground delivery takes 4 days and costs 6 EUR."
    assert check_binding("Overnight delivery costs 20 EUR", units(priced)) is None
    assert check_binding("Ground delivery costs 20 EUR", units(priced)) is not None


def test_a_change_relative_or_whichever_tail_stays_with_its_clause() -> None:
    source = ("Acme shipped 2.4 million units in 2024, up 12% from the year before. The forest covers "
              "3 million hectares, about 40% of which is protected. Fees are 10 EUR or 2% of the "
              "order, whichever is lower.")
    assert len(units(source)) == 3
    pool = units(source)
    assert check_binding("Acme shipped 2.4 million units in 2024, up 12% on the year before", pool) is None
    assert check_binding("The forest covers 3 million hectares, about 40% of it protected", pool) is None


def test_a_decimal_amount_is_not_a_clock_time() -> None:
    assert frame_terms("The dividend is 0.45 EUR per share")[0] == {"#0.45"}
    assert frame_terms("Tickets cost 4.90 EUR")[0] == {"#4.9"}
    assert frame_terms("Open 9.00-17.30 on weekdays")[0] == {"#t9:00", "#t17:30", "weekday"}
    assert frame_terms("The gate closes at 8:15")[0] == {"#t8:15"}


def test_even_is_no_evening_tier() -> None:
    assert "even" not in frame_terms("Prices rose even faster")[0]
    assert "even" in frame_terms("The evening rate is 8 EUR")[0]


def test_a_range_word_on_a_year_dates_it() -> None:
    assert frame_terms("Lisbon was the capital from 1255 until 1808")[0] == set()
    assert "<" in frame_terms("Delivery until 5 pm")[0]
    source = "Lisbon was the seat of the court for over 500 years, from 1255 until 1808."
    claim = "Lisbon held the court for over 500 years, from 1255 until 1808"
    assert check_binding(claim, units(source)) is None


def test_an_elliptical_list_item_takes_the_words_before_the_first_value() -> None:
    from guardrails.frames import decompose

    assert decompose("She recorded about 12 albums and 140 songs") == [
        "She recorded about 12 albums", "She recorded about 140 songs"]
    # The verb form still gives the head; the nearest full clause lends it.
    assert decompose("Day passes cost 9 EUR; week passes take 3 days to issue and 30 EUR") == [
        "Day passes cost 9 EUR", "week passes take 3 days to issue", "week passes is 30 EUR"]
    source = "She recorded about 12 albums and 140 songs."
    assert all(check_binding(part, units(source)) is None
               for part in decompose("She recorded about 12 albums and 140 songs"))


def test_an_ordinal_ranks_it_is_no_count() -> None:
    assert frame_terms("She won for the third time")[0] == {"#3rd"}
    assert frame_terms("the 6th edition")[0] == {"#6th"}
    assert "#3" in frame_terms("She won three titles")[0]
    source = "The club won its third title in 2019, beating three rivals on goal difference."
    assert check_binding("The club beat three rivals to its third title", units(source)) is None


def test_until_or_after_an_event_bounds_no_value() -> None:
    assert frame_terms("Players wait until the whistle blows")[0] == set()
    assert frame_terms("Rates may change after an initial period")[0] == set()
    assert "<" in frame_terms("Returns are accepted until 30 days after delivery")[0]
    assert ">" in frame_terms("After the first 2 hours, parking costs 3 EUR")[0]


def test_a_name_is_no_rival_subject() -> None:
    source = ("The panel shortlisted three candidates for the open seat, and Okafor was picked for the "
              "seat by 5 votes.")
    assert check_binding("Okafor was one of three candidates for the open seat", units(source)) is None
    # A common noun in that place is a subject of its own.
    source = ("The panel shortlisted three candidates for the open seat, and judges were picked for the "
              "seat by 5 votes.")
    assert check_binding("Judges were three candidates for the open seat", units(source)) is not None


def test_as_well_as_joins_two_frames_and_a_subject_range_is_not_inherited() -> None:
    from guardrails.frames import decompose

    assert decompose("The library lends 20 books as well as 5 films") == [
        "The library lends 20 books", "The library lends 5 films"]
    assert decompose("Members aged 18 to 25 get 10 credits, and those over 25 6 credits") == [
        "Members aged 18 to 25 get 10 credits", "Members aged those over 25 6 credits"]
    source = "Members aged 18 to 25 get 10 credits a month, and members over 25 get 6 credits."
    for part in decompose("Members aged 18 to 25 get 10 credits, and those over 25 6 credits"):
        assert check_binding(part, units(source)) is None


def test_a_comparative_in_another_sentence_bounds_nothing_here() -> None:
    source = ("Acme reported revenue of 80 million euros, up 5 percent on a year before. Operating "
              "profit fell to 12 million euros because of higher energy costs.")
    claim = "Acme's revenue was 80 million euros, 5 percent more than a year before"
    assert check_binding(claim, units(source)) is None
    # A range word bounding a number in the next sentence still does.
    orders = "Orders over 40 EUR ship free. Orders under 40 EUR pay a 4 EUR fee."
    assert check_binding("Orders under 40 EUR ship free", units(orders)) is not None


def test_then_opens_the_next_condition_not_a_copy_of_the_first() -> None:
    source = "Parking is free for the first 30 minutes, then 2 EUR per hour."
    assert check_binding("Parking costs 2 EUR per hour after that", units(source)) is None
    # The hourly price is not "free": the then-clause does not inherit the first's words.
    assert check_binding("Parking is free for 2 EUR per hour", units(source)) is not None


def test_a_second_predicate_of_one_subject_is_no_rival() -> None:
    source = "The festival runs ten days and draws about 300,000 visitors."
    assert check_binding("The festival draws about 300,000 visitors", units(source)) is None
    # A rival with another qualifier is still one.
    rival = "The daily per diem is 45 EUR within the EU and 60 EUR outside the EU."
    assert check_binding("The per diem outside the EU is 45 EUR", units(rival)) is not None


def test_most_of_them_tail_stays_with_its_clause() -> None:
    source = "The museum had 2 million visitors last year, most of them from abroad."
    assert len(units(source)) == 1


def test_beyond_a_place_is_outside_it_beyond_a_number_is_over_it() -> None:
    rival = units("The daily per diem is 45 EUR within the EU and 60 EUR outside the EU.")
    assert check_binding("Beyond the EU the per diem is 45 EUR", rival) is not None
    assert check_binding("Beyond the EU the per diem is 60 EUR", rival) is None
    flights = units("Economy class is booked for flights under 6 hours and business class for longer "
                    "flights.")
    assert check_binding("Business class is booked for flights beyond 6 hours", flights) is None
    # "beyond that": beyond the value just named, a bound
    delivery = units("Delivery is free within 5 km of the store and costs 3 EUR per km beyond that.")
    assert check_binding("Delivery costs 3 EUR per km beyond 5 km", delivery) is None
