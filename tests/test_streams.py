"""Several batches at once on a CPU (`_engine/streams.py`), the ranker's `num_streams`, and the segment-cosine head's
float32 pooling in bf16."""

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from haystack import Document, Pipeline

from haystack_integrations.components.rankers.crossencoder import CrossEncoderRanker
from haystack_integrations.components.rankers.crossencoder._engine import precision as precision_module
from haystack_integrations.components.rankers.crossencoder._engine.batching import plan_batches
from haystack_integrations.components.rankers.crossencoder._engine.streams import (
    MAX_AUTO_STREAMS,
    BatchStreams,
    auto_stream_count,
    balanced_batch_size,
)

AMX = frozenset({"avx2", "avx512f", "amx_tile", "amx_bf16", "amx_int8"})
AVX2_ONLY = frozenset({"avx", "avx2", "fma"})
QUERY = "capital of Germany"
TEXTS = [f"text number {i} about {'Berlin ' * (i % 7)}and the capital" for i in range(37)]
DOCS = [Document(id=str(i), content=text) for i, text in enumerate(TEXTS)]


def _scores(ranker: CrossEncoderRanker) -> np.ndarray:
    ranked = ranker.run(query=QUERY, documents=DOCS, top_k=len(DOCS))["documents"]
    by_id = {doc.id: doc.score for doc in ranked}
    return np.array([by_id[doc.id] for doc in DOCS])


class TestHowManyStreams:
    @pytest.mark.parametrize(
        ("num_streams", "precision", "device", "threads", "expected"),
        [
            (None, "bf16", "cpu", 2, 2),  # the 2-core machine with AMX: one batch per core
            (None, "bf16", "cpu", 1, 1),
            (None, "bf16", "cpu", 32, MAX_AUTO_STREAMS),  # a big server: a few streams with several threads each
            (None, "fp32", "cpu", 2, 1),  # AVX2-only CPUs compute in fp32: one batch at a time, as before
            (None, "bf16", "cuda", 8, 1),  # one device queue
            (None, "fp16", "cuda", 8, 1),
            (3, "fp32", "cpu", 8, 3),  # the user's number wins ...
            (6, "bf16", "cpu", 2, 2),  # ... up to one thread per stream
            (1, "bf16", "cpu", 2, 1),
        ],
    )
    def test_each_setting_precision_and_device(self, num_streams, precision, device, threads, expected):
        assert auto_stream_count(num_streams, precision, device, threads) == expected

    @pytest.mark.parametrize(("pairs", "batch_size", "streams"), [(100, 16, 2), (7, 16, 2), (1, 16, 2), (64, 32, 4)])
    def test_batches_are_cut_evenly_over_the_streams(self, pairs, batch_size, streams):
        size = balanced_batch_size(pairs, batch_size, streams)
        batches = plan_batches([10] * pairs, size)
        rounds = -(-pairs // (batch_size * streams))  # as few rounds as the batch size allows
        assert size <= batch_size
        if pairs >= streams:
            assert len(batches) == rounds * streams, "every stream gets the same number of batches"
        assert sorted(i for batch in batches for i in batch) == list(range(pairs))

    def test_one_stream_keeps_the_batch_size(self):
        assert balanced_batch_size(100, 16, 1) == 16


class TestTokenizingInTheStreams:
    @pytest.mark.parametrize(
        ("sizes", "shards", "min_texts", "expected_shards"),
        [([100], 2, 16, 2), ([10], 2, 16, 1), ([40, 0, 25, 7], 2, 16, 2), ([5, 5, 5], 4, 1, 4), ([], 2, 16, 0)],
    )
    def test_requests_are_cut_into_even_shards_in_order(self, sizes, shards, min_texts, expected_shards):
        from haystack_integrations.components.rankers.crossencoder._engine.scoring import split_requests

        requests = [(f"q{r}", [f"t{r}-{i}" for i in range(size)]) for r, size in enumerate(sizes)]
        cut = split_requests(requests, shards, min_texts)
        assert len(cut) == expected_shards
        flat = [(query, text) for shard in cut for query, texts in shard for text in texts]
        assert flat == [(query, text) for query, texts in requests for text in texts], "nothing lost or reordered"
        counts = [sum(len(texts) for _, texts in shard) for shard in cut]
        assert not counts or max(counts) - min(counts) <= max(1, len(sizes))

    def test_the_workers_tokenize_to_the_same_pairs(self, spread_model_path):
        ranker = CrossEncoderRanker(model=str(spread_model_path), num_streams=2, num_threads=2)
        ranker.warm_up()
        scorer = ranker._scorer
        requests = [(QUERY, TEXTS), ("another query", TEXTS[::-1]), ("empty", [])]
        serial = [pair for query, texts in requests for pair in scorer.encoder.encode(query, texts)]
        assert scorer._encode(requests) == serial
        assert scorer._encode(requests) == serial, "the workers' tokenizer copies are reused"


class TestBatchStreams:
    def test_results_come_back_in_order_from_as_many_worker_threads(self):
        streams = BatchStreams(2, 1)
        barrier = threading.Barrier(2)

        def work(item: int) -> tuple[int, str]:
            if item < 2:  # the first two items only finish when both run at once
                barrier.wait(timeout=10)
            return item * item, threading.current_thread().name

        results = list(streams.map(work, range(6)))
        assert [value for value, _ in results] == [i * i for i in range(6)]
        assert len({name for _, name in results}) == 2
        assert all(name.startswith("crossencoder-stream") for _, name in results)

    def test_workers_get_their_share_of_threads_and_nobody_else_changes(self):
        before = torch.get_num_threads()
        streams = BatchStreams(2, 1)
        inside = set(streams.map(lambda _: torch.get_num_threads(), range(4)))
        later: list[int] = []
        thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert inside == {1}
        assert torch.get_num_threads() == before, "the calling thread keeps its count"
        assert later == [before], "threads created afterwards get the process default, not the workers' count"

    def test_a_forked_child_starts_its_own_workers(self):
        streams = BatchStreams(2, 1)
        assert list(streams.map(lambda x: x + 1, range(3))) == [1, 2, 3]
        parent_pool = streams._executor
        streams._pid = -1  # as seen from a child process after os.fork(): the parent's threads are not there
        assert list(streams.map(lambda x: x * 2, range(3))) == [0, 2, 4]
        assert streams._executor is not parent_pool

    def test_one_stream_runs_in_the_calling_thread(self):
        names = set(BatchStreams(1, 2).map(lambda _: threading.current_thread().name, range(3)))
        assert names == {threading.current_thread().name}


class TestRankerStreams:
    def test_scores_do_not_depend_on_the_number_of_streams(self, spread_model_path):
        one = _scores(CrossEncoderRanker(model=str(spread_model_path), num_streams=1, batch_size=8))
        two = CrossEncoderRanker(model=str(spread_model_path), num_streams=2, num_threads=2, batch_size=8)
        np.testing.assert_allclose(_scores(two), one, rtol=1e-5, atol=1e-5)
        assert two._scorer.streams.streams == 2

    def test_auto_runs_one_batch_per_core_in_bf16_and_one_in_fp32(self, monkeypatch, spread_model_path):
        monkeypatch.setattr(precision_module, "cpu_flags", lambda: AMX)
        amx = CrossEncoderRanker(model=str(spread_model_path), num_threads=2)
        amx.warm_up()
        assert (amx._scorer.forward.precision, amx._scorer.streams.streams) == ("bf16", 2)
        assert amx._scorer.streams.threads_per_stream == 1
        monkeypatch.setattr(precision_module, "cpu_flags", lambda: AVX2_ONLY)
        avx2 = CrossEncoderRanker(model=str(spread_model_path), num_threads=2)
        avx2.warm_up()
        assert (avx2._scorer.forward.precision, avx2._scorer.streams.streams) == ("fp32", 1)

    @pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
    def test_a_bad_num_streams_is_a_clear_error(self, bad, spread_model_path):
        with pytest.raises(ValueError, match="num_streams must be an int >= 1 or None"):
            CrossEncoderRanker(model=str(spread_model_path), num_streams=bad)

    def test_num_streams_round_trips_through_yaml(self, spread_model_path):
        pipeline = Pipeline()
        pipeline.add_component("ranker", CrossEncoderRanker(model=str(spread_model_path), num_streams=2))
        loaded = Pipeline.loads(pipeline.dumps())
        assert loaded.get_component("ranker").num_streams == 2
        assert CrossEncoderRanker.from_dict(CrossEncoderRanker(model="m").to_dict()).num_streams is None

    def test_openvino_runs_batches_at_once_with_the_same_scores(self, tmp_path, tiny_model_path):
        pytest.importorskip("openvino")
        import openvino.properties as properties

        from crossencoder_haystack.export.exporting import export_cross_encoder

        export_cross_encoder(tiny_model_path, tmp_path, backend="openvino")
        common = {"model": str(tmp_path), "backend": "openvino", "precision": "fp32", "batch_size": 8}
        one = CrossEncoderRanker(**common, num_streams=1, num_threads=2)
        two = CrossEncoderRanker(**common, num_streams=2, num_threads=2)
        np.testing.assert_allclose(_scores(two), _scores(one), rtol=1e-5, atol=1e-5)
        assert two._scorer.forward.compiled.get_property(properties.num_streams()) == 2
        assert two._scorer.streams.streams == 2


class TestOpenVinoFirstInference:
    """The first infer of a process runs alone (two first calls at once deadlock in OpenVINO's Python binding)."""

    def test_the_first_call_runs_alone_and_later_calls_run_at_once(self, monkeypatch):
        from haystack_integrations.components.rankers.crossencoder._engine import openvino_backend

        monkeypatch.setattr(openvino_backend, "_first_infer_done", threading.Event())
        state = {"running": 0, "most": [], "calls": 0}
        lock = threading.Lock()

        class Request:
            def infer(self, inputs):
                with lock:
                    state["running"] += 1
                    state["calls"] += 1
                time.sleep(0.05)
                with lock:
                    state["most"].append(state["running"])
                    state["running"] -= 1
                return {"logits": np.zeros((len(inputs["input_ids"]), 1))}

        forward = openvino_backend.OpenVinoForward.__new__(openvino_backend.OpenVinoForward)
        forward.input_names = ["input_ids"]
        forward.compiled = SimpleNamespace(create_infer_request=Request, outputs=["logits"])
        forward._requests = threading.local()
        batch = {"input_ids": np.zeros((2, 4), dtype=np.int64)}

        def first_then_later(barrier):
            barrier.wait()
            forward(batch)

        for round_ in ("first calls", "later calls"):
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=first_then_later, args=(barrier,)) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            state[round_] = max(state["most"][-2:])
        assert state["first calls"] == 1, "the process's first infer ran alone"
        assert state["later calls"] == 2, "later calls run at once: the lock is for the first call only"
        assert state["calls"] == 4


class TestSegmentCosineHeadInBf16:
    def test_pools_and_compares_in_float32(self, tmp_path, minilm_tokenizer):
        from haystack_integrations.components.rankers.crossencoder.score_heads import SegmentCosineScore
        from tests.test_scoring import build_tiny_pooled_cross_encoder

        path = str(build_tiny_pooled_cross_encoder(tmp_path, minilm_tokenizer, head="cosine"))
        ranker = CrossEncoderRanker(model=path, precision="bf16", activation="identity")
        ranker.warm_up()
        head = next(m for m in ranker._scorer.forward.cross_encoder.modules() if isinstance(m, SegmentCosineScore))
        assert head.scale.dtype == head.bias.dtype == torch.float32, "the learned scale and offset stay exact"

        generator = torch.Generator().manual_seed(0)
        embeddings = torch.randn(3, 40, 16, generator=generator).to(torch.bfloat16)
        token_types = torch.zeros(3, 40, dtype=torch.long)
        token_types[:, 8:] = 1
        features = {"attention_mask": torch.ones(3, 40, dtype=torch.long), "token_type_ids": token_types}
        scores = head({**features, "token_embeddings": embeddings})["scores"]
        exact = head({**features, "token_embeddings": embeddings.float()})["scores"]
        assert scores.dtype == torch.float32
        # bf16 pooling would round each cosine to ~1/256 (about 0.08 of a logit at the head's scale of 20)
        torch.testing.assert_close(scores, exact, rtol=0, atol=1e-6)
