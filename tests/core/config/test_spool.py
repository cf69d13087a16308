from __future__ import annotations

import pytest

from kumocore import ConfigError
from kumocore.config import MinFree, SpoolDefinition


def test_defaults_are_kumomtas() -> None:
    spool = SpoolDefinition.from_options({"name": "data", "path": "/var/spool/data"})
    assert spool.kind == "LocalDisk"
    assert spool.flush is False
    assert spool.rocks_params is None
    assert spool.min_free_space == MinFree(percent=10)
    assert spool.min_free_inodes == MinFree(percent=10)


def test_seed_policy_rocksdb_spools() -> None:
    for name in ("data", "meta"):
        options = {"name": name, "path": f"/var/tmp/kumo-spool/{name}", "kind": "RocksDB"}
        spool = SpoolDefinition.from_options(options)
        assert (spool.name, spool.kind) == (name, "RocksDB")
        assert spool.factory_kwargs() == {
            "name": name,
            "path": f"/var/tmp/kumo-spool/{name}",
            "flush": False,
            "rocks_params": {},
        }


def test_only_data_and_meta_spools_exist() -> None:
    with pytest.raises(ConfigError, match=r"'name'.*'data', 'meta'"):
        SpoolDefinition.from_options({"name": "bodies", "path": "/x"})


def test_path_is_required() -> None:
    with pytest.raises(ConfigError, match=r"missing required key 'path' for kumo\.define_spool"):
        SpoolDefinition.from_options({"name": "data"})


def test_min_free_takes_percentages_or_amounts() -> None:
    spool = SpoolDefinition.from_options(
        {"name": "meta", "path": "/x", "min_free_space": "5 GiB", "min_free_inodes": 10000}
    )
    assert spool.min_free_space.threshold(10**12) == 5 * 1024**3
    assert spool.min_free_inodes.threshold(10**9) == 10000
    assert MinFree.parse("10%").threshold(1000) == 100
    assert MinFree.parse("10%").is_satisfied(free=99, total=1000) is False
    assert SpoolDefinition.from_options(spool.to_dict()) == spool


@pytest.mark.parametrize("bad", ["110%", "-1%", "lots", "ten%"])
def test_bad_min_free_names_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match="'min_free_space'"):
        SpoolDefinition.from_options({"name": "data", "path": "/x", "min_free_space": bad})
