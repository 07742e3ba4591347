"""The embedded default: a real single-node Apache Kafka (KRaft) run from Maven-resolved jars.

``make install`` puts the jars in ``<data dir>/kafka/libs`` (see ``deploy/kafka/pom.xml``).
:class:`LocalBroker` writes a combined broker+controller configuration, formats the storage on
first start, runs the JVM in the background with its log and pid file in the broker folder, and
returns only when the broker answers a metadata request.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from byflyt.broker_security import (
    BROKER_USER,
    MECHANISM,
    ClientCredentials,
    TlsFiles,
    argument_file,
    client_env,
    ensure_tls,
    private_file,
    scram_credential,
    secure_listener_config,
)
from byflyt.errors import BrokerError

_SCRAM_ARG = re.compile(r"SCRAM-SHA-\d+=\[[^\]]*\]?")
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0
_LOG4J = """\
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {log}
appender.file.filePattern = {log}.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 20MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""


@dataclass(frozen=True)
class BrokerStatus:
    """Where the local broker is and whether it runs."""

    running: bool
    pid: int | None
    port: int | None
    data_dir: Path
    log: Path
    secure: bool = False

    def describe(self) -> str:
        """One line for ``byflyt broker status``."""
        if self.running:
            security = (
                f"SASL_SSL/SCRAM-SHA-512, CA {self.data_dir / 'tls' / 'ca.crt'}, "
                f"client settings {self.data_dir / 'client.env'}, "
                if self.secure
                else ""
            )
            return (
                f"running: pid {self.pid}, bootstrap 127.0.0.1:{self.port}, {security}"
                f"data {self.data_dir}, log {self.log}"
            )
        return f"stopped: data {self.data_dir}"


class LocalBroker:
    """A single-node KRaft broker whose state lives in ``broker_dir``.

    With ``secure`` credentials it listens only with SASL_SSL and SCRAM-SHA-512 (see
    :mod:`byflyt.broker_security`); ``secure`` is the user clients authenticate as.
    """

    def __init__(
        self,
        broker_dir: Path,
        libs_dir: Path,
        port: int,
        *,
        secure: ClientCredentials | None = None,
    ) -> None:
        self.dir = broker_dir
        self.libs = libs_dir
        self.port = port
        self.secure = secure
        self.client_env = broker_dir / "client.env"
        self._tls: TlsFiles | None = None
        self.log_dirs = broker_dir / "kraft-logs"
        self.log_file = broker_dir / "server.log"
        self.out_file = broker_dir / "broker.out"
        self.pid_file = broker_dir / "broker.pid"
        self.state_file = broker_dir / "broker.json"
        self.properties = broker_dir / "server.properties"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- public ----------------------------------------------------------------------------
    def start(self, timeout: float = START_TIMEOUT_S) -> BrokerStatus:
        """Start the broker (formatting storage the first time); return once it answers."""
        current = self.status()
        if current.running:
            if current.port != self.port:
                raise BrokerError(
                    f"a broker from {self.dir} already runs on port {current.port}; "
                    "stop it first with `byflyt broker stop`"
                )
            return current
        java = self._java()
        classpath = self._classpath()
        if not _port_free(self.port):
            raise BrokerError(
                f"port {self.port} is taken by another process; choose another with --port "
                "or BYFLYT_BROKER_PORT"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        formatted = (self.log_dirs / "meta.properties").exists()
        self._check_mode(formatted)
        if self.secure is not None:
            self._tls = ensure_tls(self.dir, java)
        controller_port = self._controller_port()
        self._write_config(controller_port)
        if not formatted:
            self._format(java, classpath)
        env = dict(os.environ)
        env.setdefault("KAFKA_HEAP_OPTS", "-Xmx768m -Xms256m")
        cmd = [
            java,
            *env["KAFKA_HEAP_OPTS"].split(),
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.dir}",
            "-cp",
            classpath,
            "kafka.Kafka",
            str(self.properties),
        ]
        with self.out_file.open("ab") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        self._proc = proc
        self.pid_file.write_text(str(proc.pid))
        self._wait_ready(proc, timeout)
        return self.status()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> BrokerStatus:
        """Stop the broker cleanly (SIGTERM) and wait until its port is closed."""
        pid = self._pid()
        port = self._recorded_port()
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
                _wait_dead(pid, 10.0)
        if port is not None:
            deadline = time.monotonic() + timeout
            while not _port_free(port) and time.monotonic() < deadline:
                time.sleep(0.2)
        if self._proc is not None:
            self._proc.wait(timeout=10)
            self._proc = None
        self.pid_file.unlink(missing_ok=True)
        return self.status()

    def status(self) -> BrokerStatus:
        """Whether the broker of this folder runs, and on which port."""
        pid = self._pid()
        running = pid is not None and _alive(pid) and _is_java(pid)
        return BrokerStatus(
            running=running,
            pid=pid if running else None,
            port=self._recorded_port() if running else None,
            data_dir=self.dir,
            log=self.log_file,
            secure=self._state().get("secure") is True,
        )

    # -- helpers ---------------------------------------------------------------------------
    def _java(self) -> str:
        home = os.environ.get("JAVA_HOME")
        candidate = Path(home) / "bin" / "java" if home else None
        java = str(candidate) if candidate and candidate.exists() else shutil.which("java")
        if not java:
            raise BrokerError("Java is not installed: install a JDK 17+ or set JAVA_HOME")
        return java

    def _classpath(self) -> str:
        jars = sorted(self.libs.glob("kafka_2.13-*.jar")) if self.libs.is_dir() else []
        if not jars:
            raise BrokerError(
                f"the Kafka jars are missing in {self.libs}: run `make install` "
                "(mvn -f deploy/kafka/pom.xml dependency:copy-dependencies)"
            )
        return f"{self.libs}/*"

    def _controller_port(self) -> int:
        state = self._state()
        port = state.get("controller_port")
        if isinstance(port, int) and _port_free(port):
            return port
        return _free_port()

    def _check_mode(self, formatted: bool) -> None:
        # SCRAM users are written when the storage is formatted: a folder keeps its mode.
        was_secure = self._state().get("secure") is True
        if formatted and was_secure != (self.secure is not None):
            wanted = "with" if self.secure is not None else "without"
            raise BrokerError(
                f"the broker in {self.dir} was created {'with' if was_secure else 'without'} "
                f"--secure; start it {wanted} --secure in another --data-dir, or remove {self.dir}"
            )

    def _listener_config(self, controller_port: int) -> list[str]:
        if self._tls is not None and self.secure is not None:
            return secure_listener_config(
                self._tls, self.port, controller_port, client_user=self.secure.username
            )
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
        ]

    def _write_config(self, controller_port: int) -> None:
        # Mode 0600: a secure broker's file holds its keystore and SCRAM passwords.
        private_file(
            self.properties,
            "\n".join(
                [
                    "# Written by `byflyt broker start`: single-node KRaft broker, local runs.",
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
                    "controller.listener.names=CONTROLLER",
                    *self._listener_config(controller_port),
                    f"log.dirs={self.log_dirs}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "log.retention.hours=-1",
                    "log.segment.bytes=67108864",
                    "",
                ]
            ),
        )
        (self.dir / "log4j2.properties").write_text(_LOG4J.format(log=self.log_file))
        if self._tls is not None and self.secure is not None:
            private_file(self.client_env, client_env(self._tls, self.port, self.secure))
        state = self._state()
        state.update(
            {"port": self.port, "controller_port": controller_port, "secure": bool(self.secure)}
        )
        self.state_file.write_text(json.dumps(state))

    def _format(self, java: str, classpath: str) -> None:
        cluster_id = self._state().get("cluster_id") or _cluster_id()
        args = [
            "--config",
            str(self.properties),
            f"--cluster-id={cluster_id}",  # ids may start with "-": keep it one argument
            "--ignore-formatted",
        ]
        if self._tls is not None and self.secure is not None:
            args += ["--add-scram", scram_credential(self.secure.username, self.secure.password)]
            args += ["--add-scram", scram_credential(BROKER_USER, self._tls.broker_password)]
        # The arguments go through a private @file: credentials stay off the command line.
        with argument_file(self.dir, args) as argfile:
            cmd = [
                java,
                f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                "-cp",
                classpath,
                "kafka.tools.StorageTool",
                "format",
                argfile,
            ]
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            # The tool may echo its arguments; the SCRAM credentials must not reach the message.
            reason = _SCRAM_ARG.sub("<SCRAM credential>", done.stderr.strip())[-500:]
            raise BrokerError(f"formatting the broker storage failed: {reason}")
        state = self._state()
        state["cluster_id"] = cluster_id
        self.state_file.write_text(json.dumps(state))

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerError(
                    f"the broker exited with code {proc.returncode}; last log lines:\n"
                    + self._log_tail()
                )
            if _answers_metadata(self.port, self._probe_security()):
                return
            time.sleep(0.5)
        proc.terminate()
        raise BrokerError(
            f"the broker did not answer within {timeout:.0f}s; last log lines:\n" + self._log_tail()
        )

    def _probe_security(self) -> dict[str, str]:
        if self._tls is None or self.secure is None:
            return {}
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": self.secure.username,
            "sasl_plain_password": self.secure.password.get_secret_value(),
            "ssl_cafile": str(self._tls.ca_cert),
        }

    def _log_tail(self, lines: int = 20) -> str:
        chunks = []
        for path in (self.out_file, self.log_file):
            if path.exists():
                chunks.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(chunks[-lines:])

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _state(self) -> dict[str, object]:
        try:
            loaded = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _recorded_port(self) -> int | None:
        port = self._state().get("port")
        return port if isinstance(port, int) else None


def _cluster_id() -> str:
    # A KRaft cluster id is a base64url-encoded 16-byte UUID without padding (22 characters).
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _answers_metadata(port: int, security: dict[str, str]) -> bool:
    # A plain TCP connect first: kafka-python's client logs and retries every refused attempt.
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            pass
    except OSError:
        return False
    try:
        client = KafkaAdminClient(
            bootstrap_servers=f"127.0.0.1:{port}",
            request_timeout_ms=3000,
            reconnect_backoff_max_ms=500,
            client_id="byflyt-probe",
            **security,
        )
    except (KafkaError, OSError, ValueError):
        return False
    try:
        client.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        client.close()


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "Z"
    return False


def _is_java(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid file
    return b"kafka.Kafka" in cmdline


def _wait_dead(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
