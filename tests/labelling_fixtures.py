"""A tiny BEIR collection to label, and `rerank label` run as a real process on a free port of 127.0.0.1."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FILLER = " ".join(["Managed budgets, schedules and suppliers for the regional office."] * 60)
DOCUMENTS = {
    "d1": ("Ada Python", "Backend developer: Python, Django and PostgreSQL for eight years."),
    "d2": ("Bo Data", "Data analyst with SQL and Python; dashboards for the sales team."),
    "d3": ("Cem Lead", "Team lead who hired and mentored twelve engineers; Python code reviews."),
    "d4": ("Dee Sales", "B2B sales with enterprise contracts and long negotiations."),
    "d5": ("Eda Support", "Call centre agent resolving customer complaints by phone and chat."),
    "d6": ("Fay Office", FILLER + " Also ran the Python training for new hires. " + FILLER),
    "d7": ("Gus Nurse", "Intensive care nurse on night shifts."),
    "d8": ("Hal Driver", "Truck driver with a clean licence."),
}
DOCUMENTS = {
    doc_id: (title, f"{text} Experience: {len(text) % 9 + 2} years.") for doc_id, (title, text) in DOCUMENTS.items()
}
# "experience" is in every CV, so BM25 returns every CV for every query (it leaves out CVs that match no word).
QUERIES = {
    "q1": "python developer experience",
    "q2": "sql data analyst experience",
    "q3": "team lead who hired engineers experience",
}


def write_collection(root: Path) -> Path:
    """A BEIR folder: 8 short CVs (one long), 3 queries, qrels/train.tsv naming q1 and q2."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as handle:
        for doc_id, (title, text) in DOCUMENTS.items():
            handle.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for query_id, text in QUERIES.items():
            handle.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n", encoding="utf-8")
    return root


_URL = re.compile(r"Open (http://\S+)")


@contextmanager
def label_process(arguments: list[str], timeout: float = 300.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `rerank label ARGUMENTS --port 0` and yield the URL it prints (with its real port) and the process.

    A process that prints no URL within `timeout` seconds (generous: a loaded CI machine imports torch slowly) is
    killed, and the test fails with what it printed.
    """
    environment = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "crossencoder_haystack.cli", "label", *arguments, "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    try:
        output = []
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = _URL.search(line)
            if match:
                watchdog.cancel()
                yield match.group(1), process
                return
        raise AssertionError("rerank label printed no URL:\n" + "".join(output))
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)  # as a crash would: nothing confirmed may be lost
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
