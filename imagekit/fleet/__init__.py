"""The fleet beyond provisioning: list, deprovision, prune snapshots, collect garbage.

Everything is found by imagekit's labels, never by name alone, so servers and snapshots that
imagekit did not make are never touched.
"""
