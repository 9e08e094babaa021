"""Expert labelling: judge each query's first-stage candidates in a local web page, then export training data.

The loop of the report: retrieve each query's top 20 with the embedding model, let a domain expert grade every
candidate (0 not relevant, 1 partly, 2 relevant, 3 highly relevant), and train on the judgements:
`rerank label` -> `rerank label --export lists` -> `rerank train` -> `rerank evaluate`.

- `label(...)`: the `rerank label` command: serve the page on 127.0.0.1 with a random access token;
- `export_labels(...)`: the log as graded lists or pairs for `rerank train`, or BEIR qrels for `rerank evaluate`;
- `LabellingSession`, `JudgementLog`, `create_label_app`, `load_labelling_input`: the pieces, for your own server.

Needs the `serve` extra (fastapi, uvicorn) for the page. Names are imported on first use, so that `rerank --help`
stays fast.
"""

from typing import TYPE_CHECKING

from crossencoder_haystack._lazy_imports import lazy_exports

if TYPE_CHECKING:
    from crossencoder_haystack.labelling.app import create_label_app
    from crossencoder_haystack.labelling.export import EXPORT_FORMATS, ExportSummary, export_labels
    from crossencoder_haystack.labelling.inputs import load_labelling_input
    from crossencoder_haystack.labelling.log import GRADES, JudgementLog, LabelLogError, read_log
    from crossencoder_haystack.labelling.server import label, open_session
    from crossencoder_haystack.labelling.session import LabellingSession, UnknownItemError

_EXPORTS = {
    "create_label_app": "app",
    "EXPORT_FORMATS": "export",
    "ExportSummary": "export",
    "export_labels": "export",
    "load_labelling_input": "inputs",
    "GRADES": "log",
    "JudgementLog": "log",
    "LabelLogError": "log",
    "read_log": "log",
    "label": "server",
    "open_session": "server",
    "LabellingSession": "session",
    "UnknownItemError": "session",
}

__all__ = [
    "EXPORT_FORMATS",
    "GRADES",
    "ExportSummary",
    "JudgementLog",
    "LabelLogError",
    "LabellingSession",
    "UnknownItemError",
    "create_label_app",
    "export_labels",
    "label",
    "load_labelling_input",
    "open_session",
    "read_log",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)
