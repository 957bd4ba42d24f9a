"""``hsm-check``: a conformance kit for a PKCS#11 token.

It runs every operation of the adapter on the given token with throw-away
keys, checks each result against ``cryptography`` on the host, prints one row
per check (operation, mechanism, result, ops/s) and deletes what it made. The
exit status is 1 when a required check fails.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import click
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hsm.adapter import HSM, TokenInfo
from hsm.config import DEFAULT_MODULE, EcdhPeerEncoding, HSMConfig
from hsm.errors import HSMError, InvalidPublicKeyError, KeyNotFoundError

T = TypeVar("T")

P256 = ec.SECP256R1()
ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


class CheckFailed(Exception):
    """A check saw a wrong result."""


@dataclass(frozen=True)
class Measured:
    """How many operations ran in how many seconds (checks excluded)."""

    count: int
    seconds: float


def _timed(operation: Callable[[int], T], count: int) -> tuple[list[T], Measured]:
    """Run ``operation(i)`` for i in range(count); time only those calls."""
    start = time.perf_counter()
    results = [operation(i) for i in range(count)]
    return results, Measured(count, time.perf_counter() - start)


@dataclass
class Row:
    operation: str
    mechanism: str
    result: str
    rate: float | None
    required: bool
    passed: bool


def _point(key: ec.EllipticCurvePublicKey, compressed: bool = False) -> bytes:
    form = (
        PublicFormat.CompressedPoint if compressed else PublicFormat.UncompressedPoint
    )
    return key.public_bytes(Encoding.X962, form)


def _peer_with_x_starting(first: int) -> ec.EllipticCurvePrivateKey:
    for _ in range(50000):
        peer = ec.generate_private_key(P256)
        if _point(peer.public_key())[1] == first:
            return peer
    raise CheckFailed(f"could not make a peer key with X starting {first:#04x}")


class Checker:
    """Runs the checks on one token and collects the rows."""

    def __init__(self, config: HSMConfig, iterations: int) -> None:
        self.config = config
        self.hsm = HSM(config)
        self.iterations = iterations
        self.rows: list[Row] = []
        self.created: list[str] = []
        self.info: TokenInfo | None = None
        self._prefix = f"hsm-check-{secrets.token_hex(4)}"

    def new_label(self) -> str:
        label = f"{self._prefix}-{len(self.created)}"
        self.created.append(label)
        return label

    def check(
        self,
        operation: str,
        mechanism: str,
        action: Callable[[], str | Measured],
        *,
        required: bool = True,
    ) -> bool:
        """Run ``action`` and record its row; a failed check never raises."""
        try:
            outcome = action()
        except (HSMError, CheckFailed, InvalidSignature, ValueError) as exc:
            label = "FAIL" if required else "not supported"
            reason = str(exc) or type(exc).__name__
            self.rows.append(
                Row(operation, mechanism, f"{label}: {reason}", None, required, False)
            )
            return False

        if isinstance(outcome, Measured):
            rate = outcome.count / outcome.seconds if outcome.seconds > 0 else None
            self.rows.append(Row(operation, mechanism, "ok", rate, required, True))
        else:
            self.rows.append(Row(operation, mechanism, outcome, None, required, True))
        return True

    # -- the checks, in order ---------------------------------------------

    def run(self) -> None:
        try:
            info = self.hsm.token_info()
        except HSMError as exc:
            self.rows.append(
                Row(
                    "open session, log in",
                    "C_OpenSession, C_Login",
                    f"FAIL: {exc}",
                    None,
                    True,
                    False,
                )
            )
            return
        self.info = info
        self.rows.append(
            Row(
                "open session, log in", "C_OpenSession, C_Login", "ok", None, True, True
            )
        )

        label = self._check_generate()
        if label is None:
            return
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(
                P256, self.hsm.public_key(label)
            )
            self._check_protection(label)
            self._check_public_key(label)
            self._check_sign(label, public, info.sign_mechanism)
            self._check_ecdh(label, public)
            self._check_import()
            self._check_delete()
        except (HSMError, CheckFailed, ValueError) as exc:
            # A read between two checks failed: the remaining ones cannot run.
            self.rows.append(
                Row("remaining checks", "-", f"FAIL: {exc}", None, True, False)
            )

    def _check_generate(self) -> str | None:
        count = max(1, min(10, self.iterations // 20))
        labels = [self.new_label() for _ in range(count)]

        def generate() -> Measured:
            points, measured = _timed(
                lambda i: self.hsm.generate_keypair(labels[i]), count
            )
            for point in points:
                ec.EllipticCurvePublicKey.from_encoded_point(P256, point)
            return measured

        ok = self.check("generate P-256 key pair", "CKM_EC_KEY_PAIR_GEN", generate)
        return labels[0] if ok else None

    def _check_protection(self, label: str) -> None:
        props = self.hsm.private_key_properties(label)
        for name, value, wanted in (
            ("private key CKA_TOKEN", props.token, True),
            ("private key CKA_SENSITIVE", props.sensitive, True),
            ("private key CKA_EXTRACTABLE", props.extractable, False),
            ("private key CKA_ALWAYS_SENSITIVE", props.always_sensitive, True),
            ("private key CKA_NEVER_EXTRACTABLE", props.never_extractable, True),
        ):
            self.check(name, "C_GetAttributeValue", partial(_expect, value, wanted))
        self.check(
            "private key CKA_VALUE unreadable",
            "C_GetAttributeValue",
            partial(_expect, props.value_readable, False, shown="ok (refused)"),
        )

    def _check_public_key(self, label: str) -> None:
        def export() -> Measured:
            points, measured = _timed(
                lambda _: self.hsm.public_key(label), self.iterations
            )
            if any(len(point) != 65 for point in points):
                raise CheckFailed("not a 65-byte point")
            return measured

        self.check("export public key", "C_GetAttributeValue(CKA_EC_POINT)", export)

    def _check_sign(
        self, label: str, public: ec.EllipticCurvePublicKey, mechanism: str
    ) -> None:
        messages = [
            i.to_bytes(4, "big") + b" hsm-check" for i in range(self.iterations)
        ]

        def sign() -> Measured:
            signatures, measured = _timed(
                lambda i: self.hsm.sign(label, messages[i]), self.iterations
            )
            for message, der in zip(messages, signatures, strict=True):
                public.verify(der, message, ECDSA_SHA256)
                if encode_dss_signature(*decode_dss_signature(der)) != der:
                    raise CheckFailed("signature is not minimal DER")
            return measured

        self.check("sign ECDSA P-256 SHA-256", mechanism, sign)

    def _check_ecdh(self, label: str, public: ec.EllipticCurvePublicKey) -> None:
        encoding = self.config.ecdh_peer_encoding
        mechanism = f"CKM_ECDH1_DERIVE (CKD_NULL, peer {encoding})"
        peers = [ec.generate_private_key(P256) for _ in range(8)]
        expected = [peer.exchange(ec.ECDH(), public) for peer in peers]

        def derive(compressed: bool) -> Measured:
            points = [_point(peer.public_key(), compressed) for peer in peers]
            secrets_, measured = _timed(
                lambda i: self.hsm.ecdh(label, points[i % len(points)]),
                self.iterations,
            )
            for i, secret in enumerate(secrets_):
                if secret != expected[i % len(points)]:
                    raise CheckFailed("shared secret differs from cryptography's")
            return measured

        self.check("ECDH, uncompressed peer", mechanism, partial(derive, False))
        self.check("ECDH, compressed peer", mechanism, partial(derive, True))

        # A raw point 04||X||Y whose X starts 0x3F reads as a DER OCTET STRING
        # header; a token that sniffs for DER gets it wrong.
        tricky = _peer_with_x_starting(0x3F)
        tricky_point = _point(tricky.public_key())
        tricky_secret = tricky.exchange(ec.ECDH(), public)
        for peer_encoding in ("der", "raw"):
            adapter = HSM(
                dataclasses.replace(self.config, ecdh_peer_encoding=peer_encoding)
            )
            self.check(
                f"ECDH, peer X starts 0x3F, {peer_encoding}",
                f"CKM_ECDH1_DERIVE (CKD_NULL, peer {peer_encoding})",
                partial(_same_secret, adapter, label, tricky_point, tricky_secret),
                required=peer_encoding == encoding,
            )

        self.check(
            "ECDH leaves no derived object",
            "C_DestroyObject",
            lambda: _expect(self.hsm.session_object_count(), 0),
        )
        bad = bytearray(_point(peers[0].public_key()))
        bad[-1] ^= 1
        self.check(
            "off-curve peer refused on the host",
            "none (checked before the token)",
            partial(_refused, self.hsm, label, bytes(bad)),
        )

    def _check_import(self) -> None:
        label = self.new_label()
        software = ec.generate_private_key(P256)
        scalar = software.private_numbers().private_value
        java = scalar.to_bytes(scalar.bit_length() // 8 + 1, "big")

        def import_key() -> Measured:
            points, measured = _timed(
                lambda _: self.hsm.import_private_key(label, java), 1
            )
            if points[0] != _point(software.public_key()):
                raise CheckFailed("public point differs from cryptography's")
            return measured

        if not self.check("import private key", "C_CreateObject", import_key):
            return

        peer = ec.generate_private_key(P256)
        self.check(
            "imported key: ECDH",
            "CKM_ECDH1_DERIVE",
            partial(
                _same_secret,
                self.hsm,
                label,
                _point(peer.public_key()),
                peer.exchange(ec.ECDH(), software.public_key()),
            ),
        )
        props = self.hsm.private_key_properties(label)
        self.check(
            "imported key: sensitive, non-extractable",
            "C_GetAttributeValue",
            partial(
                _expect,
                (props.sensitive, props.extractable, props.value_readable),
                (True, False, False),
                shown="ok",
            ),
        )
        # PKCS#11 sets CKA_NEVER_EXTRACTABLE false for a key whose value came
        # from outside; shown for information, not a failure.
        self.rows.append(
            Row(
                "imported key: CKA_NEVER_EXTRACTABLE",
                "C_GetAttributeValue",
                f"{props.never_extractable} (expected for an import)",
                None,
                False,
                True,
            )
        )

    def _check_delete(self) -> None:
        labels = list(self.created)

        def delete() -> Measured:
            _, measured = _timed(
                lambda i: self.hsm.delete_keypair(labels[i]), len(labels)
            )
            left = [label for label in labels if self.hsm.has_keypair(label)]
            if left:
                raise CheckFailed(f"still present: {', '.join(left)}")
            return measured

        self.check("delete key pair", "C_DestroyObject", delete)

    def cleanup(self) -> int:
        """Delete whatever is left of the keys this run made."""
        removed = 0
        for label in self.created:
            try:
                self.hsm.delete_keypair(label)
                removed += 1
            except KeyNotFoundError:
                pass
            except HSMError as exc:
                click.echo(f"warning: could not delete {label}: {exc}", err=True)
        self.hsm.close()
        return removed


def _expect(value: object, wanted: object, shown: str | None = None) -> str:
    if value != wanted:
        raise CheckFailed(f"{value!r}, expected {wanted!r}")
    return shown if shown is not None else f"ok ({value})"


def _same_secret(hsm: HSM, label: str, point: bytes, wanted: bytes) -> str:
    if hsm.ecdh(label, point) != wanted:
        raise CheckFailed("result differs from cryptography's")
    return "ok"


def _refused(hsm: HSM, label: str, point: bytes) -> str:
    try:
        hsm.ecdh(label, point)
    except InvalidPublicKeyError:
        return "ok (refused)"
    raise CheckFailed("accepted")


def format_table(rows: list[Row]) -> str:
    """The rows as a plain text table."""
    header = ("operation", "mechanism", "result", "ops/s")
    cells = [
        (
            row.operation,
            row.mechanism,
            row.result,
            f"{row.rate:.0f}" if row.rate is not None else "-",
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(4)]

    def line(values: tuple[str, str, str, str]) -> str:
        first = " | ".join(v.ljust(w) for v, w in zip(values[:3], widths, strict=False))
        return f"{first} | {values[3].rjust(widths[3])}"

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(c) for c in cells)])


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--module",
    envvar="PKCS11_MODULE",
    default=DEFAULT_MODULE,
    show_default=True,
    help="PKCS#11 library path [env: PKCS11_MODULE].",
)
@click.option(
    "--token-label",
    envvar="PKCS11_TOKEN_LABEL",
    required=True,
    help="Label of the token to check [env: PKCS11_TOKEN_LABEL].",
)
@click.option(
    "--pin",
    envvar="PKCS11_USER_PIN",
    required=True,
    help="User PIN of the token [env: PKCS11_USER_PIN].",
)
@click.option(
    "--ecdh-peer-encoding",
    envvar="PKCS11_ECDH_PEER_ENCODING",
    type=click.Choice(["der", "raw"]),
    default="der",
    show_default=True,
    help="How the peer point goes to CKM_ECDH1_DERIVE "
    "[env: PKCS11_ECDH_PEER_ENCODING].",
)
@click.option(
    "--iterations",
    type=click.IntRange(1, 100_000),
    default=200,
    show_default=True,
    help="Operations per timed check.",
)
def main(
    module: str,
    token_label: str,
    pin: str,
    ecdh_peer_encoding: EcdhPeerEncoding,
    iterations: int,
) -> None:
    """Check that a PKCS#11 token does everything the adapter needs."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        config = HSMConfig(
            module=module,
            token_label=token_label,
            user_pin=pin,
            ecdh_peer_encoding=ecdh_peer_encoding,
        )
    except HSMError as exc:
        raise click.UsageError(str(exc)) from exc

    checker = Checker(config, iterations)
    try:
        checker.run()
    finally:
        removed = checker.cleanup()

    info = checker.info
    click.echo(f"module:  {module}")
    if info is not None:
        click.echo(f"library: {info.library}")
        click.echo(
            f"token:   {info.label} ({info.manufacturer} {info.model}, "
            f"serial {info.serial})"
        )
    click.echo("")
    click.echo(format_table(checker.rows))
    failed = [row for row in checker.rows if row.required and not row.passed]
    leftovers = f"{removed} leftover key pair(s) removed" if removed else "no key left"
    click.echo("")
    click.echo(
        f"{len(failed)} required check(s) failed of {len(checker.rows)}; {leftovers}"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
