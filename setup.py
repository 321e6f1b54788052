"""``playbooks/`` and ``cloudinit/`` sit at the top of the repository, where an operator editing a checkout looks
for them; a wheel carries them inside the package as ``imagekit/data/playbooks`` and ``imagekit/data/cloudinit``
(``imagekit.data.path`` finds them in either place). Everything else is in pyproject.toml."""

from setuptools import find_namespace_packages, setup

TOP = {"imagekit.data.playbooks": "playbooks", "imagekit.data.cloudinit": "cloudinit"}

setup(packages=find_namespace_packages(include=["imagekit*", "localcloud*"]) + list(TOP), package_dir=TOP)
