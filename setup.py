"""Package discovery for the fixed layout: fastem/ -> fastem, kernels/ -> fastem.kernels,
cli/ -> fastem.cli, bench/ -> fastem.bench (no other top-level import names)."""

from setuptools import find_packages, setup

ROOTS = {"fastem": "fastem", "fastem.kernels": "kernels", "fastem.cli": "cli", "fastem.bench": "bench"}

packages, package_dir = [], {}
for name, folder in ROOTS.items():
    package_dir[name] = folder
    packages.append(name)
    for sub in find_packages(where=folder):
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
