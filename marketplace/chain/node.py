"""Start a real local node: anvil from npm ``@foundry-rs/anvil`` (which ships the binary).

Used by ``ledgerlearn node`` and by end-to-end tests. The platform binary is started
directly (not through npm's node wrapper) so signals reach it and it stops cleanly.
"""

from __future__ import annotations

import platform
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from marketplace.errors import ChainUnreachable, ConfigError
from marketplace.paths import NODE_MODULES

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def anvil_binary() -> Path:
    """Path of the anvil binary installed by ``npm ci`` (or one on PATH)."""
    system = platform.system().lower()
    arch = _ARCH.get(platform.machine().lower(), platform.machine().lower())
    candidate = NODE_MODULES / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / "anvil"
    if candidate.exists():
        return candidate
    on_path = shutil.which("anvil")
    if on_path:
        return Path(on_path)
    raise ConfigError("anvil is not installed: run `make setup` (npm ci installs it)")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:``port``."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def anvil_command(
    port: int, state: Path | None = None, block_time: float | None = None
) -> list[str]:
    cmd = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port), "--silent"]
    if state is not None:
        cmd += ["--state", str(state)]  # loads the file if present, dumps it on exit
    if block_time:
        cmd += ["--block-time", str(block_time)]
    return cmd


def wait_for_rpc(url: str, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    """Block until a JSON-RPC node answers at ``url``."""
    deadline = time.monotonic() + timeout
    payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ChainUnreachable(
                f"the node exited with code {process.returncode} before answering"
            )
        try:
            if httpx.post(url, json=payload, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise ChainUnreachable(f"no node answered at {url} within {timeout:.0f} s")


def start_anvil(port: int | None = None, state: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start anvil in the background and wait until it answers; returns (process, url)."""
    port = port or free_port()
    process = subprocess.Popen(anvil_command(port, state), stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_rpc(url, process=process)
    except ChainUnreachable:
        process.kill()
        raise
    return process, url


def stop(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a node with SIGINT (anvil then writes its --state file) and wait for it."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
