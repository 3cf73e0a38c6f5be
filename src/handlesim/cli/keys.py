"""`handlesim keygen`: a key pair for the `Authorization: Handle` challenge-response (HS_PUBKEY identities)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ..core import keys
from .app import fail, main


@main.command()
@click.argument("private_key_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--type", "key_type", type=click.Choice(["ed25519", "rsa"]), default="ed25519", show_default=True,
              help="Kind of key pair to generate.")
@click.option("--index", type=int, default=300, show_default=True, help="Index of the HS_PUBKEY value printed.")
def keygen(private_key_file: Path, key_type: str, index: int) -> None:
    """Write a new private key to PRIVATE_KEY_FILE (PEM, mode 0600) and print its HS_PUBKEY value as REST JSON.

    Add the printed value to the identity's handle (PUT /api/handles/HANDLE?index=300 with the value in the body);
    then `INDEX:HANDLE` can open sessions with POST /api/sessions and a signed PUT /api/sessions/this.
    """
    if private_key_file.exists():
        fail(f"{private_key_file} exists; refusing to overwrite a private key")
    folder = private_key_file.parent
    if not folder.is_dir():
        fail(f"cannot write {private_key_file}: the directory {folder} does not exist (create it first)")
    key: keys.PrivateKey = (ed25519.Ed25519PrivateKey.generate() if key_type == "ed25519"
                            else rsa.generate_private_key(public_exponent=65537, key_size=2048))
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    try:
        fd = os.open(private_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
    except OSError as exc:  # no permission, a full disk, a file that appeared meanwhile
        fail(f"cannot write {private_key_file}: {exc.strerror or exc}")
    value = {"index": index, "type": "HS_PUBKEY",
             "data": {"format": "key", "value": base64.b64encode(keys.encode_public_key(key)).decode("ascii")}}
    click.echo(json.dumps(value))
