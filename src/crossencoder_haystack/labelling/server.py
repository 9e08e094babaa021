"""`label(...)`: open the labels log, index the corpus, and serve the labelling page on 127.0.0.1 until Ctrl-C.

The URL carries a random access token (`secrets.token_urlsafe`), so other users and web pages on the machine cannot
read the documents or write judgements. Port 0 asks the system for a free port; the URL shows the one it gave.
"""

import secrets
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from haystack import logging

from crossencoder_haystack.labelling.candidates import PassageScorer, build_retriever
from crossencoder_haystack.labelling.inputs import load_labelling_input
from crossencoder_haystack.labelling.log import JudgementLog
from crossencoder_haystack.labelling.session import PAIRS_GUIDE, LabellingSession

logger = logging.getLogger(__name__)


def open_session(
    queries: str | Path,
    corpus: str | Path | None = None,
    *,
    output: str | Path,
    split: str | None = None,
    retriever: str = "embedding",
    embedding_model: str | Path | None = None,
    top_n: int = 20,
    model: str | Path | None = None,
    max_length: int | None = None,
    cache_dir: str | Path | None = None,
) -> LabellingSession:
    """
    Read the queries and corpus, open the log and load the first stage (and the reranker): a session ready to serve.

    The parameters are those of `label`.
    """
    dataset = load_labelling_input(queries, corpus, split)
    if cache_dir is None:
        from crossencoder_haystack.evaluation.score_cache import default_cache_dir

        cache_dir = default_cache_dir()
    first_stage = build_retriever(retriever, dataset, embedding_model=embedding_model, cache_dir=Path(cache_dir))
    scorer = PassageScorer(model, max_length=max_length) if model is not None else None
    session = LabellingSession(dataset, first_stage, JudgementLog(output), top_n=top_n, scorer=scorer)
    session.open()  # a corrupt or busy log stops here, before minutes of indexing
    try:
        first_stage.warm_up()
        if scorer is not None:
            scorer.warm_up()
    except BaseException:
        session.close()
        raise
    return session


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host:port` (port 0: a free port, read back with `getsockname()`)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        msg = f"port must be 0 (any free port) or 1..65535, got {port!r}."
        raise ValueError(msg)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as error:
        sock.close()
        msg = f"cannot listen on {host}:{port} ({error.strerror}); pass another --port, or 0 for any free one."
        raise ValueError(msg) from None
    return sock


def page_url(sock: socket.socket, host: str, token: str) -> str:
    """The page's URL with the port the socket really got and the access token."""
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def label(
    queries: str | Path,
    corpus: str | Path | None = None,
    *,
    output: str | Path,
    split: str | None = None,
    retriever: str = "embedding",
    embedding_model: str | Path | None = None,
    top_n: int = 20,
    model: str | Path | None = None,
    max_length: int | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    open_browser: bool = False,
    cache_dir: str | Path | None = None,
    log_level: str = "warning",
    announce: Callable[[str], Any] | None = None,
) -> None:
    """
    Serve the labelling page for `queries` until interrupted; every judgement is in `output` once confirmed.

    ```python
    from crossencoder_haystack.labelling import label

    label("queries.txt", "corpus.jsonl", output="labels.jsonl", retriever="bm25", top_n=20)
    ```

    :param queries: A BEIR directory, a `queries.jsonl`, a CSV/JSONL with a `query` column or a `.txt` file.
    :param corpus: The corpus (`.jsonl` or `.csv`); may be left out for a BEIR directory.
    :param output: The labels log (JSONL, append-only); an existing one is resumed.
    :param split: Label only the queries of this BEIR qrels split; None labels every query.
    :param retriever: The first stage: `"embedding"` (the bundled all-MiniLM-L6-v2, or `embedding_model`) or
        `"bm25"`.
    :param embedding_model: A local sentence-transformers model directory for `"embedding"`.
    :param top_n: Candidates to judge per query.
    :param model: A reranker directory: marks each candidate's best passage and adds the "model says" column.
    :param max_length: The reranker's tokens of query plus passage; None uses the model's limit.
    :param host: The interface to listen on; other than loopback, anyone with the URL can use the page.
    :param port: The TCP port; 0 picks a free one.
    :param open_browser: Open the page in the default browser.
    :param cache_dir: Where corpus embeddings are cached (default the user cache).
    :param log_level: Uvicorn's log level.
    :param announce: Prints the URL and the state (default: `print`, flushed).
    :raises ValueError: Bad data, a corrupt or busy log, or a port that cannot be used (a clear message).
    """
    from crossencoder_haystack.serving.auth import is_loopback

    announce = announce or _print
    if not is_loopback(host):
        logger.warning("Listening on {host}: anyone who can reach it with the URL can read the documents.", host=host)
    sock = bind_socket(host, port)
    try:
        session = open_session(
            queries,
            corpus,
            output=output,
            split=split,
            retriever=retriever,
            embedding_model=embedding_model,
            top_n=top_n,
            model=model,
            max_length=max_length,
            cache_dir=cache_dir,
        )
    except BaseException:
        sock.close()
        raise
    try:
        _serve_page(session, sock, host, open_browser=open_browser, log_level=log_level, announce=announce)
    finally:
        session.close()
        sock.close()


def _serve_page(
    session: LabellingSession,
    sock: socket.socket,
    host: str,
    *,
    open_browser: bool,
    log_level: str,
    announce: Callable[[str], Any],
) -> None:
    """Announce the page's URL (with a new access token) and serve it on `sock` until interrupted."""
    import uvicorn

    from crossencoder_haystack.labelling.app import create_label_app

    token = secrets.token_urlsafe(24)
    url = page_url(sock, host, token)
    announce(_summary(session))
    announce(f"Open {url}")
    announce("Every judgement is saved when the page shows it; press Ctrl-C to stop (starting again resumes).")
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(create_label_app(session, token), log_level=log_level, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])


def _summary(session: LabellingSession) -> str:
    progress = session.progress()
    model = f", best passages by {Path(session.scorer.model).name}" if session.scorer is not None else ""
    return (
        f"Labelling {progress['queries']} queries x top {session.top_n} ({session.retriever}{model}) into "
        f"{session.log.path}: {progress['judged']} pairs judged so far (guide for a first model: "
        f"{PAIRS_GUIDE[0]:,}-{PAIRS_GUIDE[1]:,})."
    )


def _print(line: str) -> None:
    print(line, flush=True)
    sys.stdout.flush()
