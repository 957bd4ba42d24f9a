"""The HSM layer: the only code of the project that talks PKCS#11.

Key pairs are P-256, live in a token and are addressed by label; see
``hsm/README.md`` for the rules of this layer.
"""

from __future__ import annotations

from hsm.adapter import HSM, KeyProperties, TokenInfo
from hsm.config import DEFAULT_MODULE, HSMConfig

__all__ = ["DEFAULT_MODULE", "HSM", "HSMConfig", "KeyProperties", "TokenInfo"]
