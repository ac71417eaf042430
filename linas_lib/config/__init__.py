"""The one configuration model: a pure schema (`schema`), made concrete once where it
enters by the resolver (`resolve`: plugin files, registry names, objectives).
Kubernetes placement is the deployment layer's (`pipelines.placement`)."""
from linas_lib.config.resolve import (_UniqueKeyLoader, config_from_dict, config_from_json, expand_objectives,  # noqa: F401
                                      load_config, resolve)
from linas_lib.config.schema import *  # noqa: F401,F403
from linas_lib.config.schema import (ConfigError, LinasConfig, LocationField, TargetConfig,  # noqa: F401
                                     _check_params_locations, auto_plan, check_location)
