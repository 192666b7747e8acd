"""Dataset classes of recbole_coldmeta, found by name (``<Model>Dataset``) or by configuration."""
