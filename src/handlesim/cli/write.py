"""`handlesim register` and `delete`: authenticated writes at the node that homes the prefix."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..core.codes import OpCode
from ..core.errors import HandleError
from ..core.handle import Handle
from ..core.messages import Request, Response
from ..core.prefixes import owner_identity
from ..core.values import HandleValue, ValueReference
from ..net.client import locate, write_target
from ..topology.state import StateError
from .app import (
        answer_text,
    fail,
    finish,
    json_option,
    main,
    parse_handle,
    read_identity,
    run_async,
    running_state,
    state_dir_option,
    timeout_option,
    topology_client,
)


@main.command()
@click.argument("handle")
@click.option("--value", "values", multiple=True, required=True,
              help="TYPE=DATA or INDEX:TYPE=DATA (repeatable), e.g. URL=https://example.cn/x")
@click.option("--overwrite/--no-overwrite", default=False, show_default=True,
              help="Replace an existing handle (otherwise an existing handle is an error).")
@click.option("--as", "identity", callback=read_identity, default=None, metavar="INDEX:HANDLE",
              help="Identity INDEX:HANDLE (default: the prefix owner).")
@state_dir_option
@timeout_option
@json_option
def register(handle: str, values: tuple[str, ...], overwrite: bool, identity: ValueReference | None, state_dir: Path,
             timeout: float, as_json: bool) -> None:
    """Create HANDLE at the node responsible for its prefix, authenticated with the credentials `up` wrote."""
    target = parse_handle(handle)
    parsed = tuple(_parse_value(text, number) for number, text in enumerate(values, 1))
    request = Request(OpCode.CREATE_HANDLE, target, values=parsed, overwrite=overwrite)
    _write(state_dir, target, request, identity, as_json, timeout)


@main.command()
@click.argument("handle")
@click.option("--index", "indexes", multiple=True, type=int, help="Remove only these values (repeatable).")
@click.option("--as", "identity", callback=read_identity, default=None, metavar="INDEX:HANDLE",
              help="Identity INDEX:HANDLE (default: the prefix owner).")
@state_dir_option
@timeout_option
@json_option
def delete(handle: str, indexes: tuple[int, ...], identity: ValueReference | None, state_dir: Path, timeout: float,
           as_json: bool) -> None:
    """Delete HANDLE (or some of its values) at the node responsible for its prefix."""
    target = parse_handle(handle)
    op = OpCode.REMOVE_VALUE if indexes else OpCode.DELETE_HANDLE
    _write(state_dir, target, Request(op, target, indexes=indexes), identity, as_json, timeout)


def _write(state_dir: Path, target: Handle, request: Request, identity: ValueReference | None, as_json: bool,
           timeout: float) -> None:
    state = running_state(state_dir)
    identity = identity or owner_identity(target.prefix)
    try:
        credentials = state.credentials_for(identity)
    except StateError as exc:
        fail(str(exc))

    async def go() -> Response:
        async with topology_client(state, timeout) as client:
            sites = await locate(client, target.prefix_handle(), state.root_sites)
            return await client.send(write_target(sites, target), request, credentials=credentials)

    try:
        reply = run_async(go())
    except HandleError as exc:
        fail(exc.message)
    if as_json:
        click.echo(json.dumps({"handle": reply.handle, "responseCode": int(reply.code), "message": reply.message}))
    elif reply.ok:
        click.echo(f"{reply.handle}: ok")
    else:
        click.echo("Error: " + answer_text(reply, target.text), err=True)
    finish(reply.ok)


def _parse_value(text: str, default_index: int) -> HandleValue:
    head, eq, data = text.partition("=")
    if not eq or not head:
        fail(f"--value {text!r} must look like TYPE=DATA or INDEX:TYPE=DATA")
    index_text, colon, type_name = head.partition(":")
    if colon:
        if not index_text.isdigit():
            fail(f"--value {text!r}: the index before ':' must be a number")
        return HandleValue(int(index_text), type_name, data)
    return HandleValue(default_index, head, data)

