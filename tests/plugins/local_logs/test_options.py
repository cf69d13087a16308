from __future__ import annotations

from pathlib import Path

import pytest
from kumocore_local_logs.options import parse_options

from kumocore import ConfigError


def test_defaults_follow_kumomta(tmp_path: Path) -> None:
    config = parse_options({"log_dir": str(tmp_path)})
    assert config.log_dir == tmp_path
    assert config.max_file_size == 1_000_000_000
    assert config.max_segment_duration is None
    assert config.compression_level == 0
    assert config.back_pressure == 128_000
    assert config.headers == () and config.meta == () and config.per_record == {}
    assert config.min_free_space.percent == 10 and config.min_free_inodes.percent == 10


def test_filter_event_is_accepted_without_allow_unsupported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUMOCORE_ALLOW_UNSUPPORTED", raising=False)
    config = parse_options({"log_dir": str(tmp_path), "filter_event": "should_log"})
    assert config.filter_event == "should_log"


@pytest.mark.parametrize("value", [True, 3, ""])
def test_filter_event_that_is_not_an_event_name_is_a_config_error(
    tmp_path: Path, value: object
) -> None:
    with pytest.raises(ConfigError, match="filter_event: expected an event name"):
        parse_options({"log_dir": str(tmp_path), "filter_event": value})


def test_every_other_kumomta_option_is_accepted(tmp_path: Path) -> None:
    config = parse_options({
        "log_dir": str(tmp_path), "max_file_size": 1000, "max_segment_duration": "5 minutes",
        "compression_level": 9, "back_pressure": 10, "headers": ["Subject", "X-*"],
        "meta": {1: "tenant", 2: "x_*"}, "filter_event": "should_log",
        "min_free_space": "5%", "min_free_inodes": 1000,
        "per_record": {"Reception": {"suffix": "_recv", "log_dir": str(tmp_path / "r")},
                       "Any": {"enable": False}},
    })
    assert config.max_segment_duration == 300
    assert config.meta == ("tenant", "x_*")
    assert config.min_free_space.percent == 5 and config.min_free_inodes.amount == 1000
    reception, delivery = config.route("Reception"), config.route("Delivery")
    assert reception is not None and reception.suffix == "_recv"
    assert delivery is not None and delivery.enable is False  # via "Any"


@pytest.mark.parametrize("value,seconds", [("30s", 30), ("1h", 3600), (90, 90)])
def test_segment_duration_accepts_strings_and_seconds(
    tmp_path: Path, value: object, seconds: float
) -> None:
    config = parse_options({"log_dir": str(tmp_path), "max_segment_duration": value})
    assert config.max_segment_duration == seconds


@pytest.mark.parametrize("options,key", [
    ({"log_dri": "/x"}, "log_dri"),
    ({}, "log_dir"),
    ({"max_file_size": "big"}, "max_file_size"),
    ({"max_segment_duration": "soon"}, "max_segment_duration"),
    ({"compression_level": 22}, "compression_level"),
    ({"headers": "Subject"}, "headers"),
    ({"per_record": {"Deliveries": {}}}, "per_record.Deliveries"),
    ({"per_record": {"Delivery": {"template": "x"}}}, "per_record.Delivery.template"),
    ({"per_record": {"Delivery": {"enable": "no"}}}, "per_record.Delivery.enable"),
    ({"min_free_space": "lots"}, "min_free_space"),
])
def test_bad_options_raise_config_error_naming_the_key(
    tmp_path: Path, options: dict[str, object], key: str
) -> None:
    options = {} if key == "log_dir" else {"log_dir": str(tmp_path), **options}
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_options(options)
