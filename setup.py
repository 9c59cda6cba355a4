"""Ships the top-level ``targets/`` profiles inside the wheel as ``edgekit/targets``.

Everything else is in pyproject.toml; setuptools' package-data cannot reach a
directory outside the package, so build_py copies the profiles in.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithTargets(build_py):
    def run(self) -> None:
        super().run()
        dst = Path(self.build_lib) / "edgekit" / "targets"
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted((Path(__file__).resolve().parent / "targets").glob("*.toml")):
            shutil.copy2(f, dst / f.name)


setup(cmdclass={"build_py": BuildPyWithTargets})
