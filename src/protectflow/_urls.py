"""Bank URLs, checked where they enter: a local folder, ``file://``, or an
fsspec URL whose scheme fsspec knows and whose package is installed.

A mistyped URL must fail before anything is written. Left alone, ``s3:/bucket/x``
(one slash) is a relative path and would silently become a local folder called
``s3:``, and so would ``s3//bucket/x`` (no colon) a folder ``s3``;
``file://tmp/x`` (two slashes: ``tmp`` is taken for a host) would become the
folder ``tmp/x`` under the current one; ``s4://bucket`` would reach fsspec as
an unknown protocol; and ``s3://bucket`` without s3fs would fail deep inside
the first write.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re

from protectflow.errors import BankError, MissingDependencyError

__all__ = [
    "COMMON_SCHEMES",
    "check_bank_url",
    "default_bank_url",
    "is_local",
    "known_schemes",
    "require_backend",
    "user_bank_url",
]

#: The schemes named first in messages: those a bank is usually kept on.
COMMON_SCHEMES = ("file", "memory", "s3", "gs", "az", "abfs", "sftp", "webdav")

# "name:" at the start, but not "name://": a URL missing a slash (or both).
# Two characters at least, so that a Windows drive ("C:/x") is not taken for one.
_SCHEME_ONLY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(?!//)/?(.*)$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# "name//..." : a URL missing its colon (refused only for a scheme fsspec knows).
_NO_COLON = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)//(.*)$")


def default_bank_url() -> str:
    """The bank used when none is named.

    Returns
    -------
    str
        ``$PROTECTFLOW_BANK`` if set, else ``<user data dir>/protectflow/bank``.
    """
    env = os.environ.get("PROTECTFLOW_BANK")
    return env if env else user_bank_url()


def user_bank_url() -> str:
    """``<user data dir>/protectflow/bank``: the bank when nothing names one."""
    import platformdirs  # a dependency; kept out of `import protectflow`

    return os.path.join(platformdirs.user_data_dir("protectflow"), "bank")


def is_local(url: str) -> bool:
    """Whether ``url`` names a local folder (a plain path or ``file://``)."""
    return "://" not in url or url.startswith("file://")


def known_schemes() -> frozenset[str]:
    """Every scheme fsspec can open (installed or not), plus ``file``."""
    # fsspec is imported here, not at the top: `import protectflow` stays light.
    from fsspec.registry import known_implementations, registry

    return frozenset(known_implementations) | frozenset(registry) | {"file"}


def check_bank_url(url: str) -> str:
    """Check the form of a bank URL and return it unchanged.

    Parameters
    ----------
    url : str
        A folder, ``file://PATH`` or ``SCHEME://...`` with a scheme fsspec knows.

    Returns
    -------
    str
        ``url``.

    Raises
    ------
    BankError
        For an empty URL, a scheme followed by one slash or none
        (``s3:/bucket/x``: the message shows ``s3://bucket/x``), a known
        scheme without its colon (``s3//bucket/x``), a ``file://`` URL not
        followed by an absolute path (``file://tmp/x``: the message shows
        ``file:///tmp/x``), or a scheme fsspec does not know (the message
        names the known ones).
    """
    if not url:
        raise BankError("the bank URL is empty: give a folder or a URL such as s3://bucket/path")
    half = _SCHEME_ONLY.match(url)
    if half is not None:
        scheme, rest = half.groups()
        # file:// is followed by an absolute path: file:/tmp/x is file:///tmp/x.
        rest = ("/" if scheme.lower() == "file" else "") + rest.lstrip("/")
        raise BankError(
            f"bad bank URL {url!r}: a URL needs '://' after its scheme: write "
            f"{scheme}://{rest}; for a local folder whose name has a colon, "
            f"write ./{url}"
        )
    _check_slashes(url)
    full = _SCHEME.match(url)
    if full is not None:
        scheme = full.group(1).lower()
        known = known_schemes()
        if scheme not in known:
            close = difflib.get_close_matches(scheme, sorted(known), n=3, cutoff=0.5)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            others = sorted(known - set(COMMON_SCHEMES))
            raise BankError(
                f"unknown scheme {scheme!r} in the bank URL {url!r}: {hint}known schemes: "
                f"{', '.join(COMMON_SCHEMES)} (or another fsspec protocol: "
                f"{', '.join(others)}); a local folder needs no scheme"
            )
    return url


def _check_slashes(url: str) -> None:
    """Refuse ``s3//bucket`` and ``file://tmp/x`` (see :func:`check_bank_url`)."""
    bare = _NO_COLON.match(url)
    if bare is not None and bare.group(1).lower() in known_schemes():
        scheme, rest = bare.groups()
        raise BankError(
            f"bad bank URL {url!r}: did you mean {scheme}://{rest}? A URL needs ':' before "
            f"its '//'; for a local folder of that name, write ./{url}")
    if url.lower().startswith("file://") and not url[len("file://"):].startswith("/"):
        rest = url[len("file://"):]
        raise BankError(
            f"bad bank URL {url!r}: a file URL is file:// and an absolute path (three "
            f"slashes in all): did you mean file:///{rest}? For a folder under the current "
            f"one, write ./{rest}")


def require_backend(url: str) -> None:
    """Check that the package serving ``url``'s scheme is installed.

    Raises
    ------
    MissingDependencyError
        When it is not, naming the package to install (``pip install s3fs``).
    """
    full = _SCHEME.match(url)
    if full is None or is_local(url):
        return
    from fsspec.registry import known_implementations, registry  # light import, see above

    scheme = full.group(1).lower()
    if scheme in registry or scheme not in known_implementations:
        return  # registered by hand, or unknown (check_bank_url says so)
    module = str(known_implementations[scheme]["class"]).split(".", 1)[0]
    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            f"the bank {url!r} needs the {module!r} package: pip install {module}"
        )
