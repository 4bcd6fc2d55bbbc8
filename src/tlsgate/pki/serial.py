"""Certificate serial numbers: random, and accepted in every spelling people paste.

Serials are 128 random bits (CA/Browser Forum asks for at least 64 bits from a CSPRNG), so two
CAs, two processes or two cluster nodes never need to coordinate to stay unique; the store still
enforces uniqueness and the authority retries on the astronomically unlikely clash.
"""

from __future__ import annotations

import re
import secrets

from tlsgate.errors import ConfigError

__all__ = ["format_serial", "parse_serial", "random_serial"]

SERIAL_BITS = 128
# ASCII only: int(x, 16) would also take "_", "+" and non-ASCII digits such as "١٢".
_HEX = re.compile(r"-?[0-9A-Fa-f]+")


def random_serial() -> int:
    while True:
        serial = secrets.randbits(SERIAL_BITS)
        if serial:  # zero is not a valid serial
            return serial


def format_serial(serial: int) -> str:
    """Upper-case hex with an even number of digits, as ``openssl x509 -serial`` prints it."""
    text = f"{serial:X}"
    return text if len(text) % 2 == 0 else "0" + text


def parse_serial(text: str) -> int:
    """Accept ``0A1B``, ``0a:1b``, ``serial=0A1B`` and ``0x0a1b``; serials are always hex here."""
    value = text.strip()
    if value.lower().startswith("serial="):
        value = value[len("serial=") :]
    if value.lower().startswith("0x"):
        value = value[2:]
    value = value.replace(":", "").replace(" ", "")
    if not value or len(value) > 42 or not _HEX.fullmatch(value):
        raise ConfigError(f"invalid serial {text!r}: expected hex digits like 0A:1B:2C")
    try:
        serial = int(value, 16)
    except ValueError:
        raise ConfigError(f"invalid serial {text!r}: expected hex digits like 0A:1B:2C") from None
    if serial <= 0:
        raise ConfigError(f"invalid serial {text!r}: serials are positive")
    if serial >= 1 << 160:
        raise ConfigError(f"invalid serial {text!r}: longer than the 20 bytes X.509 allows")
    return serial
