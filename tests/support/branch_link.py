"""A branch office's line, inside the test's own network namespace.

The suite runs in a private namespace (scripts/netns-run). Here a second one, the
branch, is joined to it by a veth pair: the kiosk runs in the branch (`BranchLink.argv`
wraps its command in nsenter), the server, the console and the officer's browser stay
outside. The branch's side of the pair is the kiosk's uplink: a `tbf` rate limit with a
modem-like queue in front of it, and random loss both ways with iptables' `statistic`
match (this kernel has no `netem`). `shape()` sets a profile and may change it mid-call.

Needs root inside the suite's namespace, iproute2 (ip, tc), util-linux (unshare,
nsenter) and iptables: scripts/install-test-deps installs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass

_numbers = itertools.count(1)


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """One kind of branch line: the uplink's rate (None: unshaped), random loss each way,
    and how much the modem queues before it drops (at the line's rate)."""

    name: str
    rate_kbit: int | None = None
    loss: float = 0.0
    queue_ms: int = 200

    def describe(self) -> str:
        rate = "unshaped" if self.rate_kbit is None else f"{self.rate_kbit} kbit/s"
        return rate + (f", {self.loss:.0%} loss each way" if self.loss else "")


PROFILES = {
    p.name: p
    for p in (
        LinkProfile("unshaped"),
        LinkProfile("2mbit", 2000),
        LinkProfile("1mbit", 1000),
        LinkProfile("512kbit", 512),
        LinkProfile("256kbit", 256),
        LinkProfile("1mbit-loss3", 1000, loss=0.03),
    )
}


class LinkError(RuntimeError):
    """A command that builds or shapes the link failed; the message has its output."""


def missing_tools() -> list[str]:
    return [t for t in ("ip", "tc", "nsenter", "unshare", "iptables") if shutil.which(t) is None]


async def _run(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise LinkError(f"{' '.join(argv)} -> exit {proc.returncode}: {text.strip()}")
    return text


@dataclass
class LineCounters:
    """The uplink's own counters (tc and iptables), cumulative."""

    sent_bytes: int = 0
    sent_packets: int = 0
    dropped: int = 0  # by the modem's full queue
    lost_up: int = 0  # by the random loss, kiosk -> server
    lost_down: int = 0


class BranchLink:
    """The branch namespace and its line. Use `branch_link()`."""

    def __init__(self) -> None:
        n = next(_numbers)
        self.number = n
        self.outside = f"lkbr{n}a"  # this namespace's end
        self.inside = f"lkbr{n}b"  # the branch's end: the kiosk's uplink
        self.outside_ip = f"10.213.{n}.1"
        self.inside_ip = f"10.213.{n}.2"
        self.profile = LinkProfile("unshaped")
        self._holder: asyncio.subprocess.Process | None = None

    @property
    def netns(self) -> str:
        assert self._holder is not None, "start() first"
        return f"/proc/{self._holder.pid}/ns/net"

    def argv(self, *command: str) -> list[str]:
        """`command` run inside the branch."""
        return ["nsenter", f"--net={self.netns}", "--", *command]

    async def _inside(self, *command: str) -> str:
        return await _run(*self.argv(*command))

    async def start(self) -> None:
        # A sleeping process holds the branch's namespace; it goes when the holder does.
        self._holder = await asyncio.create_subprocess_exec(
            "unshare", "--net", "sleep", "86400", stdin=asyncio.subprocess.DEVNULL
        )
        await asyncio.sleep(0.05)
        await _run("ip", "link", "add", self.outside, "type", "veth", "peer", "name",
                   self.inside, "netns", str(self._holder.pid))  # fmt: skip
        await _run("ip", "addr", "add", f"{self.outside_ip}/24", "dev", self.outside)
        await _run("ip", "link", "set", self.outside, "up")
        await self._inside("ip", "link", "set", "lo", "up")
        await self._inside("ip", "addr", "add", f"{self.inside_ip}/24", "dev", self.inside)
        await self._inside("ip", "link", "set", self.inside, "up")
        await self._inside("ip", "route", "add", "default", "via", self.outside_ip)
        # Loss: one rule each way, its probability replaced by shape().
        for chain, flag in (("OUTPUT", "-o"), ("INPUT", "-i")):
            await self._inside("iptables", "-A", chain, flag, self.inside, "-m", "statistic",
                               "--mode", "random", "--probability", "0", "-j", "DROP")  # fmt: skip

    async def shape(self, profile: LinkProfile) -> None:
        """Give the kiosk's uplink this profile (now, also mid-call)."""
        if profile.rate_kbit is None:
            with contextlib.suppress(LinkError):  # nothing to delete when unshaped
                await self._inside("tc", "qdisc", "del", "dev", self.inside, "root")
        else:
            rate = profile.rate_kbit * 1000
            burst = max(3_000, rate // 8 // 100)  # 10 ms at the line's rate, two packets at least
            limit = max(6_000, rate // 8 * profile.queue_ms // 1000)
            await self._inside("tc", "qdisc", "replace", "dev", self.inside, "root", "tbf",
                               "rate", f"{profile.rate_kbit}kbit", "burst", str(burst),
                               "limit", str(limit))  # fmt: skip
        for n, chain, flag in ((1, "OUTPUT", "-o"), (1, "INPUT", "-i")):
            await self._inside("iptables", "-R", chain, str(n), flag, self.inside, "-m",
                               "statistic", "--mode", "random", "--probability",
                               f"{profile.loss:.4f}", "-j", "DROP")  # fmt: skip
        self.profile = profile

    async def counters(self) -> LineCounters:
        out = LineCounters()
        qdisc = await self._inside("tc", "-s", "qdisc", "show", "dev", self.inside)
        sent = re.search(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+)", qdisc)
        if sent:
            out.sent_bytes, out.sent_packets, out.dropped = map(int, sent.groups())
        for chain in ("OUTPUT", "INPUT"):
            table = await self._inside("iptables", "-L", chain, "-v", "-x", "-n")
            rows = [line.split() for line in table.splitlines() if "statistic" in line]
            if rows:
                if chain == "OUTPUT":
                    out.lost_up = int(rows[0][0])
                else:
                    out.lost_down = int(rows[0][0])
        return out

    async def stop(self) -> None:
        with contextlib.suppress(LinkError):
            await _run("ip", "link", "del", self.outside)
        if self._holder is not None and self._holder.returncode is None:
            self._holder.kill()
            await self._holder.wait()


@contextlib.asynccontextmanager
async def branch_link(profile: LinkProfile | None = None) -> AsyncIterator[BranchLink]:
    link = BranchLink()
    try:
        await link.start()
        if profile is not None:
            await link.shape(profile)
        yield link
    finally:
        await link.stop()
