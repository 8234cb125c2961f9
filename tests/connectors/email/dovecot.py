"""A real IMAP server for the tests: Debian's dovecot, on a throwaway configuration.

Its own base_dir, state and maildirs in a temporary directory, listening on 127.0.0.1 on a free
port (STARTTLS offered) and on a second port with implicit TLS, both with a certificate from a
throwaway CA (``ca_file``: trust it through SSL_CERT_FILE), plaintext logins allowed on the
loopback, a pool of users in a
passwd-file written before the start, each test taking fresh ones (``add_user``). As root
the processes run as Debian's ``dovecot`` / ``dovenull`` users; otherwise as the current user.
"""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

DOVECOT = os.environ.get("KEFU_DOVECOT", "/usr/sbin/dovecot")
PASSWORD = "imap-test-secret"
START_TIMEOUT = 20.0
USERS = 200

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/server.pem
ssl_key = <{root}/server.key
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {internal_group}
default_login_user = {login}
first_valid_uid = {uid}
last_valid_uid = 0
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    user = {internal}
  }}
  unix_listener stats-writer {{
    user = {internal}
  }}
}}
"""


def missing() -> str | None:
    """Why dovecot cannot run here, or None."""
    if not os.access(DOVECOT, os.X_OK):
        return f"dovecot not found at {DOVECOT} (apt-get install dovecot-imapd)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("dovecot")
            pwd.getpwnam("dovenull")
        except KeyError:
            return "running as root but the dovecot/dovenull users do not exist"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Dovecot:
    root: Path
    port: int = 0
    tls_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    users: list[str] = field(default_factory=list)
    taken: int = 0

    @classmethod
    def start(cls) -> Dovecot:
        root = Path(tempfile.mkdtemp(prefix="kefu-dovecot-"))
        server = cls(root=root, port=_free_port(), tls_port=_free_port())
        server._write_config()
        server.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=(root / "stderr.log").open("wb"),
            start_new_session=True,
        )
        server._wait_until_listening()
        return server

    def _write_config(self) -> None:
        if os.geteuid() == 0:
            internal, login = "dovecot", "dovenull"
            owner = pwd.getpwnam("dovecot")
        else:
            internal = login = getpass.getuser()
            owner = pwd.getpwuid(os.getuid())
        self.root.chmod(0o755)
        _write_certificates(self.root)
        (self.root / "mail").mkdir()
        os.chown(self.root / "mail", owner.pw_uid, owner.pw_gid)
        prefix = uuid.uuid4().hex[:6]
        self.users = [f"shop-{prefix}-{n}" for n in range(USERS)]
        (self.root / "users").write_text("".join(f"{u}:{{PLAIN}}{PASSWORD}\n" for u in self.users))
        (self.root / "dovecot.conf").write_text(
            CONFIG.format(
                root=self.root,
                port=self.port,
                tls_port=self.tls_port,
                internal=internal,
                internal_group=_group_name(owner.pw_gid),
                login=login,
                uid=owner.pw_uid,
                gid=owner.pw_gid,
            )
        )

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited at start:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    if conn.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start in {START_TIMEOUT} s:\n{self.log()}")

    @property
    def ca_file(self) -> Path:
        return self.root / "ca.pem"

    def add_user(self) -> str:
        """A fresh mailbox: a user nobody used yet (empty maildir), logging in with PASSWORD."""
        if self.taken >= len(self.users):
            raise RuntimeError(f"all {len(self.users)} test mailboxes are taken")
        self.taken += 1
        return self.users[self.taken - 1]

    def log(self) -> str:
        parts = [self.root / "dovecot.log", self.root / "stderr.log"]
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in parts if p.exists())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _group_name(gid: int) -> str:
    import grp

    return grp.getgrgid(gid).gr_name


def _write_certificates(root: Path) -> None:
    """A CA (ca.pem) and a server certificate it signed for 127.0.0.1 and localhost."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kefu test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    (root / "ca.pem").write_bytes(ca.public_bytes(pem))
    (root / "server.pem").write_bytes(server.public_bytes(pem))
    (root / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (root / "server.key").chmod(0o600)
