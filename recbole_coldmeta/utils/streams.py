"""Named random streams: every seeded draw of the package takes its generator from here.

A stream is a name; its generator is a ``torch.Generator`` seeded with ``seed + offset``, so
draws of different streams never depend on one another's order, and the same seed gives the same
split, the same tasks and the same metrics. Ground floor: imports nothing of ours.
"""

import torch

#: Stream name -> offset added to the run's ``seed``. The offsets are the ones every published
#: number was made with (keep them); a new stream takes a new name (and offset).
STREAMS = {
    # which users are meta-train / valid / test (cold-start and cross-domain splits)
    "user_split": 0,
    # which rows of a valid/test user are support or query (support_mode random, or no time field)
    "support_query": 1,
    # cross-domain: the pre-training hold-outs of the source and of the target domain
    "source_holdout": 1,
    "target_holdout": 2,
    # meta-training tasks: each epoch's support/query cut and sampled negatives
    "tasks": 2,
    # CCML: the fixed random projection of support-loss gradients
    "grad_projection": 0,
    # CCML, training: candidate tie-breaks, random task sampling, beneficial tasks' rows
    "collaborators": 3,
    # CCML, evaluation: the same draws, re-seeded for every call so evaluation repeats
    "collaborators_eval": 4,
    # CCML: the fixed row subset of each meta-train task (evaluation, cached representations)
    "aux_order": 5,
    # implicit feedback: the fixed negatives each cold user adapts on
    "support_negatives": 6,
    # benchmark tables: the users each bootstrap resample of a seed's paired differences draws
    "bootstrap": 7,
    # TaNP, training: the draws of the latent variable z
    "tanp_latent": 8,
    # id dropout that trains the shared "unseen" vector of id tables (unseen_ids: learned)
    "unseen_ids": 9,
    # MAMO: the initial values of its memories
    "mamo_memory": 10,
}


def seeded_generator(seed, stream):
    """A fresh ``torch.Generator`` of ``stream`` (a key of :data:`STREAMS`) for run seed ``seed``.

    Raises:
        KeyError: ``stream`` is not a known stream name.
    """
    if stream not in STREAMS:
        raise KeyError(f"unknown random stream {stream!r}; known: {', '.join(STREAMS)}")
    return torch.Generator().manual_seed(int(seed) + STREAMS[stream])
