"""The ACME client: one session per (directory, account key) (``session.py``), the challenge
solvers (``solvers.py``, and the dns-01 command hook in ``hooks.py``), when to renew
(``schedule.py``) and `tlsgate cert` for hosts not behind ``serve`` (``standalone.py``).

``renewal`` drives it for ``serve``'s sites. It never imports ``acme.server``: what it shares
with the server is wire format, in ``acme/`` itself.
"""
