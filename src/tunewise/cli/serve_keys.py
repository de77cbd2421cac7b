"""``tunewise serve keys``: create, list and revoke the API keys the server accepts (thin over serve.keys)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.table import Table

from tunewise.cli.common import console, err_console, handle_errors
from tunewise.config import load_project
from tunewise.serve.keys import ApiKeys, default_keys_path

keys_app = typer.Typer(help="API keys for `tunewise serve`, stored hashed.", no_args_is_help=True)

CONFIG = typer.Option(Path("tunewise.yaml"), "--config", "-c", help="The project spec (or its directory).")
KEYS_FILE = typer.Option(None, "--keys-file", help="The keys file (default .tunewise/serve/keys.json).")


def _keys(config: Path, keys_file: Path | None) -> ApiKeys:
    return ApiKeys(keys_file or default_keys_path(load_project(config).state_dir))


@keys_app.command("create")
def create_command(
    name: str = typer.Argument(..., help="Who or what the key is for."),
    rate_limit: int | None = typer.Option(None, "--rate-limit", min=1, help="Requests per minute for this key."),
    config: Path = CONFIG,
    keys_file: Path | None = KEYS_FILE,
) -> None:
    """Make a key and print its secret, once."""

    with handle_errors():
        key, secret = _keys(config, keys_file).create(name, rate_limit_per_min=rate_limit)
    console.print(f"created key {key.key_id} ({key.name})", highlight=False)
    print(secret)  # plain, unwrapped, on its own line: easy to copy or capture
    err_console.print("store this secret now: it is not kept and cannot be shown again", highlight=False)


@keys_app.command("list")
def list_command(
    config: Path = CONFIG,
    keys_file: Path | None = KEYS_FILE,
    as_json: bool = typer.Option(False, "--json", help="Print the key records as JSON."),
) -> None:
    """The keys (ids, names, limits; never secrets)."""

    with handle_errors():
        keys = _keys(config, keys_file).list()
    if as_json:
        console.print_json(json.dumps([{k: v for k, v in key.to_dict().items() if k != "sha256"} for key in keys]))
        return
    if not keys:
        console.print("no API keys (create one: tunewise serve keys create NAME)")
        return
    table = Table(title="API keys")
    for column in ("key id", "name", "created (UTC)", "requests/min"):
        table.add_column(column)
    for key in keys:
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(key.created))
        table.add_row(key.key_id, key.name, created, str(key.rate_limit_per_min or "default"))
    console.print(table)


@keys_app.command("revoke")
def revoke_command(
    key_id: str = typer.Argument(..., help="The key's id (from `list`)."),
    config: Path = CONFIG,
    keys_file: Path | None = KEYS_FILE,
) -> None:
    """Delete a key; a running server refuses it from its next request."""

    with handle_errors():
        key = _keys(config, keys_file).revoke(key_id)
    console.print(f"revoked key {key.key_id} ({key.name})", highlight=False)
