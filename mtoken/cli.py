"""The ``mtoken`` command: a mobile token for the terminal.

Each failure prints one line to standard error and exits with the status of
its error class (table in ``mtoken/README.md``); with ``--json`` the error is
also printed to standard output as ``{"error": {...}}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mtoken.device import Device, OfflineCode, VerifiedPayload
from mtoken.display import describe_operation, render_operation
from mtoken.errors import (
    ActivationCodeError,
    ImageUnreadableError,
    MTokenError,
    NoTerminalError,
)
from mtoken.qr import decode_qr_image, read_payload_source
from mtoken.state import STATE_ENV, DeviceState, StateStore
from mtoken.transport import HttpTransport
from powerauth.signature import DEFAULT_COMPONENT_LENGTH

F = TypeVar("F", bound=Callable[..., Any])


class Context:
    """Options shared by every subcommand."""

    def __init__(self) -> None:
        self.state_dir: Path | None = None
        self.json = False

    @property
    def device(self) -> Device:
        return Device(StateStore(self.state_dir))


pass_context = click.make_pass_decorator(Context, ensure=True)


def _set_state(ctx: click.Context, _: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.ensure_object(Context).state_dir = value


def _set_json(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value:
        ctx.ensure_object(Context).json = True


def common_options(func: F) -> F:
    """``--state`` and ``--json``, accepted before or after the subcommand."""
    func = click.option(
        "--json",
        "json_output",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print machine-readable JSON.",
    )(func)
    func = click.option(
        "--state",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=STATE_ENV,
        expose_value=False,
        callback=_set_state,
        help=f"Folder of the device state files (env {STATE_ENV}).",
    )(func)
    return func


activation_option = click.option(
    "--activation",
    "activation_id",
    metavar="ID",
    help="The activation to use when several are stored.",
)


def _emit(ctx: Context, data: Any, text: str) -> None:
    if ctx.json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        click.echo(text)


def _read_source(source: str) -> str:
    """Payload text from an image path, or from standard input with ``-``."""
    if source == "-":
        return read_payload_source(sys.stdin.buffer.read())
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise ImageUnreadableError(
            f"cannot read {source}: {exc.strerror or exc}"
        ) from exc
    return decode_qr_image(data)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.version_option(package_name="powerauth-offline-hsm")
def cli() -> None:
    """A PowerAuth mobile token simulator: activate, scan QR codes, sign."""


@cli.command()
@common_options
@click.option(
    "--server",
    required=True,
    metavar="URL",
    envvar="MTOKEN_SERVER",
    help="Server base URL (env MTOKEN_SERVER).",
)
@click.option(
    "--code",
    "activation_code",
    required=True,
    metavar="CODE",
    help="XXXXX-XXXXX-XXXXX-XXXXX, or CODE#SIGNATURE as in the activation QR.",
)
@click.option("--signature", metavar="B64", help="The code's signature (Base64).")
@click.option(
    "--pin",
    help="The new PIN (asked for, twice, on the terminal when absent).",
)
@click.option("--name", metavar="NAME", help="A name for the activation.")
@click.option(
    "--commit", is_flag=True, help="Also commit the activation (demo shortcut)."
)
@click.option(
    "--application-id",
    metavar="ID",
    help="Fetch the master public key from this application's detail.",
)
@click.option(
    "--master-public-key",
    metavar="B64",
    help="The application's master public key, as an app would bundle it.",
)
@pass_context
def activate(
    ctx: Context,
    server: str,
    activation_code: str,
    signature: str | None,
    pin: str | None,
    name: str | None,
    commit: bool,
    application_id: str | None,
    master_public_key: str | None,
) -> None:
    """Activate this device with an activation code from the server."""
    if pin is None:
        pin = _ask_pin("New PIN", confirm=True)
    master = None
    if master_public_key is not None:
        try:
            master = base64.b64decode(master_public_key, validate=True)
        except binascii.Error as exc:
            raise ActivationCodeError("--master-public-key is not Base64") from exc
    transport = HttpTransport(server)
    try:
        result = ctx.device.activate(
            transport,
            activation_code,
            pin,
            signature_b64=signature,
            name=name,
            commit=commit,
            application_id=application_id,
            master_public_key=master,
        )
    finally:
        transport.close()
    state = result.state
    lines = [
        f"Activation {state.activation_id} stored ({state.status}).",
        f"Fingerprint: {state.fingerprint}",
        (
            "It must equal the fingerprint the server shows for this activation."
            if result.committed
            else "Compare it with the fingerprint the server shows, then have "
            "the activation committed there."
        ),
    ]
    if state.master_public_key is None:
        lines.append(
            "No master public key: non-personalized QR codes will be refused "
            "(give --application-id or --master-public-key)."
        )
    text = "\n".join(lines)
    _emit(
        ctx,
        {
            **state.public_view(),
            "committed": result.committed,
            "stateFile": str(ctx.device.store.path_for(state.activation_id)),
        },
        text,
    )


@cli.command()
@common_options
@click.argument("source", metavar="IMAGE|-")
@activation_option
@pass_context
def scan(ctx: Context, source: str, activation_id: str | None) -> None:
    """Read a QR code, check its signature and show the operation.

    IMAGE is a PNG or JPEG file; '-' reads the payload text (or an image)
    from standard input.
    """
    verified = ctx.device.scan(_read_source(source), activation_id)
    _emit(ctx, _operation_json(verified), render_operation(verified))


@cli.command()
@common_options
@click.argument("source", metavar="IMAGE|-")
@click.option("--pin", help="Sign with the PIN (possession + knowledge).")
@click.option(
    "--biometry",
    is_flag=True,
    help="Sign with biometry (possession + biometry); the QR must allow it.",
)
@click.option(
    "--digits",
    type=click.IntRange(4, 8),
    default=DEFAULT_COMPONENT_LENGTH,
    show_default=True,
    help="Digits per code component, as the server is configured.",
)
@activation_option
@pass_context
def sign(
    ctx: Context,
    source: str,
    pin: str | None,
    biometry: bool,
    digits: int,
    activation_id: str | None,
) -> None:
    """Show the operation of a QR code and compute its offline code.

    Every computed code moves the device's counter forward, typed in or not.
    """
    if pin is not None and biometry:
        raise click.UsageError("give --pin or --biometry, not both")
    device = ctx.device
    verified = device.scan(_read_source(source), activation_id)
    if not ctx.json:
        click.echo(render_operation(verified))
        click.echo()
    if pin is None and not biometry:
        pin = _ask_pin("PIN", stdin_used=source == "-")
    code = device.sign(
        verified,
        pin=pin,
        biometry=biometry,
        component_length=digits,
    )
    _emit(
        ctx,
        {**_operation_json(verified), **_code_json(code)},
        f"Code: {code.code}\nRead: {code.grouped}",
    )


@cli.command(name="list")
@common_options
@pass_context
def list_(ctx: Context) -> None:
    """List the activations stored on this device."""
    states = ctx.device.activations()
    if not states:
        text = f"No activation stored in {ctx.device.store.directory}."
    else:
        text = "\n".join(_state_line(state) for state in states)
    _emit(ctx, [state.public_view() for state in states], text)


@cli.command()
@common_options
@activation_option
@click.option(
    "--refresh",
    is_flag=True,
    help="Ask the server for the current status first.",
)
@click.option(
    "--server",
    metavar="URL",
    help="Server base URL for --refresh (default: the one used at activation).",
)
@pass_context
def status(
    ctx: Context, activation_id: str | None, refresh: bool, server: str | None
) -> None:
    """Show one activation's details (no key material)."""
    device = ctx.device
    state = device.status(activation_id)
    if refresh:
        url = server or state.server_url
        if url is None:
            raise click.UsageError("this activation has no server URL; give --server")
        transport = HttpTransport(url)
        try:
            state = device.refresh_status(transport, state.activation_id)
        finally:
            transport.close()
    rows = [
        ("Activation", state.activation_id),
        ("Name", state.activation_name or "-"),
        ("Application", state.application_id or "-"),
        ("Server", state.server_url or "-"),
        ("Status", f"{state.status} (as last seen from the server)"),
        ("Fingerprint", state.fingerprint),
        ("Codes computed", str(state.codes_computed)),
        ("Master key", "yes" if state.master_public_key else "no"),
        ("Created", state.created_at),
    ]
    text = "\n".join(f"{label + ':':<16}{value}" for label, value in rows)
    _emit(ctx, state.public_view(), text)


@cli.command()
@common_options
@activation_option
@pass_context
def remove(ctx: Context, activation_id: str | None) -> None:
    """Forget an activation on this device (the server is not told)."""
    removed = ctx.device.remove(activation_id)
    _emit(
        ctx,
        {"removed": removed},
        f"Activation {removed} removed from this device. Remove it on the server too.",
    )


def _state_line(state: DeviceState) -> str:
    name = f" {state.activation_name!r}" if state.activation_name else ""
    return (
        f"{state.activation_id}{name}  {state.status}  "
        f"fingerprint {state.fingerprint}  codes {state.codes_computed}"
    )


def _operation_json(verified: VerifiedPayload) -> dict[str, Any]:
    return {"activationId": verified.activation_id, **describe_operation(verified)}


def _code_json(code: OfflineCode) -> dict[str, Any]:
    return {
        "code": code.code,
        "grouped": code.grouped,
        "signatureType": code.signature_type.value,
    }


def _has_terminal() -> bool:
    """Whether a PIN prompt can reach a person.

    The hidden prompt (``getpass``) asks on the controlling terminal even when
    standard input is redirected, and reads standard input only when there is
    no terminal at all.
    """
    if sys.stdin.isatty():
        return True
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return False


def _ask_pin(prompt: str, *, confirm: bool = False, stdin_used: bool = False) -> str:
    """Ask for the PIN, or say plainly that a script must pass ``--pin``.

    :raises NoTerminalError: no terminal, and standard input is already
        taken by the QR text or ends before a PIN.
    """
    terminal = _has_terminal()
    hint = "no terminal to ask for the PIN: pass --pin"
    if not terminal and stdin_used:
        raise NoTerminalError(f"{hint} (standard input held the QR text)")
    try:
        pin: str = click.prompt(
            prompt, hide_input=True, confirmation_prompt=confirm, err=True
        )
    except click.exceptions.Abort:
        if terminal:
            raise  # the person at the prompt gave up (Ctrl-C, Ctrl-D)
        raise NoTerminalError(hint) from None
    return pin


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the command and map errors to exit statuses."""
    ctx = Context()
    try:
        cli.main(args=argv, obj=ctx, standalone_mode=False)
    except MTokenError as exc:
        click.echo(f"mtoken: {exc}", err=True)
        if ctx.json:
            error = {
                "type": type(exc).__name__,
                "message": str(exc),
                "exitCode": exc.exit_code,
            }
            click.echo(json.dumps({"error": error}, ensure_ascii=False))
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
