"""Redis adapters: the live floor shared by many server processes.

- `keys`: every key and stream, under one prefix.
- `sealed`: Python objects through Redis, authenticated with the server's secret.
- `live_state`: the LiveState port (sessions, by peer and by claim).
- `router`: the Router port (per-process inbox streams, presence, the floor channel).
- `leader`: the leader lease and its fenced commit of the core's decisions.
- `floor`: ClusterFloor, what the socket layer talks to on every process.
"""
