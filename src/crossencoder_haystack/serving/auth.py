"""Who may call the rerank service: the API key `rerank serve` requires, decided before the model loads.

The rule (an API key, or an explicit choice not to have one):

- `api_key_env="NAME"` (`--api-key-env NAME`): the key is in `$NAME`; unset or empty refuses to start.
- `no_auth=True` (`--no-auth`): no key, on any host, by choice.
- neither: the key is in `$RERANK_API_KEY` if that is set; if not, the service runs without a key only on a
  loopback host (127.0.0.1, ::1, localhost), with a warning, and refuses to start on any other host.
"""

import hmac
import ipaddress
import os
from collections.abc import Mapping

from haystack import logging

from crossencoder_haystack.serving.limits import DEFAULT_API_KEY_ENV

logger = logging.getLogger(__name__)


class AuthConfigurationError(ValueError):
    """The API key settings would leave the service open, or contradict each other; the message says what to do."""


def resolve_api_key(
    api_key_env: str | None,
    *,
    no_auth: bool,
    host: str,
    environ: Mapping[str, str] | None = None,
) -> str | None:
    """
    The API key the service requires, or `None` for no key (only when that is the explicit or loopback choice).

    :param api_key_env: The environment variable that must hold the key; `None` if not chosen.
    :param no_auth: Serve without a key, on purpose.
    :param host: The interface the service listens on.
    :param environ: The environment to read (default: `os.environ`).
    :returns: The key (surrounding whitespace removed), or `None`.
    :raises AuthConfigurationError: If the chosen variable is unset or empty, if both choices are made, or if no
        key is set and `host` is not a loopback address.
    """
    environ = os.environ if environ is None else environ
    if no_auth:
        if api_key_env is not None:
            msg = "--api-key-env and --no-auth exclude each other: choose an API key or none."
            raise AuthConfigurationError(msg)
        logger.warning("Serving without an API key (--no-auth): anyone who can reach {host} may use it.", host=host)
        return None
    if api_key_env is not None:
        return _key_from(api_key_env, environ)
    key = environ.get(DEFAULT_API_KEY_ENV, "").strip()
    if key:
        return key
    if not is_loopback(host):
        msg = (
            f"No API key: {DEFAULT_API_KEY_ENV} is not set, and {host} is not a loopback address, so anyone who can "
            f"reach the port could use the service. Set {DEFAULT_API_KEY_ENV} (or name another variable with "
            "--api-key-env), or pass --no-auth to serve without a key."
        )
        raise AuthConfigurationError(msg)
    logger.warning(
        "No API key ({variable} is not set): serving without one, on the loopback host {host} only. Set "
        "{variable} or pass --no-auth to make the choice explicit.",
        variable=DEFAULT_API_KEY_ENV,
        host=host,
    )
    return None


def _key_from(variable: str, environ: Mapping[str, str]) -> str:
    if not variable.strip():
        msg = "--api-key-env is empty: name the environment variable that holds the API key, or pass --no-auth."
        raise AuthConfigurationError(msg)
    key = environ.get(variable, "").strip()
    if not key:
        state = "empty" if variable in environ else "not set"
        msg = (
            f"--api-key-env names {variable}, which is {state}, so the service would accept requests without a "
            f"key. Set {variable} to the key clients must send, or pass --no-auth (instead of --api-key-env) to "
            "serve without one."
        )
        raise AuthConfigurationError(msg)
    return key


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine (`localhost`, 127.0.0.0/8, `::1`)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:  # another host name: it may resolve to any interface
        return False


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, or None if the header is not that."""
    scheme, _, presented = authorization.partition(" ")
    return presented.strip() or None if scheme.lower() == "bearer" else None


def secret_matches(presented: str | None, secret: str) -> bool:
    """Whether `presented` is `secret` (ignoring surrounding blanks), in constant time."""
    return presented is not None and hmac.compare_digest(presented.strip().encode(), secret.encode())
