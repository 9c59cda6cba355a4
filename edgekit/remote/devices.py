"""The device registry: named SSH devices in a TOML file.

Where: ``$EDGEKIT_DEVICES`` when set (one file, read and written); else the user's file
``$XDG_CONFIG_HOME/edgekit/devices.toml`` (``~/.config/edgekit/devices.toml``), written by
``edgekit devices add``, plus a project-local ``edgekit-devices.toml`` in the current directory or a parent
(read only, so a team can commit its lab; its entries win over the user's of the same name).

Format (no secrets: passwords are never stored, keys stay in ssh-agent / ~/.ssh/config)::

    [devices.orin]
    host = "orin-lab"          # an ssh alias, or HOST
    user = "nvidia"            # optional
    port = 22                  # optional
    target = "jetson-orin-nano"  # optional: else resolved from the device's own facts
    python = "python3"
    workdir = "~/.cache/edgekit-remote"
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from edgekit.core.atomic import atomic_write_text
from edgekit.core.errors import UsageError
from edgekit.remote.errors import UnknownDevice
from edgekit.remote.ssh import SshTarget

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_VAR = "EDGEKIT_DEVICES"
PROJECT_FILE = "edgekit-devices.toml"
DEFAULT_WORKDIR = "~/.cache/edgekit-remote"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Device:
    name: str
    host: str
    user: str | None = None
    port: int | None = None
    target: str | None = None
    python: str = "python3"
    workdir: str = DEFAULT_WORKDIR
    ssh_config: str | None = None  # ssh -F FILE (default: the user's ~/.ssh/config)
    identity_file: str | None = None
    known_hosts: str | None = None
    accept_new_host_key: bool = False
    timeout_s: float = 3600.0  # wall-clock limit of one remote bench
    source: str = ""  # the file it came from

    def ssh_target(self, *, accept_new_host_key: bool = False) -> SshTarget:
        return SshTarget(host=self.host, user=self.user, port=self.port, config_file=self.ssh_config,
                         identity_file=self.identity_file, known_hosts=self.known_hosts,
                         accept_new_host_key=accept_new_host_key or self.accept_new_host_key)

    @property
    def address(self) -> str:
        return self.ssh_target().display

    def to_toml_table(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("name", "source") and v is not None}
        defaults = {f.name: f.default for f in fields(self)}
        return {k: v for k, v in d.items() if k in ("host",) or v != defaults.get(k)}


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise UsageError(f"device name {name!r} is not valid", hint="use letters, digits, '.', '_' or '-' (max 64)")
    return name


def user_file() -> Path:
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "edgekit" / "devices.toml"


def project_file(start: Path | None = None) -> Path | None:
    if os.environ.get(ENV_VAR):
        return None
    d = (start or Path.cwd()).resolve()
    for p in (d, *d.parents):
        if (p / PROJECT_FILE).is_file():
            return p / PROJECT_FILE
    return None


def _read(path: Path) -> dict[str, Device]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read the device registry {path}: {e}", hint="fix or remove the file") from None
    table = data.get("devices", {})
    if not isinstance(table, dict):
        raise UsageError(f"{path}: 'devices' must be a table of [devices.NAME] entries")
    known = {f.name for f in fields(Device)} - {"name", "source"}
    out = {}
    for name, entry in table.items():
        if not isinstance(entry, dict) or "host" not in entry:
            raise UsageError(f"{path}: devices.{name} needs a host")
        bad = sorted(set(entry) - known)
        if bad:
            raise UsageError(f"{path}: devices.{name}: unknown key(s) {', '.join(bad)}",
                             hint=f"known keys: {', '.join(sorted(known))}")
        out[name] = Device(name=check_name(name), source=str(path), **entry)
    return out


def load_devices() -> dict[str, Device]:
    """Every registered device (the project file's entries over the user's)."""
    devices = _read(user_file())
    proj = project_file()
    if proj is not None:
        devices.update(_read(proj))
    return devices


def get_device(name: str) -> Device:
    devices = load_devices()
    if name not in devices:
        import difflib

        close = difflib.get_close_matches(name, list(devices), n=3)
        maybe = f"did you mean {', '.join(close)}? " if close else ""
        raise UnknownDevice(f"no device named {name!r} in {user_file()}"
                            + (f" or {project_file()}" if project_file() else ""),
                            hint=f"{maybe}add it with 'edgekit devices add {name} --host [USER@]HOST[:PORT]'")
    return devices[name]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a TOML basic string is a JSON string for these values


def _write(path: Path, devices: dict[str, Device]) -> None:
    lines = ["# edgekit devices (edgekit devices add/remove). No passwords: keys stay in ssh-agent / ~/.ssh/config.", ""]
    for name in sorted(devices):
        lines.append(f"[devices.{json.dumps(name)}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in devices[name].to_toml_table().items()]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines))


def add_device(device: Device, *, replace_existing: bool = False) -> Path:
    path = user_file()
    devices = _read(path)
    if device.name in devices and not replace_existing:
        raise UsageError(f"device {device.name!r} already exists in {path}",
                         hint=f"remove it first ('edgekit devices remove {device.name}') or pass --replace")
    devices[device.name] = replace(device, source=str(path))
    _write(path, devices)
    return path


def remove_device(name: str) -> Path:
    path = user_file()
    devices = _read(path)
    if name not in devices:
        raise UnknownDevice(f"no device named {name!r} in {path}", hint="'edgekit devices list' shows them")
    del devices[name]
    _write(path, devices)
    return path
