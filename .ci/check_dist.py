"""Check the built distributions: the sdist holds every tracked file a user needs to run the tests, the
notebooks and the benchmark; the wheel holds the package with its bundled data and its licence files.

    python .ci/check_dist.py dist/
"""

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

NOT_IN_SDIST = (".ci/", ".gitignore")  # CI's own scripts and git's settings are not part of a release


def main(folder: Path) -> int:
    (sdist,) = folder.glob("*.tar.gz")
    (wheel,) = folder.glob("*.whl")
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    wanted = {path for path in tracked if not path.startswith(NOT_IN_SDIST)}
    with tarfile.open(sdist) as archive:
        root = archive.getnames()[0].split("/")[0]
        shipped = {name.removeprefix(root + "/") for name in archive.getnames()}
    missing_from_sdist = sorted(wanted - shipped)
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    package = {path.removeprefix("src/") for path in tracked if path.startswith("src/nablanet/")}
    missing_from_wheel = sorted(package - in_wheel)
    licences = [name for name in in_wheel if "/licenses/" in name]
    problems = []
    if missing_from_sdist:
        problems.append(f"the sdist lacks {missing_from_sdist}")
    if missing_from_wheel:
        problems.append(f"the wheel lacks {missing_from_wheel}")
    if not any(name.endswith("/LICENSE") for name in licences) or not any("mnist" in name for name in licences):
        problems.append(f"the wheel's licence files are {licences}, expected LICENSE and the MNIST notice")
    for problem in problems:
        print(f"check_dist: {problem}", file=sys.stderr)
    if not problems:
        print(
            f"check_dist: {sdist.name} holds all {len(wanted)} tracked files; {wheel.name} holds the "
            f"{len(package)} package files and the licences {sorted(Path(name).name for name in licences)}"
        )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
