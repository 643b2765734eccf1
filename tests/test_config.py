"""Config validation: unknown keys, types, ranges and overrides give errors that name the fix."""

import pytest

from kdgan.config import RunConfig, from_dict, load_config, parse_overrides
from kdgan.errors import ConfigError
from kdgan.methods.kdgan import KDGANOptions
from kdgan.training.runs import find_config


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown config key 'data\.nn'.*valid keys here: name, dir, n"):
        from_dict(RunConfig, {"data": {"nn": 5}})
    with pytest.raises(ConfigError, match="unknown config key 'epochz'"):
        from_dict(RunConfig, {"epochz": 5})


def test_unknown_method_option_is_refused():
    with pytest.raises(ConfigError, match=r"unknown config key 'options\.alpah'.*alpha"):
        from_dict(KDGANOptions, {"alpah": 0.5}, "options")


def test_types_and_ranges():
    with pytest.raises(ConfigError, match="seed must be an integer"):
        from_dict(RunConfig, {"seed": "zero"})
    with pytest.raises(ConfigError, match=r"alpha must be in \[0, 1\]"):
        from_dict(KDGANOptions, {"alpha": 1.5})
    with pytest.raises(ConfigError, match="tau_start and tau_end must be > 0"):
        from_dict(KDGANOptions, {"tau_end": 0})
    with pytest.raises(ConfigError, match="lr must be > 0"):
        from_dict(RunConfig, {"student": {"optimizer": {"lr": -1}}})
    assert from_dict(KDGANOptions, {"alpha": 1}).alpha == 1.0  # ints are accepted as floats


def test_overrides_are_parsed_as_yaml_and_nested():
    assert parse_overrides(["options.alpha=0.3", "student.model.hidden=[64, 64]", "x=true"]) == {
        "options": {"alpha": 0.3}, "student": {"model": {"hidden": [64, 64]}}, "x": True,
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["alpha"])


def test_builtin_config_loads_and_overrides_apply():
    config = load_config(find_config("digits_kdgan"), ["options.alpha=0.25", "train.epochs=7"])
    assert config.method == "kdgan" and config.options["alpha"] == 0.25 and config.train.epochs == 7
    assert config.teacher is not None and config.discriminator is not None


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(ConfigError, match="neither a file nor a built-in config"):
        find_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
