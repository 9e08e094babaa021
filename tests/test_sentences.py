"""The rule-based sentence segmenter: English and Turkish prose, markdown, lists; spans tile the text."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haystack_integrations.components.preprocessors.crossencoder import split_sentences


def units(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr. Smith went home. He slept.", ["Dr. Smith went home. ", "He slept."]),
        ("Prof. Dr. Ahmet Yılmaz geldi. Sonra gitti.", ["Prof. Dr. Ahmet Yılmaz geldi. ", "Sonra gitti."]),
        ("Mr. Brown met St. John. They talked.", ["Mr. Brown met St. John. ", "They talked."]),
        (
            "Doç. Dr. Ayşe ve Av. Mehmet geldi. Toplantı başladı.",
            ["Doç. Dr. Ayşe ve Av. Mehmet geldi. ", "Toplantı başladı."],
        ),
        ("Use a tool, e.g. Python. Or i.e. Ruby. Done.", ["Use a tool, e.g. Python. ", "Or i.e. Ruby. ", "Done."]),
        ("Apple vs. Google is old news. Next.", ["Apple vs. Google is old news. ", "Next."]),
        ("We sell pears etc. The shop is open.", ["We sell pears etc. ", "The shop is open."]),
        ("Pears, apples etc. are fruit. Yes.", ["Pears, apples etc. are fruit. ", "Yes."]),
        ("Elma, armut vb. Sonra eve döndük.", ["Elma, armut vb. ", "Sonra eve döndük."]),
        ("Meyveler, örn. elma ve armut, sağlıklıdır. Evet.", ["Meyveler, örn. elma ve armut, sağlıklıdır. ", "Evet."]),
        ("19. yy. Osmanlı tarihi ilginçtir. Bitti.", ["19. yy. Osmanlı tarihi ilginçtir. ", "Bitti."]),
        ("A. Yılmaz ve B. Kaya geldi. Tamam.", ["A. Yılmaz ve B. Kaya geldi. ", "Tamam."]),
        ("J.R.R. Tolkien wrote books. True.", ["J.R.R. Tolkien wrote books. ", "True."]),
        ("See No. 5 on p. 12 now. Fine.", ["See No. 5 on p. 12 now. ", "Fine."]),
        ("Pi is 3.14 and inflation %12,5 rose. Next one.", ["Pi is 3.14 and inflation %12,5 rose. ", "Next one."]),
        ("Tarih 03.05.2019 idi. Sonra 12.2020 geldi.", ["Tarih 03.05.2019 idi. ", "Sonra 12.2020 geldi."]),
        ("Kuruluş 03.05.2019. Sonra büyüdü.", ["Kuruluş 03.05.2019. ", "Sonra büyüdü."]),
        (
            "2. Dünya Savaşı 1939'da başladı. In 2019. The end.",
            ["2. Dünya Savaşı 1939'da başladı. ", "In 2019. ", "The end."],
        ),
        ("Ne oldu? Bilmiyorum! Peki.", ["Ne oldu? ", "Bilmiyorum! ", "Peki."]),
        ("Really?! Yes.", ["Really?! ", "Yes."]),
        ("Wait… Then it rained. Well... Fine.", ["Wait… ", "Then it rained. ", "Well... ", "Fine."]),
        ("It went on… and on. Done.", ["It went on… and on. ", "Done."]),
        (
            'He said "Stop." Then left. (See above.) Next.',
            ['He said "Stop." ', "Then left. ", "(See above.) ", "Next."],
        ),
        ("Sentence one.  Two spaces follow.", ["Sentence one.  ", "Two spaces follow."]),
        ("version 2.0. is out. lowercase does not split.", ["version 2.0. is out. lowercase does not split."]),
        ("no punctuation at all in this text", ["no punctuation at all in this text"]),
        ("Paragraph one\n\nParagraph two\n \nThree", ["Paragraph one\n\n", "Paragraph two\n \n", "Three"]),
        (
            "## Deneyim\nPython ile çalıştım\n### Eğitim\nODTÜ",
            ["## Deneyim\n", "Python ile çalıştım\n", "### Eğitim\n", "ODTÜ"],
        ),
        ("- Python\n- Java\n• Go\n* Rust\n+ C", ["- Python\n", "- Java\n", "• Go\n", "* Rust\n", "+ C"]),
        ("1. Bir\n2. İki\n3) Üç\na) dört", ["1. Bir\n", "2. İki\n", "3) Üç\n", "a) dört"]),
        ("Skills:\n  - Python. Fast.\n  - SQL", ["Skills:\n  ", "- Python. ", "Fast.\n  ", "- SQL"]),
        ("  Leading space. Second.", ["  Leading space. ", "Second."]),
        ("Trailing space.   ", ["Trailing space.   "]),
        ("", []),
    ],
)
def test_segmenter_cases(text, expected):
    assert units(text) == expected


def test_whitespace_only_text_is_one_unit():
    assert split_sentences(" \n\t ") == [(0, 4)]


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab İış.?!…\n-#1)\"' \f")) | st.characters(), max_size=200))
def test_spans_tile_the_text_and_start_at_non_whitespace(text):
    spans = split_sentences(text)
    if not text:
        assert spans == []
        return
    assert spans[0][0] == 0
    assert spans[-1][1] == len(text)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end == start
    for start, end in spans:
        assert start < end
    for start, _ in spans[1:]:
        assert not text[start].isspace()
