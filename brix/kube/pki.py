"""Certificates for the local control plane: one CA, the API server's serving certificate, a client
certificate per identity, and the service-account signing key. Pure file generation, no processes.

Identities follow kubeadm's: the admin is in `system:masters`, the controller manager and the
scheduler are the users their default RBAC roles name (`system:kube-controller-manager`,
`system:kube-scheduler`), so the API server's bootstrap RBAC applies to them unchanged.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Identity:
    """A client certificate: the user name (CN) and groups (O) the API server authenticates."""

    file_stem: str
    user: str
    groups: tuple[str, ...] = ()


ADMIN = Identity("admin", "brix-admin", ("system:masters",))
CONTROLLER_MANAGER = Identity("kube-controller-manager", "system:kube-controller-manager")
SCHEDULER = Identity("kube-scheduler", "system:kube-scheduler")
# One node agent plays the kubelet of many nodes; the Node authorizer only lets a kubelet touch its
# own node, so the agent has its own user and a ClusterRole (brix/kube/bootstrap.py) instead.
NODE_AGENT = Identity("node-agent", "brix:node-agent", ("brix:node-agents",))
IDENTITIES = (ADMIN, CONTROLLER_MANAGER, SCHEDULER, NODE_AGENT)


@dataclass(frozen=True)
class Pki:
    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.folder / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.folder / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.folder / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.folder / "sa.pub"

    def client_cert(self, who: Identity) -> Path:
        return self.folder / f"{who.file_stem}.crt"

    def client_key(self, who: Identity) -> Path:
        return self.folder / f"{who.file_stem}.key"


def _name(common: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _issue(subject: x509.Name, key: ec.EllipticCurvePrivateKey, ca_name: x509.Name,
           ca_key: ec.EllipticCurvePrivateKey, now: datetime.datetime, *, usage: list[x509.ObjectIdentifier],
           sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + VALIDITY)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usage), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def generate(folder: Path, *, service_ip: str, now: datetime.datetime | None = None) -> Pki:
    """Write a fresh CA, serving certificate (SANs: loopback, localhost, the `kubernetes` Service
    names and its ClusterIP), the client certificates of IDENTITIES and the service-account key."""
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder)
    now = now or datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("brix-local-ca")
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + VALIDITY)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    _write_key(pki.ca_key, ca_key)
    _write_cert(pki.ca_cert, ca)

    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           "kubernetes.default.svc.cluster.local"]
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", service_ip)]
    key = ec.generate_private_key(ec.SECP256R1())
    _write_key(pki.serving_key, key)
    _write_cert(pki.serving_cert, _issue(_name("kube-apiserver"), key, ca_name, ca_key, now,
                                         usage=[ExtendedKeyUsageOID.SERVER_AUTH], sans=sans))
    for who in IDENTITIES:
        key = ec.generate_private_key(ec.SECP256R1())
        _write_key(pki.client_key(who), key)
        _write_cert(pki.client_cert(who), _issue(_name(who.user, who.groups), key, ca_name, ca_key, now,
                                                 usage=[ExtendedKeyUsageOID.CLIENT_AUTH]))
    # service-account tokens are signed with RS256 by default: an RSA key
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki.sa_key, sa)
    pki.sa_pub.write_bytes(sa.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo))
    return pki
