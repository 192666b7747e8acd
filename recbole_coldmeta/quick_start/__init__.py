from recbole_coldmeta.quick_start.quick_start import build_config, run_coldmeta, write_result

__all__ = ["build_config", "run_coldmeta", "write_result"]
