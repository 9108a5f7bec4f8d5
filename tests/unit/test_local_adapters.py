"""Contract of the Router and LiveState ports, run against the in-process adapters.

The Redis adapters (a later issue) must pass the same tests: keep them port-level.
"""

from __future__ import annotations

from server.adapters.local import LocalLiveState, LocalRouter
from server.ports.live_state import LiveSession
from server.ports.router import Delivery
from signaling.messages import Ping
from signaling.session import SessionState


class Box:
    def __init__(self, accept: bool = True) -> None:
        self.got: list[Delivery] = []
        self.accept = accept
        self.id = f"box{id(self)}"

    def deliver(self, delivery: Delivery) -> bool:
        if self.accept:
            self.got.append(delivery)
        return self.accept


async def test_router_delivers_to_the_bound_mailbox_only() -> None:
    router, a, b = LocalRouter(), Box(), Box()
    assert await router.attach("p1", a) is None
    assert await router.send("p1", Ping(), received_at=1.0)
    assert a.got[0].received_at == 1.0 and not b.got
    assert not await router.send("nobody", Ping())


async def test_router_replacement_and_stale_detach() -> None:
    router, old, new = LocalRouter(), Box(), Box()
    await router.attach("p1", old)
    assert await router.attach("p1", new) is old
    await router.detach("p1", old)  # the old socket's cleanup must not unbind the new one
    assert await router.send("p1", Ping())
    assert new.got and not old.got


async def test_topics_count_only_mailboxes_that_took_the_message() -> None:
    router, a, full = LocalRouter(), Box(), Box(accept=False)
    await router.subscribe("floor", a)
    await router.subscribe("floor", full)
    assert await router.publish("floor", Ping()) == 1
    await router.unsubscribe("floor", a)
    assert await router.publish("floor", Ping()) == 0


async def test_live_state_indexes_sessions_by_both_ends() -> None:
    live = LocalLiveState()
    s1 = LiveSession("s1", "booth-a", "cso-1", SessionState.RESERVED, 0.0)
    s2 = LiveSession("s2", "booth-b", "cso-1", SessionState.CONNECTING, 0.0)
    await live.put(s1)
    await live.put(s2)
    assert [s.session_id for s in await live.of_peer("cso:cso-1")] == ["s1", "s2"]
    assert (await live.of_peer("booth:booth-b"))[0].cso_id == "cso-1"
    # A user named like a booth is another peer (role and id address a peer).
    assert await live.of_peer("booth:cso-1") == []
    await live.put(s1.with_state(SessionState.ON_HOLD))
    assert (await live.get("s1")).state is SessionState.ON_HOLD  # type: ignore[union-attr]
    await live.delete("s1")
    assert await live.get("s1") is None
    assert await live.of_peer("booth:booth-a") == []
    assert await live.count() == 1
