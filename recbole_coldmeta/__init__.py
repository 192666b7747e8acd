"""recbole_coldmeta: meta-learning cold-start recommenders as RecBole models.

The package extends RecBole 1.2 the way RecBole-GNN does: a Config subclass that layers our
``properties/`` on top of RecBole's, and model / trainer / dataset lookups that try this package
first and fall back to RecBole, so one entry point runs plugin models and RecBole baselines alike.
"""

__version__ = "0.1.0"
