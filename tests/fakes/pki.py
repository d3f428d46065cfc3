"""Throwaway certificate authorities for the fakes, made with the `openssl` command line (the venv
has no `cryptography`): a CA, and leaf certificates for servers or clients signed by it."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OPENSSL = shutil.which("openssl")
MISSING = None if OPENSSL else "the openssl command is needed to make test certificates (Debian: openssl)"
LOCAL_HOSTS = ("localhost", "127.0.0.1")


def _openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL, MISSING
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path

    @property
    def pem(self) -> str:
        return self.cert.read_text()


class CA:
    """A CA in its own directory; EC keys keep generation fast."""

    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory / name
        self.dir.mkdir(parents=True)
        self.name = name
        _openssl(
            "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=self.dir,
        )  # fmt: skip
        self.cert = self.dir / "ca.pem"

    @property
    def pem(self) -> str:
        return self.cert.read_text()

    def issue(self, name: str, hosts: tuple[str, ...] = LOCAL_HOSTS, days: int = 365, client: bool = False) -> Issued:
        sans = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts)
        (self.dir / f"{name}.ext").write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
            + (f"subjectAltName={sans}\n" if not client else "")
        )
        _openssl(
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=self.dir,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", str(days), "-extfile", f"{name}.ext", cwd=self.dir,
        )  # fmt: skip
        return Issued(self.dir / f"{name}.pem", self.dir / f"{name}.key")
