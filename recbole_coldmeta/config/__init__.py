from recbole_coldmeta.config.configurator import Config, parse_cmd_overrides

__all__ = ["Config", "parse_cmd_overrides"]
