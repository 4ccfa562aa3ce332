"""Only the package list lives here: pyproject.toml cannot combine automatic discovery with the
configs/ folder installed as segkit.configs (its package-dir mapping); everything else is in pyproject.toml."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["segkit*"]) + ["segkit.configs"])
