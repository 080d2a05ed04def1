r"""``make bench``: what learners and maintainers wait for, and four LayerNorms.

    make bench  # every section, as docs/DEVELOPMENT.md says
    .venv/bin/python -m scripts.bench --repeat 1 --only chapters

Prints one table to stdout; every figure is the median of several runs (the ``runs``
column says how many). It is a command, not a test: it exits 0 whatever the timings,
and the ``budget`` column only reports whether each budget of docs/DEVELOPMENT.md's
"Speed budgets" section is held. Nothing in the repository is modified: notebooks
are executed from an in-memory copy, and the book is built into a temporary folder.
Every process it starts gets the pinned environment of ``scripts/kernel.env``.

One module per job:

* ``__main__``: the command line, the order of the sections, the table's header
  lines.
* ``table``: the table's rows and how they are printed.
* ``processes``: where the bench's processes run, their environment, a timed
  command.
* ``notebooks``: the kernel start, the floor and each chapter in a fresh kernel.
* ``build``: ``make test``'s strict nbval run and ``make book``'s build, as
  commands.
* ``layernorm``: four LayerNorms, each in fresh processes, under two malloc
  settings.
* ``passes``: passes over memory, counted from a ``torch.profiler`` trace.
"""
