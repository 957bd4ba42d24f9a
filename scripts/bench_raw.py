"""The raw PKCS#11 bound of the benchmark: ECDSA sign and ECDH through python-pkcs11.

This file is the one exception to the rule that only ``hsm/`` imports
``pkcs11``: it measures what the token allows with nothing of ours in between,
so that the adapter and the product can be compared with it. It runs in its
own process (``scripts/bench.py`` starts it), because python-pkcs11 lets one
process initialize a library only once and the adapter owns that in the
benchmark's main process.

Usage (settings from PKCS11_MODULE, PKCS11_TOKEN_LABEL, PKCS11_USER_PIN)::

    python scripts/bench_raw.py --key-label L --peer HEX --message HEX \
        --seconds 1 --max-ops 5000

Prints one JSON object: ``sign`` and ``ecdh`` (each a sample: the duration of
every operation in ns and their CPU time), ``sign_mechanism`` and ``library``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import pkcs11
from bench_common import Budget, sample
from pkcs11 import KDF, Attribute, KeyType, Mechanism, ObjectClass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key-label", required=True)
    parser.add_argument("--peer", required=True, help="65-byte P-256 point, hex")
    parser.add_argument("--message", required=True, help="bytes to sign, hex")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--max-ops", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)

    budget = Budget(args.seconds, args.max_ops, args.warmup)
    message = bytes.fromhex(args.message)
    peer = bytes.fromhex(args.peer)
    # The adapter's default peer encoding: the point in a DER OCTET STRING.
    peer_der = b"\x04\x41" + peer

    lib = pkcs11.lib(os.environ["PKCS11_MODULE"])
    token = lib.get_token(token_label=os.environ["PKCS11_TOKEN_LABEL"])
    with token.open(rw=True, user_pin=os.environ["PKCS11_USER_PIN"]) as session:
        # The key handle is looked up once, as the adapter caches it too.
        key = session.get_key(
            object_class=ObjectClass.PRIVATE_KEY,
            key_type=KeyType.EC,
            label=args.key_label,
        )

        # As the adapter does: CKM_ECDSA_SHA256 where the token has it, else
        # SHA-256 on the host and CKM_ECDSA (SoftHSM 2.6 offers only the latter).
        if Mechanism.ECDSA_SHA256 in set(token.slot.get_mechanisms()):

            def sign() -> bytes:
                return bytes(key.sign(message, mechanism=Mechanism.ECDSA_SHA256))

            sign_mechanism = "CKM_ECDSA_SHA256"
        else:

            def sign() -> bytes:
                digest = hashlib.sha256(message).digest()
                return bytes(key.sign(digest, mechanism=Mechanism.ECDSA))

            sign_mechanism = "CKM_ECDSA (SHA-256 on the host)"

        def ecdh() -> bytes:
            # One ECDH "operation" is what it takes to get the shared X out of
            # the token: derive a session object, read it, destroy it.
            secret = key.derive_key(
                KeyType.GENERIC_SECRET,
                256,
                mechanism=Mechanism.ECDH1_DERIVE,
                mechanism_param=(KDF.NULL, None, peer_der),
                template={
                    Attribute.TOKEN: False,
                    Attribute.SENSITIVE: False,
                    Attribute.EXTRACTABLE: True,
                },
            )
            try:
                return bytes(secret[Attribute.VALUE])
            finally:
                secret.destroy()

        result = {
            "sign": sample(sign, budget),
            "ecdh": sample(ecdh, budget),
            "sign_mechanism": sign_mechanism,
            "library": f"{lib.manufacturer_id} {lib.library_description} "
            + ".".join(map(str, lib.library_version)),
        }
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
