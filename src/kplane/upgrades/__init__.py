"""``kplane upgrade``: plan, apply and roll back two-step control-plane upgrades (KEP-4330).

Modules: :mod:`plan` (pure planning), :mod:`inspect` (reading a live cluster and manifests), :mod:`soak`
(post-restart checks), :mod:`process` (restarting the control plane of a data directory through its CLI),
:mod:`apply` (the state machine, ``upgrade-state.json``) and :mod:`render` (text and JSON).
It drives the server only through its CLI and its API, never by importing it.
"""
