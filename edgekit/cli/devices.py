"""``edgekit devices add|list|show|check|remove``: the SSH devices ``edgekit bench --device`` runs on."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

from edgekit.cli import ui
from edgekit.core.errors import CheckFailed


@click.group("devices")
def devices_cmd() -> None:
    """Register SSH devices (Jetson, Raspberry Pi, Intel box) and check them.

    Stored in ~/.config/edgekit/devices.toml ($EDGEKIT_DEVICES overrides; a project-local
    edgekit-devices.toml is read too). No password is ever stored: edgekit uses the system
    ssh client, your ~/.ssh/config and ssh-agent.
    """


@devices_cmd.command("add")
@click.argument("name")
@click.option("--host", "host", required=True, help="[USER@]HOST[:PORT]; HOST may be an alias of your ~/.ssh/config.")
@click.option("--target", default=None, help="Target profile (default: resolved from the device's own identity).")
@click.option("--python", "python", default="python3", show_default=True, help="Python on the device (3.10+).")
@click.option("--workdir", default=None, help="Directory on the device for edgekit's venv, pushes and runs (created 0700).")
@click.option("--ssh-config", default=None, help="ssh -F FILE instead of ~/.ssh/config.")
@click.option("--identity", "identity_file", default=None, help="ssh -i KEY (the key file's path; nothing secret is stored).")
@click.option("--known-hosts", default=None, help="UserKnownHostsFile for this device.")
@click.option("--timeout", "timeout_s", type=float, default=None, help="Wall-clock limit of one bench on it (s).")
@click.option("--replace", is_flag=True, help="Overwrite an existing entry of this name.")
def add_cmd(name: str, host: str, target: str | None, python: str, workdir: str | None, ssh_config: str | None,
            identity_file: str | None, known_hosts: str | None, timeout_s: float | None, replace: bool) -> None:
    """Register device NAME (no connection is made; 'edgekit devices check NAME' connects)."""
    from edgekit.remote.devices import DEFAULT_WORKDIR, Device, add_device, check_name
    from edgekit.remote.ssh import SshTarget

    t = SshTarget.parse(host)
    if target is not None:
        from edgekit.core.targets import load_target

        if target.strip().lower() != "jetson":
            load_target(target)  # an unknown profile fails here, not on the first bench
    dev = Device(name=check_name(name), host=t.host, user=t.user, port=t.port, target=target, python=python,
                 workdir=workdir or DEFAULT_WORKDIR, ssh_config=ssh_config, identity_file=identity_file,
                 known_hosts=known_hosts, **({"timeout_s": timeout_s} if timeout_s else {}))
    path = add_device(dev, replace_existing=replace)
    click.echo(f"added {name} ({dev.address}) to {path}; check it with 'edgekit devices check {name}'")


@devices_cmd.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(as_json: bool) -> None:
    """The registered devices."""
    from edgekit.remote.devices import load_devices, user_file

    devs = load_devices()
    if as_json:
        ui.print_json({n: {**d.to_toml_table(), "source": d.source} for n, d in sorted(devs.items())})
        return
    if not devs:
        click.echo(f"no devices in {user_file()}; add one with 'edgekit devices add NAME --host [USER@]HOST[:PORT]'")
        return
    table = Table(title=f"edgekit devices ({len(devs)})", title_justify="left")
    for col in ("name", "address", "target", "python", "workdir", "file"):
        table.add_column(col)
    for n, d in sorted(devs.items()):
        table.add_row(*(escape(str(x)) for x in (n, d.address, d.target or "(from the device)", d.python, d.workdir, d.source)))
    ui.table_console().print(table)


@devices_cmd.command("show")
@click.argument("name")
def show_cmd(name: str) -> None:
    """One device's entry as JSON."""
    from edgekit.remote.devices import get_device

    d = get_device(name)
    click.echo(json.dumps({"name": d.name, **d.to_toml_table(), "source": d.source}, indent=2))


@devices_cmd.command("remove")
@click.argument("name")
def remove_cmd(name: str) -> None:
    """Remove a device from your registry (nothing on the device is touched)."""
    from edgekit.remote.devices import remove_device

    click.echo(f"removed {name} from {remove_device(name)}")


@devices_cmd.command("check")
@click.argument("name")
@click.option("--accept-new-host-key", is_flag=True, help="Trust a first-seen host key (OpenSSH accept-new).")
@click.option("--json", "as_json", is_flag=True)
def check_cmd(name: str, accept_new_host_key: bool, as_json: bool) -> None:
    """Connect and report architecture, OS, Python, free disk, runtimes, the resolved target, and fixes.

    Exit 0 ready, 1 something to fix (printed with its command), 2 cannot connect.
    """
    from edgekit.remote.devices import get_device
    from edgekit.remote.probe import check, probe
    from edgekit.remote.ssh import Connection

    d = get_device(name)
    with Connection(d.ssh_target(accept_new_host_key=accept_new_host_key)) as conn:
        facts = probe(conn, python=d.python, workdir=d.workdir, device=d.name)
    rows, resolved = check(facts, device=d.name, python=d.python, target=d.target)
    if as_json:
        ui.print_json({"device": d.name, "address": d.address, "target": resolved, "facts": facts.to_json(),
                       "checks": [r.__dict__ for r in rows]})
    else:
        table = Table(title=f"{d.name} ({d.address})", title_justify="left")
        for col in ("check", "", "value", "fix"):
            table.add_column(col)
        for r in rows:
            table.add_row(escape(r.name), "ok" if r.ok else "MISSING", escape(r.value), escape(r.fix or ""),
                          style=None if r.ok else "bold red")
        ui.table_console().print(table)
    bad = [r for r in rows if not r.ok]
    if bad:
        raise CheckFailed(f"{name}: {len(bad)} problem(s): " + "; ".join(f"{r.name}: {r.fix}" for r in bad))
