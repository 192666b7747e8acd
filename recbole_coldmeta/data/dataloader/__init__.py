"""Dataloaders of recbole_coldmeta."""
