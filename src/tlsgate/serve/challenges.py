"""Answering the CA's validations: http-01 on the plain-HTTP listeners, tls-alpn-01 in the
handshake.

The master's renewer puts each pending answer in the store (``put_challenge_answer``); every
worker reads it from there when the CA comes to look, so whichever process the CA reaches
answers. The data plane gets these as callables: :meth:`Challenges.http01` is the redirect's
``challenge``, :meth:`Challenges.choose` the first say in the peeking acceptor's choice.
"""

from __future__ import annotations

import logging
import re
import ssl
from datetime import UTC, datetime

from tlsgate.acme.tls_alpn import ACME_TLS_ALPN, alpn_challenge_certificate
from tlsgate.errors import TlsgateError
from tlsgate.proxy.acceptor import ChallengeProtocol, Choice
from tlsgate.store.roles import RenewalStore
from tlsgate.tls.clienthello import ClientHello
from tlsgate.tls.context import load_chain_into, new_server_context

__all__ = ["Challenges"]

log = logging.getLogger("tlsgate.serve")

_CHALLENGE_PATH = b"/.well-known/acme-challenge/"
_TOKEN = re.compile(rb"[A-Za-z0-9_-]{1,256}")
#: Challenge contexts kept at most (answers are short-lived; so is this cache).
_CACHED = 64


class Challenges:
    """The pending answers in ``store``, as the listeners ask for them.

    ``store`` is replaced in a forked worker (a database connection must not cross fork()).
    """

    def __init__(self, store: RenewalStore) -> None:
        self.store = store
        self._contexts: dict[tuple[str, str], ssl.SSLContext] = {}

    def http01(self, target: bytes) -> bytes | None:
        """The key authorization for ``/.well-known/acme-challenge/TOKEN``, if one is pending."""
        if not target.startswith(_CHALLENGE_PATH):
            return None
        token = target[len(_CHALLENGE_PATH) :]
        if not _TOKEN.fullmatch(token):
            return None
        try:
            answer = self.store.challenge_answer(
                "http-01", token.decode("ascii"), now=datetime.now(UTC)
            )
        except TlsgateError as exc:
            log.error("http-01: cannot read the pending challenges: %s", exc)
            return None
        return answer.encode("ascii") if answer is not None else None

    def choose(self, hello: ClientHello | None, normal: Choice) -> Choice | None:
        """For a ClientHello that offers ``acme-tls/1`` with a server name: the challenge
        certificate if an answer is pending, else ``normal``. None for any other handshake
        (the site's own context is chosen then)."""
        name = hello.server_name if hello is not None else None
        if hello is None or name is None or ACME_TLS_ALPN not in hello.alpn:
            return None
        try:
            answer = self.store.challenge_answer("tls-alpn-01", name, now=datetime.now(UTC))
        except TlsgateError as exc:
            log.error("tls-alpn-01: cannot read the pending challenges: %s", exc)
            return normal
        if answer is None:
            return normal
        ctx = self._contexts.get((name, answer))
        if ctx is None:
            cert_pem, key_pem = alpn_challenge_certificate(name, answer)
            ctx = new_server_context(alpn=(ACME_TLS_ALPN,))
            load_chain_into(ctx, cert_pem, key_pem)
            if len(self._contexts) > _CACHED:
                self._contexts.clear()
            self._contexts[(name, answer)] = ctx
        log.info("tls-alpn-01: answering the validation of %s", name)
        return ctx, ChallengeProtocol
