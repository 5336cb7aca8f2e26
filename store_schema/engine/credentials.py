"""Credentials stay out of parameters: what looks like one in fsspec options or a store URL.

``storage_options`` and the store URL travel as Prefect flow parameters (kept in Prefect's
database, shown in its UI, printed in summaries) and into run records, logs and configs that
other tools read. A secret never belongs there: fsspec and s3fs read credentials from the
environment and from credential files. :func:`credential_problem` names the first offending
key (any nesting, any case) or a URL carrying a password; ``flows.config`` refuses a config
with one, ``train.config`` a store URL with one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

SECRET_WORDS = frozenset({"secret", "token", "password", "passwd", "pwd", "credential",
                          "credentials", "passphrase"})
"""A key containing one of these words (split on ``_``, ``-``, ``.`` and camelCase) is refused."""

SECRET_LAST_WORDS = frozenset({"key"})
"""A key ending in one of these words (``key``, ``access_key``, ``account_key``, ``api_key``) is
refused; ``SSEKMSKeyId`` (an id, not a key) is not."""

SECRET_PAIRS = (("access", "key"), ("connection", "string"))
"""Words that together name a credential wherever they stand: ``aws_access_key_id``."""

NOT_SECRET_VALUES = frozenset({"anon", "anonymous", "google_default", "cloud", "cache", "browser"})
"""Values of a ``token`` option that name a way to find credentials, not a credential (gcsfs)."""

WHERE_CREDENTIALS_GO = (
    "put credentials in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
    "AWS_SESSION_TOKEN; AZURE_STORAGE_ACCOUNT_KEY; GOOGLE_APPLICATION_CREDENTIALS) or a credentials "
    "file (~/.aws/credentials, chosen with storage_options {\"profile\": NAME}), which fsspec and "
    "s3fs read on every machine that opens the store")


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", key))
    return [w for w in re.split(r"[\s_.\-]+", spaced.lower()) if w]


def is_credential_key(key: str) -> bool:
    """``secret``, ``AWS_Secret_Access_Key``, ``token``, ``password``, ``account_key``, ... ."""
    words = _words(str(key))
    if not words:
        return False
    return (any(w in SECRET_WORDS for w in words) or words[-1] in SECRET_LAST_WORDS
            or any(a in words and b in words for a, b in SECRET_PAIRS))


def url_password(url: str) -> bool:
    """The URL carries a password (``scheme://user:password@host/...``)."""
    try:
        return "://" in url and urlsplit(url).password is not None
    except ValueError:
        return False


def credential_problem(options: Any, *, where: str = "storage_options") -> str | None:
    """One line naming the first credential-looking key or password-carrying URL in
    ``options`` (dicts and lists at any depth) and where credentials go instead; None if none."""
    found = _find(options, where)
    if found is None:
        return None
    return (f"{found} looks like a credential, and {where.split('.')[0]} is a run parameter "
            f"(kept in Prefect's database, shown in its UI and in run records): refused; "
            + WHERE_CREDENTIALS_GO)


def _find(value: Any, path: str) -> str | None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = f"{path}.{key}"
            if is_credential_key(str(key)) and not (isinstance(item, str) and item in NOT_SECRET_VALUES) \
                    and item not in (None, "", False):
                return here
            found = _find(item, here)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _find(item, f"{path}[{i}]")
            if found is not None:
                return found
    elif isinstance(value, str) and url_password(value):
        return f"{path} (a URL with a password)"
    return None


def url_problem(url: str, *, where: str = "store") -> str | None:
    """One line when ``url`` carries a password (see :func:`credential_problem`), else None."""
    if not url_password(url):
        return None
    return (f"{where}: the URL carries a password, and it is a run parameter (kept in Prefect's "
            "database, shown in its UI and in run records): refused; give the URL without it and "
            + WHERE_CREDENTIALS_GO)


def refuse_credentials(options: Any) -> Any:
    """``options`` unchanged, or :class:`ValueError` with :func:`credential_problem`'s line (a
    pydantic validator's body)."""
    problem = credential_problem(options)
    if problem is not None:
        raise ValueError(problem)
    return options


def refuse_url_password(url: str) -> str:
    """``url`` unchanged, or :class:`ValueError` with :func:`url_problem`'s line (a pydantic
    validator's body)."""
    problem = url_problem(url)
    if problem is not None:
        raise ValueError(problem)
    return url


REDACTED = "<redacted>"


def redacted(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with every credential-looking key's value
    and every URL's password replaced by ``<redacted>``: what a tracker or a data card may log
    of a config. A validated config holds none (they are refused); this is the second line."""
    if isinstance(value, Mapping):
        return {key: REDACTED if is_credential_key(str(key)) and item not in (None, "", False)
                and not (isinstance(item, str) and item in NOT_SECRET_VALUES) else redacted(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(item) for item in value]
    if isinstance(value, str) and url_password(value):
        parts = urlsplit(value)
        netloc = f"{parts.username}:{REDACTED}@{parts.hostname}" + (
            f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()
    return value
