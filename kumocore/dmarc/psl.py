"""The Public Suffix List: ``kumo.string.psl_domain`` / ``psl_suffix`` and DMARC's
organizational domains.

KumoMTA uses the Rust ``psl`` crate, which matches against the whole list (ICANN *and*
private sections) and applies the list's implicit ``*`` rule, so an unknown TLD is its own
suffix (``example.unknowntld`` is registrable). The ``publicsuffixlist`` package (a
dependency of kumocore, shipping a recent copy of the list) behaves the same way with
``accept_unknown=True, only_icann=False``; it matches IDNs in Unicode and in punycode form
and answers in the form it was asked in. Before the lookup a name is normalized as
KumoMTA's psl-utils does: one trailing dot removed, ASCII lower-cased.

Parsing the list takes a tenth of a second or more. Done inline by the first
``psl_domain`` call, it would hold the event loop (every session) that long, so it is
done in a background thread, started when the policy functions are registered
(:func:`start_loading`): by the time a message is received the list is ready. A call that
comes earlier waits for that one parse (never a second one). The thread pauses after every
slice of lines (:func:`_pausing_lines`), so that the loop does not wait whole GIL switch
intervals for it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

from publicsuffixlist import PSLFILE, PublicSuffixList

from kumocore.errors import ConfigError
from kumocore.policy.policyfn import policy_function

_list: PublicSuffixList | None = None
_lock = threading.Lock()
_loaded = threading.Event()  # set once the background parse ended (well or not)
_loader: threading.Thread | None = None
_load_error: BaseException | None = None

# Domain names are at most 253 characters; anything much longer is not worth matching.
MAX_NAME_LENGTH = 1024
_ASCII_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}


def start_loading() -> None:
    """Parse the list in a background thread, unless that is done or under way (a
    server that never asks pays only this thread's CPU time, off the event loop)."""
    global _loader
    with _lock:
        if _list is not None or _loader is not None:
            return
        _loader = threading.Thread(target=_load, name="kumocore-psl-load", daemon=True)
        _loader.start()


#: Lines parsed between two pauses of the loading thread, and the pause.
SLICE_LINES = 200
SLICE_PAUSE = 0.0002


def _pausing_lines(path: str = PSLFILE) -> Iterator[bytes]:
    """The list's lines, with a pause after every :data:`SLICE_LINES` of them.

    The parse is pure Python, and CPython hands the GIL to a waiting thread only after a
    switch interval (5 ms) or when the holder blocks; the parse's file reads come from the
    page cache and it takes the GIL straight back. So the loop, which needs the GIL after
    each of its waits, could be held for most of the parse (30-60 ms when the machine is
    busy). A sleep gives the GIL up for real: the loop waits at most one slice (well
    under a millisecond).
    """
    with open(path, "rb") as source:
        for number, line in enumerate(source, 1):
            yield line
            if number % SLICE_LINES == 0:
                time.sleep(SLICE_PAUSE)


def _load() -> None:
    global _list, _load_error
    try:
        parsed = PublicSuffixList(_pausing_lines(), accept_unknown=True, only_icann=False)
        with _lock:
            _list = parsed
    except BaseException as exc:  # reported to every caller rather than lost in the thread
        _load_error = exc
    finally:
        _loaded.set()


def is_loaded() -> bool:
    """True once the list is parsed (a lookup then costs microseconds)."""
    return _list is not None


def _suffix_list() -> PublicSuffixList:
    """The parsed list; waits for the background parse when it is still under way."""
    found = _list
    if found is not None:
        return found
    start_loading()
    _loaded.wait()
    if _list is None:
        raise RuntimeError(f"the Public Suffix List could not be loaded: {_load_error}")
    return _list


async def load_in_thread() -> None:
    """Wait, without holding the event loop, until the list is parsed (the DMARC check
    awaits this before its first lookup)."""
    if _list is None:
        start_loading()
        await asyncio.to_thread(_loaded.wait)


def normalize_domain(name: str) -> str:
    """One trailing dot removed and ASCII upper case folded, as KumoMTA does before a lookup
    (only A-Z: the psl crate does not case-fold other scripts)."""
    if name.endswith("."):
        name = name[:-1]
    return name.translate(_ASCII_LOWER)


def _usable(name: str) -> bool:
    # Empty labels ("a..b", ".com") name nothing the list can match.
    return bool(name) and len(name) <= MAX_NAME_LENGTH and "" not in name.split(".")


def organizational_domain(name: str) -> str | None:
    """The registrable domain (public suffix plus one label) of ``name``, normalized;
    None for a public suffix itself or a name that cannot be matched."""
    normalized = normalize_domain(name)
    if not _usable(normalized):
        return None
    found = _suffix_list().privatesuffix(normalized)
    return found if isinstance(found, str) else None


def public_suffix(name: str) -> str | None:
    """The public suffix of ``name``, normalized; None when it cannot be matched."""
    normalized = normalize_domain(name)
    if not _usable(normalized):
        return None
    found = _suffix_list().publicsuffix(normalized)
    return found if isinstance(found, str) else None


def _text_argument(function: str, value: object) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"kumo.string.{function}: expected a string, got {value!r:.60}")
    return value


@policy_function(table=False)
def psl_domain(name: object) -> str | None:
    """``kumo.string.psl_domain(NAME)``: the registrable domain, or nil."""
    return organizational_domain(_text_argument("psl_domain", name))


@policy_function(table=False)
def psl_suffix(name: object) -> str | None:
    """``kumo.string.psl_suffix(NAME)``: the public suffix, or nil."""
    return public_suffix(_text_argument("psl_suffix", name))
