"""Environment-variable fallbacks for command-line flags, as text-embeddings-inference offers (`--port` or `PORT`).

Every flag `--some-flag` of a parser falls back to the variable `<PREFIX>SOME_FLAG`: a flag given on the command line
wins, then the variable, then the flag's default. `--help` names the variable of each flag. A variable's value is
checked like the flag's (its type and choices) when the command line is parsed, and a bad one is an error that names
the variable. An empty variable counts as unset. Switches (`--no-auth`) take `1`, `true`, `yes` or `on` (and `0`,
`false`, `no`, `off`). Only the standard library is imported here: `rerank --help` builds every parser.
"""

import argparse
import os
from collections.abc import Callable, Mapping
from typing import Any

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class EnvironmentValue(str):
    """A flag's value read from an environment variable (a `str` that remembers the variable's name)."""

    variable: str

    def __new__(cls, value: str, variable: str) -> "EnvironmentValue":
        text = super().__new__(cls, value)
        text.variable = variable
        return text


def variable_name(flag: str, prefix: str) -> str:
    """The variable of a flag: `--max-length` with prefix `RERANK_` is `RERANK_MAX_LENGTH`."""
    return prefix + flag.lstrip("-").replace("-", "_").upper()


def add_environment_fallbacks(
    parser: argparse.ArgumentParser, prefix: str, environ: Mapping[str, str] | None = None
) -> None:
    """
    Let every optional flag of `parser` (but `--help`) fall back to its environment variable.

    Call it once the parser has all its flags; the variables are read now, their values checked when it parses.

    :param parser: The parser (a sub-command's).
    :param prefix: The variables' prefix, e.g. `RERANK_`.
    :param environ: The environment to read (default: `os.environ`).
    """
    environ = os.environ if environ is None else environ
    for action in parser._actions:  # argparse has no public list of a parser's arguments
        if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        variable = variable_name(max(action.option_strings, key=len), prefix)
        action.help = f"{action.help} [env: {variable}]" if action.help else f"[env: {variable}]"
        value = environ.get(variable, "")
        if not value.strip():
            continue
        # A string default goes through `action.type` (and so through the checks below) when the flag is not given.
        action.type = _checked(action, variable)
        action.default = EnvironmentValue(value, variable)
        action.required = False


def _checked(action: argparse.Action, variable: str) -> Callable[[str], Any]:
    """`action.type`, which also checks a value from `variable` against the flag's choices, naming the variable."""
    convert: Callable[[str], Any]
    if isinstance(action, argparse._StoreTrueAction):
        convert = _switch
    else:
        convert = action.type if callable(action.type) else str

    def checked(text: str) -> Any:
        if not isinstance(text, EnvironmentValue):  # from the command line: the flag's own conversion
            return convert(text)
        try:
            value = convert(text.strip())
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentTypeError(f"{variable}={str(text)!r}: {error}") from None
        except (TypeError, ValueError):
            name = getattr(convert, "__name__", "value")
            raise argparse.ArgumentTypeError(f"{variable}={str(text)!r} is not a valid {name}") from None
        if action.choices is not None and value not in action.choices:
            choices = ", ".join(map(str, action.choices))
            raise argparse.ArgumentTypeError(f"{variable}={str(text)!r} is not one of {choices}")
        return value

    checked.__name__ = getattr(convert, "__name__", "value")  # argparse names it in "invalid <name> value" errors
    return checked


def _switch(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    msg = "expected 1, true, yes or on (or 0, false, no, off)"
    raise argparse.ArgumentTypeError(msg)
