"""dns-01 through a command the user provides: the one way to prove a name that no server of
ours answers for (wildcards, hosts behind other proxies), with any DNS provider.

The command is run without a shell: ``CMD present NAME VALUE`` before the challenge is
answered and ``CMD cleanup NAME VALUE`` after, where NAME is ``_acme-challenge.<domain>`` and
VALUE the TXT record's content; the same are in ``TLSGATE_DNS01_NAME``/``TLSGATE_DNS01_VALUE``
(and ``TLSGATE_IDENTIFIER``). A failing ``present`` stops the order with the command's message;
a failing ``cleanup`` is only logged, since the certificate is already on its way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex

from tlsgate.acme.client.session import AcmeClientError
from tlsgate.acme.jose import dns01_txt_value
from tlsgate.errors import ConfigError

__all__ = ["Dns01Hook"]

log = logging.getLogger("tlsgate.acme")


class Dns01Hook:
    challenge_type = "dns-01"

    def __init__(self, command: str, *, wait: float = 0.0, timeout: float = 300.0) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ConfigError("--dns-01-hook: empty command")
        self.wait = wait  # seconds for the record to reach the CA's resolvers
        self.timeout = timeout
        self._values: dict[str, str] = {}  # token -> TXT value, for cleanup

    @staticmethod
    def record(identifier: str) -> str:
        return "_acme-challenge." + identifier.removeprefix("*.")

    async def _run(self, action: str, identifier: str, value: str) -> tuple[int, str]:
        name = self.record(identifier)
        env = {
            **os.environ,
            "TLSGATE_DNS01_NAME": name,
            "TLSGATE_DNS01_VALUE": value,
            "TLSGATE_IDENTIFIER": identifier,
        }
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv, action, name, value,
                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        except OSError as exc:
            raise AcmeClientError(f"dns-01 hook {self.argv[0]}: {exc.strerror}") from None
        try:
            async with asyncio.timeout(self.timeout):
                output, _ = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return -1, f"no answer within {self.timeout:g} s"
        return proc.returncode or 0, output.decode(errors="replace").strip()[-500:]

    async def present(self, identifier: str, token: str, key_authorization: str) -> None:
        value = dns01_txt_value(key_authorization)
        code, output = await self._run("present", identifier, value)
        if code != 0:
            raise AcmeClientError(f"dns-01 hook failed for {identifier} ({code}): {output}")
        self._values[token] = value
        if self.wait > 0:
            await asyncio.sleep(self.wait)

    async def cleanup(self, identifier: str, token: str) -> None:
        value = self._values.pop(token, "")
        code, output = await self._run("cleanup", identifier, value)
        if code != 0:
            log.warning("dns-01 hook cleanup for %s failed (%s): %s", identifier, code, output)
