"""Self-signed TLS certificates for the loopback services (cloud, OTA): one home for how they are made.

RFC 5280 X.509 v3, EC P-256 key, SubjectAltName for the names/IPs the service is reached by (default localhost +
127.0.0.1), key usage and extended key usage serverAuth, subject/authority key ids, so a client that pins the file as
its only CA also checks the hostname (RFC 6125) and passes OpenSSL's strict X.509 checks.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from camlab.io_utils import atomic_write_bytes


DEFAULT_HOSTS = ("localhost", "127.0.0.1")


def make_self_signed(cert_path: Path, key_path: Path, common_name: str = "camlab-service", days: int = 30,
                     hosts: tuple[str, ...] = DEFAULT_HOSTS) -> None:
    """Write a new self-signed certificate (valid for ``hosts``: DNS names or IP addresses) and its private key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def san(h: str):
        try:
            return x509.IPAddress(ipaddress.ip_address(h))
        except ValueError:
            return x509.DNSName(h)

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName([san(h) for h in hosts]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
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
