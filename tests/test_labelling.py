"""`rerank label`: the labels log, the HTTP API (token, judge, undo, resume, two writers), inputs, export and CLI.

The page itself is driven in a real browser in tests/test_labelling_browser.py.
"""

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from crossencoder_haystack.cli import main
from crossencoder_haystack.data import load_beir, load_dataset, read_qrels
from crossencoder_haystack.evaluation.first_stage import BM25FirstStage, corpus_documents
from crossencoder_haystack.labelling import (
    JudgementLog,
    LabellingSession,
    LabelLogError,
    create_label_app,
    export_labels,
    load_labelling_input,
    open_session,
    read_log,
)
from crossencoder_haystack.labelling.candidates import RETRIEVERS, _text_span
from crossencoder_haystack.labelling.command import EXPORT_CHOICES, RETRIEVER_CHOICES
from crossencoder_haystack.labelling.export import EXPORT_FORMATS
from crossencoder_haystack.labelling.server import bind_socket, page_url
from crossencoder_haystack.training.data import load_training_data
from tests.labelling_fixtures import DOCUMENTS, QUERIES, label_process, write_collection

TOKEN = "t" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STATIC = Path(__file__).resolve().parents[1] / "src" / "crossencoder_haystack" / "labelling" / "static"


@pytest.fixture
def collection(tmp_path) -> Path:
    return write_collection(tmp_path / "collection")


def _session(collection: Path, log: Path, **kwargs) -> LabellingSession:
    return open_session(collection, output=log, retriever="bm25", top_n=kwargs.pop("top_n", 4), **kwargs)


@pytest.fixture
def labels(tmp_path) -> Path:
    return tmp_path / "labels.jsonl"


@pytest.fixture
def client(collection, labels):
    session = _session(collection, labels)
    yield TestClient(create_label_app(session, TOKEN))
    session.close()


def _judge(client, query_id, document_id, grade, who="tab-a"):
    body = {"query_id": query_id, "document_id": document_id, "grade": grade, "client": who}
    return client.post("/api/judgements", json=body, headers=AUTH)


def _candidate_ids(client, query_id="q1") -> list[str]:
    return [item["document_id"] for item in client.get(f"/api/queries/{query_id}", headers=AUTH).json()["candidates"]]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- the access token -------------------------------------------------------------------------------------------


def test_the_page_and_the_api_need_the_token(client):
    assert client.get("/").status_code == 401
    assert client.get("/?token=wrong-token-of-some-length").status_code == 401
    page = client.get(f"/?token={TOKEN}")
    assert page.status_code == 200 and "/static/label.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    for path in ("/api/session", "/api/queries/q1", "/api/progress"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert client.get(path, headers={"Authorization": TOKEN}).status_code == 401  # no scheme
        assert client.get(path, headers=AUTH).status_code == 200
    refused = client.post("/api/judgements", json={"query_id": "q1", "document_id": "d1", "grade": 1})
    assert refused.status_code == 401 and "token" in refused.json()["detail"]
    assert not any(line["event"] == "judgement" for line in _lines(client.app.state.session.log.path))


def test_the_static_files_hold_no_data_and_load_nothing_from_elsewhere(client):
    for name in ("label.js", "label.css", "icon.svg"):
        assert client.get(f"/static/{name}").status_code == 200
    for file in STATIC.iterdir():
        text = file.read_text(encoding="utf-8").replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, file.name
    assert "innerHTML" not in (STATIC / "label.js").read_text(encoding="utf-8")  # texts are inserted as text


def test_a_short_token_is_refused(collection, labels):
    session = _session(collection, labels)
    with pytest.raises(ValueError, match="at least 16 characters"):
        create_label_app(session, "short")
    session.close()


# --- judging ----------------------------------------------------------------------------------------------------


def test_a_judgement_is_on_disk_before_the_page_hears_of_it(client, monkeypatch):
    log_path = client.app.state.session.log.path
    document = _candidate_ids(client)[0]
    synced: list[str] = []
    real_fsync = os.fsync

    def spying_fsync(descriptor):
        real_fsync(descriptor)
        synced.append(log_path.read_text(encoding="utf-8"))

    monkeypatch.setattr(os, "fsync", spying_fsync)
    response = _judge(client, "q1", document, 2)

    assert response.status_code == 200 and response.json()["saved"] is True
    assert synced and '"grade": 2' in synced[-1].splitlines()[-1]  # fsync-ed with the line in the file
    last = _lines(log_path)[-1]
    assert (last["event"], last["query_id"], last["document_id"], last["grade"]) == ("judgement", "q1", document, 2)
    assert response.json()["progress"]["judged"] == 1


def test_a_failed_write_is_not_confirmed_and_not_shown(client, monkeypatch):
    document = _candidate_ids(client)[0]

    def failing_fsync(descriptor):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    response = _judge(client, "q1", document, 3)
    monkeypatch.undo()

    assert response.status_code == 500 and "NOT saved" in response.json()["detail"]
    grades = [item["grade"] for item in client.get("/api/queries/q1", headers=AUTH).json()["candidates"]]
    assert grades == [None] * len(grades)


def test_judge_then_undo_restores_the_previous_grade_and_the_log_keeps_both(client):
    document = _candidate_ids(client)[1]
    assert _judge(client, "q1", document, 1).json()["previous"] is None
    changed = _judge(client, "q1", document, 3).json()
    assert (changed["grade"], changed["previous"]) == (3, 1)
    undone = _judge(client, "q1", document, changed["previous"]).json()  # what "u" sends
    assert (undone["grade"], undone["previous"]) == (1, 3)
    cleared = _judge(client, "q1", document, None).json()  # undoing the first judgement: unjudged again
    assert cleared["grade"] is None and cleared["progress"]["judged"] == 0

    shown = {
        item["document_id"]: item["grade"] for item in client.get("/api/queries/q1", headers=AUTH).json()["candidates"]
    }
    assert shown[document] is None
    judgements = [line for line in _lines(client.app.state.session.log.path) if line["event"] == "judgement"]
    assert [line["grade"] for line in judgements] == [1, 3, 1, None]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"query_id": "q1", "grade": 1}, 422, "document_id: Field required"),
        ({"query_id": "q9", "document_id": "d1", "grade": 1}, 404, "unknown query id 'q9'"),
        ({"query_id": "q1", "document_id": "d8", "grade": 1}, 404, "is not one of the 4 candidates of query 'q1'"),
        ({"query_id": "q1", "document_id": "DOC", "grade": 4}, 422, "grade must be one of 0, 1, 2, 3"),
        ({"query_id": "q1", "document_id": "DOC", "grade": -1}, 422, "grade must be one of 0, 1, 2, 3"),
        ({"query_id": "q1", "document_id": "DOC", "grade": 2.5}, 422, "got 2.5"),
        ({"query_id": "q1", "document_id": "DOC", "grade": True}, 422, "got True"),
        ({"query_id": "q1", "document_id": "DOC", "grade": "2"}, 422, "got '2'"),
    ],
)
def test_bad_judgements_get_a_clear_error_and_change_nothing(client, body, status, message):
    first = _candidate_ids(client)[0]  # q1's candidates are retrieved (and logged) before the bad request
    body = {key: first if value == "DOC" else value for key, value in body.items()}
    before = client.app.state.session.log.path.read_bytes()

    response = client.post("/api/judgements", json=body, headers=AUTH)

    assert response.status_code == status and message in response.json()["detail"]
    assert client.app.state.session.log.path.read_bytes() == before


def test_an_unknown_query_is_404(client):
    response = client.get("/api/queries/nope", headers=AUTH)
    assert response.status_code == 404 and "unknown query id 'nope'" in response.json()["detail"]


def test_two_tabs_writing_at_once_lose_nothing_and_the_last_write_wins(client):
    documents = _candidate_ids(client, "q1") + _candidate_ids(client, "q2")
    pairs = [("q1" if index < 4 else "q2", document) for index, document in enumerate(documents)]
    writes = [
        (tab, query_id, document, (round_ + tab) % 4)
        for round_ in range(5)
        for tab in (0, 1)
        for query_id, document in pairs
    ]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda w: _judge(client, w[1], w[2], w[3], who=f"tab-{w[0]}"), writes))

    assert all(response.status_code == 200 for response in responses)
    judgements = [line for line in _lines(client.app.state.session.log.path) if line["event"] == "judgement"]
    assert len(judgements) == len(writes)  # the log keeps every write of both tabs
    last = {(line["query_id"], line["document_id"]): line["grade"] for line in judgements}
    for query_id in ("q1", "q2"):
        shown = client.get(f"/api/queries/{query_id}", headers=AUTH).json()["candidates"]
        assert {item["document_id"]: item["grade"] for item in shown} == {
            document: grade for (qid, document), grade in last.items() if qid == query_id
        }
    # Each line's "previous" is the grade the line before it (for that pair) left: the writes were serialised.
    seen: dict[tuple[str, str], int | None] = {}
    for line in judgements:
        pair = (line["query_id"], line["document_id"])
        assert line["previous"] == seen.get(pair)
        seen[pair] = line["grade"]


# --- resume -----------------------------------------------------------------------------------------------------


def test_a_restart_resumes_with_the_same_candidates_and_every_judgement(collection, labels):
    first = _session(collection, labels)
    app = TestClient(create_label_app(first, TOKEN))
    q1 = _candidate_ids(app, "q1")
    for document in q1:
        _judge(app, "q1", document, 2)
    q2 = _candidate_ids(app, "q2")
    _judge(app, "q2", q2[0], 3)
    first.close()  # as if the server were killed: every confirmed judgement is already on disk

    second = _session(collection, labels)
    again = TestClient(create_label_app(second, TOKEN))
    info = again.get("/api/session", headers=AUTH).json()
    assert info["resume"] == 1  # q2, judged last, still has unjudged candidates
    assert info["progress"]["judged"] == 5 and info["progress"]["queries_done"] == 1
    assert [(item["query_id"], item["judged"]) for item in info["queries"]] == [("q1", 4), ("q2", 1), ("q3", 0)]
    shown = again.get("/api/queries/q2", headers=AUTH).json()["candidates"]
    assert [item["document_id"] for item in shown] == q2 and shown[0]["grade"] == 3
    second.close()
    candidates_lines = [line for line in _lines(labels) if line["event"] == "candidates"]
    assert [line["query_id"] for line in candidates_lines] == ["q1", "q2"]  # read back, not retrieved again


def test_an_unfinished_last_line_is_set_aside_and_labelling_goes_on(collection, labels):
    session = _session(collection, labels)
    document = session.candidates("q1")[0].document_id
    session.judge("q1", document, 1)
    session.close()
    with labels.open("ab") as handle:
        handle.write(b'{"event": "judgement", "query_id": "q1", "docu')  # a write cut short by a crash

    reopened = _session(collection, labels)
    assert reopened.grades("q1") == {document: 1}
    reopened.judge("q1", document, 2)
    reopened.close()
    assert read_log(labels).grades == {("q1", document): 2}
    assert labels.with_name("labels.jsonl.torn").read_bytes() == b'{"event": "judgement", "query_id": "q1", "docu\n'


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"not json at all", "not valid JSON"),
        (
            b'{"event": "judgement", "query_id": "q1", "document_id": "d1", "grade": 5}',
            "grade must be one of 0, 1, 2, 3",
        ),
        (b'{"event": "judgement", "query_id": "q1", "grade": 1}', "'document_id' must be a non-empty string"),
        (b'{"event": "vote"}', "'event' must be one of session, candidates, judgement"),
        (b"[1, 2]", "expected a JSON object"),
    ],
)
def test_a_corrupt_line_stops_the_start_with_file_and_line_and_changes_nothing(collection, labels, line, reason):
    session = _session(collection, labels)
    session.judge("q1", session.candidates("q1")[0].document_id, 3)
    session.close()
    with labels.open("ab") as handle:
        handle.write(line + b"\n")
    before = labels.read_bytes()
    number = before.count(b"\n")

    with pytest.raises(LabelLogError, match=f"labels.jsonl:{number}: .*{reason}") as error:
        _session(collection, labels)
    assert "every other line is kept" in str(error.value)
    assert labels.read_bytes() == before
    assert main(["label", "--queries", str(collection), "--output", str(labels), "--retriever", "bm25"]) == 2


def test_a_log_made_with_other_queries_is_refused(collection, labels, tmp_path):
    session = _session(collection, labels)
    session.candidates("q1")
    session.close()
    other = tmp_path / "other.txt"
    other.write_text("nurse on night shifts\n", encoding="utf-8")  # its first query is q1 as well

    with pytest.raises(
        LabelLogError, match="judged query 'q1' as 'python developer experience', but the queries now give"
    ):
        open_session(other, collection / "corpus.jsonl", output=labels, retriever="bm25")


def test_a_second_process_on_the_same_log_is_refused(collection, labels):
    pytest.importorskip("fcntl")
    session = _session(collection, labels)
    with pytest.raises(LabelLogError, match="open in another `rerank label` process"):
        JudgementLog(labels).open()
    session.close()


# --- inputs, retrieval, the model --------------------------------------------------------------------------------


def test_queries_come_from_beir_folders_and_the_package_formats(collection, tmp_path):
    corpus = collection / "corpus.jsonl"
    assert load_labelling_input(collection).queries == QUERIES
    assert list(load_labelling_input(collection, split="train").queries) == ["q1", "q2"]
    assert load_labelling_input(collection / "queries.jsonl", corpus).queries == QUERIES
    text = tmp_path / "queries.txt"
    text.write_text("python developer\n\nsql data analyst\npython developer\n", encoding="utf-8")
    assert load_labelling_input(text, corpus).queries == {"q1": "python developer", "q2": "sql data analyst"}
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("query,document,label\npython developer,x,1\npython developer,y,0\nnurse,z,1\n", encoding="utf-8")
    assert load_labelling_input(pairs, corpus).queries == {"q1": "python developer", "q2": "nurse"}
    judged = tmp_path / "judged.jsonl"
    judged.write_text('{"query_id": "a", "query": "nurse", "document": "d7", "grade": 1}\n', encoding="utf-8")
    assert load_labelling_input(judged, corpus).queries == {"a": "nurse"}
    assert set(load_labelling_input(text, corpus).corpus) == set(DOCUMENTS)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"queries": "missing-dir"}, FileNotFoundError, "do not exist"),
        ({"queries": "QUERIES_FILE"}, ValueError, "the corpus must be given"),
        (
            {"queries": "COLLECTION", "split": "dev"},
            FileNotFoundError,
            r"no qrels/dev.tsv; pass split as one of \['train'\]",
        ),
        (
            {"queries": "QUERIES_FILE", "corpus": "CORPUS", "split": "train"},
            ValueError,
            "only applies to a BEIR directory",
        ),
    ],
)
def test_bad_inputs_get_a_clear_error(collection, arguments, error, message):
    paths = {
        "COLLECTION": collection,
        "QUERIES_FILE": collection / "queries.jsonl",
        "CORPUS": collection / "corpus.jsonl",
    }
    arguments = {key: paths.get(value, value) for key, value in arguments.items()}
    with pytest.raises(error, match=message):
        load_labelling_input(**arguments)


def test_embedding_retrieval_with_a_local_model(collection, labels, tmp_path, minilm_tokenizer):
    from tests.bi_encoder_fixtures import save_tiny_bi_encoder

    model = save_tiny_bi_encoder(tmp_path / "bi", minilm_tokenizer)
    session = open_session(
        collection, output=labels, retriever="embedding", embedding_model=model, top_n=3, cache_dir=tmp_path / "cache"
    )
    candidates = session.candidates("q1")
    session.close()
    assert len(candidates) == 3 and [candidate.rank for candidate in candidates] == [1, 2, 3]
    logged = next(line for line in _lines(labels) if line["event"] == "candidates")
    assert logged["retriever"] == "embedding" and [item["id"] for item in logged["documents"]] == [
        c.document_id for c in candidates
    ]
    assert all(isinstance(item["score"], float) for item in logged["documents"])


def test_with_a_model_the_best_passage_is_marked_and_the_model_has_its_say(collection, labels, spread_model_path):
    session = _session(collection, labels, top_n=8, model=spread_model_path, max_length=128)
    app = TestClient(create_label_app(session, TOKEN))
    assert app.get("/api/session", headers=AUTH).json()["model"] == spread_model_path.name
    candidates = app.get("/api/queries/q1", headers=AUTH).json()["candidates"]
    session.close()

    assert sorted(item["model_rank"] for item in candidates) == list(range(1, 9))
    assert all(isinstance(item["model_score"], float) for item in candidates)
    long_cv = next(item for item in candidates if item["document_id"] == "d6")
    start, end = long_cv["passage"]
    assert 0 <= start < end <= len(long_cv["text"]) and end - start < len(long_cv["text"]) / 2  # a passage, not all
    python = next(item for item in candidates if item["document_id"] == "d1")
    assert [python["text"][s:e].lower() for s, e in python["terms"]] == ["developer", "python"]


def test_passage_offsets_map_from_the_ranked_content_to_the_text():
    entry = {"title": "Ada", "text": "knows python well", "metadata": {}}
    # The ranked content is "Ada knows python well": "python" is at 10..16 there, at 6..12 in the text.
    assert _text_span(entry, 10, 16) == (6, 12)
    assert _text_span(entry, 0, 3) is None  # inside the title only
    assert _text_span({"title": "", "text": "  lead python", "metadata": {}}, 5, 11) == (7, 13)


def test_the_cli_choices_match_the_library_constants():
    assert RETRIEVER_CHOICES == RETRIEVERS and EXPORT_CHOICES == EXPORT_FORMATS


# --- export -----------------------------------------------------------------------------------------------------


@pytest.fixture
def judged_log(collection, labels) -> Path:
    session = _session(collection, labels)
    q1 = [candidate.document_id for candidate in session.candidates("q1")]
    q2 = [candidate.document_id for candidate in session.candidates("q2")]
    session.judge("q1", q1[0], 3)
    session.judge("q1", q1[1], 0)
    session.judge("q1", q1[2], 1)
    session.judge("q1", q1[2], 2)  # changed: the last write counts
    session.judge("q2", q2[0], 1)
    session.judge("q2", q2[1], 2)
    session.judge("q2", q2[1], None)  # taken back
    session.close()
    return labels


def test_export_lists_round_trips_through_the_training_reader(judged_log, collection, tmp_path):
    to = tmp_path / "lists.jsonl"
    summary = export_labels(judged_log, to, export_format="lists", corpus=collection / "corpus.jsonl")

    data = load_training_data(to)
    assert data.shape == "lists" and (summary.rows, summary.queries, summary.judged) == (2, 2, 4)
    first, second = data.rows
    assert first["query"] == QUERIES["q1"] and first["labels"] == [3.0, 0.0, 2.0]
    assert second["labels"] == [1.0]
    title, text = DOCUMENTS[json.loads(to.read_text().splitlines()[0])["document_ids"][0]]
    assert first["documents"][0] == f"{title} {text}"
    saved = json.loads(summary.first_stage_path.read_text())  # for rerank train's fusion tuning
    assert saved["first_stage"] == "bm25" and set(saved["runs"]) == {QUERIES["q1"], QUERIES["q2"]}


def test_export_pairs_keeps_the_0_to_3_scale_and_unjudged_negatives_are_a_choice(judged_log, collection, tmp_path):
    corpus = collection / "corpus.jsonl"
    plain = load_training_data(
        export_labels(judged_log, tmp_path / "p.jsonl", export_format="pairs", corpus=corpus).path
    )
    assert plain.shape == "pairs" and plain.label_rescale is None
    assert sorted(row["label"] for row in plain.rows) == [0.0, 1 / 3, 2 / 3, 1.0]

    summary = export_labels(
        judged_log, tmp_path / "n.jsonl", export_format="pairs", corpus=corpus, unjudged_as_negatives=True
    )
    negatives = load_training_data(summary.path)
    assert summary.negatives_added == (4 - 3) + (4 - 1) and len(negatives) == 4 + summary.negatives_added
    assert sum(1 for row in negatives.rows if row["label"] == 0.0) == 1 + summary.negatives_added


def test_export_qrels_as_a_tsv_and_as_a_beir_folder_that_evaluate_reads(judged_log, collection, tmp_path):
    tsv = export_labels(judged_log, tmp_path / "labels.tsv", export_format="qrels").path
    qrels = read_qrels(tsv)
    assert {query_id: len(grades) for query_id, grades in qrels.items()} == {"q1": 3, "q2": 1}
    assert sorted(qrels["q1"].values()) == [0, 2, 3]

    folder = export_labels(
        judged_log, tmp_path / "beir", export_format="qrels", corpus=collection / "corpus.jsonl", split="labelled"
    )
    dataset = load_dataset(tmp_path / "beir", split="labelled")
    assert folder.path == tmp_path / "beir" / "qrels" / "labelled.tsv"
    assert dataset.qrels == qrels and dataset.queries == {"q1": QUERIES["q1"], "q2": QUERIES["q2"]}
    assert dataset.judged_query_ids() == ["q1", "q2"] and not dataset.missing_documents()
    assert load_beir(tmp_path / "beir", "labelled").corpus.keys() == set(DOCUMENTS)


def test_export_errors_are_clear(judged_log, labels, collection, tmp_path):
    with pytest.raises(ValueError, match="needs the corpus"):
        export_labels(judged_log, tmp_path / "x.jsonl", export_format="lists")
    with pytest.raises(ValueError, match="export_format must be one of lists, pairs, qrels"):
        export_labels(judged_log, tmp_path / "x.jsonl", export_format="triplets")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export_labels(tmp_path / "none.jsonl", tmp_path / "x.jsonl", export_format="qrels")
    small = tmp_path / "small.jsonl"
    small.write_text('{"_id": "d1", "title": "", "text": "only one"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"judged document\(s\) are not in the corpus"):
        export_labels(judged_log, tmp_path / "x.jsonl", export_format="pairs", corpus=small)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no judgements yet"):
        export_labels(empty, tmp_path / "x.tsv", export_format="qrels")


# --- the command ------------------------------------------------------------------------------------------------


def test_the_export_command(judged_log, collection, tmp_path, capsys):
    to = tmp_path / "train.jsonl"
    arguments = [
        "label",
        "--output",
        str(judged_log),
        "--export",
        "lists",
        "--to",
        str(to),
        "--queries",
        str(collection),
    ]
    assert main(arguments) == 0
    assert "Wrote 2 lists rows" in capsys.readouterr().out and load_training_data(to).shape == "lists"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--output", "l.jsonl"], "--queries is required to label"),
        (["--output", "l.jsonl", "--export", "qrels"], "--export needs --to"),
        (
            ["--queries", "q", "--output", "l.jsonl", "--to", "x"],
            "--to and --unjudged-as-negatives only go with --export",
        ),
    ],
)
def test_command_errors_are_one_line(arguments, message, capsys):
    assert main(["label", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_port_0_binds_a_free_port_and_the_url_shows_it():
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    assert port > 0 and page_url(sock, "127.0.0.1", TOKEN) == f"http://127.0.0.1:{port}/?token={TOKEN}"
    with pytest.raises(ValueError, match=r"cannot listen on 127\.0\.0\.1"):
        bind_socket("127.0.0.1", port)  # taken
    sock.close()
    with pytest.raises(ValueError, match="port must be 0"):
        bind_socket("127.0.0.1", 70000)


def test_rerank_label_serves_on_loopback_with_a_token_in_the_url(collection, labels):
    with label_process(
        ["--queries", str(collection), "--output", str(labels), "--retriever", "bm25", "--top-n", "3"]
    ) as (url, _):
        assert url.startswith("http://127.0.0.1:") and ":0/" not in url
        base, token = url.split("/?token=")
        assert len(token) >= 30
        assert httpx.get(url, timeout=10).status_code == 200
        assert httpx.get(base + "/", timeout=10).status_code == 401
        answer = httpx.get(base + "/api/queries/q2", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert [item["rank"] for item in answer.json()["candidates"]] == [1, 2, 3]
    assert [line["event"] for line in _lines(labels)] == ["session", "candidates"]


def test_labelling_session_from_the_docstring(collection, labels):
    dataset = load_labelling_input(collection)
    session = LabellingSession(dataset, BM25FirstStage(corpus_documents(dataset)), JudgementLog(labels), top_n=2)
    session.open()
    first = session.candidates("q1")[0].document_id
    result = session.judge("q1", first, 3)
    session.close()
    assert (result.grade, result.previous, result.progress["judged"]) == (3, None, 1)
