"""Reach an HTTPS service by address while naming it to TLS: the URL's host is the address dialled,
a given name is the TLS server name (SNI) and the name the certificate must carry.

An ingress such as Traefik picks its certificate and router by name; a machine without a DNS entry
for that name can still reach it at the host's address. Callers also send the name as `Host`.
"""

from __future__ import annotations

from typing import Any

from requests.adapters import HTTPAdapter


class ServerNameAdapter(HTTPAdapter):
    """Dials the URL's address but asks TLS for `server_name` and verifies the certificate against it."""

    def __init__(self, server_name: str | None, **options: Any) -> None:
        self.server_name = server_name
        super().__init__(**options)

    def init_poolmanager(self, *args: Any, **options: Any) -> None:
        if self.server_name:
            options |= {"server_hostname": self.server_name, "assert_hostname": self.server_name}
        super().init_poolmanager(*args, **options)
