"""The tooling: ``make execute``, ``make portability`` and ``make bench``.

A package so that ``python -m scripts.bench`` and the tests import its modules by
name; ``execute_notebooks.py`` and ``portability.py`` also run as scripts.
"""
