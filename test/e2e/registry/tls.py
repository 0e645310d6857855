"""A throw-away certificate authority for the registry tests.

One CA per test process (``default_ca()``) signs every server certificate
(for 127.0.0.1 and localhost) and every client certificate, so a test only
has to hand one ``ca_file`` to whatever it points at the registry or proxy.
Keys are ECDSA P-256: generating them takes milliseconds.
"""
import atexit
import datetime
import ipaddress
import os
import shutil
import ssl
import tempfile
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgecri tests")])


def _write_key(key, path):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)


def _write_cert(cert, path):
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


class CertPair:
    """A certificate and its key on disk (PEM)."""

    def __init__(self, cert_file, key_file):
        self.cert_file = cert_file
        self.key_file = key_file

    def __iter__(self):  # allows ``cert, key = ca.issue(...)``
        return iter((self.cert_file, self.key_file))

    def __repr__(self):
        return f"CertPair({self.cert_file!r}, {self.key_file!r})"


class TestCA:
    """A self-signed CA in its own directory; ``issue`` signs leaf certificates."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory=None, cn="edgecri test CA"):
        if directory is None:
            directory = tempfile.mkdtemp(prefix="edgecri-ca-")
            atexit.register(shutil.rmtree, directory, True)
        self.dir = directory
        self._lock = threading.Lock()
        self._serial = 1
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder()
                     .subject_name(_name(cn)).issuer_name(_name(cn))
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
                     .sign(self.key, hashes.SHA256()))
        self.ca_file = os.path.join(self.dir, "ca.crt")
        self.ca_key_file = os.path.join(self.dir, "ca.key")
        _write_cert(self.cert, self.ca_file)
        _write_key(self.key, self.ca_key_file)

    def issue(self, cn="127.0.0.1", names=LOOPBACK_NAMES, client=False, server=True, days=365,
              not_before=None, not_after=None, prefix=None):
        """Signs a leaf certificate; returns a CertPair of files in the CA directory.

        ``names`` become subjectAltNames (IP addresses where they parse as
        such). ``client``/``server`` choose the extended key usages.
        ``not_before``/``not_after`` allow expired or not-yet-valid certs.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        sans = []
        for n in names or ():
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        b = (x509.CertificateBuilder()
             .subject_name(_name(cn)).issuer_name(self.cert.subject)
             .public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(not_before or now - datetime.timedelta(hours=1))
             .not_valid_after(not_after or now + datetime.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                          content_commitment=False, key_encipherment=False,
                                          data_encipherment=False, key_agreement=True,
                                          encipher_only=False, decipher_only=False), critical=True)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                            critical=False))
        if usages:
            b = b.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        with self._lock:
            n = self._serial
            self._serial += 1
        base = os.path.join(self.dir, f"{prefix or ('client' if client and not server else 'server')}-{n}")
        pair = CertPair(base + ".crt", base + ".key")
        _write_cert(cert, pair.cert_file)
        _write_key(key, pair.key_file)
        return pair

    def client_cert(self, cn="edgecri-client"):
        return self.issue(cn=cn, names=(), client=True, server=False, prefix="client")

    def client_context(self, cert=None):
        """An ssl client context trusting this CA (optionally with a client cert)."""
        return client_context(self.ca_file, cert)


def client_context(ca_file=None, cert=None):
    """ssl.SSLContext for urllib/http.client: trusts ``ca_file``; ``cert`` is a
    CertPair or (cert_file, key_file) for mutual TLS."""
    ctx = ssl.create_default_context(cafile=ca_file)
    if cert is not None:
        c, k = cert
        ctx.load_cert_chain(c, k)
    return ctx


_default = None
_default_lock = threading.Lock()


def default_ca():
    """The process-wide test CA shared by Registry and Proxy."""
    global _default
    with _default_lock:
        if _default is None:
            _default = TestCA()
        return _default
