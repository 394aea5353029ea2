"""Self-signed TLS certificates for the loopback services (cloud, OTA): one home for how they are made.

RFC 5280 X.509 v3, EC P-256 key, SubjectAltName localhost + 127.0.0.1; clients pin the certificate file.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from camlab.io_utils import atomic_write_bytes


def make_self_signed(cert_path: Path, key_path: Path, common_name: str = "camlab-service", days: int = 30) -> None:
    """Write a new self-signed certificate and its private key (both atomically)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    atomic_write_bytes(Path(key_path), key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()), mode=0o600)
    atomic_write_bytes(Path(cert_path), cert.public_bytes(serialization.Encoding.PEM))


def ensure_certificate(tls_dir: Path, common_name: str = "camlab-service") -> tuple[Path, Path]:
    """``tls_dir/cert.pem`` and ``key.pem``, made once and reused."""
    cert_path, key_path = Path(tls_dir) / "cert.pem", Path(tls_dir) / "key.pem"
    if not (cert_path.exists() and key_path.exists()):
        make_self_signed(cert_path, key_path, common_name, days=365)
    return cert_path, key_path
