"""Request and response bodies of the rerank service: Cohere v1/v2 rerank and text-embeddings-inference (TEI) rerank.

Requests are validated strictly (a number where a string belongs is an error, not a conversion) and fields a newer
client may add are ignored, so official clients keep working. Choices where the APIs leave room:

- `top_n` larger than the number of documents returns all documents (as Cohere does); `top_n` < 1 is an error.
- `model` may name any model: the service answers with the one model it serves (see `GET /info`).
- A blank document (empty or whitespace only) is not sent to the model; it ranks last with score 0.0. With TEI
  `raw_scores: true` there is no lowest raw score to give it, so a blank text is an error there.
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_validator
from pydantic import ValidationError as PydanticValidationError

_MAX_LISTED_PROBLEMS = 5


def _non_blank(value: str) -> str:
    if not value.strip():
        msg = "must be a non-empty string"
        raise ValueError(msg)
    return value


class RelevantSpans(BaseModel):
    """Cohere v2 `relevant_spans`: return the document span the score came from (the best passage)."""

    mode: Literal["enabled", "disabled"]
    threshold: StrictFloat | StrictInt | None = None
    max_spans: StrictInt | None = Field(default=None, ge=1)


class CohereRerankRequest(BaseModel):
    """
    The body of Cohere `POST /v2/rerank` (and `POST /v1/rerank`).

    `documents` are strings, or objects with a string `text` field as v1 allowed (with v1 `rank_fields`, the named
    fields are joined, one per line as `field: value`). `max_tokens_per_doc` truncates each document to that many
    tokens before it is scored; what remains is scored passage by passage and ranked by its best passage.
    `priority` and `max_chunks_per_doc` are accepted and not used: requests are served in arrival order.
    """

    model_config = ConfigDict(extra="ignore")

    model: StrictStr | None = None
    query: StrictStr
    documents: list[Any]
    top_n: StrictInt | None = None
    max_tokens_per_doc: StrictInt | None = None
    return_documents: StrictBool = False
    rank_fields: list[StrictStr] | None = None
    max_chunks_per_doc: StrictInt | None = None
    relevant_spans: RelevantSpans | None = None
    priority: StrictInt | None = None

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, query: str) -> str:
        return _non_blank(query)

    @field_validator("documents")
    @classmethod
    def _documents_not_empty(cls, documents: list[Any]) -> list[Any]:
        if not documents:
            msg = "must hold at least one document (a string, or an object with a string 'text' field)"
            raise ValueError(msg)
        return documents

    @field_validator("top_n")
    @classmethod
    def _top_n_positive(cls, top_n: int | None) -> int | None:
        if top_n is not None and top_n < 1:
            msg = f"must be >= 1, got {top_n} (leave it out to get every document back)"
            raise ValueError(msg)
        return top_n

    @field_validator("max_tokens_per_doc")
    @classmethod
    def _max_tokens_positive(cls, max_tokens: int | None) -> int | None:
        if max_tokens is not None and max_tokens < 1:
            msg = f"must be >= 1, got {max_tokens}"
            raise ValueError(msg)
        return max_tokens

    def document_texts(self) -> list[str]:
        """
        The text of each document, in request order.

        :raises ValueError: If a document is neither a string nor an object with the text fields asked for.
        """
        texts = []
        for position, document in enumerate(self.documents):
            if isinstance(document, str):
                texts.append(document)
            elif isinstance(document, dict) and self.rank_fields:
                texts.append(_rank_fields_text(document, self.rank_fields, position))
            elif isinstance(document, dict) and isinstance(document.get("text"), str):
                texts.append(document["text"])
            else:
                msg = (
                    f"documents[{position}] must be a string or an object with a string 'text' field, "
                    f"got {_json_type(document)}."
                )
                raise ValueError(msg)
        return texts


def _rank_fields_text(document: dict[str, Any], rank_fields: list[str], position: int) -> str:
    lines = []
    for field in rank_fields:
        if field not in document:
            continue
        value = document[field]
        if not isinstance(value, (str, int, float, bool)):
            msg = f"documents[{position}].{field} must be a string or a number to be ranked, got {_json_type(value)}."
            raise ValueError(msg)
        lines.append(f"{field}: {value}")
    if not lines:
        msg = f"documents[{position}] has none of the rank_fields {rank_fields}."
        raise ValueError(msg)
    return "\n".join(lines)


class TeiRerankRequest(BaseModel):
    """
    The body of text-embeddings-inference `POST /rerank`.

    `truncate: true` cuts each text to what fits the model next to the query; otherwise (the default) long texts
    are scored passage by passage and ranked by their best passage, where TEI itself would refuse them.
    `raw_scores: true` returns raw logits instead of sigmoid scores in 0..1.
    """

    model_config = ConfigDict(extra="ignore")

    query: StrictStr
    texts: list[StrictStr]
    truncate: StrictBool | None = False
    raw_scores: StrictBool = False
    return_text: StrictBool = False
    truncation_direction: Literal["Right", "right"] = "Right"

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, query: str) -> str:
        return _non_blank(query)

    @field_validator("texts")
    @classmethod
    def _texts_not_empty(cls, texts: list[str]) -> list[str]:
        if not texts:
            msg = "must hold at least one string"
            raise ValueError(msg)
        return texts


class RerankedDocumentText(BaseModel):
    text: str


class RelevantSpan(BaseModel):
    start: int
    end: int
    score: float


class CohereRerankResult(BaseModel):
    index: int
    relevance_score: float
    document: RerankedDocumentText | None = None
    relevant_spans: list[RelevantSpan] | None = None


class CohereRerankResponse(BaseModel):
    id: str
    results: list[CohereRerankResult]
    meta: dict[str, Any]


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None


class ServiceInfo(BaseModel):
    """What `GET /info` tells: the served model and the limits clients must respect."""

    model: str
    model_name: str
    backend: str
    max_length: int
    version: str
    max_documents: int
    max_document_chars: int
    max_body_bytes: int
    request_timeout: float


def validation_message(error: PydanticValidationError) -> str:
    """One readable sentence per problem in a request body, each naming the field, e.g. `top_n: must be >= 1`."""
    problems = []
    for item in error.errors(include_url=False, include_input=False, include_context=False):
        message = str(item["msg"]).removeprefix("Value error, ").rstrip(".")
        where = _location(item["loc"])
        problems.append(f"{where}: {message}" if where else message)
    shown = "; ".join(problems[:_MAX_LISTED_PROBLEMS])
    if len(problems) > _MAX_LISTED_PROBLEMS:
        shown += f"; and {len(problems) - _MAX_LISTED_PROBLEMS} more problems"
    return f"Invalid request body: {shown}."


def _location(loc: tuple[Any, ...]) -> str:
    where = ""
    for part in loc:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object without a string 'text' field"
    return type(value).__name__
