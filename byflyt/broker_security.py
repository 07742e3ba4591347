"""The local broker with authentication: SASL_SSL and SCRAM-SHA-512, with its own CA.

``byflyt broker start --secure`` keeps everything in the broker folder: ``tls/`` holds a CA
(``ca.p12``, and ``ca.crt`` for clients) and the broker's certificate for ``localhost`` and
``127.0.0.1`` signed by it (made with the JDK's ``keytool``); ``secrets.json`` (mode 0600) the
keystore password and the broker's own SCRAM password; ``client.env`` (mode 0600) the
``BYFLYT_KAFKA_*`` settings a client needs. The clients' SCRAM user is written into the KRaft
metadata when the storage is formatted (``kafka-storage format --add-scram``), as a salted
password in an argument file, so no password is ever on a command line: ``/proc/<pid>/cmdline``
of every JVM shows only file names. The controller listener uses mutual TLS on loopback.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from byflyt.errors import BrokerError

MECHANISM = "SCRAM-SHA-512"
BROKER_USER = "byflyt-broker"
"""The broker's own user (inter-broker listener); clients use their own."""
DEFAULT_CLIENT_USER = "byflyt"
SCRAM_ITERATIONS = 8192
CERT_DAYS = 825
SUBJECT_ALT_NAMES = "SAN=dns:localhost,ip:127.0.0.1"
_PASSWORD_ENV = "BYFLYT_KEYSTORE_PASSWORD"  # noqa: S105 - the name of a variable


@dataclass(frozen=True)
class ClientCredentials:
    """The SCRAM user clients authenticate as."""

    username: str
    password: SecretStr


@dataclass(frozen=True)
class TlsFiles:
    """The broker's TLS material and passwords (all inside the broker folder)."""

    dir: Path
    keystore_password: SecretStr
    broker_password: SecretStr

    @property
    def ca_cert(self) -> Path:
        """The CA certificate (PEM) clients trust: ``BYFLYT_KAFKA_SSL_CAFILE``."""
        return self.dir / "ca.crt"

    @property
    def keystore(self) -> Path:
        """The broker's key and certificate chain (PKCS#12)."""
        return self.dir / "server.p12"

    @property
    def truststore(self) -> Path:
        """The CA the broker trusts for mutual TLS on its controller listener (PKCS#12)."""
        return self.dir / "truststore.p12"


def client_credentials(
    broker_dir: Path, username: str | None, password: SecretStr | None
) -> ClientCredentials:
    """The clients' user: the given settings, else the folder's ``client.env``, else new.

    A new password is random (``secrets.token_urlsafe``) and reaches the user only through
    ``client.env`` (mode 0600), never through the terminal or a log.
    """
    stored: dict[str, str] = {}
    env_file = broker_dir / "client.env"
    if env_file.exists():
        for line in env_file.read_text("utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                stored[key] = value
    user = username or stored.get("BYFLYT_KAFKA_SASL_USERNAME") or DEFAULT_CLIENT_USER
    if password is None:
        known = stored.get("BYFLYT_KAFKA_SASL_PASSWORD")
        password = SecretStr(known or secrets.token_urlsafe(24))
    return ClientCredentials(user, password)


def private_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (created so, never widened)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)


def ensure_tls(broker_dir: Path, java: str) -> TlsFiles:
    """The CA and broker certificate of ``broker_dir``, made on first use."""
    tls_dir = broker_dir / "tls"
    secrets_file = broker_dir / "secrets.json"
    if secrets_file.exists() and (tls_dir / "server.p12").exists():
        stored = json.loads(secrets_file.read_text())
        return TlsFiles(
            tls_dir, SecretStr(stored["keystore_password"]), SecretStr(stored["broker_password"])
        )
    tls_dir.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        tls_dir, SecretStr(secrets.token_urlsafe(24)), SecretStr(secrets.token_urlsafe(24))
    )
    for stale in tls_dir.iterdir():
        stale.unlink()
    make_ca(tls_dir, java, files.keystore_password, name="byflyt local CA")
    _keytool(java, files.keystore_password, tls_dir, _broker_cert_steps())
    private_file(
        secrets_file,
        json.dumps(
            {
                "keystore_password": files.keystore_password.get_secret_value(),
                "broker_password": files.broker_password.get_secret_value(),
            }
        ),
    )
    return files


def make_ca(tls_dir: Path, java: str, password: SecretStr, *, name: str) -> Path:
    """A self-signed CA in ``tls_dir/ca.p12``; returns its certificate, ``tls_dir/ca.crt``."""
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca_dn = shlex.quote(f"CN={name}")
    steps = [
        f"-genkeypair -alias ca -keyalg RSA -keysize 2048 -ext bc:c -validity 3650 -dname {ca_dn}",
        "-exportcert -rfc -alias ca -file ca.crt",
    ]
    _keytool(java, password, tls_dir, [[*shlex.split(step), *_store("ca.p12")] for step in steps])
    return tls_dir / "ca.crt"


def _broker_cert_steps() -> list[list[str]]:
    days, san = CERT_DAYS, SUBJECT_ALT_NAMES
    steps = [
        (
            "server.p12",
            "-genkeypair -alias broker -keyalg RSA -keysize 2048 -dname CN=localhost "
            f"-validity {days} -ext {san}",
        ),
        ("server.p12", "-certreq -alias broker -file server.csr"),
        (
            "ca.p12",
            f"-gencert -alias ca -infile server.csr -outfile server.crt -rfc -validity {days} "
            f"-ext {san} -ext KU=digitalSignature,keyEncipherment -ext EKU=serverAuth,clientAuth",
        ),
        ("server.p12", "-importcert -noprompt -alias ca -file ca.crt"),
        ("server.p12", "-importcert -alias broker -file server.crt"),
        ("truststore.p12", "-importcert -noprompt -alias ca -file ca.crt"),
    ]
    return [[*shlex.split(step), *_store(store)] for store, step in steps]


def _store(name: str) -> list[str]:
    # -storepass:env reads the password from the environment, never from the command line.
    return ["-keystore", name, "-storetype", "PKCS12", "-storepass:env", _PASSWORD_ENV]


def _keytool(java: str, password: SecretStr, cwd: Path, steps: list[list[str]]) -> None:
    keytool = str(Path(java).with_name("keytool"))
    env = {**os.environ, _PASSWORD_ENV: password.get_secret_value()}
    for step in steps:
        done = subprocess.run(
            [keytool, *step], cwd=cwd, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise BrokerError(
                f"keytool {step[0]} failed in {cwd}: {done.stdout.strip()} {done.stderr.strip()}"
            )


def scram_credential(user: str, password: SecretStr) -> str:
    """``--add-scram`` argument with a salted password (RFC 5802's Hi, as Kafka stores it)."""
    salt = secrets.token_bytes(32)
    salted = hashlib.pbkdf2_hmac(
        "sha512", password.get_secret_value().encode(), salt, SCRAM_ITERATIONS
    )
    b64 = base64.b64encode
    return (
        f'{MECHANISM}=[name={user},iterations={SCRAM_ITERATIONS},salt="{b64(salt).decode()}",'
        f'saltedpassword="{b64(salted).decode()}"]'
    )


@contextlib.contextmanager
def argument_file(broker_dir: Path, args: list[str]) -> Iterator[str]:
    """A private ``@file`` for Kafka's tools, removed afterwards; yields ``@path``."""
    path = broker_dir / f".args-{secrets.token_hex(4)}"
    # The storage tool (argparse4j) reads one argument per line, verbatim.
    if any("\n" in arg for arg in args):
        raise BrokerError("an argument of the broker's storage format has a line break")
    private_file(path, "\n".join(args) + "\n")
    try:
        yield f"@{path}"
    finally:
        path.unlink(missing_ok=True)


def secure_listener_config(
    tls: TlsFiles, port: int, controller_port: int, *, client_user: str
) -> list[str]:
    """server.properties lines: SASL_SSL for clients and brokers, mutual TLS for the controller."""
    store_pw = tls.keystore_password.get_secret_value()
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{BROKER_USER}" password="{tls.broker_password.get_secret_value()}";'
    )
    return [
        f"# SASL_SSL ({MECHANISM}) for clients (user {client_user}); CA {tls.ca_cert}",
        f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        f"advertised.listeners=SASL_SSL://127.0.0.1:{port}",
        "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        "inter.broker.listener.name=SASL_SSL",
        f"sasl.enabled.mechanisms={MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config={jaas}",
        "ssl.keystore.type=PKCS12",
        f"ssl.keystore.location={tls.keystore}",
        f"ssl.keystore.password={store_pw}",
        f"ssl.key.password={store_pw}",
        "ssl.truststore.type=PKCS12",
        f"ssl.truststore.location={tls.truststore}",
        f"ssl.truststore.password={store_pw}",
        "listener.name.controller.ssl.client.auth=required",
    ]


def client_env(tls: TlsFiles, port: int, credentials: ClientCredentials) -> str:
    """The ``BYFLYT_KAFKA_*`` lines a client of this broker needs (for ``client.env``)."""
    return "\n".join(
        [
            f"BYFLYT_BROKER_PORT={port}",
            "BYFLYT_KAFKA_SECURITY_PROTOCOL=SASL_SSL",
            f"BYFLYT_KAFKA_SASL_MECHANISM={MECHANISM}",
            f"BYFLYT_KAFKA_SASL_USERNAME={credentials.username}",
            f"BYFLYT_KAFKA_SASL_PASSWORD={credentials.password.get_secret_value()}",
            f"BYFLYT_KAFKA_SSL_CAFILE={tls.ca_cert}",
            "",
        ]
    )
