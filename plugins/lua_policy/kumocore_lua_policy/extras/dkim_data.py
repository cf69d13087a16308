"""``policy-extras.dkim_sign``: DKIM signing from ``dkim_data.toml``.

File format (TOML or JSON)::

    [base]
    selector = "s1"                     # default selector
    headers = ["From", "To", "Subject"] # default signed headers
    additional_signatures = ["esp"]     # [signature.*] blocks to consider for every message

    [domain."example.com"]              # keyed by the From header's domain; "*.x" allowed
    selector = "s1"
    algo = "sha256"                     # or "ed25519"
    filename = "/keys/example.com/s1.key"

    [signature."esp"]                   # independent of the From domain
    domain = "esp.example"
    policy = "Always"                   # or "OnlyIfMissingDomainBlock"

Keys are read from ``/opt/kumomta/etc/dkim/DOMAIN/SELECTOR.key`` unless ``filename`` says
otherwise; ``filename`` may use ``{domain}`` and ``{selector}``, and (a kumocore extension)
``[base] filename`` sets that template for every block. Each key is loaded when the policy
is loaded, so a missing or malformed key file fails ``kumocore validate``.

With ``[base] vault_mount`` the keys are in HashiCorp Vault instead, as KumoMTA has it:
``vault_path`` is the block's ``filename``, else ``<vault_path_prefix>/<domain>/<selector>``
(prefix ``dkim`` by default), read with ``$VAULT_ADDR`` and ``$VAULT_TOKEN``. They are read
when a message first needs them and kept for the signer ``ttl`` (300 s), so ``sign`` then
gives Lua an awaitable; a missing secret fails that message, not the policy load.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kumocore import Message, Rejection
from kumocore.dkim.keys import Algorithm
from kumocore.dkim.policy import SignerCache, make_signer
from kumocore.dkim.signer import Signer
from kumocore.dkim.stats import STATS, Timing
from kumocore_lua_policy.extras.datafile import (
    DataFileError,
    check_keys,
    expect,
    key_path,
    load_all,
    string_list,
    table,
)
from kumocore_lua_policy.extras.domain_map import DomainMap

HELPER = "policy-extras.dkim_sign"
DKIM_PATH = "/opt/kumomta/etc/dkim"
DEFAULT_TEMPLATE = DKIM_PATH + "/{domain}/{selector}.key"

#: Keys every block may hold, with what they must be.
_COMMON = {
    "selector": (str, "a string"),
    "headers": (list, "a list of strings"),
    "expiration": (int, "a whole number of seconds"),
    "header_canonicalization": (str, "'Relaxed' or 'Simple'"),
    "body_canonicalization": (str, "'Relaxed' or 'Simple'"),
    "over_sign": (bool, "true or false"),
    "filename": (str, "a file name"),
}
_BASE = {
    **_COMMON,
    "additional_signatures": (list, "a list of strings"),
    "policy": (str, "'Always'"),
    "vault_mount": (str, "a string"),
    "vault_path_prefix": (str, "a string"),
}
_DOMAIN = {**_COMMON, "policy": (str, "'Always'"), "algo": (str, "'sha256' or 'ed25519'")}
_SIGNATURE = {
    **_DOMAIN,
    "domain": (str, "a domain name"),
    "policy": (str, "'Always' or 'OnlyIfMissingDomainBlock'"),
}
_ALGOS: dict[str, Algorithm] = {"sha256": "rsa-sha256", "ed25519": "ed25519-sha256"}
_SIGNER_KEYS = (
    "selector",
    "headers",
    "expiration",
    "header_canonicalization",
    "body_canonicalization",
    "over_sign",
)


@dataclass
class _Block:
    params: dict[str, Any]
    file: str
    key: str


class DkimData:
    """The merged ``dkim_data`` files; :meth:`sign` is what ``dkim_signer(msg)`` calls."""

    def __init__(self, files: Sequence[str | dict[str, Any]]) -> None:
        self.base: dict[str, Any] = {}
        self._base_where = ("<no file>", "base")
        self._domains: dict[str, _Block] = {}
        self._signatures: dict[str, _Block] = {}
        load_all(HELPER, files, self._merge_file)
        self._check()
        self._signers: dict[tuple[str, str, str], Signer] = {}
        self.domains: DomainMap[_Block] = DomainMap(self._domains)
        #: Signers whose keys are in HashiCorp Vault (read per message, kept for ttl).
        self._vault: SignerCache | None = SignerCache() if "vault_mount" in self.base else None
        if self._vault is not None:
            return
        for name, block in self._domains.items():
            if not name.startswith("*"):
                self._signer(block, name)
        for block in self._signatures.values():
            self._signer(block, block.params["domain"])

    def sign(self, message: Message) -> Coroutine[Any, Any, None] | None:
        """Add the From domain's signature and the ``additional_signatures`` that apply
        (an awaitable doing so when the keys are in HashiCorp Vault)."""
        wanted = self._wanted(message)
        if self._vault is not None:
            return self._sign_from_vault(self._vault, message, wanted)
        for block, domain in wanted:
            message.dkim_sign(self._signer(block, domain))
        return None

    async def _sign_from_vault(
        self, signers: SignerCache, message: Message, wanted: list[tuple[_Block, str]]
    ) -> None:
        for block, domain in wanted:
            algorithm, options = self._options(block, domain)
            params = {**options, "key": self._vault_key(block, domain, options["selector"])}
            message.dkim_sign(await signers.get_vault(algorithm, params))

    def _vault_key(self, block: _Block, domain: str, selector: str) -> dict[str, str]:
        path = block.params.get("filename")
        if path is None:
            prefix = self.base.get("vault_path_prefix") or "dkim"
            path = f"{prefix}/{domain}/{selector}"
        return {"vault_mount": self.base["vault_mount"], "vault_path": path}

    def _wanted(self, message: Message) -> list[tuple[_Block, str]]:
        """The blocks to sign ``message`` with, each with its signing domain."""
        sender = message.from_header()
        domain = sender.domain if sender is not None and sender.list else None
        if not domain:
            raise Rejection(
                552,
                "5.6.0 DKIM signing requires a From header, but it is missing from this message",
            )
        wanted: list[tuple[_Block, str]] = []
        block = self.domains.get(domain)
        if block is not None:
            wanted.append((block, domain))
        for name in self.base.get("additional_signatures", []):
            sig = self._signatures[name]
            if sig.params.get("policy") == "OnlyIfMissingDomainBlock" and block is not None:
                continue
            wanted.append((sig, sig.params["domain"]))
        return wanted

    def _merge_file(self, file: str, data: dict[str, Any]) -> None:
        check_keys(HELPER, file, "", data, ("base", "domain", "signature"))
        base = table(HELPER, file, "base", data.get("base", {}))
        self._check_block(file, "base", base, _BASE)
        self.base.update(base)
        if base:
            self._base_where = (file, "base")
        for section, target, allowed in (
            ("domain", self._domains, _DOMAIN),
            ("signature", self._signatures, _SIGNATURE),
        ):
            for name, params in table(HELPER, file, section, data.get(section, {})).items():
                key = key_path(section, name)
                params = table(HELPER, file, key, params)
                self._check_block(file, key, params, allowed)
                merged = {**target[name].params, **params} if name in target else dict(params)
                target[name] = _Block(merged, file, key)

    def _check_block(
        self,
        file: str,
        key: str,
        params: Mapping[str, Any],
        allowed: Mapping[str, tuple[type, str]],
    ) -> None:
        check_keys(HELPER, file, key, params, allowed)
        for name, value in params.items():
            kind, what = allowed[name]
            expect(HELPER, file, key_path(key, name), value, kind, what)
            if kind is list:
                string_list(HELPER, file, key_path(key, name), value)
        policy = params.get("policy")
        choices = allowed["policy"][1]
        if policy is not None and f"'{policy}'" not in choices:
            raise DataFileError(
                HELPER, file, key_path(key, "policy"), f"expected {choices}, got {policy!r}"
            )
        algo = params.get("algo")
        if algo is not None and algo not in _ALGOS:
            raise DataFileError(
                HELPER, file, key_path(key, "algo"), f"expected 'sha256' or 'ed25519', got {algo!r}"
            )

    def _check(self) -> None:
        for name in self.base.get("additional_signatures", []):
            if name not in self._signatures:
                raise DataFileError(
                    HELPER,
                    self._base_where[0],
                    "base.additional_signatures",
                    f"names signature {name!r}, but no [signature.{name}] block defines it",
                )
        for block in self._domains.values():
            if "selector" not in block.params and "selector" not in self.base:
                raise DataFileError(
                    HELPER,
                    block.file,
                    key_path(block.key, "selector"),
                    "missing, and [base] defines no default selector",
                )
        for block in self._signatures.values():
            if "domain" not in block.params:
                raise DataFileError(
                    HELPER,
                    block.file,
                    key_path(block.key, "domain"),
                    "missing: a signature block names its signing domain",
                )
            if "selector" not in block.params and "selector" not in self.base:
                raise DataFileError(
                    HELPER,
                    block.file,
                    key_path(block.key, "selector"),
                    "missing, and [base] defines no default selector",
                )

    def _options(self, block: _Block, domain: str) -> tuple[Algorithm, dict[str, Any]]:
        """The signer algorithm and options of ``block`` signing for ``domain``, but the key."""
        params = {k: block.params.get(k, self.base.get(k)) for k in _SIGNER_KEYS}
        options = {k: v for k, v in params.items() if v is not None}
        options["selector"] = str(options["selector"])  # _check made sure there is one
        return _ALGOS[block.params.get("algo", "sha256")], {**options, "domain": domain}

    def _signer(self, block: _Block, domain: str) -> Signer:
        algorithm, options = self._options(block, domain)
        selector = options["selector"]
        template = block.params.get("filename") or self.base.get("filename") or DEFAULT_TEMPLATE
        key_file = template.replace("{domain}", domain).replace("{selector}", selector)
        cache_key = (algorithm, domain, key_file)
        # KumoMTA's helper asks kumo.dkim.*_signer for each message: count it the same way.
        STATS.cache_lookup_count += 1
        signer = self._signers.get(cache_key)
        if signer is not None:
            STATS.cache_hit += 1
            return signer
        try:
            with Timing(STATS.creation):
                signer = make_signer(algorithm, {**options, "key": key_file})
        except Exception as exc:
            raise DataFileError(
                HELPER, block.file, block.key, f"cannot make a signer for {domain!r}: {exc}"
            ) from exc
        STATS.cache_miss += 1
        self._signers[cache_key] = signer
        return signer
