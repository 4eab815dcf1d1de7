"""The shipped catalogue of source adapters: one TOML file each (schemas/sources.py reads them)."""
