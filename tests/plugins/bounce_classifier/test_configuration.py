"""``configure_bounce_classifier``: KumoMTA's options, and errors that name the file, the
line and the key."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import pytest
from kumocore_bounce_classifier import BounceClassifierPlugin, default_rules_path, load_rules

from kumocore import ConfigError, takes_table
from tests.plugins.bounce_classifier.conftest import Configure


def test_entry_point_is_discoverable_and_names_the_plugin_class() -> None:
    (entry,) = [ep for ep in entry_points(group="kumocore") if ep.name == "bounce_classifier"]
    assert entry.value == "kumocore_bounce_classifier:BounceClassifierPlugin"
    assert entry.load() is BounceClassifierPlugin


def test_configure_is_table_style_and_the_default_rules_path_is_a_plain_function() -> None:
    functions = BounceClassifierPlugin().kumo_register_policy_functions()
    assert takes_table(functions["configure_bounce_classifier"])
    assert functions["bounce_classifier_default_rules"]() == default_rules_path()


def test_every_kumomta_option_is_accepted(tmp_path: Path) -> None:
    plugin = BounceClassifierPlugin()
    plugin.configure(
        files=[default_rules_path()],
        back_pressure=1000,
        pool_size=2,
        cache_size=10,
        uncategorized_cache_size=5.0,
    )
    assert plugin.settings == {
        "back_pressure": 1000,
        "pool_size": 2,
        "cache_size": 10,
        "uncategorized_cache_size": 5,
    }
    assert plugin.classifier is not None and plugin.classifier._cache.capacity == 10


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"files": [], "cache": 5}, r"unknown key 'cache'.*allowed: back_pressure, cache_size"),
        ({}, "missing required key 'files'"),
        ({"files": {}}, "'files'.*list of file names"),
        ({"files": [42]}, "'files'.*42"),
        ({"files": ["x"], "cache_size": -1}, "'cache_size'.*at least 0"),
        ({"files": ["x"], "pool_size": True}, "'pool_size'"),
    ],
)
def test_bad_options_raise_config_error_naming_the_key(
    configure: Configure, options: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ConfigError, match=complaint):
        configure(**options)


def test_missing_rules_file_raises_config_error_naming_it(
    configure: Configure, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=f"{tmp_path / 'nope.toml'}.*cannot read"):
        configure(files=[str(tmp_path / "nope.toml")])


def test_malformed_toml_names_file_line_and_column(configure: Configure, tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[rules]\nInvalidRecipient = ['^550 ']\nSpamBlock = 'blocked']\nA = []\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3:22: invalid TOML: "):
        configure(files=[str(path)])


def test_toml_error_at_end_of_file_names_the_last_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[rules]\nInvalidRecipient = ['^550 ']\nSpamBlock = ['blocked'\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: invalid TOML: Unclosed array"):
        load_rules(path)


def test_malformed_json_names_file_line_and_column(configure: Configure, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "rules": {\n    "SpamBlock": ["x",]\n  }\n}\n')
    with pytest.raises(ConfigError, match=rf"^{path}:3:23: invalid JSON"):
        configure(files=[str(path)])


@pytest.mark.parametrize(
    ("content", "line"),
    [
        # TOML literal strings: the pattern appears in the file exactly as written.
        ("[rules]\nSpamBlock = [\n  'spamhaus',\n  'blocked (',\n]\n", 4),
        # TOML basic strings: backslashes are doubled in the file.
        (
            '[rules]\nInvalidRecipient = ["^550 5\\\\.1 "]\nQuotaIssues = ["full", "\\\\d+ ("]\n',
            3,
        ),
        # The search starts at the class's key: the same text in an earlier comment is skipped.
        ("[rules]\n# never write '(?<=a+)b'\nA = ['ok']\nB = [\n  'ok',\n  '(?<=a+)b',\n]\n", 6),
    ],
)
def test_invalid_regex_names_file_line_and_class(
    configure: Configure, tmp_path: Path, content: str, line: int
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=rf"^{path}:{line}: invalid regex in rules\.\w+\[\d\]"):
        configure(files=[str(path)])


def test_invalid_regex_in_json_names_file_and_line(configure: Configure, tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text('{"rules": {\n  "SpamBlock": [\n    "spam\\\\s+",\n    "(unclosed"\n  ]\n}}\n')
    with pytest.raises(ConfigError, match=rf"^{path}:4: invalid regex in rules\.SpamBlock\[2\]"):
        configure(files=[str(path)])


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ("[rule]\nA = ['x']\n", r"unknown top-level key\(s\) \['rule'\]"),
        ("title = 'x'\n", "unknown top-level"),
        ("", "missing the 'rules' table"),
        ("[rules]\nSpamBlock = 'blocked'\n", r":2: rules\.SpamBlock must be a list"),
        ("[rules]\nSpamBlock = [1, 2]\n", "must be a list of regex strings"),
    ],
)
def test_wrong_file_structure_raises_config_error(
    tmp_path: Path, content: str, complaint: str
) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=complaint):
        load_rules(path)


def test_a_failed_reconfiguration_keeps_the_previous_rules(
    configure: Configure, tmp_path: Path
) -> None:
    plugin = BounceClassifierPlugin()
    plugin.configure(files=[default_rules_path()])
    before = plugin.classifier
    bad = tmp_path / "bad.toml"
    bad.write_text("[rules]\nA = ['(']\n")
    with pytest.raises(ConfigError):
        plugin.configure(files=[str(bad)])
    assert plugin.classifier is before
