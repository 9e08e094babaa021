"""Ray: batch reranking on Ray Data (equality, resume, a killed actor), `--engine ray` parity, and Ray Serve.

One local Ray cluster (2 CPUs, bound to 127.0.0.1, no dashboard) serves the whole module: Ray takes seconds to
start, and each job's actors seconds more to start; an actor that imports torch and sentence-transformers and loads
a tiny model takes 12-15 s on a 2-core CPU. So the fault tests (resume, a killed actor), which test Ray Data's
bookkeeping rather than the model, rank with a torch-free word-overlap ranker (`tests/distributed_fixtures.py`), and
one test checks Ray against `CrossEncoderRanker` itself.
"""

import functools
import ipaddress
import json
import socket
from pathlib import Path

import httpx
import pytest
import ray
from haystack import Document

from crossencoder_haystack.cli import main
from crossencoder_haystack.distributed import connect, rank_row, read_rows, rerank_dataset
from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
from tests import distributed_fixtures
from tests.bi_encoder_fixtures import save_tiny_bi_encoder
from tests.test_evaluation import QRELS, QUERIES, TOPICS, _write_collection
from tests.test_mining import beir_dir  # noqa: F401  (a fixture)
from tests.test_serving import API_KEY, DOCUMENTS, running

TOP_K = 3
PARAMETERS = {"top_k": TOP_K, "precision": "fp32", "meta_fields_to_embed": ["title"]}


@pytest.fixture(scope="module")
def ray_cluster():
    connect(num_cpus=2)
    yield
    ray.shutdown()


def _rows() -> list[dict]:
    """One row per query of the animals collection: five candidates each, one without text, some with a title."""
    doc_ids = sorted(TOPICS)
    rows = []
    for number, (query_id, query) in enumerate(QUERIES.items()):
        chosen = [doc_ids[(number + step * 2) % len(doc_ids)] for step in range(4)]
        candidates = [
            {
                "id": doc_id,
                "text": TOPICS[doc_id],
                "score": 10.0 - rank,
                **({"meta": {"title": "Animals"}} if rank else {}),
            }
            for rank, doc_id in enumerate(chosen)
        ]
        candidates.append({"id": f"blank-{query_id}", "text": "", "score": 1.0})
        rows.append({"query_id": query_id, "query": query, "candidates": candidates})
    return rows


def _expected(model: Path, rows: list[dict]) -> dict[str, list[dict]]:
    """`CrossEncoderRanker.run` on each row, here in the test process."""
    ranker = CrossEncoderRanker(model=str(model.resolve()), **PARAMETERS)
    ranker.warm_up()
    return {row["query_id"]: rank_row(ranker, row)["ranked"] for row in rows}


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _assert_same_rankings(actual: dict[str, list[dict]], expected: dict[str, list[dict]]) -> None:
    assert actual.keys() == expected.keys()
    for query_id, ranked in expected.items():
        assert [item["id"] for item in actual[query_id]] == [item["id"] for item in ranked], query_id
        assert [item["retrieval_rank"] for item in actual[query_id]] == [item["retrieval_rank"] for item in ranked]
        for got, want in zip(actual[query_id], ranked, strict=True):
            assert got["score"] == pytest.approx(want["score"], abs=1e-6)


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or address).is_loopback


def _listening_elsewhere_than_loopback() -> list[str]:
    """TCP sockets that processes started by this test process (Ray's) listen on, other than loopback."""
    import psutil

    ours = {child.pid for child in psutil.Process().children(recursive=True)}
    return [
        f"{connection.laddr.ip}:{connection.laddr.port} (pid {connection.pid})"
        for connection in psutil.net_connections(kind="tcp")
        if connection.status == psutil.CONN_LISTEN and connection.pid in ours and not _is_loopback(connection.laddr.ip)
    ]


def test_the_local_cluster_listens_on_loopback_only(ray_cluster):
    assert ray.util.get_node_ip_address() == "127.0.0.1"
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    assert _listening_elsewhere_than_loopback() == []


def test_rank_row_is_the_rankers_run_with_retrieval_ranks(spread_model_path):
    row = _rows()[0]
    ranker = CrossEncoderRanker(model=str(spread_model_path), **PARAMETERS)
    documents = [
        Document(id=c["id"], content=c["text"], score=c["score"], meta=c.get("meta", {})) for c in row["candidates"]
    ]
    expected = ranker.run(query=row["query"], documents=documents)["documents"]

    ranked = rank_row(ranker, row)["ranked"]

    assert [item["id"] for item in ranked] == [document.id for document in expected]
    assert [item["score"] for item in ranked] == [document.score for document in expected]
    assert [item["retrieval_rank"] for item in ranked] == [document.meta["retrieval_rank"] for document in expected]
    assert len(rank_row(ranker, row, top_k="all")["ranked"]) == len(row["candidates"])


def test_ray_data_reranking_equals_the_local_ranker(ray_cluster, spread_model_path, tmp_path):
    rows = _rows()

    summary = rerank_dataset(
        _write_jsonl(tmp_path / "log.jsonl", rows),
        spread_model_path,
        tmp_path / "out",
        ranker_parameters=PARAMETERS,
        num_actors=2,
        rows_per_batch=2,
        show_progress=False,
    )

    written = read_rows(tmp_path / "out")
    assert sorted(row["query_id"] for row in written) == sorted(QUERIES)  # each query once
    assert summary.written == summary.finished == len(rows) and summary.duplicates == 0
    _assert_same_rankings({row["query_id"]: row["ranked"] for row in written}, _expected(spread_model_path, rows))


def _expected_overlap(rows: list[dict]) -> dict[str, list[dict]]:
    """The word-overlap ranker of the fault tests, run here in the test process."""
    ranker = distributed_fixtures.overlap_ranker(TOP_K)
    return {row["query_id"]: rank_row(ranker, row)["ranked"] for row in rows}


def test_ray_data_reranking_resumes_after_a_failure_without_scoring_a_query_twice(ray_cluster, tmp_path):
    rows = _rows()
    failing = functools.partial(distributed_fixtures.failing_ranker, rows[-1]["query"], 2.0, TOP_K)
    with pytest.raises(Exception, match="injected failure"):
        dataset = ray.data.from_items(rows, override_num_blocks=3)
        rerank_dataset(dataset, failing, tmp_path / "out", num_actors=1, rows_per_batch=2, show_progress=False)
    first = {row["query_id"] for row in read_rows(tmp_path / "out")}
    assert 0 < len(first) < len(rows)  # the blocks before the failure were written

    resumed = functools.partial(distributed_fixtures.overlap_ranker, TOP_K)
    # (JSONL input: the equality test; read tasks there wait behind a failed job's actors for 20 s on 2 cores)
    summary = rerank_dataset(
        ray.data.from_items(rows), resumed, tmp_path / "out", rows_per_batch=2, show_progress=False
    )

    written = read_rows(tmp_path / "out")
    assert sorted(row["query_id"] for row in written) == sorted(QUERIES)  # each query once
    # The actors skipped the finished queries: none of them reached the writer a second time.
    assert summary.written == len(rows) - len(first) and summary.duplicates == 0 and summary.finished == len(rows)
    _assert_same_rankings({row["query_id"]: row["ranked"] for row in written}, _expected_overlap(rows))


def test_an_actor_killed_mid_job_is_restarted_and_its_rows_are_written_exactly_once(ray_cluster, tmp_path):
    rows = _rows()
    marker = tmp_path / "killed.pid"
    dying = functools.partial(distributed_fixtures.dying_ranker, rows[2]["query"], str(marker), TOP_K)

    summary = rerank_dataset(
        ray.data.from_items(rows), dying, tmp_path / "out", num_actors=2, rows_per_batch=1, show_progress=False
    )

    assert marker.exists()  # an actor did die
    written = read_rows(tmp_path / "out")
    assert sorted(row["query_id"] for row in written) == sorted(QUERIES)
    assert summary.written == len(rows) and summary.duplicates == 0
    _assert_same_rankings({row["query_id"]: row["ranked"] for row in written}, _expected_overlap(rows))


def test_bad_input_columns_and_parameters_are_named(ray_cluster, spread_model_path, tmp_path):
    no_candidates = _write_jsonl(tmp_path / "rows.jsonl", [{"query_id": "q1", "query": "cats"}])
    with pytest.raises(ValueError, match="candidates"):
        rerank_dataset(no_candidates, spread_model_path, tmp_path / "out", show_progress=False)
    with pytest.raises(ValueError, match="num_actors"):
        rerank_dataset(no_candidates, spread_model_path, tmp_path / "out", num_actors=0, show_progress=False)
    with pytest.raises(ValueError, match="neither a model directory"):
        rerank_dataset(no_candidates, tmp_path / "missing", tmp_path / "out", show_progress=False)


def test_ray_options_without_engine_ray_are_an_error(capsys):
    assert main(["mine", "--queries", "q", "--output", "o.jsonl", "--actors", "2"]) == 2
    assert "--actors is for --engine ray only" in capsys.readouterr().err


def test_evaluate_with_engine_ray_gives_the_local_numbers_and_files(ray_cluster, spread_model_path, tmp_path):
    animals = _write_collection(tmp_path / "animals", TOPICS, QUERIES, QRELS)
    common = ["evaluate", "--dataset", str(animals), "--ranker", str(spread_model_path), "--k", "3,6"]
    common += ["--precision", "fp32", "--latency-queries", "0", "--no-progress"]

    assert main([*common, "--cache-dir", str(tmp_path / "c1"), "--output", str(tmp_path / "local")]) == 0
    engine = ["--engine", "ray", "--actors", "2"]
    assert main([*common, *engine, "--cache-dir", str(tmp_path / "c2"), "--output", str(tmp_path / "ray")]) == 0

    local, on_ray = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("local", "ray"))
    assert [row["metrics"] for row in on_ray["rows"]] == [row["metrics"] for row in local["rows"]]
    assert on_ray["significance"]["p_values"] == local["significance"]["p_values"]
    for run in sorted((tmp_path / "local" / "runs").glob("*.trec")):
        _assert_same_trec_run((tmp_path / "ray" / "runs" / run.name).read_text(), run.read_text())
    assert on_ray["rankers"][0]["model_calls"] == 0  # every score came from Ray, through the cache


def test_mine_with_engine_ray_writes_the_local_files(ray_cluster, beir_dir, tmp_path, minilm_tokenizer):  # noqa: F811
    encoder = save_tiny_bi_encoder(tmp_path / "encoder", minilm_tokenizer)
    common = ["mine", "--queries", str(beir_dir), "--model", str(encoder), "--top-n", "5", "--num-negatives", "2"]

    assert main([*common, "--output", str(tmp_path / "local.jsonl")]) == 0
    assert main([*common, "--output", str(tmp_path / "ray.jsonl"), "--engine", "ray", "--actors", "1"]) == 0

    assert (tmp_path / "ray.jsonl").read_text() == (tmp_path / "local.jsonl").read_text()
    first_stage = ".first_stage.json"
    assert (tmp_path / f"ray.jsonl{first_stage}").read_text() == (tmp_path / f"local.jsonl{first_stage}").read_text()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ray_serve_answers_cohere_and_tei_like_rerank_serve(ray_cluster, spread_model_path, monkeypatch):
    import cohere
    from ray import serve

    from crossencoder_haystack.distributed import serve_on_ray
    from crossencoder_haystack.serving import ServedModel, create_app

    monkeypatch.setenv("RERANK_API_KEY", API_KEY)
    port = _free_port()
    serve_on_ray(spread_model_path, replicas=1, port=port, precision="fp32", blocking=False)
    try:
        url = f"http://127.0.0.1:{port}"
        on_ray = cohere.ClientV2(api_key=API_KEY, base_url=url).rerank(
            model="m", query="capital of Germany", documents=DOCUMENTS, top_n=3
        )
        tei_body = {"query": "capital of Germany", "texts": DOCUMENTS[:3], "return_text": True}
        tei_on_ray = httpx.post(f"{url}/rerank", json=tei_body, headers={"Authorization": f"Bearer {API_KEY}"})
        unauthorized = httpx.post(f"{url}/rerank", json=tei_body)
        assert _listening_elsewhere_than_loopback() == []  # the proxy and the replica included
    finally:
        serve.shutdown()

    local_app = create_app(ServedModel(str(spread_model_path), precision="fp32"), api_key=API_KEY)
    with running(local_app) as (local_url, _):
        local = cohere.ClientV2(api_key=API_KEY, base_url=local_url).rerank(
            model="m", query="capital of Germany", documents=DOCUMENTS, top_n=3
        )
        tei_local = httpx.post(f"{local_url}/rerank", json=tei_body, headers={"Authorization": f"Bearer {API_KEY}"})

    assert [result.index for result in on_ray.results] == [result.index for result in local.results]
    assert [result.relevance_score for result in on_ray.results] == pytest.approx(
        [result.relevance_score for result in local.results], abs=1e-6
    )
    assert tei_on_ray.status_code == 200 and unauthorized.status_code == 401
    assert [(rank["index"], rank["text"]) for rank in tei_on_ray.json()] == [
        (rank["index"], rank["text"]) for rank in tei_local.json()
    ]


def test_build_app_reads_the_example_serve_config(spread_model_path, monkeypatch):
    import yaml

    from crossencoder_haystack.distributed import build_app
    from crossencoder_haystack.serving.auth import AuthConfigurationError

    config = Path(__file__).parents[1] / "examples" / "ray" / "ray_serve.yaml"
    application = yaml.safe_load(config.read_text(encoding="utf-8"))["applications"][0]
    assert application["import_path"] == "crossencoder_haystack.distributed.serving:build_app"
    args = {**application["args"], "model": str(spread_model_path)}

    monkeypatch.delenv("RERANK_API_KEY", raising=False)
    with pytest.raises(AuthConfigurationError, match="RERANK_API_KEY"):
        build_app(args)
    monkeypatch.setenv("RERANK_API_KEY", API_KEY)
    assert type(build_app(args)).__name__ == "Application"
    with pytest.raises(FileNotFoundError):
        build_app({**args, "model": str(spread_model_path / "missing")})
    with pytest.raises(ValueError, match="unknown model options colour"):
        build_app({**args, "colour": "red"})


def _assert_same_trec_run(actual: str, expected: str) -> None:
    """Same queries, documents, ranks and tags; scores equal up to float32 rounding (an actor's batches are cut
    differently from the local engine's, and some CPUs' kernels then round the last bits differently)."""
    actual_rows = [line.split() for line in actual.splitlines()]
    expected_rows = [line.split() for line in expected.splitlines()]
    assert [row[:4] + row[5:] for row in actual_rows] == [row[:4] + row[5:] for row in expected_rows]
    assert [float(row[4]) for row in actual_rows] == pytest.approx([float(row[4]) for row in expected_rows], rel=1e-6)
