"""Speed of MeLU meta-training: our batched inner loop against the patterns it replaces.

Usage::

    python -m recbole_coldmeta.benchmarks.speed [--dataset=ml-1m] [--epochs=1]
        [--task_batch_size=32] [--local_steps=1] [--first_order=False]
        [--output=results/speed.json]

Four variants train the same MeLU network, from the same initial weights, on the same task
batches of :class:`~recbole_coldmeta.data.dataloader.MetaTaskDataLoader` (data loading is inside
the timed loop), one Adam step per batch:

- ``ours``: ``model.calculate_loss(batch)``, the package's path (all ``T`` tasks adapt at once
  through :mod:`recbole_coldmeta.meta.inner_loop`, ``vmap`` over ``functional_call``).
- ``per_task``: the same math with a Python loop over tasks, each with its own parameter dict,
  ``functional_call`` and ``torch.autograd.grad`` (``create_graph`` for second order).
- ``deep_copy``: the pattern of MeLU's and MML's original code: per task, ``copy.deepcopy`` of
  the model, a local ``torch.optim.SGD`` on the adapted layers for ``local_steps`` steps, then the
  adapted copy's query loss. First-order by construction (FOMAML): the copy's gradients are added
  into the meta-model's ``.grad``.
- ``plain``: ordinary supervised MSE training of the same network, no adaptation, over the same
  rows (every support and query row of the same tasks), in mini-batches as large as the average
  task batch.

Each variant runs in its own subprocess (re-invoking this package with ``--variant``) so that its
peak resident memory (``ru_maxrss``) is its own, with ``torch.set_num_threads(2)`` by default
(``--threads``; the CI machine has 2 cores), and takes one untimed warm-up step first. Before
timing, one more subprocess checks that the three meta variants compute the same query loss and
meta-gradient on the first batch. Results: a markdown table on stdout and a JSON file with every
number and the environment.

Modules: :mod:`.data` (the dataset and the seeded MeLU), :mod:`.harness` (variants, timed
epochs, the equal-loss check, subprocesses), :mod:`.reference_loops` (the naive loops, also the
test oracles of :func:`recbole_coldmeta.meta.adapt`; no model uses them), :mod:`.report` (ratios
and the markdown table) and :mod:`.cli` (the command line, run by ``__main__``).
"""
