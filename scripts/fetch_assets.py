"""Put the project's assets in place: copied from a local data folder when it has them (offline
machines), otherwise downloaded from the URLs in project.yml (with its vars, and --vars.NAME overrides as
`spacy project` takes them); every file with a checksum is md5-checked.

Without --extra: the assets not marked `extra`. With --extra PREFIX: only the extra assets under PREFIX
(e.g. one published ELMo model, assets/elmo/small). Downloads go to a temporary name first, so an
interrupted one never leaves a partial file in place.
"""
import hashlib
import os
import shutil
import urllib.request
from pathlib import Path
from typing import List

import typer
from weasel.util import load_project_config, parse_config_overrides

app = typer.Typer(add_completion=False)


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path) -> None:
    partial = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        os.replace(partial, dest)
    except OSError as err:  # urllib's errors are OSErrors
        partial.unlink(missing_ok=True)
        raise SystemExit(f"{dest}: download from {url} failed: {err}") from err


def selected(asset: dict, extra: List[str]) -> bool:
    if not extra:
        return not asset.get("extra", False)
    return bool(asset.get("extra")) and any(asset["dest"].startswith(p.rstrip("/") + "/") for p in extra)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def main(
    ctx: typer.Context,
    shared: Path = typer.Option(Path("../shared/data"), help="local copy of the data; assets/X is read from SHARED/X"),
    project: Path = typer.Option(Path("."), help="the project directory (with project.yml)"),
    extra: List[str] = typer.Option([], help="fetch only the extra assets under this folder (repeatable)"),
) -> None:
    assets = [a for a in load_project_config(project, overrides=parse_config_overrides(ctx.args))["assets"]
              if selected(a, extra)]
    if extra and not assets:
        raise SystemExit(f"No extra assets under {', '.join(extra)} in {project / 'project.yml'}")
    for asset in assets:
        dest = project / asset["dest"]
        checksum = asset.get("checksum")
        if dest.exists() and (checksum is None or md5(dest) == checksum):
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        local = shared / Path(asset["dest"]).relative_to("assets")
        if local.exists():
            shutil.copyfile(local, dest)
            source = str(local)
        elif asset.get("url"):
            print(f"{dest} <- {asset['url']} ...", flush=True)
            download(asset["url"], dest)
            source = asset["url"]
        else:
            raise SystemExit(f"{dest}: not in {shared} and it has no upstream URL ({asset.get('description', '')})")
        if checksum is not None and md5(dest) != checksum:
            dest.unlink()
            raise SystemExit(f"{dest}: md5 of the copy from {source} is not {checksum}")
        print(f"{dest} <- {source} ({dest.stat().st_size:,} bytes)")


if __name__ == "__main__":
    app()
