"""The facts machine-info reads from /proc, /etc and /sys, parsed from sample texts."""

from __future__ import annotations

from pathlib import Path

from kumocore.admin.machine_info import cpu_brands, os_release, primary_mac, total_memory


def test_os_release_fields_lose_their_quotes_and_comments_are_skipped() -> None:
    text = '# comment\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n\nbroken line\n'
    assert os_release(text) == {"NAME": "Debian GNU/Linux", "VERSION_ID": "12", "ID": "debian"}


def test_cpu_brand_lists_each_distinct_model_once_in_order() -> None:
    text = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\n\n"
            "processor\t: 1\nmodel name\t: Intel(R) Xeon(R)\n\n"
            "processor\t: 2\nmodel name\t: AMD EPYC\n")  # fmt: skip
    assert cpu_brands(text) == "Intel(R) Xeon(R), AMD EPYC"
    assert cpu_brands("processor\t: 0\n") is None  # e.g. some ARM kernels: left out


def test_total_memory_is_memtotal_in_bytes() -> None:
    assert total_memory("MemTotal:       16384 kB\nMemFree: 1 kB\n") == 16384 * 1024
    assert total_memory("MemFree: 1 kB\n") is None


def test_the_primary_mac_skips_loopback_and_empty_addresses(tmp_path: Path) -> None:
    for name, address in (("lo", "00:00:00:00:00:00"), ("dummy0", "00:00:00:00:00:00"),
                          ("eth1", "02:42:AC:11:00:03"), ("eth0", "02:42:ac:11:00:02")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "address").write_text(address + "\n")
    assert primary_mac(tmp_path) == "02:42:ac:11:00:02"
    assert primary_mac(tmp_path / "missing") is None
