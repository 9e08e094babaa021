"""Reading a JSON file that must hold an object, with an error that says how to fix it (shared with the tooling)."""

import json
from pathlib import Path
from typing import Any


def read_json_object(path: Path, *, invalid_advice: str, not_object_advice: str, example: str = "") -> dict[str, Any]:
    """
    Reads `path` as UTF-8 JSON that must hold an object.

    :param path: The file to read.
    :param invalid_advice: What follows `"<path> is not valid JSON (<error>)"` in the error, such as
        `"; fix or delete it."`.
    :param not_object_advice: What follows `"<path> must hold a JSON object<example>, got <type>"` in the error.
    :param example: An example object for that error, such as `' such as {"weight": 0.3}'`; empty for none.
    :returns: The object.
    :raises ValueError: If the file is not valid UTF-8 JSON, or holds something other than an object.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        msg = f"{path} is not valid JSON ({error}){invalid_advice}"
        raise ValueError(msg) from None
    if not isinstance(data, dict):
        msg = f"{path} must hold a JSON object{example}, got {type(data).__name__}{not_object_advice}"
        raise ValueError(msg)
    return data
