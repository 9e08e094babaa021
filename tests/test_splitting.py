"""The splitting core: passages measured in the model's tokenizer, exact offsets, budget, overlap, sentence ends."""

import copy
import itertools

import pytest
from haystack import Document
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haystack_integrations.components.preprocessors.crossencoder import (
    PASSAGE_MARKER,
    PASSAGE_MARKER_KEY,
    PASSAGE_META_KEYS,
    PassageSpan,
    is_passage,
    passage_token_budget,
    split_document,
    split_sentences,
    split_text,
)

ENGLISH = (
    "Cross-encoders read the query and the passage together. They are slower than bi-encoders but more accurate. "
    "A long document is truncated silently, so its end is never seen by the model. Passage-level reranking fixes "
    "this by splitting documents into passages that fit the model. Each passage is scored on its own, and the "
    "document gets the score of its best passage. Dr. Smith measured it on SciFact in 2024. The gain was large."
)
TURKISH = (
    "İstanbul'da ılık bir sabah. Şükrü Bey, Iğdır'dan gelen ağır yükü taşıdı. Öğretmenler çocuklara ödev verdi. "
    "Prof. Dr. Gülşen Işık, 2. Dünya Savaşı üzerine konuştu. Çalışma %12,5 oranında arttı ve 03.05.2019 tarihinde "
    "yayımlandı. İİİ ııı ŞŞŞ ğğğ İnşaat işçileri ağaçları dikti. "
)
COMBINING = "Cafe\u0301 au lait. Zoe\u0308 went to the cafe\u0301 again. Noe\u0308l sang a cre\u0300me song. " * 4
EMOJI = "I love this 😀😀 so much! 👩‍👩‍👧‍👦 The family is here 🎉. Flags 🇹🇷 and 🇺🇸 wave. " * 4
CJK = (
    "自然语言处理是人工智能的一个分支。它研究计算机与人类语言的交互。東京は日本の首都です。한국어 문장도 있습니다. " * 3
)
MESSY = (
    "Tabs\tand   runs   of  spaces.\n\n\nNew\x00para\x07graph with control\u200bchars.\r\n  - item one\n  - item two "
    * 3
)


def parent_offsets(tokenizer, text):
    return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]


def standalone_tokens(tokenizer, text):
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def assert_valid_passages(text, spans, tokenizer, max_tokens, overlap_tokens):
    """The contract every split must meet."""
    assert spans, "a text always yields at least one passage"
    assert spans[0].start == 0
    assert spans[-1].end == len(text)
    offsets = parent_offsets(tokenizer, text)
    for span in spans:
        assert 0 <= span.start < span.end <= len(text) or (span.start == span.end == len(text) == 0)
        passage = text[span.start : span.end]
        count = standalone_tokens(tokenizer, passage)
        assert count <= max_tokens, f"passage {passage!r} has {count} tokens > {max_tokens}"
        assert span.token_count == count
    # Passages start and end before cut tokens: tokens that begin a new character (not empty, starting after
    # every token before them); index len(offsets) stands for the end of the text.
    cuts = [
        i
        for i in range(1, len(offsets))
        if offsets[i][0] < offsets[i][1] and offsets[i][0] >= max(end for _, end in offsets[:i])
    ]
    cuts.append(len(offsets))

    def cut_at(char):
        return 0 if char == 0 else next(i for i in cuts if i == len(offsets) or offsets[i][0] >= char)

    for previous, following in itertools.pairwise(spans):
        assert previous.start < following.start <= previous.end, "passages advance and leave no gap"
        expected_first = max(cut_at(previous.end) - overlap_tokens, cut_at(previous.start) + 1)
        expected_first = next(i for i in cuts if i >= expected_first)
        assert cut_at(following.start) == expected_first, "consecutive passages share overlap_tokens tokens"
    if overlap_tokens == 0:
        assert "".join(text[span.start : span.end] for span in spans) == text


def test_passage_token_budget():
    assert passage_token_budget(512, 64) == 445
    assert passage_token_budget(128, 0, special_tokens=4) == 124
    with pytest.raises(ValueError, match="max_length=64 leaves no room"):
        passage_token_budget(64, 61)
    with pytest.raises(ValueError, match="max_query_tokens"):
        passage_token_budget(512, -1)
    with pytest.raises(ValueError, match="max_length"):
        passage_token_budget(0, 0)


@pytest.mark.parametrize(("max_tokens", "overlap_tokens", "message"), [(0, 0, "max_tokens"), (8, 8, "overlap_tokens")])
def test_split_text_rejects_bad_sizes(minilm_tokenizer, max_tokens, overlap_tokens, message):
    with pytest.raises(ValueError, match=message):
        split_text("some text", minilm_tokenizer, max_tokens, overlap_tokens)
    with pytest.raises(ValueError, match="overlap_tokens"):
        split_text("some text", minilm_tokenizer, 8, -1)


def test_split_text_needs_a_fast_tokenizer():
    class SlowTokenizer:
        is_fast = False

    with pytest.raises(ValueError, match="fast tokenizer"):
        split_text("some text", SlowTokenizer(), 8)


@pytest.mark.parametrize("text", [ENGLISH, TURKISH, COMBINING, EMOJI, CJK, MESSY], ids=lambda t: t[:12])
@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(24, 0), (24, 6), (9, 3), (50, 49)])
def test_offsets_budget_and_overlap_hold_across_scripts(minilm_tokenizer, text, max_tokens, overlap_tokens):
    spans = split_text(text, minilm_tokenizer, max_tokens, overlap_tokens)
    assert len(spans) > 1
    assert_valid_passages(text, spans, minilm_tokenizer, max_tokens, overlap_tokens)


def test_turkish_offsets_are_taken_from_the_original_string(minilm_tokenizer):
    # "İ".lower() is two characters: offsets computed on normalized text would drift by one per İ.
    text = "İİİİİİİİ " * 10 + "Şişli'de ılık ığdır. " * 10
    spans = split_text(text, minilm_tokenizer, 12)
    assert_valid_passages(text, spans, minilm_tokenizer, 12, 0)
    assert all(not text[span.start].isspace() for span in spans)
    assert text[spans[-1].start :].endswith("ığdır. ")


def test_combining_marks_stay_with_their_letter(minilm_tokenizer):
    # BERT drops the accent of "e\u0301"; the mark must not start the next passage or be lost.
    text = " ".join(["cafe\u0301"] * 40)
    for span in split_text(text, minilm_tokenizer, 7):
        assert text[span.start] == "c"
        assert text[span.start : span.end].rstrip().endswith("e\u0301")


def test_short_and_empty_texts_give_one_span_covering_everything(minilm_tokenizer):
    assert split_text("Short text.", minilm_tokenizer, 64) == [PassageSpan(0, 11, 3)]
    assert split_text("", minilm_tokenizer, 64) == [PassageSpan(0, 0, 0)]
    assert split_text("  \n\t ", minilm_tokenizer, 64) == [PassageSpan(0, 5, 0)]
    padded = "\n\n  Leading and trailing whitespace.  \n"
    assert split_text(padded, minilm_tokenizer, 64) == [PassageSpan(0, len(padded), 6)]  # whites ##pace


@pytest.mark.parametrize("overlap_tokens", [0, 5])
def test_passages_end_at_sentence_ends_when_sentences_fit(minilm_tokenizer, overlap_tokens):
    sentence_starts = {start for start, _ in split_sentences(ENGLISH)}
    spans = split_text(ENGLISH, minilm_tokenizer, 40, overlap_tokens)
    assert len(spans) >= 3
    for span in spans[:-1]:
        assert span.end in sentence_starts, f"{ENGLISH[span.start : span.end]!r} does not end at a sentence end"
    if overlap_tokens == 0:
        assert all(span.start in sentence_starts | {0} for span in spans)


def test_a_sentence_longer_than_the_budget_is_cut_at_word_boundaries(minilm_tokenizer):
    text = " ".join(f"word{i % 7} alpha beta" for i in range(60))  # no punctuation at all
    spans = split_text(text, minilm_tokenizer, 16)
    assert len(spans) > 5
    assert_valid_passages(text, spans, minilm_tokenizer, 16, 0)
    assert all(text[span.end - 1] == " " for span in spans[:-1])


@pytest.mark.parametrize("overlap_tokens", [0, 2, 4])
def test_a_word_longer_than_the_budget_is_cut_between_its_tokens(minilm_tokenizer, overlap_tokens):
    text = "start " + "xqzvkj" * 16 + " end. " + "Ünlü" + "ğşıöç" * 15 + " son"
    spans = split_text(text, minilm_tokenizer, 6, overlap_tokens)
    assert_valid_passages(text, spans, minilm_tokenizer, 6, overlap_tokens)


def test_tokenization_happens_once_for_cuts_at_word_boundaries(minilm_tokenizer):
    calls = []

    class CountingTokenizer:
        is_fast = True
        backend_tokenizer = minilm_tokenizer.backend_tokenizer

        def __call__(self, *args, **kwargs):
            calls.append(args[0])
            return minilm_tokenizer(*args, **kwargs)

    split_text(ENGLISH * 5, CountingTokenizer(), 30, 0)
    assert calls == [ENGLISH * 5]


texts = st.lists(
    st.text(max_size=12)
    | st.sampled_from(
        [
            "Dr.",
            "İstanbul",
            "ığüşöçİ",
            "e\u0301",
            "😀",
            "👩‍👩‍👧",
            "中文字",
            ". ",
            "? ",
            "\n\n",
            "   ",
            "- ",
            "\f",
            "\x00",
            "word",
        ]
    ),
    max_size=80,
).map("".join)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, max_tokens=st.integers(8, 40), overlap_fraction=st.floats(0, 0.9))
def test_property_offsets_exact_coverage_and_budget(minilm_tokenizer, text, max_tokens, overlap_fraction):
    overlap_tokens = int(overlap_fraction * max_tokens)
    spans = split_text(text, minilm_tokenizer, max_tokens, overlap_tokens)
    assert_valid_passages(text, spans, minilm_tokenizer, max_tokens, overlap_tokens)
    covered = set()
    for span in spans:
        covered.update(range(span.start, span.end))
    assert all(i in covered for i, char in enumerate(text) if not char.isspace())


def train_tokenizer(kind: str):
    """A small fast tokenizer of another family than BERT's WordPiece, trained offline on the sample texts."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [ENGLISH, TURKISH, COMBINING, EMOJI, CJK, MESSY] * 10
    if kind == "byte-level BPE":  # GPT-2 / RoBERTa style: whitespace belongs to the next word's token
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
        trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=alphabet, show_progress=False)
        tokenizer.train_from_iterator(corpus, trainer)
        return PreTrainedTokenizerFast(tokenizer_object=tokenizer)
    tokenizer = Tokenizer(models.Unigram())  # SentencePiece / XLM-R style: "▁" marks word starts
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=300, unk_token="<unk>", special_tokens=["<unk>"], show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>")


@pytest.fixture(scope="module", params=["byte-level BPE", "metaspace unigram"])
def other_tokenizer(request):
    return train_tokenizer(request.param)


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(24, 0), (16, 5)])
def test_other_tokenizer_families_keep_offsets_budget_and_overlap(other_tokenizer, max_tokens, overlap_tokens):
    for text in (ENGLISH, TURKISH, COMBINING, EMOJI, CJK, MESSY):
        spans = split_text(text, other_tokenizer, max_tokens, overlap_tokens)
        assert len(spans) > 1
        assert_valid_passages(text, spans, other_tokenizer, max_tokens, overlap_tokens)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts, max_tokens=st.integers(8, 40), overlap_fraction=st.floats(0, 0.9))
def test_property_other_tokenizer_families(other_tokenizer, text, max_tokens, overlap_fraction):
    overlap_tokens = int(overlap_fraction * max_tokens)
    spans = split_text(text, other_tokenizer, max_tokens, overlap_tokens)
    assert_valid_passages(text, spans, other_tokenizer, max_tokens, overlap_tokens)


def test_split_document_meta_score_and_offsets(minilm_tokenizer):
    parent = Document(content=ENGLISH, meta={"title": "Reranking", "nested": {"a": 1}}, score=0.7, embedding=[0.1] * 3)
    before = copy.deepcopy(parent)
    passages = split_document(parent, minilm_tokenizer, 40, 5)

    assert parent == before, "the parent is not mutated"
    assert len(passages) > 2
    for index, passage in enumerate(passages):
        meta = passage.meta
        assert set(PASSAGE_META_KEYS) - {"page_number"} <= set(meta)
        assert "page_number" not in meta  # no form feeds in the parent
        assert meta["title"] == "Reranking"
        assert meta["source_id"] == parent.id
        assert meta["passage_index"] == index
        assert meta["passage_count"] == len(passages)
        assert ENGLISH[meta["split_idx_start"] : meta["split_idx_end"]] == passage.content
        assert passage.score == 0.7
        assert passage.embedding is None
    passages[0].meta["nested"]["a"] = 2
    assert parent.meta["nested"] == {"a": 1}, "passages do not share meta with their parent"

    ids = [passage.id for passage in passages]
    assert len(set(ids)) == len(ids)
    assert ids == [passage.id for passage in split_document(parent, minilm_tokenizer, 40, 5)]


def test_split_document_page_numbers_count_form_feeds(minilm_tokenizer):
    pages = ["Page one has a sentence. And another one here.", "Page two starts now. It goes on.", "Page three."]
    parent = Document(content="\f".join(pages))
    passages = split_document(parent, minilm_tokenizer, 5)
    assert [passage.content for passage in passages][-2:] == ["It goes on.\f", "Page three."]
    assert [passage.meta["page_number"] for passage in passages] == [1, 1, 1, 2, 2, 3]


def test_split_document_keeps_short_documents_whole_and_rejects_none(minilm_tokenizer):
    parent = Document(content="A short document.", meta={"page_number": 4})
    [passage] = split_document(parent, minilm_tokenizer, 64)
    assert passage.content == parent.content
    assert passage.meta["page_number"] == 4  # the parent's own page is kept when it has no form feeds
    assert (passage.meta["split_idx_start"], passage.meta["split_idx_end"]) == (0, len(parent.content))
    with pytest.raises(ValueError, match="content=None"):
        split_document(Document(content=None), minilm_tokenizer, 64)


def test_split_document_marks_its_passages_and_is_passage_recognises_them(minilm_tokenizer):
    parent = Document(content=ENGLISH, meta={"source_id": "from-an-earlier-splitter"})
    passages = split_document(parent, minilm_tokenizer, 40, 5)
    assert (PASSAGE_MARKER_KEY, PASSAGE_MARKER) == ("passage_splitter", "crossencoder-haystack")
    assert PASSAGE_MARKER_KEY in PASSAGE_META_KEYS
    assert all(passage.meta[PASSAGE_MARKER_KEY] == PASSAGE_MARKER for passage in passages)
    assert all(is_passage(passage) for passage in passages)
    assert all(passage.meta["source_id"] == parent.id for passage in passages)
    assert not is_passage(parent), "a source_id alone does not make a passage"


def test_is_passage_needs_the_marker_and_the_splitters_keys(minilm_tokenizer):
    from haystack.components.preprocessors import DocumentSplitter

    chunks = DocumentSplitter(split_by="word", split_length=10).run(documents=[Document(content=ENGLISH)])
    assert chunks["documents"] and not any(is_passage(chunk) for chunk in chunks["documents"])
    [passage] = split_document(Document(content="Short."), minilm_tokenizer, 64)
    for key in ("source_id", "passage_index", "split_idx_start", "split_idx_end", PASSAGE_MARKER_KEY):
        assert not is_passage(Document(content="x", meta={k: v for k, v in passage.meta.items() if k != key}))
    assert not is_passage(Document(content="x", meta={**passage.meta, "passage_index": False}))
    assert is_passage(Document(content="x", meta={**passage.meta, "passage_count": "anything"}))
