"""A real OpenSSH server on 127.0.0.1 for the remote tests (Debian's openssh-server).

Private everything: its own host key, an AuthorizedKeysFile holding one throwaway client key, no password
auth, StrictModes off (the temp dirs are not root-owned), its own known_hosts and an ssh config file the
client gets with ``-F`` (OpenSSH reads the passwd home's ~/.ssh, not $HOME, so nothing is left implicit).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: the bench settings every loopback-device test uses (short windows; onnxruntime only, as the device has)
REMOTE_BENCH = ("--runtime", "onnxruntime", "--precision", "fp32", "--min-duration", "0.3", "--min-iterations", "20",
                "--warmup", "0.05", "--batch", "1,2", "--seed", "3")

SSHD = "/usr/sbin/sshd"
SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/lib/ssh/sftp-server")


def ensure_sshd() -> str | None:
    """The sshd binary, installed with apt-get when missing (root); None with the reason printed when impossible."""
    if Path(SSHD).is_file() and shutil.which("ssh") and shutil.which("ssh-keygen"):
        return SSHD
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=600, env=env, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-server", "openssh-client"], capture_output=True,
                       timeout=900, env=env, check=False)
    return SSHD if Path(SSHD).is_file() and shutil.which("ssh") else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True, capture_output=True)
    return path


@dataclass
class Sshd:
    root: Path
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    ssh_config: Path
    host_key: Path
    proc: subprocess.Popen | None = None

    def device_kwargs(self, **kw) -> dict:
        """Fields of an edgekit Device for this server."""
        return {"host": "127.0.0.1", "port": self.port, "user": self.user, "ssh_config": str(self.ssh_config),
                "identity_file": str(self.client_key), "known_hosts": str(self.known_hosts), **kw}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def start_sshd(root: Path) -> Sshd:
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    host_key = keygen(root / "host_ed25519")
    client_key = keygen(root / "client_ed25519")
    auth = root / "authorized_keys"
    auth.write_text((root / "client_ed25519.pub").read_text())
    port = free_port()
    sftp = next((s for s in SFTP_SERVERS if Path(s).is_file()), "internal-sftp")
    cfg = root / "sshd_config"
    cfg.write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {root}/sshd.pid
AuthorizedKeysFile {auth}
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
UsePAM no
Subsystem sftp {sftp}
LogLevel ERROR
MaxSessions 50
MaxStartups 50:30:100
""")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # Debian's privilege-separation dir
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=open(root / "sshd.log", "wb"))
    pub = (root / "host_ed25519.pub").read_text().split()
    known = root / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    ssh_config = root / "ssh_config"
    ssh_config.write_text("Host *\n  IdentitiesOnly yes\n  PasswordAuthentication no\n")
    user = getpass.getuser()
    server = Sshd(root, port, user, client_key, known, ssh_config, host_key, proc)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(root / 'sshd.log').read_text()[-500:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("sshd did not listen within 20 s")
