"""The engine: the cloud's records and actions, servers' machines, the fixed catalogue, fault rules.

It knows no HTTP: ``api/`` checks a request and calls in here; here calls down into ``guests/``
(machines), ``host/`` (storage, firewall) and ``state/`` (the store).
"""
