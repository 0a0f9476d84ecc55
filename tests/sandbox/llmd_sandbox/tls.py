"""The sandbox's own CA, and server certificates it signs (API server, ingress hosts, OpenShift router)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost")
_VALIDITY = datetime.timedelta(days=7)


def _name(common_name: str) -> x509.Name:
    # X.509 caps a CN at 64 characters (route hosts are often longer); clients check the SANs anyway
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "llmd-sandbox"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


class CertificateAuthority:
    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate):
        self.key, self.cert = key, cert

    @classmethod
    def create(cls, common_name: str = "llmd-sandbox-ca") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(_name(common_name)).issuer_name(_name(common_name))
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        return cls(key, cert)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def _sign(self, subject: x509.Name, usage, extra: list[x509.ExtensionType]) -> tuple[bytes, bytes]:
        """A new key and a leaf certificate for it signed by this CA: (certificate PEM, private key PEM)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder()
                   .subject_name(subject).issuer_name(self.cert.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        for extension in extra:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), _private_pem(key)

    def issue(self, hosts: Iterable[str]) -> tuple[bytes, bytes]:
        """A server certificate for these IPs and DNS names: (certificate PEM, private key PEM)."""
        hosts = list(dict.fromkeys(hosts))
        return self._sign(_name(hosts[0]), ExtendedKeyUsageOID.SERVER_AUTH,
                          [x509.SubjectAlternativeName([_san(h) for h in hosts])])

    def issue_client(self, common_name: str, organizations: Iterable[str] = ()) -> tuple[bytes, bytes]:
        """A client certificate (CN = user, O = groups, as the API server and kubelet read them)."""
        subject = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations),
                             x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        return self._sign(subject, ExtendedKeyUsageOID.CLIENT_AUTH, [])

    def write_client_files(self, directory: str | os.PathLike, name: str, common_name: str,
                           organizations: Iterable[str] = ()) -> tuple[Path, Path]:
        return _write_pair(directory, name, self.issue_client(common_name, organizations))

    def write_ca(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.write_bytes(self.cert_pem)
        return path

    def write_server_files(self, directory: str | os.PathLike, name: str,
                           hosts: Iterable[str]) -> tuple[Path, Path]:
        """Writes DIR/<name>.crt and DIR/<name>.key (0600) for these hosts."""
        return _write_pair(directory, name, self.issue(hosts))


def _write_pair(directory: str | os.PathLike, name: str, pair: tuple[bytes, bytes]) -> tuple[Path, Path]:
    cert_path, key_path = Path(directory, f"{name}.crt"), Path(directory, f"{name}.key")
    cert_path.write_bytes(pair[0])
    write_private(key_path, pair[1])
    return cert_path, key_path


def server_ssl_context(cert_path: str | os.PathLike, key_path: str | os.PathLike) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def api_server_tls(directory: str | os.PathLike, extra_hosts: Iterable[str] = (),
                   ca: CertificateAuthority | None = None) -> tuple[CertificateAuthority, Path, ssl.SSLContext]:
    """A CA (new unless given) written to DIR/ca.crt and an API server certificate for 127.0.0.1, localhost
    and extra_hosts: (ca, ca_path, server SSL context)."""
    ca = ca or CertificateAuthority.create()
    ca_path = ca.write_ca(Path(directory, "ca.crt"))
    cert_path, key_path = ca.write_server_files(directory, "apiserver", [*DEFAULT_HOSTS, *extra_hosts])
    return ca, ca_path, server_ssl_context(cert_path, key_path)
