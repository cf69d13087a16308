"""The reference policy (KumoMTA's example server policy), made runnable on loopback.

:func:`prepare_reference_policy` copies ``shared/seed/example-policy.lua`` into a directory,
changes only its literals (listen addresses, source addresses, paths) and writes a wrapper
that points DNS at a test server and deliveries at a local sink before ``dofile``-ing it.
It returns everything a test needs (paths, ports, the DKIM key), so the end-to-end test
(SMTP in → sink out) can reuse it unchanged.

The seed lives outside the repository (``../shared`` beside the checkout); callers skip
when :func:`seed_path` is None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.common.ports import free_port as free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SEED = REPO_ROOT.parent / "shared" / "seed" / "example-policy.lua"

DKIM_DOMAIN = "examplecorp.com"
DKIM_SELECTOR = "dkim1024"
#: The egress sources' addresses: ``10.0.0.N`` in the seed, ``127.0.10.N`` here.
SOURCE_ADDRESSES = {f"ip-{n}": f"127.0.10.{n}" for n in range(1, 6)}


def seed_path() -> Path | None:
    """The reference policy, or None when ``../shared`` is not beside the checkout."""
    return SEED if SEED.is_file() else None


@dataclass
class ReferencePolicy:
    """A patched copy of the reference policy and everything it points at."""

    directory: Path
    wrapper: Path
    policy: Path
    dns_address: str
    sink_port: int
    smtp_port: int
    http_port: int
    https_port: int
    spool_dir: Path
    log_dir: Path
    dkim_key: rsa.RSAPrivateKey
    replacements: dict[str, str] = field(default_factory=dict)


def _replacements(ref: ReferencePolicy, bounce_rules: Path) -> dict[str, str]:
    """Old literal → new literal; each old literal must occur in the seed."""
    quoted = {
        "0.0.0.0:8000": f"127.0.0.1:{ref.http_port}",
        "0.0.0.0:8001": f"127.0.0.1:{ref.https_port}",
        "0.0.0.0:25": f"127.0.0.1:{ref.smtp_port}",
        "10.0.0.0/24": "127.0.10.0/24",
        "/var/tmp/kumo-spool/data": str(ref.spool_dir / "data"),
        "/var/tmp/kumo-spool/meta": str(ref.spool_dir / "meta"),
        "/var/tmp/kumo-logs": str(ref.log_dir),
        "/opt/kumomta/etc/bounce_rules.toml": str(bounce_rules),
        "/opt/kumomta/etc/dkim/%s/%s.key": str(ref.directory / "dkim" / "%s" / "%s.key"),
    }
    quoted.update({f"10.0.0.{n}": f"127.0.10.{n}" for n in range(1, 6)})
    return {f"'{old}'": f"'{new}'" for old, new in quoted.items()}


def patch_literals(source: str, replacements: dict[str, str]) -> str:
    """Replace whole quoted literals; every one must be found (the seed may not drift)."""
    for old, new in replacements.items():
        if old not in source:
            raise AssertionError(f"literal {old} not found in the reference policy")
        source = source.replace(old, new)
    return source


def code_skeleton(source: str) -> str:
    """The Lua source with comments removed and every string literal blanked: two files
    with the same skeleton differ only in their literals."""
    out: list[str] = []
    pattern = re.compile(r"--[^\n]*|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"")
    pos = 0
    for match in pattern.finditer(source):
        out.append(source[pos : match.start()])
        out.append("" if match.group().startswith("--") else "''")
        pos = match.end()
    out.append(source[pos:])
    return "".join(out)


def bounce_rules_path(directory: Path) -> Path:
    """The bounce classifier's bundled rules, or a minimal rules file of our own."""
    try:
        from kumocore_bounce_classifier import default_rules_path
    except ImportError:
        path = directory / "bounce_rules.toml"
        path.write_text('[rules]\nInvalidRecipient = ["^(550|551|553) "]\n')
        return path
    return Path(default_rules_path())


def missing_requirements() -> list[str]:
    """What the reference policy needs that no installed plugin provides."""
    from kumocore.node.runtime import Runtime

    runtime = Runtime()
    names = set(runtime.kumo.names())
    needed = ("configure_local_logs", "configure_bounce_classifier", "dkim.rsa_sha256_signer")
    missing = [f"kumo.{name}" for name in needed if name not in names]
    if "RocksDB" not in runtime.hooks.spool_kinds():
        missing.append("spool kind 'RocksDB'")
    if ".lua" not in runtime.hooks.policy_loaders():
        missing.append("the .lua policy loader")
    return missing


def dkim_record(ref: ReferencePolicy) -> tuple[str, str]:
    """The TXT record (name, value) publishing the reference policy's DKIM key."""
    from kumocore.dkim import public_key_record

    return f"{DKIM_SELECTOR}._domainkey.{DKIM_DOMAIN}", public_key_record(ref.dkim_key)


def write_dkim_key(directory: Path) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = directory / "dkim" / DKIM_DOMAIN / f"{DKIM_SELECTOR}.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    return key


WRAPPER = """\
-- Conformance wrapper: run the reference policy against loopback services.
local kumo = require 'kumo'

-- The seed looks up MX records at load time: resolve through the test DNS server.
kumo.dns.configure_resolver {{ name_servers = {{ '{dns}' }} }}

-- Deliver to the local sink: its port, and allow loopback MX hosts.
local make_egress_path = kumo.make_egress_path
kumo.make_egress_path = function(params)
  params.smtp_port = {sink_port}
  params.prohibited_hosts = {{}}
  return make_egress_path(params)
end

dofile '{policy}'
"""


def prepare_reference_policy(
    directory: Path, *, dns_address: str, bounce_rules: Path, sink_port: int | None = None
) -> ReferencePolicy:
    """Write ``example-policy.lua`` (literals patched) and ``wrapper.lua`` into ``directory``."""
    seed = seed_path()
    if seed is None:
        raise FileNotFoundError(f"reference policy not found at {SEED}")
    ref = ReferencePolicy(
        directory=directory,
        wrapper=directory / "wrapper.lua",
        policy=directory / "example-policy.lua",
        dns_address=dns_address,
        sink_port=sink_port or free_port(),
        smtp_port=free_port(),
        http_port=free_port(),
        https_port=free_port(),
        spool_dir=directory / "spool",
        log_dir=directory / "logs",
        dkim_key=write_dkim_key(directory),
    )
    ref.replacements = _replacements(ref, bounce_rules)
    original = seed.read_text()
    patched = patch_literals(original, ref.replacements)
    assert code_skeleton(patched) == code_skeleton(original), "only literals may change"
    ref.policy.write_text(patched)
    ref.wrapper.write_text(WRAPPER.format(
        dns=dns_address, sink_port=ref.sink_port, policy=ref.policy.as_posix()))
    return ref
