"""Run configuration: typed dataclasses read from YAML, with dotted ``--set`` overrides.

- :mod:`kdgan.config.sections`: the sections (:class:`RunConfig`, :class:`DataConfig`, ...), each
  checking its values;
- :mod:`kdgan.config.parsing`: :func:`from_dict` (keys and types), strict YAML, ``--set``
  overrides (:func:`apply_overrides`);
- :mod:`kdgan.config.files`: :func:`load_config` (a YAML file and overrides) and
  :func:`saved_config` / :func:`load_saved_config` (what a run saved, read back typed).
"""

from kdgan.config.files import (
    RENAMED_KEYS,
    check_dataset_name,
    load_config,
    load_saved_config,
    read_config_file,
    saved_config,
)
from kdgan.config.parsing import (
    DATASET_KEYS,
    DuplicateKeyError,
    UniqueKeyLoader,
    apply_overrides,
    from_dict,
    parse_override,
    read_yaml,
)
from kdgan.config.sections import (
    SEED_MAX,
    SELECT_METRICS,
    DataConfig,
    OptimizerConfig,
    PlayerConfig,
    RunConfig,
    TrainConfig,
    check_finite,
)

__all__ = [
    "DATASET_KEYS", "RENAMED_KEYS", "SEED_MAX", "SELECT_METRICS", "DataConfig", "DuplicateKeyError",
    "OptimizerConfig", "PlayerConfig", "RunConfig", "TrainConfig", "UniqueKeyLoader", "apply_overrides",
    "check_dataset_name", "check_finite", "from_dict", "load_config", "load_saved_config", "parse_override",
    "read_config_file", "read_yaml", "saved_config",
]
