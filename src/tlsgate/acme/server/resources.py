"""The ACME server's URLs and the JSON objects it returns (RFC 8555 7.1), from store records.

Pure: records and ``now`` in, JSON-ready dicts out. Statuses shown are the derived ones (see
``status.py``), so a client never reads ``pending`` for an authorization that has expired.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from tlsgate.acme.server.status import current_authorization_status
from tlsgate.store.acme import (
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeOrder,
)

__all__ = ["Urls", "render_account", "render_authorization", "render_challenge", "render_order"]


def stamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, as every ACME client parses it."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Urls:
    """Every URL the server hands out, under one base (``https://host:port``)."""

    base: str

    @property
    def directory(self) -> str:
        return f"{self.base}/directory"

    @property
    def new_nonce(self) -> str:
        return f"{self.base}/acme/new-nonce"

    @property
    def new_account(self) -> str:
        return f"{self.base}/acme/new-account"

    @property
    def new_order(self) -> str:
        return f"{self.base}/acme/new-order"

    @property
    def revoke_cert(self) -> str:
        return f"{self.base}/acme/revoke-cert"

    @property
    def key_change(self) -> str:
        return f"{self.base}/acme/key-change"

    @property
    def renewal_info(self) -> str:
        return f"{self.base}/acme/renewal-info"

    def account(self, account_id: str) -> str:
        return f"{self.base}/acme/acct/{account_id}"

    def orders(self, account_id: str) -> str:
        return f"{self.base}/acme/acct/{account_id}/orders"

    def order(self, order_id: str) -> str:
        return f"{self.base}/acme/order/{order_id}"

    def finalize(self, order_id: str) -> str:
        return f"{self.base}/acme/order/{order_id}/finalize"

    def authorization(self, authorization_id: str) -> str:
        return f"{self.base}/acme/authz/{authorization_id}"

    def challenge(self, challenge_id: str) -> str:
        return f"{self.base}/acme/chall/{challenge_id}"

    def certificate(self, serial: int) -> str:
        return f"{self.base}/acme/cert/{serial:x}"

    def account_id(self, url: str) -> str | None:
        """The account id a ``kid`` URL names, or None if it is not one of ours."""
        prefix = f"{self.base}/acme/acct/"
        if not url.startswith(prefix):
            return None
        rest = url[len(prefix) :]
        return rest if rest and "/" not in rest else None

    def directory_object(
        self, *, terms: str | None, eab_required: bool, profiles: dict[str, str]
    ) -> dict[str, object]:
        meta: dict[str, object] = {"externalAccountRequired": eab_required}
        if terms:
            meta["termsOfService"] = terms
        if profiles:
            meta["profiles"] = profiles
        return {
            "newNonce": self.new_nonce,
            "newAccount": self.new_account,
            "newOrder": self.new_order,
            "revokeCert": self.revoke_cert,
            "keyChange": self.key_change,
            "renewalInfo": self.renewal_info,
            "meta": meta,
        }


def render_account(account: AcmeAccount, urls: Urls) -> dict[str, object]:
    return {
        "status": account.status.value,
        "contact": list(account.contact),
        "orders": urls.orders(account.id),
        "key": json.loads(account.jwk),
        "createdAt": stamp(account.created_at),
    }


def render_challenge(challenge: AcmeChallenge, urls: Urls) -> dict[str, object]:
    out: dict[str, object] = {
        "type": challenge.type.value,
        "url": urls.challenge(challenge.id),
        "token": challenge.token,
        "status": challenge.status.value,
    }
    if challenge.validated_at is not None:
        out["validated"] = stamp(challenge.validated_at)
    if challenge.error is not None:
        out["error"] = json.loads(challenge.error)
    return out


def render_authorization(
    authz: AcmeAuthorization,
    challenges: Sequence[AcmeChallenge],
    urls: Urls,
    now: datetime,
) -> dict[str, object]:
    status = current_authorization_status(authz, challenges, now)
    shown = challenges
    if status == "valid":  # RFC 8555 7.1.4: only the challenge that succeeded
        shown = [c for c in challenges if c.status.value == "valid"] or list(challenges)
    out: dict[str, object] = {
        "identifier": {"type": authz.identifier.type, "value": authz.identifier.value},
        "status": status,
        "expires": stamp(authz.expires),
        "challenges": [render_challenge(c, urls) for c in shown],
    }
    if authz.wildcard:
        out["wildcard"] = True
    return out


def render_order(order: AcmeOrder, status: str, urls: Urls) -> dict[str, object]:
    out: dict[str, object] = {
        "status": status,
        "expires": stamp(order.expires),
        "identifiers": [{"type": i.type, "value": i.value} for i in order.identifiers],
        "authorizations": [urls.authorization(a) for a in order.authorization_ids],
        "finalize": urls.finalize(order.id),
    }
    if order.not_before is not None:
        out["notBefore"] = stamp(order.not_before)
    if order.not_after is not None:
        out["notAfter"] = stamp(order.not_after)
    if order.error is not None:
        out["error"] = json.loads(order.error)
    if order.certificate_serial is not None and status == "valid":
        out["certificate"] = urls.certificate(order.certificate_serial)
    if order.replaces is not None:
        out["replaces"] = order.replaces
    if order.profile is not None:
        out["profile"] = order.profile
    return out
