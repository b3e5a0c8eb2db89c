"""Put the project's assets in place: copied from a local data folder when it has them (offline
machines), otherwise downloaded from the upstream URLs in project.yml; every file is md5-checked."""
import hashlib
import shutil
import urllib.request
from pathlib import Path

import srsly
import typer


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(
    shared: Path = typer.Option(Path("../shared/data"), help="local copy of the data; assets/X is read from SHARED/X"),
    project: Path = typer.Option(Path("project.yml"), help="the project file listing the assets"),
) -> None:
    for asset in srsly.read_yaml(project)["assets"]:
        dest = Path(asset["dest"])
        checksum = asset.get("checksum")
        if dest.exists() and (checksum is None or md5(dest) == checksum):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        local = shared / dest.relative_to("assets")
        if local.exists():
            shutil.copyfile(local, dest)
            source = str(local)
        elif asset.get("url"):
            urllib.request.urlretrieve(asset["url"], dest)
            source = asset["url"]
        else:
            raise SystemExit(f"{dest}: not in {shared} and it has no upstream URL ({asset.get('description', '')})")
        if checksum is not None and md5(dest) != checksum:
            dest.unlink()
            raise SystemExit(f"{dest}: md5 of the copy from {source} is not {checksum}")
        print(f"{dest} <- {source}")


if __name__ == "__main__":
    typer.run(main)
